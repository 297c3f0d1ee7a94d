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

No-HTE is a reward definition, not a learner of its own kind: both learners feed the criterion
:class:`~pex_tuner.policies.rewards.DifferenceInMeans` to the shared quantile-binned, vectorized
tree search (:mod:`pex_tuner.policies.tree_search`, the one GreedyTreeSearch-HTE uses): per
(feature, bin) the histograms hold four statistic columns per arm (sum of 1/p, of y/p, of y^2/p,
and the unit count), so the lift of every (threshold, arm) on both sides comes from one
cumulative sum.

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
from typing import ClassVar

import numpy as np

from pex_tuner.checks import Interval
from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.policies.base import Constraints, PolicyLearner
from pex_tuner.policies.rewards import DifferenceInMeans, outcome_weight_vector, utility_outcome
from pex_tuner.policies.tree import TreePolicy
from pex_tuner.policies.tree_search import (
    TREE_CONSTRAINTS,
    GrownTree,
    grow_tree,
    resolve_min_size,
)
from pex_tuner.rules import Condition, Segment

__all__ = ["NoHTEGreedyPolicyLearner", "NoHTEIterativePolicyLearner"]


class NoHTEGreedyPolicyLearner(PolicyLearner):
    """No-HTE Greedy (the paper's Algorithm 2): a greedy policy tree whose segment effects are
    differences in means from the raw experiment, with the reject option.

    Parameters:
        max_depth, min_segment_size, n_bins, random_state: as in GreedyTreePolicyLearner.
        outcome_weights: signed raw-scale weight per outcome (may be omitted for one outcome).
        alpha: significance level of a split's gain (one-sided, Bonferroni over the node's
            candidate splits); ``None`` turns the test (and the reject option) off.
        min_arm_units: fewest units of an arm (and of control) in a segment for that arm to be
            eligible there.

    Attributes (after ``fit``): ``policy_``, ``feature_names_in_``, ``n_features_in_``,
    ``arms_``, ``fit_seconds_`` as GreedyTreePolicyLearner; ``reward_`` is the estimated total
    lift over assign-all-control of ``policy_`` on the training units.

    Example:
        >>> learner = NoHTEGreedyPolicyLearner(max_depth=2, outcome_weights=[1.0, 0.5, -0.2])
        >>> policy = learner.fit(train).policy_  # doctest: +SKIP
    """

    _parameter_constraints: ClassVar[Constraints] = {
        **TREE_CONSTRAINTS,
        "alpha": [Interval(float, 0, 1, closed="neither"), None],
        "min_arm_units": [Interval(int, 1, None)],
    }
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
        self.max_depth = max_depth
        self.min_segment_size = min_segment_size
        self.n_bins = n_bins
        self.outcome_weights = outcome_weights
        self.alpha = alpha
        self.min_arm_units = min_arm_units
        self.random_state = random_state

    def fit(
        self, data: ExperimentData, predictions: EffectPredictions | None = None
    ) -> NoHTEGreedyPolicyLearner:
        """Grow the tree on the logged experiment ``data`` (usually its train split).

        Args:
            data: the logged experiment.
            predictions: ignored (No-HTE fits no CATE model); accepted so that every learner
                is fitted the same way.

        Returns:
            self, with ``policy_`` (a TreePolicy over ``data``'s raw features and arms).
        """
        t0 = time.perf_counter()
        R = self._prepare(data)
        grown = self._grow(data, np.arange(data.n_units), R, data.n_units)
        self._set_fitted(data, grown.segments, grown.default, grown.reward, t0)
        return self

    # ------------------------------------------------------------------ shared steps
    @property
    def _criterion(self) -> DifferenceInMeans:
        alpha = None if self.alpha is None else float(self.alpha)
        return DifferenceInMeans(alpha=alpha, min_arm_units=int(self.min_arm_units))

    def _prepare(self, data: ExperimentData) -> np.ndarray:
        """Check parameters and data; the criterion's statistic columns, shape (n, 4 K)."""
        self._validate_params()
        data = self._check_data(data)
        w = outcome_weight_vector(data, self.outcome_weights)
        return DifferenceInMeans.statistics(data, utility_outcome(data, w))

    def _grow(self, data: ExperimentData, rows: np.ndarray, R: np.ndarray, n_all: int) -> GrownTree:
        """The No-HTE tree grown on the units ``rows`` (``min_segment_size`` as a fraction
        refers to ``n_all`` units)."""
        return grow_tree(
            data.features.iloc[rows].reset_index(drop=True) if len(rows) < n_all else data.features,
            R[rows],
            data.arms,
            criterion=self._criterion,
            max_depth=self.max_depth,
            min_size=resolve_min_size(self.min_segment_size, n_all),
            n_bins=self.n_bins,
            random_state=self.random_state,
            schema=data.schema,
        )

    def _set_fitted(
        self,
        data: ExperimentData,
        segments: tuple[Segment, ...],
        default: int,
        reward: float,
        t0: float,
    ) -> None:
        self.policy_ = TreePolicy(
            segments=segments,
            default_arm=data.arms[default],
            arms=data.arms,
            features=data.schema.names,
            feature_kinds=data.schema.kinds,
            outcomes=data.outcomes,
            name=f"{self._name_prefix}_d{self.max_depth}",
        )
        self.reward_ = reward
        self.feature_names_in_ = np.asarray(data.schema.names, dtype=object)
        self.n_features_in_ = len(data.schema.names)
        self.arms_ = data.arms
        self.fit_seconds_ = time.perf_counter() - t0


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

    Attributes (after ``fit``): as NoHTEGreedyPolicyLearner, and ``segment_gains_``, the
    estimated gain of each segment in order.
    """

    _parameter_constraints: ClassVar[Constraints] = {
        **NoHTEGreedyPolicyLearner._parameter_constraints,
        "max_segments": [Interval(int, 0, None)],
    }
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

    def fit(
        self, data: ExperimentData, predictions: EffectPredictions | None = None
    ) -> NoHTEIterativePolicyLearner:
        """Find segments one by one on ``data`` (usually its train split); returns self.

        ``predictions`` are ignored, as in NoHTEGreedyPolicyLearner.
        """
        t0 = time.perf_counter()
        R = self._prepare(data)
        n, labels, crit = data.n_units, data.arms, self._criterion
        min_size = resolve_min_size(self.min_segment_size, n)
        rest = np.arange(n)
        segments: list[Segment] = []
        gains: list[float] = []
        for _ in range(int(self.max_segments)):
            if len(rest) < 2 * min_size:
                break
            a = int(np.argmax(crit.arm_values(R[rest].sum(axis=0), float(len(rest)))))
            grown = self._grow(data, rest, R, n)
            found = _best_leaf(grown, a)
            if found is None:
                break
            gain, conds, arm = found
            probe = TreePolicy(
                segments=(Segment(conds, labels[arm]),),
                default_arm=labels[a],
                arms=labels,
                features=data.schema.names,
                feature_kinds=data.schema.kinds,
            )
            inside = probe.assign_index(data.features.iloc[rest].reset_index(drop=True)) == arm
            if inside.sum() < min_size:
                break
            segments.append(Segment(conds, labels[arm]))
            gains.append(gain)
            rest = rest[~inside]
        if len(rest):
            default = int(np.argmax(crit.arm_values(R[rest].sum(axis=0), float(len(rest)))))
        else:  # the segments cover everyone: the last one becomes the default
            default = labels.index(segments.pop().arm)
            gains.pop()
        while segments and segments[-1].arm == labels[default]:
            segments.pop()  # trailing segments that give the default arm change nothing
            gains.pop()
        self._set_fitted(data, tuple(segments), default, float(sum(gains)), t0)
        self.segment_gains_ = tuple(gains)
        return self


def _best_leaf(grown: GrownTree, a: int) -> tuple[float, tuple[Condition, ...], int] | None:
    """The leaf with the largest positive gain of its arm over arm ``a``: (gain, its merged
    conditions, its arm), or None."""
    best: tuple[float, tuple[Condition, ...], int] | None = None
    for leaf in grown.leaves:
        if not leaf.conditions or leaf.arm == a:
            continue
        gain = float(leaf.values[leaf.arm] - leaf.values[a])
        if gain > 0 and (best is None or gain > best[0]):
            best = (gain, leaf.conditions, leaf.arm)
    return best
