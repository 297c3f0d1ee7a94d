"""OPEMetric: the one class that turns policies into noisy metric observations.

Offline tuning, the interpretable-policy arms and the online service all evaluate policies
through this class, so every number on a Pareto plot comes from the same estimator, the same
split and the same outcome model. It reports, per outcome, the OPE value and its standard error
(Ax models the noise from it).

It is also where policies become what ``pex_tuner.ope`` takes: linear-utility policies become
weight and bias matrices, anything else arm assignments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pex_tuner.checks import identifier_names
from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope import ESTIMATORS, PolicyEvaluation, evaluate_assignments
from pex_tuner.ope import evaluate_linear_policies as _evaluate_linear
from pex_tuner.policies.linear import LinearUtilityPolicy, stack_policies

__all__ = ["OPEMetric", "metric_names_for", "split_metric"]


def metric_names_for(outcomes: Sequence[str]) -> dict[str, str]:
    """Outcome name -> a name that Ax's objective parser accepts (an identifier, unique)."""
    return identifier_names(outcomes)


class OPEMetric:
    """Off-policy evaluation of policies on one split, reported per outcome as (mean, sem).

    Args:
        data: the units evaluated on (the validation split by default in the tuner).
        predictions: effect predictions for exactly those units (from a model that did not see
            them, or out-of-fold).
        estimator: ``"dr"`` (default), ``"ips"``, ``"snips"`` or ``"dm"``.
        confidence: interval level reported in tables.
    """

    def __init__(
        self,
        data: ExperimentData,
        predictions: EffectPredictions,
        *,
        estimator: str = "dr",
        confidence: float = 0.95,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise ConfigurationError(
                f"The 'estimator' parameter must be one of {list(ESTIMATORS)}. "
                f"Got {estimator!r} instead."
            )
        self.data = data
        self.predictions = predictions
        self.estimator = estimator
        self.confidence = confidence
        self.metric_names = metric_names_for(data.outcomes)

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, policies: Sequence[Any] | Mapping[str, Any], names: Sequence[str] | None = None
    ) -> PolicyEvaluation:
        """Evaluate P policies: LinearUtilityPolicy objects in one batched pass (as weight and
        bias matrices), anything else (an object with ``assign_data(data)`` returning arm
        indices, such as a tree policy, or an array of arm labels of shape (n_units,)) through
        the explicit-assignment path.

        Returns:
            PolicyEvaluation: value and se of shape (P, J), shares of shape (P, K).
        """
        if isinstance(policies, Mapping):
            names = list(policies)
            policies = list(policies.values())
        policies = list(policies)
        if names is None:
            names = [getattr(p, "name", None) or f"policy_{i}" for i, p in enumerate(policies)]
        if all(isinstance(p, LinearUtilityPolicy) for p in policies):
            W, B = self._matrices(policies)
            return _evaluate_linear(
                self.data,
                self.predictions,
                W,
                B,
                names=names,
                estimator=self.estimator,
                confidence=self.confidence,
            )
        assignments: dict[str, Any] = {}
        for name, p in zip(names, policies, strict=True):
            if isinstance(p, LinearUtilityPolicy):
                assignments[name] = p.assign_from_effects(self.predictions)
            elif hasattr(p, "assign_data"):
                assignments[name] = np.asarray(self.data.arms, dtype=object)[
                    p.assign_data(self.data)
                ]
            else:
                assignments[name] = p
        return evaluate_assignments(
            self.data,
            assignments,
            predictions=self.predictions,
            estimator=self.estimator,
            confidence=self.confidence,
        )

    def _matrices(self, policies: Sequence[LinearUtilityPolicy]) -> tuple[np.ndarray, np.ndarray]:
        """Weights (P, J) and biases (P, K) of linear-utility policies for this experiment."""
        W, B = stack_policies(policies)
        first, data = policies[0], self.data
        if first.arms != data.arms or first.outcomes != data.outcomes:
            raise InputDataError(
                f"policies are for arms {list(first.arms)} / outcomes {list(first.outcomes)}; "
                f"the experiment has {list(data.arms)} / {list(data.outcomes)}"
            )
        return W, B

    def evaluate_matrix(self, weights: np.ndarray, biases: np.ndarray) -> PolicyEvaluation:
        """Batched evaluation of (P, J) weights and (P, K) biases."""
        return _evaluate_linear(
            self.data,
            self.predictions,
            weights,
            biases,
            estimator=self.estimator,
            confidence=self.confidence,
        )

    def raw_data(self, evaluation: PolicyEvaluation, i: int) -> dict[str, tuple[float, float]]:
        """Ax ``raw_data`` of policy i (a row of ``evaluation``): Ax metric name -> (mean,
        standard error)."""
        return {
            self.metric_names[o]: (float(evaluation.value[i, j]), float(evaluation.se[i, j]))
            for j, o in enumerate(evaluation.outcomes)
        }


def split_metric(
    data: ExperimentData,
    split_indices: Mapping[str, np.ndarray],
    effects: Any,
    *,
    split: str,
    estimator: str,
) -> tuple[OPEMetric, EffectPredictions]:
    """The OPE metric on one split of ``data``, and the predictions a policy space's ranges
    come from (the validation split's, whatever the evaluation split).

    Args:
        data: the whole experiment.
        split_indices: ``"train"`` / ``"validation"`` / ``"test"`` -> unit indices.
        effects: the CateModel fitted on the train split.
        split: ``"validation"``, ``"test"`` or ``"train+validation"`` (the training units
            with their out-of-fold predictions, then the validation units).
        estimator: the OPE estimator.
    """
    if split == "train+validation":
        evaluation, predictions, space_predictions = _train_validation_units(
            data, split_indices, effects
        )
    else:
        evaluation = data.subset(split_indices[split])
        predictions = effects.predict(evaluation, out_of_fold="never")
        space_predictions = predictions
    return OPEMetric(evaluation, predictions, estimator=estimator), space_predictions


def _train_validation_units(
    data: ExperimentData, split_indices: Mapping[str, np.ndarray], effects: Any
) -> tuple[ExperimentData, EffectPredictions, EffectPredictions]:
    """Training units with out-of-fold predictions followed by the validation units
    (``effects`` must have been fitted on exactly the train split), fold-averaged on the
    validation units; and the validation units' predictions alone (predicted once)."""
    oof = effects.predict(data.subset(split_indices["train"]))
    if not oof.out_of_fold:
        raise ConfigurationError(
            "split='train+validation' needs out-of-fold predictions for the training units: "
            "the CATE model must be fitted on this tuner's train split (same data and "
            "random_state)"
        )
    pv = effects.predict(data.subset(split_indices["validation"]), out_of_fold="never")
    idx = np.concatenate([split_indices["train"], split_indices["validation"]])
    predictions = EffectPredictions(
        tau=np.concatenate([oof.tau, pv.tau]),
        mu=np.concatenate([oof.mu, pv.mu]),
        arms=pv.arms,
        outcomes=pv.outcomes,
        out_of_fold=True,
    )
    return data.subset(idx), predictions, pv
