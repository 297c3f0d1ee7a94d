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
``G[i, k] = sum_j w_j (mu_ikj + 1{W_i = k} (Y_ij - mu_iW_ij) / p_i)`` (IPS scores, mu = 0,
without predictions), summed over the units of a side: the scores of ``pex_tuner.ope``'s DR
estimator (:func:`~pex_tuner.policies.rewards.dr_rewards`). The split search is the shared tree
search (depth 1, summed rewards) over the two "arms" *follow A* / *follow B*.

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

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from pex_tuner.checks import Interval, Options
from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError
from pex_tuner.policies.base import Constraints, PolicyLearner
from pex_tuner.policies.rewards import SummedRewards, dr_rewards, outcome_weight_vector
from pex_tuner.policies.tree import TreePolicy
from pex_tuner.policies.tree_search import TREE_CONSTRAINTS, grow_tree, resolve_min_size
from pex_tuner.rules import Condition, Segment, conjoin

__all__ = ["GUIDE_METHODS", "GuidanceTreeLearner", "combine_policies"]

GUIDE_METHODS = ("ope", "explore_exploit")
_FOLLOW = ("0", "1")  # the two "arms" of the split search: follow policies[0] / policies[1]


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


class GuidanceTreeLearner(PolicyLearner):
    """GUIDE-OPE / GUIDE-ExploreExploit: one split on the validation split that decides which
    of two interpretable policies each unit follows.

    Parameters:
        policies: the two input TreePolicies (learned on the train split).
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

    _parameter_constraints: ClassVar[Constraints] = {
        "method": [Options(GUIDE_METHODS)],
        "min_segment_size": TREE_CONSTRAINTS["min_segment_size"],
        "n_bins": TREE_CONSTRAINTS["n_bins"],
        "explore_size": [Interval(float, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        *,
        policies: Sequence[TreePolicy],
        method: str = "ope",
        min_segment_size: int | float = 0.1,
        n_bins: int = 256,
        outcome_weights: Sequence[float] | None = None,
        explore_size: float = 0.5,
        random_state: int | None = 0,
    ) -> None:
        self.policies = policies
        self.method = method
        self.min_segment_size = min_segment_size
        self.n_bins = n_bins
        self.outcome_weights = outcome_weights
        self.explore_size = explore_size
        self.random_state = random_state

    def fit(
        self, data: ExperimentData, predictions: EffectPredictions | None = None
    ) -> GuidanceTreeLearner:
        """Learn the guidance split on ``data`` (the validation split) for the two policies.

        Args:
            data: the validation experiment.
            predictions: effect predictions for ``data``'s units (DR scores); None: IPS.
        """
        self._validate_params()
        pols = list(self.policies)
        if len(pols) != 2 or not all(isinstance(p, TreePolicy) for p in pols):
            raise ConfigurationError("a guidance tree combines exactly two TreePolicy objects")
        data = self._check_data(data)
        pred = None if predictions is None else self._check_predictions(data, predictions)
        G = dr_rewards(data, pred, outcome_weight_vector(data, self.outcome_weights))
        rows = np.arange(data.n_units)
        R = np.column_stack([G[rows, p.assign_data(data)] for p in pols])  # (n, 2)
        search = choose = rows
        if self.method == "explore_exploit":
            ind = data.split_indices(
                test_size=1.0 - float(self.explore_size),
                validation_size=0.0,
                random_state=self.random_state,
            )
            search, choose = ind["train"], ind["test"]
        totals = R[choose].sum(axis=0)
        single = int(np.argmax(totals))
        split, choice = self._split(data, R, search, choose, single, totals[single])
        name = f"guide_{self.method}"
        if split is None:
            self.policy_ = dataclasses.replace(pols[choice[0]], name=name)
        else:
            self.policy_ = combine_policies(split, pols[choice[0]], pols[choice[1]], name=name)
        self.split_ = split
        self.choice_ = choice
        self.values_ = totals / max(len(choose), 1)
        return self

    def _split(
        self,
        data: ExperimentData,
        R: np.ndarray,
        search: np.ndarray,
        choose: np.ndarray,
        single: int,
        single_value: float,
    ) -> tuple[Condition | None, tuple[int, int]]:
        """The guidance split and the policy followed on each side, searched on the units
        ``search`` and, for explore / exploit, chosen on the units ``choose``.

        Args:
            R: value of following each input policy per unit, shape (n_units, 2).
            single: the better input policy on ``choose``; single_value its total there.
        """
        frame = data.features
        grown = grow_tree(
            frame.iloc[search].reset_index(drop=True),
            R[search],
            _FOLLOW,
            criterion=SummedRewards(),
            max_depth=1,
            min_size=resolve_min_size(self.min_segment_size, len(search)),
            n_bins=self.n_bins,
            random_state=self.random_state,
            schema=data.schema,
        )
        if not grown.segments:
            return None, (single, single)
        (cond,) = grown.segments[0].conditions
        if self.method == "ope":
            return cond, (int(grown.segments[0].arm), grown.default)
        probe = TreePolicy(
            segments=(Segment((cond,), "1"),),
            default_arm="0",
            arms=_FOLLOW,
            features=data.schema.names,
            feature_kinds=data.schema.kinds,
        )
        inside = probe.assign_index(frame.iloc[choose].reset_index(drop=True)) == 1
        a_in = int(np.argmax(R[choose][inside].sum(axis=0)))
        a_out = int(np.argmax(R[choose][~inside].sum(axis=0)))
        value = R[choose][inside, a_in].sum() + R[choose][~inside, a_out].sum()
        if a_in != a_out and value > single_value:
            return cond, (a_in, a_out)
        return None, (single, single)
