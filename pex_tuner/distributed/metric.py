"""DistributedOPEMetric: the tuner's OPE metric, one cluster pass per batch of policies.

It has the interface of :class:`pex_tuner.tuning.metric.OPEMetric` (``evaluate``,
``evaluate_matrix``, ``raw_data``, ``metric_names``, ``predictions``, ``data``,
``estimator``, ``confidence``), duck-typed because ``distributed`` stands below ``tuning``:
an offline tuner given this metric keeps its Ax experiment and GP on the client and sends
each batch of policies (a design chunk, a generation batch, the baselines) to the cluster as
one pass over the stored predictions.

``predictions`` and ``data`` are a seeded sample of the evaluation split (``sample_size``
units, in memory): the tuner derives its policy space's ranges from ``predictions.tau``, as it
does from the validation predictions in memory. Every OPE number comes from all the split's
units on the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.checks import identifier_names
from pex_tuner.data import ExperimentData
from pex_tuner.distributed import ope as dope
from pex_tuner.distributed.hashing import sample_key
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope import ESTIMATORS, PolicyEvaluation
from pex_tuner.ope.evaluate import WeightedPolicy

if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.distributed.experiment import DistributedExperiment
    from pex_tuner.distributed.predictions import DistributedPredictions

__all__ = ["DistributedOPEMetric"]


def _sample_part(
    part: pd.DataFrame, pred_part: pd.DataFrame, random_state: int, frac: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    keep = sample_key(part["_unit_hash"].to_numpy(), random_state) < frac
    return part.loc[keep], pred_part.loc[keep]


class DistributedOPEMetric:
    """Off-policy evaluation on one split of a partitioned experiment, per outcome (mean, sem).

    Args:
        experiment: the partitioned experiment.
        predictions: its stored predictions (out of fold for every unit when made by a
            cross-fitted DistributedCateModel).
        split: the units evaluated on: ``("train", "validation")`` (default: every unit but
            the test split, as the offline tuner's ``split="train+validation"``; sound because
            a cross-fitted DistributedCateModel predicts every unit out of fold), one split
            such as ``"validation"``, or None for every unit.
        estimator: ``"dr"`` (default), ``"ips"``, ``"snips"`` or ``"dm"``.
        confidence: interval level reported in tables.
        sample_size: units of the in-memory sample behind ``predictions`` / ``data``.
        random_state: seed of that sample.
        progress: Dask's progress bar on every pass.

    Attributes:
        passes: cluster passes run so far (the first, for the estimators' shift, included).
    """

    def __init__(
        self,
        experiment: DistributedExperiment,
        predictions: DistributedPredictions,
        *,
        split: str | Sequence[str] | None = ("train", "validation"),
        estimator: str = "dr",
        confidence: float = 0.95,
        sample_size: int = 100_000,
        random_state: int = 0,
        progress: bool = False,
    ) -> None:
        if estimator not in ESTIMATORS:
            raise ConfigurationError(
                f"The 'estimator' parameter must be one of {list(ESTIMATORS)}. "
                f"Got {estimator!r} instead."
            )
        self.experiment = experiment
        self.distributed_predictions = predictions
        self.split = split
        self.estimator = estimator
        self.confidence = confidence
        self.sample_size = int(sample_size)
        self.random_state = random_state
        self.progress = progress
        self.metric_names = identifier_names(experiment.outcomes)
        self.passes = 0
        self._base: dict[str, np.ndarray] | None = None
        self._sample: tuple[ExperimentData, EffectPredictions] | None = None

    # ------------------------------------------------------------------ what the tuner reads
    @property
    def base(self) -> dict[str, np.ndarray]:
        """Units, logged arm counts and the estimators' shift sums of the split (one pass,
        cached)."""
        if self._base is None:
            self._base = dope.base_sums(
                self.experiment, self.distributed_predictions, self.split, progress=self.progress
            )
            self.passes += 1
        return self._base

    @property
    def n_units(self) -> int:
        return int(self.base["n"][0])

    def _load_sample(self) -> tuple[ExperimentData, EffectPredictions]:
        if self._sample is None:
            from pex_tuner.distributed.reduce import map_partitions_collect

            frac = min(1.0, self.sample_size / max(self.n_units, 1))
            pieces = map_partitions_collect(
                _sample_part,
                self.experiment,
                self.distributed_predictions,
                split=self.split,
                local=False,
                args=(self.random_state, frac),
            )
            self.passes += 1
            rows = pd.concat([p for p, _ in pieces], ignore_index=True)
            preds = pd.concat([q for _, q in pieces], ignore_index=True)
            self._sample = (
                self.experiment.to_local(rows),
                self.distributed_predictions.to_local(preds),
            )
        return self._sample

    @property
    def predictions(self) -> EffectPredictions:
        """Predictions of a seeded sample of the split's units (in memory), for ranges."""
        return self._load_sample()[1]

    @property
    def data(self) -> ExperimentData:
        """The sampled units behind :attr:`predictions` (in memory)."""
        return self._load_sample()[0]

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, policies: Sequence[Any] | Mapping[str, Any], names: Sequence[str] | None = None
    ) -> PolicyEvaluation:
        """Evaluate P policies in one pass: linear-utility policies as weight and bias
        matrices (the batched kernel), others (with ``assign_data(data)`` returning arm
        indices, such as tree policies) assigned partition by partition on the workers.

        Returns:
            PolicyEvaluation: value and se of shape (P, J), shares of shape (P, K).
        """
        if isinstance(policies, Mapping):
            names = list(policies)
            policies = list(policies.values())
        policies = list(policies)
        if not policies:
            raise InputDataError("'policies' is empty; expected at least one policy")
        if names is None:
            names = [getattr(p, "name", None) or f"policy_{i}" for i, p in enumerate(policies)]
        if len(names) != len(policies):
            raise ConfigurationError(f"'names' has {len(names)} entries for {len(policies)}")
        self.passes += 1
        if all(isinstance(p, WeightedPolicy) for p in policies):
            return dope.evaluate_linear_policies(
                self.experiment,
                self.distributed_predictions,
                policies,
                names=names,
                **self._options(),
            )
        return dope.evaluate_assignments(
            self.experiment,
            dict(zip(names, policies, strict=True)),
            predictions=self.distributed_predictions,
            **self._options(),
        )

    def _options(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "split": self.split,
            "confidence": self.confidence,
            "base": self.base,
            "progress": self.progress,
        }

    def evaluate_matrix(self, weights: np.ndarray, biases: np.ndarray) -> PolicyEvaluation:
        """Batched evaluation of (P, J) weights and (P, K) biases, one pass."""
        self.passes += 1
        return dope.evaluate_linear_policies(
            self.experiment, self.distributed_predictions, weights, biases, **self._options()
        )

    def raw_data(self, evaluation: PolicyEvaluation, i: int) -> dict[str, tuple[float, float]]:
        """Ax ``raw_data`` of policy i: Ax metric name -> (mean, standard error)."""
        return {
            self.metric_names[o]: (float(evaluation.value[i, j]), float(evaluation.se[i, j]))
            for j, o in enumerate(evaluation.outcomes)
        }
