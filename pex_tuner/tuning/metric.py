"""OPEMetric: the one class that turns policies into noisy metric observations.

Offline tuning, the interpretable-policy arms and the online service all evaluate policies
through this class, so every number on a Pareto plot comes from the same estimator, the same
split and the same outcome model. It reports, per outcome, the OPE value and its standard error
(Ax models the noise from it).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError
from pex_tuner.ope import ESTIMATORS, PolicyEvaluation, evaluate_assignments
from pex_tuner.ope import evaluate_linear_policies as _evaluate_linear
from pex_tuner.policies.linear import LinearUtilityPolicy

__all__ = ["OPEMetric", "metric_names_for"]


def metric_names_for(outcomes: Sequence[str]) -> dict[str, str]:
    """Outcome name -> a name that Ax's objective parser accepts (an identifier, unique)."""
    out: dict[str, str] = {}
    for o in outcomes:
        name = re.sub(r"\W", "_", str(o))
        if not name or name[0].isdigit() or keyword.iskeyword(name):
            name = f"m_{name}"
        base, i = name, 2
        while name in out.values():
            name = f"{base}_{i}"
            i += 1
        out[o] = name
    return out


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
        """Evaluate policies: LinearUtilityPolicy objects in one batched pass, anything else
        (an object with ``assign_data(data)`` returning arm indices, such as a tree policy, or
        an array of arm labels) through the explicit-assignment path.
        """
        if isinstance(policies, Mapping):
            names = list(policies)
            policies = list(policies.values())
        policies = list(policies)
        if names is None:
            names = [getattr(p, "name", None) or f"policy_{i}" for i, p in enumerate(policies)]
        if all(isinstance(p, LinearUtilityPolicy) for p in policies):
            return _evaluate_linear(
                self.data,
                self.predictions,
                policies,
                names=names,
                estimator=self.estimator,
                confidence=self.confidence,
            )
        assignments: dict[str, Any] = {}
        for name, p in zip(names, policies, strict=True):
            if isinstance(p, LinearUtilityPolicy):
                assignments[name] = p.assign(self.predictions)
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
        """Ax ``raw_data`` of policy i: metric name -> (mean, standard error)."""
        return {
            self.metric_names[o]: (float(evaluation.value[i, j]), float(evaluation.se[i, j]))
            for j, o in enumerate(evaluation.outcomes)
        }

    def describe(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "n_units": self.data.n_units,
            "confidence": self.confidence,
            "metric_names": self.metric_names,
        }
