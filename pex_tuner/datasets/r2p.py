"""The R2P synthetic generators: Synthetic A and the COVID-like trial.

Equations from ../shared/data/SYNTHETIC.md (Lee et al. 2020, R2P; Synthetic A is Athey & Imbens
2016, design 1). Both are two-arm randomized experiments with one outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.datasets._truth import ExperimentWithTruth
from pex_tuner.errors import ConfigurationError

__all__ = ["make_covid", "make_synthetic_a"]

_ARMS = ["control", "treated"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _assemble(
    X: pd.DataFrame,
    W: np.ndarray,
    mu0: np.ndarray,
    mu1: np.ndarray,
    Y: np.ndarray,
    direction: str,
    name: str,
) -> ExperimentWithTruth:
    frame = X.copy()
    frame["arm"] = np.asarray(_ARMS, dtype=object)[W]
    frame["y"] = Y
    frame["propensity"] = 0.5
    data = ExperimentData.from_frame(
        frame,
        treatment="arm",
        control="control",
        outcomes={"y": direction},
        propensity="propensity",
    )
    po = np.stack([mu0, mu1], axis=1)[:, :, None]
    return ExperimentWithTruth(data=data, potential_outcomes=po, name=name)


def make_synthetic_a(
    n_units: int = 1300, *, noise: float = 0.01, random_state: int | None = 0
) -> ExperimentWithTruth:
    """Synthetic A: x1, x2 ~ N(0, 1); tau(x) = x1 / 2; W ~ Bernoulli(0.5).

    Y(1) = 0.75 x1 + x2 + e1, Y(0) = 0.25 x1 + x2 + e0, e ~ N(0, noise^2) (R2P uses 0.01).
    R2P's sizes are 300 train + 1000 test, hence the default of 1300 units.
    """
    if n_units < 4:
        raise ConfigurationError(f"'n_units' must be at least 4; got {n_units}")
    rng = np.random.default_rng(random_state)
    x = rng.standard_normal((n_units, 2))
    W = (rng.uniform(size=n_units) <= 0.5).astype(np.int64)
    mu1 = 0.75 * x[:, 0] + x[:, 1]
    mu0 = 0.25 * x[:, 0] + x[:, 1]
    e1 = rng.normal(0.0, noise, n_units)
    e0 = rng.normal(0.0, noise, n_units)
    Y = np.where(W == 1, mu1 + e1, mu0 + e0)
    X = pd.DataFrame(x, columns=["x1", "x2"])
    return _assemble(X, W, mu0, mu1, Y, "max", "synthetic_a")


_COVID_COLUMNS = [
    # name, mean, sd, decimals
    ("age", 66.0, 4.1, 0),
    ("wbc", 6.2, 1.0, 1),
    ("lymphocyte", 0.8, 0.1, 1),
    ("platelet", 183.0, 20.4, 0),
    ("creatinine", 68.0, 6.6, 0),
    ("ast", 31.0, 5.1, 0),
    ("alt", 26.0, 5.1, 0),
    ("ldh", 339.0, 51.0, 0),
    ("creatine_kinase", 76.0, 21.0, 0),
]


def make_covid(
    n_units: int = 1300, *, noise: float = 0.1, random_state: int | None = 0
) -> ExperimentWithTruth:
    """The R2P COVID-like trial: tau = 4 sigma(T - 9) - 5, T = days from onset in {4..14}.

    Nine lab and demographic covariates (rounded normals) plus T; all ten z-scored with the
    sample mean and SD (ddof=1) over all rows. mu0 = beta . X[:9] + sigma(T - 9) + 5,
    mu1 = beta . X[:9] + 5 sigma(T - 9), beta_j iid from {0, .1, .2, .3, .4} with probabilities
    {.6, .1, .1, .1, .1}. Noise N(0, noise^2) per potential outcome. The outcome is treated as
    "max" (the effect is negative everywhere, so the best policy treats nobody).
    """
    if n_units < 4:
        raise ConfigurationError(f"'n_units' must be at least 4; got {n_units}")
    rng = np.random.default_rng(random_state)
    raw = np.empty((n_units, 10))
    for i, (_, m, s, dec) in enumerate(_COVID_COLUMNS):
        raw[:, i] = np.round(rng.normal(m, s, n_units), dec)
    T = np.floor(11 * rng.uniform(size=n_units)) + 4
    raw[:, 9] = T
    Xs = (raw - raw.mean(axis=0)) / raw.std(axis=0, ddof=1)
    W = (rng.uniform(size=n_units) < 0.5).astype(np.int64)
    beta = rng.choice([0.0, 0.1, 0.2, 0.3, 0.4], size=9, p=[0.6, 0.1, 0.1, 0.1, 0.1])
    prog = Xs[:, :9] @ beta
    mu0 = prog + _sigmoid(T - 9) + 5
    mu1 = prog + 5 * _sigmoid(T - 9)
    e0 = rng.normal(0.0, noise, n_units)
    e1 = rng.normal(0.0, noise, n_units)
    Y = np.where(W == 1, mu1 + e1, mu0 + e0)
    X = pd.DataFrame(Xs, columns=[c[0] for c in _COVID_COLUMNS] + ["days_since_onset"])
    return _assemble(X, W, mu0, mu1, Y, "max", "covid")
