"""Guidance trees (the paper's Algorithm 4): ensemble two interpretable policies with one split.

Given two TreePolicies learned on the train split, a guidance tree learns on the *validation*
split one more split ``s`` (a numeric threshold or one category vs the rest) and which input
policy each side follows. The result is again a TreePolicy:

    if s(x): follow policy A        (A's segments, each conjoined with s, then s -> A's default)
    else:    follow policy B        (B's segments, then B's default)

so it stays interpretable and exportable. Keeping either input everywhere is always a
candidate (no split), so on the validation split the guidance tree is never estimated worse
than the better input.

Value of following policy P for unit i: the doubly robust score of P's arm,
``G[i, k] = sum_j w_j (mu_ikj + 1{W_i = k} (Y_ij - mu_ikj) / p_i)`` (IPS scores, mu = 0, without
predictions), summed over the units of a side: the same DR estimator as ``pex_tuner.ope``.
The split search is the greedy learner's (depth 1) over the two "arms" *follow A* / *follow B*.

- ``GUIDE-OPE``: split and per-side choice both maximize the DR value on the whole validation
  split.
- ``GUIDE-ExploreExploit``: the validation split is halved (stratified by arm, seeded). The
  split is searched on the *explore* half; on the *exploit* half each side picks the policy
  with the larger DR value, and the split is kept only if it beats following the better single
  policy there. Searching and choosing on different units avoids rewarding a split for the noise
  it was fitted to (an honest-tree reading; the paper's text was not at hand, so this is our
  choice, documented as such).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner
from pex_tuner.policies.nohte import outcome_weight_vector
from pex_tuner.policies.tree import Condition, Segment, TreePolicy, conjoin

__all__ = ["GUIDE_METHODS", "GuidanceTreeLearner", "combine_policies", "dr_rewards"]

GUIDE_METHODS = ("ope", "explore_exploit")


def dr_rewards(
    data: ExperimentData, predictions: EffectPredictions | None, weights: np.ndarray
) -> np.ndarray:
    """Per-unit, per-arm doubly robust scores of the weighted utility, shape (n_units, n_arms).

    ``mean_i G[i, pi(x_i)]`` is the DR estimate of policy pi's utility; with ``predictions``
    None the scores are IPS (outcome model zero).
    """
    n, K = data.n_units, data.n_arms
    y = data.Y @ np.asarray(weights, dtype=float)
    if predictions is None:
        G = np.zeros((n, K))
        G[np.arange(n), data.treatment] = y / data.propensity
        return G
    if predictions.n_units != n or predictions.arms != data.arms:
        raise InputDataError(
            f"predictions cover {predictions.n_units} units and arms {list(predictions.arms)}; "
            f"the experiment has {n} units and arms {list(data.arms)}"
        )
    mu = predictions.mu @ np.asarray(weights, dtype=float)  # (n, K)
    G = mu.copy()
    rows = np.arange(n)
    G[rows, data.treatment] += (y - mu[rows, data.treatment]) / data.propensity
    return G


def combine_policies(
    split: Condition, inside: TreePolicy, outside: TreePolicy, *, name: str | None = None
) -> TreePolicy:
    """The TreePolicy that follows ``inside`` where ``split`` holds and ``outside`` elsewhere."""
    if inside.arms != outside.arms or inside.features != outside.features:
        raise ConfigurationError(
            "policies to combine must share arms and features; got arms "
            f"{list(inside.arms)} / {list(outside.arms)}"
        )
    segments: list[Segment] = []
    for seg in inside.segments:
        conds = conjoin((split, *seg.conditions))
        if conds:
            segments.append(Segment(conds, seg.arm))
    segments.append(Segment((split,), inside.default_arm))
    segments.extend(outside.segments)
    return TreePolicy(
        segments=tuple(segments),
        default_arm=outside.default_arm,
        arms=outside.arms,
        features=outside.features,
        feature_kinds=outside.feature_kinds,
        outcomes=outside.outcomes,
        name=name,
    )


class GuidanceTreeLearner:
    """GUIDE-OPE / GUIDE-ExploreExploit: one split on the validation split that decides which
    of two interpretable policies each unit follows.

    Parameters:
        method: ``"ope"`` or ``"explore_exploit"``.
        min_segment_size: fewest validation units on each side of the split (count or
            fraction in (0, 0.5]; of the explore half for ``"explore_exploit"``).
        n_bins: quantile bins per numeric feature.
        outcome_weights: signed raw-scale weight per outcome (may be omitted for one outcome).
        explore_size: share of the validation units in the explore half.
        random_state: seed of the explore / exploit split and of the binning sample.

    Attributes (after ``fit``):
        policy_: the combined TreePolicy.
        split_: the guidance split (a Condition) or None (one input policy everywhere).
        choice_: (index of the policy followed where the split holds, index elsewhere); equal
            when there is no split.
        values_: DR utility per unit of following each input policy everywhere, shape (2,),
            on the units the choice was made on.
    """

    def __init__(
        self,
        *,
        method: str = "ope",
        min_segment_size: int | float = 0.1,
        n_bins: int = 256,
        outcome_weights: Sequence[float] | None = None,
        explore_size: float = 0.5,
        random_state: int | None = 0,
    ) -> None:
        self.method = method
        self.min_segment_size = min_segment_size
        self.n_bins = n_bins
        self.outcome_weights = outcome_weights
        self.explore_size = explore_size
        self.random_state = random_state

    def __repr__(self) -> str:
        return f"GuidanceTreeLearner(method={self.method!r})"

    def fit(
        self,
        policies: Sequence[TreePolicy],
        data: ExperimentData,
        predictions: EffectPredictions | None = None,
    ) -> GuidanceTreeLearner:
        """Learn the guidance split on ``data`` (the validation split) for two policies.

        Args:
            policies: the two input TreePolicies (learned on the train split).
            data: the validation experiment.
            predictions: effect predictions for ``data``'s units (DR scores); None: IPS.
        """
        if self.method not in GUIDE_METHODS:
            raise ConfigurationError(
                f"The 'method' parameter must be one of {list(GUIDE_METHODS)}. Got "
                f"{self.method!r} instead."
            )
        if not 0.0 < float(self.explore_size) < 1.0:
            raise ConfigurationError(
                f"The 'explore_size' parameter must be a float in the range (0, 1). Got "
                f"{self.explore_size!r} instead."
            )
        pols = list(policies)
        if len(pols) != 2 or not all(isinstance(p, TreePolicy) for p in pols):
            raise ConfigurationError("a guidance tree combines exactly two TreePolicy objects")
        if not isinstance(data, ExperimentData):
            raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
        w = outcome_weight_vector(data, self.outcome_weights)
        G = dr_rewards(data, predictions, w)
        rows = np.arange(data.n_units)
        R = np.column_stack([G[rows, p.assign_data(data)] for p in pols])  # (n, 2)
        search = np.arange(data.n_units)
        choose = search
        if self.method == "explore_exploit":
            ind = data.split_indices(
                test_size=1.0 - float(self.explore_size),
                validation_size=0.0,
                random_state=self.random_state,
            )
            search, choose = ind["train"], ind["test"]
        frame = data.features
        tree = GreedyTreePolicyLearner(
            max_depth=1,
            min_segment_size=self.min_segment_size,
            n_bins=self.n_bins,
            random_state=self.random_state,
        ).fit(
            frame.iloc[search].reset_index(drop=True),
            R[search],
            arms=("0", "1"),
            schema=data.schema,
        )
        totals = R[choose].sum(axis=0)
        single = int(np.argmax(totals))
        split: Condition | None = None
        choice = (single, single)
        if tree.policy_.segments:
            (cond,) = tree.policy_.segments[0].conditions
            if self.method == "ope":
                split = cond
                choice = (int(tree.policy_.segments[0].arm), int(tree.policy_.default_arm))
            else:
                probe = TreePolicy(
                    segments=(Segment((cond,), "1"),),
                    default_arm="0",
                    arms=("0", "1"),
                    features=data.schema.names,
                    feature_kinds=data.schema.kinds,
                )
                inside = probe.assign_frame(frame.iloc[choose].reset_index(drop=True)) == 1
                a_in = int(np.argmax(R[choose][inside].sum(axis=0)))
                a_out = int(np.argmax(R[choose][~inside].sum(axis=0)))
                value = R[choose][inside, a_in].sum() + R[choose][~inside, a_out].sum()
                if a_in != a_out and value > totals[single]:
                    split, choice = cond, (a_in, a_out)
        name = f"guide_{self.method}"
        if split is None:
            p = pols[choice[0]]
            policy = TreePolicy(
                segments=p.segments,
                default_arm=p.default_arm,
                arms=p.arms,
                features=p.features,
                feature_kinds=p.feature_kinds,
                outcomes=p.outcomes,
                name=name,
            )
        else:
            policy = combine_policies(split, pols[choice[0]], pols[choice[1]], name=name)
        self.policy_ = policy
        self.split_ = split
        self.choice_ = choice
        self.values_ = totals / max(len(choose), 1)
        return self

    def predict(self, data: ExperimentData) -> np.ndarray:
        """Arm index into ``data.arms`` per unit under ``policy_``."""
        if not hasattr(self, "policy_"):
            raise NotFittedError("this GuidanceTreeLearner is not fitted yet; call 'fit' first")
        return self.policy_.assign_data(data)
