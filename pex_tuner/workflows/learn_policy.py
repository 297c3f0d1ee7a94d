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
for minimized outcomes); :func:`~pex_tuner.policies.preference_weights` turns non-negative
preferences into them. The reject option: when no split is eligible, every unit gets the
best-ATE arm (the root's arm of every greedy learner); the No-HTE learners make eligibility a
significance test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pex_tuner.checks import Interval, Options, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects import LEARNERS, fit_effects
from pex_tuner.errors import InputDataError
from pex_tuner.ope import PolicyEvaluation, evaluate_assignments
from pex_tuner.policies import (
    DistillPolicyLearner,
    GreedyTreePolicyLearner,
    GuidanceTreeLearner,
    NoHTEGreedyPolicyLearner,
    NoHTEIterativePolicyLearner,
    PolicyLearner,
    TreePolicy,
)
from pex_tuner.policies.rewards import outcome_weight_vector

__all__ = ["METHODS", "LearnedPolicy", "learn_policy"]

METHODS = (
    "greedy-tree",
    "distill",
    "no-hte-greedy",
    "no-hte-iterative",
    "guide-ope",
    "guide-explore-exploit",
)
# the learners fitted on the train split; guidance trees combine greedy-tree and no-hte-greedy
_LEARNERS: dict[str, type[PolicyLearner]] = {
    "greedy-tree": GreedyTreePolicyLearner,
    "distill": DistillPolicyLearner,
    "no-hte-greedy": NoHTEGreedyPolicyLearner,
    "no-hte-iterative": NoHTEIterativePolicyLearner,
}
_GUIDE = {"guide-ope": "ope", "guide-explore-exploit": "explore_exploit"}
_NEEDS_MODEL = {"greedy-tree", "distill", "guide-ope", "guide-explore-exploit"}


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
        outcome_weights: signed raw-scale weight per outcome (see ``preference_weights``);
            may be omitted for one outcome.
        max_depth: depth of the trees (the guidance split adds one level).
        min_segment_size: fewest training units per segment (count or fraction).
        validation_size: share of the units held out for guidance trees and the evaluation.
        effects: a CateModel already fitted on the train split (else one is fitted when the
            method needs it).
        learner, n_folds: the CATE model fitted otherwise (see ``fit_effects``).
        random_state: seed of the split, the model and the learners.
    """
    validate_params(
        {
            "method": method,
            "validation_size": validation_size,
            "learner": learner,
            "n_folds": n_folds,
        },
        {
            "method": [Options(METHODS)],
            "validation_size": [Interval(float, 0, 1, closed="neither")],
            "learner": [Options(LEARNERS)],
            "n_folds": [Interval(int, 2, None)],
        },
    )
    if not isinstance(data, ExperimentData):
        raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
    w = outcome_weight_vector(data, outcome_weights)
    params = {
        "max_depth": max_depth,
        "min_segment_size": min_segment_size,
        "outcome_weights": w,
        "random_state": random_state,
    }
    _check_learners(method, params)
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
    pred_train = model.predict(train) if method in _NEEDS_MODEL else None
    pred_val = None if model is None else model.predict(val, out_of_fold="never")
    if method in _GUIDE:
        inputs = [
            _LEARNERS[m](**params).fit(train, pred_train).policy_
            for m in ("greedy-tree", "no-hte-greedy")
        ]
        guide = GuidanceTreeLearner(
            policies=inputs, method=_GUIDE[method], outcome_weights=w, random_state=random_state
        )
        policy = guide.fit(val, pred_val).policy_
    else:
        policy = _LEARNERS[method](**params).fit(train, pred_train).policy_
    policy = dataclasses.replace(policy, outcomes=data.outcomes, name=method)
    return LearnedPolicy(
        policy=policy,
        method=method,
        outcome_weights=w,
        evaluation=_evaluate(val, policy, method, pred_val, w),
        indices=indices,
        model=model,
    )


def _check_learners(method: str, params: dict[str, Any]) -> None:
    """The learners' hyperparameters, checked before the split and the model fit (the learners
    check them again in ``fit``)."""
    names = ("greedy-tree", "no-hte-greedy") if method in _GUIDE else (method,)
    for name in names:
        _LEARNERS[name](**params)._validate_params()


def _evaluate(
    val: ExperimentData, policy: TreePolicy, method: str, pred_val: Any, w: np.ndarray
) -> PolicyEvaluation:
    """OPE on the validation units of the policy, assign-all-control and the best single arm
    (by the model's ATE, else by differences in means): DR with a model, SNIPS without."""
    ate = (
        pred_val.ate @ w
        if pred_val is not None
        else np.array(
            [
                (val.Y[val.treatment == k] @ w).mean() - (val.Y[val.treatment == 0] @ w).mean()
                for k in range(val.n_arms)
            ]
        )
    )
    best = int(np.argmax(ate))
    labels = np.asarray(val.arms, dtype=object)
    n_val = val.n_units
    assignments = {
        method: labels[policy.assign_data(val)],
        f"all:{val.arms[0]}": np.full(n_val, val.arms[0], dtype=object),
    }
    if best != 0:
        assignments[f"all:{val.arms[best]}"] = np.full(n_val, val.arms[best], dtype=object)
    return evaluate_assignments(
        val,
        assignments,
        predictions=pred_val,
        estimator="dr" if pred_val is not None else "snips",
    )
