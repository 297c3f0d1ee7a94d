"""distill_linear_policy: explain a linear-utility policy by a tree, with held-out evidence.

Distill any :class:`~pex_tuner.policies.LinearUtilityPolicy` (a tuned one, say; the PEX paper
names understanding tuned policies as what experimenters want most) into a TreePolicy with
:class:`~pex_tuner.policies.DistillPolicyLearner`, and report the agreement with it on held-out
units and the OPE of both there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.checks import Interval, validate_params
from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope import PolicyEvaluation, evaluate_assignments
from pex_tuner.policies import DistillPolicyLearner, LinearUtilityPolicy, TreePolicy

__all__ = ["DistillationReport", "distill_linear_policy"]


@dataclass(frozen=True, eq=False)
class DistillationReport:
    """A linear-utility policy, its distilled TreePolicy, and how well they match.

    Attributes:
        tree: the distilled TreePolicy.
        source: the distilled LinearUtilityPolicy.
        agreement: share of held-out units that the tree gives the source policy's arm.
        train_agreement: the same on the units the tree was fitted on.
        evaluation: OPE of both policies on the held-out units (rows: source, tree).
        n_fit, n_holdout: units used to fit the tree and to evaluate.
    """

    tree: TreePolicy
    source: LinearUtilityPolicy
    agreement: float
    train_agreement: float
    evaluation: PolicyEvaluation
    n_fit: int
    n_holdout: int

    @property
    def value(self) -> np.ndarray:
        """OPE values, shape (2, n_outcomes): row 0 the source policy, row 1 the tree."""
        return self.evaluation.value

    def to_frame(self) -> pd.DataFrame:
        """Tidy OPE table of both policies (see PolicyEvaluation.to_frame)."""
        return self.evaluation.to_frame()

    def summary(self) -> str:
        ev = self.evaluation
        lines = [
            f"distilled '{ev.policies[0]}' into a tree with {self.tree.n_segments} segment(s), "
            f"depth {self.tree.depth}; agreement {self.agreement:.1%} on {self.n_holdout} "
            f"held-out units ({self.train_agreement:.1%} on the {self.n_fit} fitting units)",
            self.tree.describe(),
        ]
        for j, o in enumerate(ev.outcomes):
            cells = [
                f"{p}: {ev.value[i, j]:.4g} [{ev.ci_low[i, j]:.4g}, {ev.ci_high[i, j]:.4g}]"
                for i, p in enumerate(ev.policies)
            ]
            lines.append(f"{o} ({ev.estimator.upper()}): " + "; ".join(cells))
        return "\n".join(lines)


def _predictions(model_or_predictions: Any, data: ExperimentData) -> EffectPredictions:
    """Effect predictions for ``data``'s units: given, or predicted by a fitted CateModel."""
    if isinstance(model_or_predictions, EffectPredictions):
        if model_or_predictions.n_units != data.n_units:
            raise InputDataError(
                f"predictions cover {model_or_predictions.n_units} units but the experiment "
                f"has {data.n_units}"
            )
        return model_or_predictions
    if hasattr(model_or_predictions, "predict"):
        return model_or_predictions.predict(data)
    raise ConfigurationError(
        "'model_or_predictions' must be a fitted CateModel or EffectPredictions; got "
        f"{type(model_or_predictions).__name__}"
    )


def distill_linear_policy(
    policy: LinearUtilityPolicy,
    model_or_predictions: Any,
    data: ExperimentData,
    *,
    max_depth: int = 3,
    min_segment_size: int | float = 0.01,
    holdout_size: float = 0.3,
    estimator: str = "dr",
    random_state: int | None = 0,
) -> DistillationReport:
    """Distill a LinearUtilityPolicy into a TreePolicy and compare the two on held-out units.

    Args:
        policy: the policy to explain (e.g. ``tuner.policy("trial_12")``).
        model_or_predictions: a fitted CateModel (predicts ``data``; out-of-fold when ``data``
            is its training experiment) or EffectPredictions for exactly ``data``'s units.
        data: the units to distill on; split (stratified by arm, seeded) into a fitting part
            and a held-out part of share ``holdout_size``.
        max_depth, min_segment_size: of the classification tree.
        estimator: OPE estimator on the held-out part (``"dr"`` default).
        random_state: seed of the split and of the tree.

    Returns:
        DistillationReport with the tree, the held-out agreement and the OPE of both.
    """
    if not isinstance(policy, LinearUtilityPolicy):
        raise ConfigurationError(
            f"distill_linear_policy expects a LinearUtilityPolicy; got {type(policy).__name__}"
        )
    if not isinstance(data, ExperimentData):
        raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
    validate_params(
        {"holdout_size": holdout_size},
        {"holdout_size": [Interval(float, 0, 1, closed="neither")]},
    )
    pred = _predictions(model_or_predictions, data)
    ind = data.split_indices(test_size=holdout_size, validation_size=0.0, random_state=random_state)
    fit_idx, hold_idx = ind["train"], ind["test"]
    learner = DistillPolicyLearner(
        max_depth=max_depth,
        min_segment_size=min_segment_size,
        teacher=policy,
        random_state=random_state,
    ).fit(data.subset(fit_idx), pred.subset(fit_idx))
    holdout = data.subset(hold_idx)
    source_arms = policy.assign_index_from_effects(pred.subset(hold_idx))
    tree_arms = learner.policy_.assign_data(holdout)
    src_name = policy.name or "linear"
    tree_name = f"{src_name} (tree)"
    tree = dataclasses.replace(learner.policy_, name=tree_name)
    labels = np.asarray(data.arms, dtype=object)
    evaluation = evaluate_assignments(
        holdout,
        {src_name: labels[source_arms], tree_name: labels[tree_arms]},
        predictions=pred.subset(hold_idx),
        estimator=estimator,
    )
    return DistillationReport(
        tree=tree,
        source=policy,
        agreement=float((tree_arms == source_arms).mean()),
        train_agreement=learner.train_agreement_,
        evaluation=evaluation,
        n_fit=len(fit_idx),
        n_holdout=len(hold_idx),
    )
