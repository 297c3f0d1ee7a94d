"""No-HTE learners: interpretable policies estimated straight from the logged experiment.

"No-HTE" means that no CATE model is fitted: the effect of an arm in a candidate segment is
estimated from the raw randomized experiment, as the difference in (inverse-propensity
weighted) means between the units of that arm and the control units *inside the segment*.
Randomization makes this unbiased for every segment defined by pre-treatment features. These are
the paper's No-HTE Greedy (Algorithm 2) and No-HTE Iterative (Algorithm 3).

Outcomes are combined per unit into ``y_i = sum_j w_j Y_ij`` with the same signed, raw-scale
weights as :class:`~pex_tuner.policies.LinearUtilityPolicy` (negative for minimized outcomes;
see ``LinearUtilityPolicy.from_preferences``), so the estimated lift of arm k in segment S is
``n_S * (m_Sk - m_S0)`` with ``m_Sk = sum_{i in S, W_i = k} y_i / p_i / sum_{i in S, W_i = k}
1 / p_i`` (the Hajek mean; with constant propensities per arm, the plain difference in means).

Both learners share the quantile-binned, vectorized split search of
:class:`~pex_tuner.policies.GreedyTreePolicyLearner`: per (feature, bin) the histograms hold four
statistic columns per arm (sum of 1/p, of y/p, of y^2/p, and the unit count), so the lift of every
(threshold, arm) on both sides comes from one cumulative sum.

The reject option. A split is eligible only when its gain over keeping the node's single best
arm is significant: ``gain / se(gain) >= z``, with ``z`` the one-sided ``alpha`` quantile
Bonferroni-corrected over the node's candidate splits (``se`` from the within-arm variances of
the segment means). When the root has no eligible split every unit gets the arm with the best
estimated average effect (the best-ATE arm), i.e. the policy falls back to "launch the winner".
Arms with fewer than ``min_arm_units`` units in a candidate segment are not eligible there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy import stats

from pex_tuner.data import ExperimentData
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner, _is_int, _param_error
from pex_tuner.policies.tree import Condition, Segment, TreePolicy

__all__ = [
    "NoHTEGreedyPolicyLearner",
    "NoHTEIterativePolicyLearner",
    "outcome_weight_vector",
    "utility_outcome",
]


def outcome_weight_vector(
    data: ExperimentData, outcome_weights: Sequence[float] | None
) -> np.ndarray:
    """Signed raw-scale weights w_j, shape (n_outcomes,).

    ``None`` is allowed only for a single outcome and then means +1 for a maximized outcome and
    -1 for a minimized one.
    """
    J = data.n_outcomes
    if outcome_weights is None:
        if J != 1:
            raise ConfigurationError(
                f"'outcome_weights' is needed to combine {J} outcomes {list(data.outcomes)} "
                "into one reward"
            )
        return data.signs.astype(float)
    w = np.asarray(outcome_weights, dtype=float)
    if w.shape != (J,) or not np.isfinite(w).all():
        raise ConfigurationError(
            f"'outcome_weights' must be {J} finite numbers (one per outcome "
            f"{list(data.outcomes)}); got {np.asarray(outcome_weights).tolist()}"
        )
    return w


def utility_outcome(data: ExperimentData, weights: np.ndarray) -> np.ndarray:
    """Observed weighted utility ``y_i = sum_j w_j Y_ij``, shape (n_units,)."""
    y = np.zeros(data.n_units)
    for j in range(data.n_outcomes):  # fixed order, as in LinearUtilityPolicy.utilities
        y += weights[j] * data.Y[:, j]
    return y


def _statistics(data: ExperimentData, y: np.ndarray) -> np.ndarray:
    """Statistic columns of shape (n, 4K): per arm sum 1/p, y/p, y^2/p and the unit count."""
    n, K = data.n_units, data.n_arms
    ipw = 1.0 / data.propensity
    onehot = np.zeros((n, K))
    onehot[np.arange(n), data.treatment] = 1.0
    a = onehot * ipw[:, None]
    return np.hstack([a, a * y[:, None], a * (y * y)[:, None], onehot])


class NoHTEGreedyPolicyLearner(GreedyTreePolicyLearner):
    """No-HTE Greedy (the paper's Algorithm 2): a greedy policy tree whose segment effects are
    differences in means from the raw experiment, with the reject option.

    Parameters:
        max_depth, min_segment_size, n_bins, random_state: as in GreedyTreePolicyLearner.
        outcome_weights: signed raw-scale weight per outcome (may be omitted for one outcome).
        alpha: significance level of a split's gain (one-sided, Bonferroni over the node's
            candidate splits); ``None`` turns the test (and the reject option) off.
        min_arm_units: fewest units of an arm (and of control) in a segment for that arm to be
            eligible there.

    Attributes (after ``fit``): as GreedyTreePolicyLearner; ``reward_`` is the estimated total
    lift over assign-all-control of ``policy_`` on the training units.

    Example:
        >>> learner = NoHTEGreedyPolicyLearner(max_depth=2, outcome_weights=[1.0, 0.5, -0.2])
        >>> policy = learner.fit(train).policy_  # doctest: +SKIP
    """

    _name_prefix = "no_hte_greedy"

    def __init__(
        self,
        *,
        max_depth: int = 2,
        min_segment_size: int | float = 0.05,
        n_bins: int = 256,
        outcome_weights: Sequence[float] | None = None,
        alpha: float | None = 0.05,
        min_arm_units: int = 10,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            max_depth=max_depth,
            min_segment_size=min_segment_size,
            n_bins=n_bins,
            outcome_weights=outcome_weights,
            random_state=random_state,
        )
        self.alpha = alpha
        self.min_arm_units = min_arm_units

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_depth={self.max_depth}, "
            f"min_segment_size={self.min_segment_size}, alpha={self.alpha})"
        )

    # ------------------------------------------------------------------ statistics
    def _check_nohte_params(self) -> None:
        if self.alpha is not None and not (
            isinstance(self.alpha, float | int) and 0.0 < float(self.alpha) < 1.0
        ):
            raise _param_error("alpha", "a float in the range (0, 1) or None", self.alpha)
        if not _is_int(self.min_arm_units) or self.min_arm_units < 1:
            raise _param_error("min_arm_units", "an int >= 1", self.min_arm_units)

    def _split_stats(self, S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance of the mean, count) per arm from statistic sums S (..., 4K)."""
        K = S.shape[-1] // 4
        A, B, Q, N = (S[..., i * K : (i + 1) * K] for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(A > 0, B / np.where(A > 0, A, 1.0), np.nan)
            var = np.where(A > 0, Q / np.where(A > 0, A, 1.0), np.nan) - m * m
            v = np.maximum(var, 0.0) / np.maximum(N, 1.0)
        return m, v, N

    def _arm_values(self, S: np.ndarray, n: np.ndarray | float) -> np.ndarray:
        m, _, N = self._split_stats(S)
        ok = self.min_arm_units <= N
        lift = m - m[..., :1]
        lift = np.where(ok & ok[..., :1], lift, -np.inf)
        lift[..., 0] = 0.0
        with np.errstate(invalid="ignore"):
            out = np.asarray(n, dtype=float)[..., None] * lift
        return np.where(np.isnan(out), -np.inf, out)

    def _eligible(
        self,
        L: np.ndarray,
        n_left: np.ndarray,
        T: np.ndarray,
        N: float,
        VL: np.ndarray,
        VR: np.ndarray,
        VT: np.ndarray,
        valid: np.ndarray,
    ) -> np.ndarray | None:
        if self.alpha is None:
            return None
        a = int(np.argmax(VT))
        gain = np.zeros(n_left.shape)
        var = np.zeros(n_left.shape)
        for S, n_side, V in ((L, n_left, VL), (T - L, N - n_left, VR)):
            m, v, _ = self._split_stats(S)
            b = np.argmax(V, axis=-1)
            mb = np.take_along_axis(m, b[..., None], axis=-1)[..., 0]
            vb = np.take_along_axis(v, b[..., None], axis=-1)[..., 0]
            moved = b != a
            with np.errstate(invalid="ignore"):
                gain += np.where(moved, n_side * (mb - m[..., a]), 0.0)
                var += np.where(moved, n_side**2 * (vb + v[..., a]), 0.0)
        gain = np.nan_to_num(gain, nan=-np.inf)
        n_cand = max(int(valid.sum()), 1)
        z = float(stats.norm.isf(float(self.alpha) / n_cand))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (gain > 0) & ((var <= 0) | (gain >= z * np.sqrt(var)))

    # ------------------------------------------------------------------ fitting
    def _prepare(self, data: ExperimentData) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(data, ExperimentData):
            raise InputDataError(
                f"fit expects an ExperimentData (the logged experiment), got {type(data).__name__}"
            )
        self._check_nohte_params()
        w = outcome_weight_vector(data, self.outcome_weights)
        return w, _statistics(data, utility_outcome(data, w))

    def fit(self, data: ExperimentData) -> NoHTEGreedyPolicyLearner:  # type: ignore[override]
        """Grow the tree on the logged experiment ``data`` (usually its train split).

        Returns:
            self, with ``policy_`` (a TreePolicy over ``data``'s raw features and arms).
        """
        t0 = time.perf_counter()
        _, R = self._prepare(data)
        return self._fit_arrays(data.features, R, data.arms, data.outcomes, data.schema, t0)


class NoHTEIterativePolicyLearner(NoHTEGreedyPolicyLearner):
    """No-HTE Iterative (the paper's Algorithm 3): find the best segment, give it its best arm,
    remove its units, repeat on the rest; the first-found segment wins.

    Each round grows a No-HTE greedy tree (depth ``max_depth``, same significance test) on the
    units no earlier segment took, and keeps the leaf with the largest significant estimated
    gain over the remaining units' best arm; its path becomes the next segment. Because
    segments are searched on the remainder, the ordered if-else TreePolicy (first matching
    segment decides) assigns exactly as the procedure did. Stops after ``max_segments`` rounds or
    when no leaf gains significantly; the units left get their best-ATE arm (the reject option).

    Parameters:
        max_segments: most segments (rounds).
        Others: as NoHTEGreedyPolicyLearner; ``min_segment_size`` (a fraction refers to all
        training units) bounds every segment.
    """

    _name_prefix = "no_hte_iterative"

    def __init__(
        self,
        *,
        max_depth: int = 2,
        min_segment_size: int | float = 0.05,
        n_bins: int = 256,
        outcome_weights: Sequence[float] | None = None,
        alpha: float | None = 0.05,
        min_arm_units: int = 10,
        max_segments: int = 8,
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            max_depth=max_depth,
            min_segment_size=min_segment_size,
            n_bins=n_bins,
            outcome_weights=outcome_weights,
            alpha=alpha,
            min_arm_units=min_arm_units,
            random_state=random_state,
        )
        self.max_segments = max_segments

    def fit(self, data: ExperimentData) -> NoHTEIterativePolicyLearner:  # type: ignore[override]
        """Find segments one by one on ``data`` (usually its train split); returns self."""
        t0 = time.perf_counter()
        _, R = self._prepare(data)
        if not _is_int(self.max_segments) or self.max_segments < 0:
            raise _param_error("max_segments", "an int >= 0", self.max_segments)
        n = data.n_units
        min_size = self._check_params(n)
        labels = data.arms
        frame = data.features
        inner = NoHTEGreedyPolicyLearner(
            max_depth=self.max_depth,
            min_segment_size=min_size,
            n_bins=self.n_bins,
            alpha=self.alpha,
            min_arm_units=self.min_arm_units,
            random_state=self.random_state,
        )
        rest = np.arange(n)
        segments: list[Segment] = []
        gains: list[float] = []
        for _ in range(int(self.max_segments)):
            if len(rest) < 2 * min_size:
                break
            sub_frame = frame.iloc[rest].reset_index(drop=True)
            base = self._arm_values(R[rest].sum(axis=0), float(len(rest)))
            a = int(np.argmax(base))
            inner._fit_arrays(sub_frame, R[rest], labels, data.outcomes, data.schema, t0)
            best: tuple[float, tuple[Condition, ...], int] | None = None
            for conds, leaf in inner.leaves_:
                if not conds or leaf.arm == a or leaf.values is None:
                    continue
                gain = float(leaf.values[leaf.arm] - leaf.values[a])
                if gain > 0 and (best is None or gain > best[0]):
                    best = (gain, conds, leaf.arm)
            if best is None:
                break
            gain, conds, arm = best
            probe = TreePolicy(
                segments=(Segment(conds, labels[arm]),),
                default_arm=labels[a],
                arms=labels,
                features=data.schema.names,
                feature_kinds=data.schema.kinds,
            )
            inside = probe.assign_frame(sub_frame) == arm
            if inside.sum() < min_size:
                break
            segments.append(Segment(conds, labels[arm]))
            gains.append(gain)
            rest = rest[~inside]
        if len(rest):
            final = self._arm_values(R[rest].sum(axis=0), float(len(rest)))
            default = int(np.argmax(final))
        else:  # the segments cover everyone: the last one becomes the default
            default = labels.index(segments.pop().arm)
            gains.pop()
        while segments and segments[-1].arm == labels[default]:
            segments.pop()  # trailing segments that give the default arm change nothing
            gains.pop()
        schema = data.schema
        reward = float(sum(gains))
        self._set_fitted(
            tuple(segments), default, labels, schema.names, schema.kinds, data.outcomes, reward, t0
        )
        self.segment_gains_ = tuple(gains)
        return self
