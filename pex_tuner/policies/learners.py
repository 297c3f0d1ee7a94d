"""learn_policy: one entry point for every interpretable-policy learner (CLI, notebooks).

Methods (all produce a TreePolicy over the experiment's raw features and arms):

================================  =========================================================
``greedy-tree``                   GreedyTreeSearch-HTE (Algorithm 1): greedy tree on CATE
                                  rewards ``sum_j w_j tau_kj(x)`` (out-of-fold on train).
``distill``                       Distill-Policy: classification tree copying the black-box
                                  HTE policy ``argmax_k sum_j w_j tau_kj(x)``.
``no-hte-greedy``                 No-HTE Greedy (Algorithm 2): segment effects are
                                  differences in means from the raw experiment.
``no-hte-iterative``              No-HTE Iterative (Algorithm 3): best segment first,
                                  removed, repeat; the first-found segment wins.
``guide-ope``                     GUIDE-OPE (Algorithm 4) over greedy-tree and no-hte-greedy.
``guide-explore-exploit``         GUIDE-ExploreExploit (Algorithm 4), same inputs.
================================  =========================================================

The experiment is split (stratified by arm, seeded) into train (``1 - validation_size``) and
validation. Base learners fit on train; guidance trees learn their split on validation; the
reported evaluation is on validation: the learned policy next to assign-all-control and the
best single arm, by DR when a CATE model is at hand and SNIPS otherwise.

Outcome weights are signed and on the raw scale (``LinearUtilityPolicy`` convention: negative
for minimized outcomes); :func:`preference_weights` turns non-negative preferences into them.
The reject option: when no split is eligible, every unit gets the best-ATE arm (the root's arm
of every greedy learner); the No-HTE learners make eligibility a significance test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies.distill import DistillPolicyLearner
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner, policy_rewards
from pex_tuner.policies.guide import GuidanceTreeLearner
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.policies.nohte import (
    NoHTEGreedyPolicyLearner,
    NoHTEIterativePolicyLearner,
    outcome_weight_vector,
)
from pex_tuner.policies.tree import TreePolicy

if TYPE_CHECKING:
    from pex_tuner.ope import PolicyEvaluation

__all__ = ["METHODS", "LearnedPolicy", "learn_policy", "preference_weights"]

METHODS = (
    "greedy-tree",
    "distill",
    "no-hte-greedy",
    "no-hte-iterative",
    "guide-ope",
    "guide-explore-exploit",
)
_NEEDS_MODEL = {"greedy-tree", "distill", "guide-ope", "guide-explore-exploit"}


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


@dataclass(frozen=True, eq=False)
class LearnedPolicy:
    """What :func:`learn_policy` returns.

    Attributes:
        policy: the learned TreePolicy.
        method: the method name.
        outcome_weights: signed raw-scale weights used, shape (n_outcomes,).
        evaluation: OPE on the validation split of the policy, assign-all-control and the
            best single arm (``all:<arm>``).
        indices: ``{"train": ..., "validation": ...}`` unit indices into the experiment.
        model: the CATE model fitted on train (None for No-HTE methods).
    """

    policy: TreePolicy
    method: str
    outcome_weights: np.ndarray
    evaluation: PolicyEvaluation
    indices: dict[str, np.ndarray]
    model: Any = None

    def summary(self) -> str:
        ev = self.evaluation
        lines = [
            f"{self.method}: {self.policy.n_segments} segment(s), depth {self.policy.depth}",
            self.policy.describe(),
            f"validation ({ev.n_units} units, {ev.estimator.upper()}):",
            ev.to_frame()[["policy", "outcome", "value", "ci_low", "ci_high"]]
            .round(4)
            .to_string(index=False),
        ]
        return "\n".join(lines)


def learn_policy(
    data: ExperimentData,
    method: str,
    *,
    outcome_weights: Sequence[float] | None = None,
    max_depth: int = 2,
    min_segment_size: int | float = 0.05,
    validation_size: float = 0.3,
    effects: Any = None,
    learner: str = "t",
    n_folds: int = 5,
    random_state: int | None = 0,
) -> LearnedPolicy:
    """Learn an interpretable TreePolicy from a logged experiment.

    Args:
        data: the whole logged experiment.
        method: one of :data:`METHODS`.
        outcome_weights: signed raw-scale weight per outcome (see :func:`preference_weights`);
            may be omitted for one outcome.
        max_depth: depth of the trees (the guidance split adds one level).
        min_segment_size: fewest training units per segment (count or fraction).
        validation_size: share of the units held out for guidance trees and the evaluation.
        effects: a CateModel already fitted on the train split (else one is fitted when the
            method needs it).
        learner, n_folds: the CATE model fitted otherwise (see ``fit_effects``).
        random_state: seed of the split, the model and the learners.
    """
    from pex_tuner.effects import fit_effects
    from pex_tuner.ope import evaluate_assignments

    if method not in METHODS:
        raise ConfigurationError(
            f"The 'method' parameter must be one of {list(METHODS)}. Got {method!r} instead."
        )
    if not isinstance(data, ExperimentData):
        raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
    if not 0.0 < validation_size < 1.0:
        raise ConfigurationError(f"'validation_size' must be in (0, 1); got {validation_size!r}")
    w = outcome_weight_vector(data, outcome_weights)
    ind = data.split_indices(
        test_size=validation_size, validation_size=0.0, random_state=random_state
    )
    indices = {"train": ind["train"], "validation": ind["test"]}
    train, val = data.subset(indices["train"]), data.subset(indices["validation"])
    model = effects
    if model is None and method in _NEEDS_MODEL:
        model = fit_effects(
            train, learner=learner, n_folds=n_folds, random_state=random_state, progress=False
        )
    common = {"max_depth": max_depth, "min_segment_size": min_segment_size}

    def greedy_hte() -> TreePolicy:
        rewards = policy_rewards(model.predict(train), w)
        return (
            GreedyTreePolicyLearner(**common, random_state=random_state)
            .fit(train.features, rewards, arms=data.arms, schema=data.schema)
            .policy_
        )

    def no_hte(cls: type) -> TreePolicy:
        return cls(**common, outcome_weights=w, random_state=random_state).fit(train).policy_

    if method == "greedy-tree":
        policy = greedy_hte()
    elif method == "distill":
        black_box = LinearUtilityPolicy(
            weights=tuple(w), biases=(0.0,) * data.n_arms, arms=data.arms, outcomes=data.outcomes
        )
        policy = (
            DistillPolicyLearner(**common, random_state=random_state)
            .fit(
                train.features,
                black_box.assign_index(model.predict(train)),
                schema=data.schema,
                arms=data.arms,
                outcomes=data.outcomes,
            )
            .policy_
        )
    elif method == "no-hte-greedy":
        policy = no_hte(NoHTEGreedyPolicyLearner)
    elif method == "no-hte-iterative":
        policy = no_hte(NoHTEIterativePolicyLearner)
    else:
        inputs = [greedy_hte(), no_hte(NoHTEGreedyPolicyLearner)]
        policy = (
            GuidanceTreeLearner(
                method="ope" if method == "guide-ope" else "explore_exploit",
                outcome_weights=w,
                random_state=random_state,
            )
            .fit(inputs, val, model.predict(val, out_of_fold="never"))
            .policy_
        )
    policy = TreePolicy(
        segments=policy.segments,
        default_arm=policy.default_arm,
        arms=policy.arms,
        features=policy.features,
        feature_kinds=policy.feature_kinds,
        outcomes=data.outcomes,
        name=method,
    )
    labels = np.asarray(data.arms, dtype=object)
    pred_val = None if model is None else model.predict(val, out_of_fold="never")
    ate = (
        pred_val.ate @ w
        if pred_val is not None
        else np.array(
            [
                (val.Y[val.treatment == k] @ w).mean() - (val.Y[val.treatment == 0] @ w).mean()
                for k in range(data.n_arms)
            ]
        )
    )
    best = int(np.argmax(ate))
    n_val = val.n_units
    assignments = {
        method: labels[policy.assign_data(val)],
        f"all:{data.arms[0]}": np.full(n_val, data.arms[0], dtype=object),
    }
    if best != 0:
        assignments[f"all:{data.arms[best]}"] = np.full(n_val, data.arms[best], dtype=object)
    evaluation = evaluate_assignments(
        val,
        assignments,
        predictions=pred_val,
        estimator="dr" if pred_val is not None else "snips",
    )
    return LearnedPolicy(
        policy=policy,
        method=method,
        outcome_weights=w,
        evaluation=evaluation,
        indices=indices,
        model=model,
    )
