"""OnlineSimulator: an online experiment system on top of :func:`make_synthetic`.

Every call draws fresh units of the same experiment design as the offline data
(``make_synthetic(n, design_seed=design_seed, ...)`` with a fresh ``random_state``), assigns
them arms with a candidate policy and returns noisy online metrics, the unlogged long-term
outcome included.

The online world may differ from the offline one (novelty effects, seasonality, a changed
product around the experiment). With ``mu[n, k, j]`` the offline mean potential outcome of unit
n under arm k for outcome j (``make_synthetic``'s ``potential_outcomes``; the long-term outcome
``long_term[n, k]`` is treated as one more outcome), the online mean outcome is::

    mu_online[n, k, j] = mu[n, 0, j]
                         + (1 - gap) * (mu[n, k, j] - mu[n, 0, j])
                         + gap * GAP_SHIFT * (k / T) * x0[n]

with ``T = n_treatments``, ``x0`` the first feature and ``GAP_SHIFT = 0.3``. Control (k = 0)
is unchanged; treatment effects shrink by ``1 - gap`` and gain a shift that grows with the arm
index and is correlated with ``x0``. So OPE on the offline data, which estimates the ``gap = 0``
world, is biased for online truth: online effects are ``1 - gap`` times the offline ones, plus
an ``x0``-dependent shift (zero on average over units, since x0 ~ N(0, 1)) that rewards policies
sending high-``x0`` units to bold arms and punishes those sending low-``x0`` units there.
``gap = 0`` makes the online world the offline truth.

An observed online outcome is ``mu_online[n, W_n, j] + noise * eps`` with ``eps ~ N(0, 1)``
independent per unit and outcome, ``W_n`` the arm the policy assigned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.datasets._truth import ExperimentWithTruth
from pex_tuner.datasets.synthetic import make_synthetic
from pex_tuner.errors import ConfigurationError, InputDataError

__all__ = ["GAP_SHIFT", "LONG_TERM", "OnlineSimulator"]

GAP_SHIFT = 0.3
LONG_TERM = "long_term"
_MAX_SEED = 2**63 - 1


def _policy_indices(
    policy: Any, frame: pd.DataFrame, arms: tuple[str, ...], name: str
) -> np.ndarray:
    if not hasattr(policy, "assign_index"):
        raise ConfigurationError(
            f"policy '{name}' must be a PolicyArtifact or another object with "
            f"assign_index(frame); got {type(policy).__name__}"
        )
    # a PolicyArtifact names its arms on .policy; other assigners on themselves
    policy_arms = getattr(getattr(policy, "policy", None), "arms", getattr(policy, "arms", None))
    idx = policy.assign_index(frame)
    if policy_arms is not None and tuple(str(a) for a in policy_arms) != arms:
        raise InputDataError(
            f"policy '{name}' is for arms {[str(a) for a in policy_arms]}; the simulator has arms "
            f"{list(arms)}"
        )
    idx = np.asarray(idx)
    if idx.shape != (len(frame),) or not np.issubdtype(idx.dtype, np.integer):
        raise InputDataError(
            f"policy '{name}' returned {idx.dtype} values of shape {idx.shape}; expected arm "
            f"indices of shape ({len(frame)},)"
        )
    if len(idx) and (idx.min() < 0 or idx.max() >= len(arms)):
        raise InputDataError(f"policy '{name}' returned arm indices outside [0, {len(arms) - 1}]")
    return idx.astype(np.int64)


class OnlineSimulator:
    """Simulated online experiments sharing the effect design of ``make_synthetic``.

    Args:
        design_seed: ``make_synthetic``'s design seed; use the one of the offline data so the
            offline experiment and the online world share their effects.
        n_features, n_treatments, n_outcomes, heterogeneity: as in ``make_synthetic``.
        noise: standard deviation of the noise of every online outcome (> 0).
        gap: offline/online gap in [0, 1]; see the module docstring for the equation.
        random_state: seed of the fresh units and the noise. Successive calls draw new units.

    Attributes:
        arms: arm labels, control first.
        metrics: outcome names, then ``"long_term"``.

    Example::

        sim = OnlineSimulator(design_seed=0, gap=0.2, random_state=1)
        results = sim.run({"candidate": PolicyArtifact.load("p.json")}, n_units_per_policy=5_000)
        results["candidate"]["long_term"]  # {"mean": ..., "sem": ..., "n": 5000}
    """

    def __init__(
        self,
        *,
        design_seed: int = 0,
        n_features: int = 6,
        n_treatments: int = 3,
        n_outcomes: int = 3,
        heterogeneity: float = 1.0,
        noise: float = 1.0,
        gap: float = 0.0,
        random_state: int | None = None,
    ) -> None:
        if not 0.0 <= gap <= 1.0:
            raise ConfigurationError(f"'gap' must lie in [0, 1]; got {gap}")
        if noise <= 0:
            raise ConfigurationError(f"'noise' must be > 0; got {noise}")
        self.design_seed = design_seed
        self.n_features = n_features
        self.n_treatments = n_treatments
        self.n_outcomes = n_outcomes
        self.heterogeneity = heterogeneity
        self.noise = noise
        self.gap = gap
        self.random_state = random_state
        self._rng = np.random.default_rng(random_state)
        probe = self._experiment(10, seed=0)  # validates the design arguments
        self.arms: tuple[str, ...] = probe.data.arms
        self.metrics: tuple[str, ...] = (*probe.data.outcomes, LONG_TERM)

    def __repr__(self) -> str:
        return (
            f"OnlineSimulator(design_seed={self.design_seed}, n_features={self.n_features}, "
            f"n_treatments={self.n_treatments}, n_outcomes={self.n_outcomes}, "
            f"heterogeneity={self.heterogeneity}, noise={self.noise}, gap={self.gap}, "
            f"random_state={self.random_state})"
        )

    # ------------------------------------------------------------------ the online world
    def _experiment(self, n_units: int, *, seed: int) -> ExperimentWithTruth:
        return make_synthetic(
            n_units,
            n_treatments=self.n_treatments,
            n_outcomes=self.n_outcomes,
            n_features=self.n_features,
            heterogeneity=self.heterogeneity,
            long_term=True,
            random_state=seed,
            design_seed=self.design_seed,
        )

    def draw_units(self, n_units: int) -> ExperimentWithTruth:
        """Fresh units of the design (offline truth), from the simulator's random stream."""
        if n_units < 10:
            raise ConfigurationError(f"'n_units' must be at least 10; got {n_units}")
        return self._experiment(n_units, seed=int(self._rng.integers(_MAX_SEED)))

    def online_means(self, experiment: ExperimentWithTruth) -> np.ndarray:
        """Online mean outcomes of ``experiment``'s units (module docstring's equation).

        Returns:
            ndarray of shape (n_units, n_arms, n_outcomes + 1), the last outcome long-term.
        """
        mu = np.concatenate(
            [experiment.potential_outcomes, experiment.long_term[:, :, None]], axis=2
        )
        x0 = experiment.data.features["x0"].to_numpy(dtype=np.float64)
        k = np.arange(mu.shape[1], dtype=np.float64)
        base = mu[:, :1, :]
        shift = GAP_SHIFT * (k / self.n_treatments)[None, :] * x0[:, None]  # (n_units, n_arms)
        return base + (1.0 - self.gap) * (mu - base) + self.gap * shift[:, :, None]

    # ------------------------------------------------------------------ experiments
    def run(
        self, policies: Mapping[str, Any], n_units_per_policy: int
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Run each policy online on its own fresh units and report noisy metric means.

        Args:
            policies: name -> a ``PolicyArtifact`` (assigns with ``assign_index(frame)``) or any
                object with ``assign_index(frame)`` returning arm indices of shape (n,).
            n_units_per_policy: units drawn for each policy (>= 10).

        Returns:
            name -> metric -> ``{"mean": m, "sem": s, "n": n}`` for every outcome and
            ``"long_term"``: the observed mean, its standard error (sample sd / sqrt(n)) and the
            number of units; the ``metrics`` payload the online service receives.
        """
        if not policies:
            raise ConfigurationError("'policies' must hold at least one policy")
        out: dict[str, dict[str, dict[str, float]]] = {}
        for name, policy in policies.items():
            exp = self.draw_units(n_units_per_policy)
            W = _policy_indices(policy, exp.data.features, self.arms, str(name))
            mu = self.online_means(exp)[np.arange(len(W)), W, :]  # (n, n_metrics)
            y = mu + self.noise * self._rng.standard_normal(mu.shape)
            n = len(y)
            means, sems = y.mean(axis=0), y.std(axis=0, ddof=1) / np.sqrt(n)
            out[str(name)] = {
                m: {"mean": float(means[j]), "sem": float(sems[j]), "n": n}
                for j, m in enumerate(self.metrics)
            }
        return out

    def true_values(self, policy: Any, n_units: int = 200_000) -> dict[str, float]:
        """Expected (noise-free) online value of each metric under ``policy``.

        The mean of ``mu_online[n, policy(x_n), j]`` over ``n_units`` fresh units; its error is
        the sampling error of the units' means only (about 1 / sqrt(n_units)).

        Returns:
            metric -> value, for every outcome and ``"long_term"``.
        """
        exp = self.draw_units(n_units)
        W = _policy_indices(policy, exp.data.features, self.arms, "policy")
        values = self.online_means(exp)[np.arange(len(W)), W, :].mean(axis=0)
        return {m: float(values[j]) for j, m in enumerate(self.metrics)}

    def simulate_launch(
        self, launched: Any, n_units: int, *, unit_id: str = "unit_id"
    ) -> pd.DataFrame:
        """Launch traffic: fresh units assigned by a launched policy, with observed metrics.

        Args:
            launched: a ``LaunchedPolicy`` (anything whose ``assign(frame, unit_id=...)``
                returns a frame with ``arm`` labels, ``group`` and ``propensity``).
            n_units: units to draw.
            unit_id: name of the unit id column (ids are ``0 .. n_units - 1`` offset by a
                random draw, so successive calls give new units).

        Returns:
            DataFrame of shape (n_units, ...): the unit id, the features, the launch columns
            (``arm``, ``group``, ``propensity``, ...) and one column per metric.
        """
        exp = self.draw_units(n_units)
        frame = exp.data.features.copy()
        frame.insert(0, unit_id, int(self._rng.integers(2**40)) + np.arange(n_units))
        assigned = launched.assign(frame, unit_id=unit_id)
        lookup = {a: i for i, a in enumerate(self.arms)}
        W = np.fromiter((lookup[str(a)] for a in assigned["arm"]), dtype=np.int64, count=n_units)
        mu = self.online_means(exp)[np.arange(n_units), W, :]
        y = mu + self.noise * self._rng.standard_normal(mu.shape)
        out = pd.concat([frame, assigned.drop(columns=[unit_id])], axis=1)
        for j, m in enumerate(self.metrics):
            out[m] = y[:, j]
        return out
