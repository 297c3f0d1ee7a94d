"""Reward definitions: what an interpretable-policy learner maximizes.

Outcomes are combined with signed, raw-scale weights ``w_j`` (the
:class:`~pex_tuner.policies.LinearUtilityPolicy` convention: negative for minimized outcomes;
:func:`preference_weights` turns non-negative preferences into them).

- :func:`policy_rewards`: the HTE reward of giving unit i arm k, ``r[i, k] = sum_j w_j
  tau[i, k, j]`` (GreedyTreeSearch-HTE), summed over a segment by :class:`SummedRewards`.
- :class:`DifferenceInMeans`: No-HTE, no CATE model. The lift of arm k in segment S is
  ``n_S * (m_Sk - m_S0)`` with ``m_Sk = sum_{i in S, W_i = k} y_i / p_i / sum_{i in S, W_i = k}
  1 / p_i`` (the Hajek mean; with constant propensities per arm, the plain difference in
  means) of the observed utility ``y_i = sum_j w_j Y_ij``, with the reject option: a split
  must pass a significance test.
- :func:`dr_rewards`: per-unit doubly robust (or IPS) scores of the utility, the same scores as
  the ``dr`` / ``ips`` estimators of :mod:`pex_tuner.ope` (GUIDE's value of following a policy).

The criteria plug into the shared tree search (:mod:`pex_tuner.policies.tree_search`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope.estimators import components, make_estimator
from pex_tuner.ope.kernel import linear_utilities
from pex_tuner.policies.tree_search import Candidates

__all__ = [
    "DifferenceInMeans",
    "SummedRewards",
    "dr_rewards",
    "outcome_weight_vector",
    "policy_rewards",
    "preference_weights",
    "utility_outcome",
]


# ---------------------------------------------------------------------- outcome weights
def policy_rewards(
    effects: EffectPredictions | np.ndarray, outcome_weights: Sequence[float] | None = None
) -> np.ndarray:
    """Per-unit, per-arm rewards ``r[i, k] = sum_j w_j tau[i, k, j]``, shape (n_units, n_arms).

    Args:
        effects: EffectPredictions, or tau of shape (n_units, n_arms, n_outcomes) with the
            control slice zero.
        outcome_weights: w_j, one per outcome, applied to raw-scale effects (negative for
            outcomes to minimize). May be omitted only when there is one outcome.
    """
    tau = effects.tau if isinstance(effects, EffectPredictions) else np.asarray(effects, float)
    if tau.ndim != 3:
        raise InputDataError(
            f"effects must have shape (n_units, n_arms, n_outcomes); got shape {tau.shape}"
        )
    w = _checked_weights(outcome_weights, tau.shape[2], np.ones(1))
    # the fixed outcome order of LinearUtilityPolicy.utilities (zero biases)
    return linear_utilities(tau, w, np.zeros(tau.shape[1]))


def _checked_weights(
    outcome_weights: Sequence[float] | None, J: int, single: np.ndarray, names: str = ""
) -> np.ndarray:
    """``outcome_weights`` as J finite floats; None only for one outcome, meaning ``single``.

    ``names`` (e.g. " ['y']") follows "outcomes" / "one per outcome" in the messages.
    """
    if outcome_weights is None:
        if J != 1:
            raise ConfigurationError(
                f"'outcome_weights' is needed to combine {J} outcomes{names} into one reward"
            )
        return single
    w = np.asarray(outcome_weights, dtype=float)
    if w.shape != (J,) or not np.isfinite(w).all():
        raise ConfigurationError(
            f"'outcome_weights' must be {J} finite numbers (one per outcome{names}); got "
            f"{np.asarray(outcome_weights).tolist()}"
        )
    return w


def outcome_weight_vector(
    data: ExperimentData, outcome_weights: Sequence[float] | None
) -> np.ndarray:
    """Signed raw-scale weights w_j, shape (n_outcomes,).

    ``None`` is allowed only for a single outcome and then means +1 for a maximized outcome and
    -1 for a minimized one.
    """
    names = f" {list(data.outcomes)}"
    return _checked_weights(outcome_weights, data.n_outcomes, data.signs.astype(float), names)


def preference_weights(
    data: ExperimentData, preferences: Mapping[str, float] | None = None
) -> np.ndarray:
    """Signed weights from non-negative preferences per outcome name, shape (n_outcomes,).

    ``w_j = +p_j`` for maximized outcomes and ``-p_j`` for minimized ones (as
    ``LinearUtilityPolicy.from_preferences``). ``None`` or an empty mapping: preference 1 for
    every outcome; otherwise outcomes not named get 0.
    """
    if not preferences:
        return data.signs.astype(float)
    unknown = [o for o in preferences if o not in data.outcomes]
    if unknown:
        raise ConfigurationError(
            f"weight(s) for unknown outcome(s) {unknown}; expected names from {list(data.outcomes)}"
        )
    p = np.array([float(preferences.get(o, 0.0)) for o in data.outcomes])
    if (p < 0).any() or not np.isfinite(p).all():
        raise ConfigurationError(
            f"preferences must be finite and non-negative; got {dict(preferences)}"
        )
    if not p.any():
        raise ConfigurationError("at least one outcome needs a positive weight")
    return data.signs * p


def utility_outcome(data: ExperimentData, weights: np.ndarray) -> np.ndarray:
    """Observed weighted utility ``y_i = sum_j w_j Y_ij``, shape (n_units,)."""
    y = np.zeros(data.n_units)
    for j in range(data.n_outcomes):  # fixed order, as in LinearUtilityPolicy.utilities
        y += weights[j] * data.Y[:, j]
    return y


def dr_rewards(
    data: ExperimentData, predictions: EffectPredictions | None, weights: np.ndarray
) -> np.ndarray:
    """Per-unit, per-arm doubly robust scores of the weighted utility, shape (n_units, n_arms).

    ``G[i, k] = mu_ik + 1{W_i = k} (y_i - mu_iW_i) / p_i`` with ``y = Y @ w`` and
    ``mu = predictions.mu @ w``: the score of :mod:`pex_tuner.ope`'s ``dr`` estimator, so
    ``mean_i G[i, pi(x_i)]`` is the DR estimate of policy pi's utility. With ``predictions``
    None the scores are IPS (outcome model zero).
    """
    n, K = data.n_units, data.n_arms
    w = np.asarray(weights, dtype=float)
    y = (data.Y @ w)[:, None]  # (n, 1): the utility as one outcome
    mu = None
    if predictions is not None:
        if predictions.n_units != n or predictions.arms != data.arms:
            raise InputDataError(
                f"predictions cover {predictions.n_units} units and arms "
                f"{list(predictions.arms)}; the experiment has {n} units and arms "
                f"{list(data.arms)}"
            )
        mu = (predictions.mu @ w)[:, :, None]  # (n, K, 1)
    est = make_estimator("ips" if mu is None else "dr", y, data.treatment, data.propensity, mu, K)
    S, _ = components(est, y, data.treatment, data.propensity, mu, K)
    return S[:, :, 0] + est.shift[0]  # the estimator's scores are centred by its shift


# ---------------------------------------------------------------------- criteria
class SummedRewards:
    """Criterion whose statistic columns are per-arm rewards (n_units, n_arms): a set of
    units is worth the sum of its rewards under each arm; every split is eligible."""

    def arm_values(self, S: np.ndarray, n: np.ndarray | float) -> np.ndarray:
        return S

    def eligible(self, c: Candidates) -> np.ndarray | None:
        return None


@dataclass(frozen=True)
class DifferenceInMeans:
    """No-HTE criterion: in-segment differences in (Hajek) means with the reject option.

    Statistic columns (:meth:`statistics`), per arm: sum of 1/p, of y/p, of y^2/p, and the unit
    count, shape (n_units, 4 n_arms). A split is eligible only when its gain over keeping the
    node's single best arm is significant: ``gain / se(gain) >= z``, with ``z`` the one-sided
    ``alpha`` quantile Bonferroni-corrected over the node's candidate splits (``se`` from the
    within-arm variances of the segment means). Arms with fewer than ``min_arm_units`` units
    (or control units) in a set are not eligible there.

    Attributes:
        alpha: significance level; None turns the test (and the reject option) off.
        min_arm_units: fewest units of an arm and of control in a set for the arm to count.
    """

    alpha: float | None
    min_arm_units: int

    @staticmethod
    def statistics(data: ExperimentData, y: np.ndarray) -> np.ndarray:
        """Statistic columns of shape (n_units, 4 n_arms) of the utility ``y`` (n_units,)."""
        n, K = data.n_units, data.n_arms
        ipw = 1.0 / data.propensity
        onehot = np.zeros((n, K))
        onehot[np.arange(n), data.treatment] = 1.0
        a = onehot * ipw[:, None]
        return np.hstack([a, a * y[:, None], a * (y * y)[:, None], onehot])

    @staticmethod
    def _split_stats(S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance of the mean, count) per arm from statistic sums S (..., 4K)."""
        K = S.shape[-1] // 4
        A, B, Q, N = (S[..., i * K : (i + 1) * K] for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(A > 0, B / np.where(A > 0, A, 1.0), np.nan)
            var = np.where(A > 0, Q / np.where(A > 0, A, 1.0), np.nan) - m * m
            v = np.maximum(var, 0.0) / np.maximum(N, 1.0)
        return m, v, N

    def arm_values(self, S: np.ndarray, n: np.ndarray | float) -> np.ndarray:
        """Estimated total lift over control of each arm, shape (..., K); -inf where an arm
        (or control) has too few units."""
        m, _, N = self._split_stats(S)
        ok = self.min_arm_units <= N
        lift = m - m[..., :1]
        lift = np.where(ok & ok[..., :1], lift, -np.inf)
        lift[..., 0] = 0.0
        with np.errstate(invalid="ignore"):
            out = np.asarray(n, dtype=float)[..., None] * lift
        return np.where(np.isnan(out), -np.inf, out)

    def eligible(self, c: Candidates) -> np.ndarray | None:
        """Splits whose gain over the node's best arm is significant (shape (F, B))."""
        if self.alpha is None:
            return None
        a = int(np.argmax(c.VT))
        gain = np.zeros(c.n_left.shape)
        var = np.zeros(c.n_left.shape)
        for S, n_side, V in ((c.L, c.n_left, c.VL), (c.T - c.L, c.N - c.n_left, c.VR)):
            m, v, _ = self._split_stats(S)
            b = np.argmax(V, axis=-1)
            mb = np.take_along_axis(m, b[..., None], axis=-1)[..., 0]
            vb = np.take_along_axis(v, b[..., None], axis=-1)[..., 0]
            moved = b != a
            with np.errstate(invalid="ignore"):
                gain += np.where(moved, n_side * (mb - m[..., a]), 0.0)
                var += np.where(moved, n_side**2 * (vb + v[..., a]), 0.0)
        gain = np.nan_to_num(gain, nan=-np.inf)
        n_cand = max(int(c.valid.sum()), 1)
        z = float(stats.norm.isf(float(self.alpha) / n_cand))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (gain > 0) & ((var <= 0) | (gain >= z * np.sqrt(var)))
