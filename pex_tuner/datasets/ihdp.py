"""IHDP with Hill's (2011) response surfaces, as shipped inside econml.

Covariates and treatment come from econml's own copy of the data (``econml.data.dgps``); the
response surfaces are recomputed here with the same random draws as econml's
``ihdp_surface_A`` / ``ihdp_surface_B`` so that the true mean potential outcomes (not only the
effects) are known. A test checks that outcomes and effects equal econml's for the same seed.

IHDP is *not* a randomized experiment: the treated group excludes children of non-white
mothers. Propensities default to the empirical arm shares, which makes IPS biased here; prefer
the direct method or doubly robust estimators with a good outcome model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from pex_tuner.data import ExperimentData
from pex_tuner.datasets._truth import ExperimentWithTruth
from pex_tuner.errors import ConfigurationError

__all__ = ["load_ihdp"]

IHDP_FEATURES = [
    "bw",
    "b.head",
    "preterm",
    "birth.o",
    "nnhealth",
    "momage",
    "sex",
    "twin",
    "b.marr",
    "mom.lths",
    "mom.hs",
    "mom.scoll",
    "cig",
    "first",
    "booze",
    "drugs",
    "work.dur",
    "prenatal",
    "site1",
    "site2",
    "site3",
    "site4",
    "site5",
    "site6",
    "site7",
]


def load_ihdp(surface: str = "B", *, random_state: int | None = 0) -> ExperimentWithTruth:
    """IHDP (n = 747; 139 treated, 608 control) with response surface ``"A"`` or ``"B"``.

    Returns:
        ExperimentWithTruth with arms ``control`` / ``treated`` and outcome ``y`` (max).
    """
    from econml.data.dgps import _process_ihdp_sim_data

    if surface not in ("A", "B"):
        raise ConfigurationError(f"'surface' must be 'A' or 'B'; got {surface!r}")
    T, X = _process_ihdp_sim_data()
    T = T.astype(np.int64)
    n, d_x = X.shape
    rs = check_random_state(random_state)
    if surface == "A":
        beta = rs.choice([0, 1, 2, 3, 4], size=d_x, replace=True, p=[0.5, 0.2, 0.15, 0.1, 0.05])
        mu0 = X @ beta
        mu1 = mu0 + 4.0
    else:
        beta = rs.choice(
            [0, 0.1, 0.2, 0.3, 0.4], size=d_x, replace=True, p=[0.6, 0.1, 0.1, 0.1, 0.1]
        )
        offset = np.concatenate((np.zeros((n, 1)), np.ones((n, d_x - 1)) * 0.5), axis=1)
        omega = np.mean((X @ beta - np.exp((X + offset) @ beta))[T == 1]) - 4
        mu0 = np.exp((X + offset) @ beta)
        mu1 = X @ beta - omega
    Y = np.where(T == 1, mu1, mu0) + rs.normal(0, 1, size=n)
    frame = pd.DataFrame(X[:, 1:], columns=IHDP_FEATURES)
    frame["arm"] = np.where(T == 1, "treated", "control").astype(object)
    frame["y"] = Y
    data = ExperimentData.from_frame(
        frame, treatment="arm", control="control", outcomes={"y": "max"}
    )
    po = np.stack([mu0, mu1], axis=1)[:, :, None]
    return ExperimentWithTruth(data=data, potential_outcomes=po, name=f"ihdp_{surface}")
