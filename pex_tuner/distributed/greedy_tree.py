"""GreedyTreeSearch-HTE on a :class:`DistributedExperiment`: the passes on the cluster.

:class:`DaskGreedyTreeLearner` grows the in-memory learner's tree level by level
(:mod:`pex_tuner.distributed.trees`): the bin layout from the train split (exact when it has at
most ``EDGE_SAMPLE`` units, else from a hash sample of that size), then ``max_depth + 1``
passes of :func:`~pex_tuner.distributed.reduce.map_partitions_reduce`, each partition
returning the histograms of the nodes asked for. The rewards ``r[i, k] = sum_j w_j tau[i, k,
j]`` come from stored predictions (:class:`DistributedPredictions`) or from a fitted CATE
model that predicts each partition in each pass (``model=``, nothing stored).

Memory per task is one partition (its features, bin codes and rewards, about
``(8 F + F + 8 K (J + 1)) n`` bytes for F features, K arms, J outcomes and n rows) plus the
histograms (``nodes x F x n_bins x K`` floats), whatever the number of partitions.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.data.validation import count_nonfinite
from pex_tuner.distributed.hashing import SPLITS
from pex_tuner.distributed.trees import PassRequest, PassResult, grow_levels, partition_statistics
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner
from pex_tuner.policies.rewards import SummedRewards, outcome_weight_vector, policy_rewards
from pex_tuner.policies.tree_bins import EDGE_SAMPLE, Binned, bin_codes, bin_layout, feature_columns
from pex_tuner.policies.tree_search import SplitRule, finish_tree, resolve_min_size

if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.data import ExperimentData
    from pex_tuner.distributed.experiment import DistributedExperiment
    from pex_tuner.distributed.predictions import DistributedPredictions

__all__ = ["DaskGreedyTreeLearner", "global_layout"]


@dataclass(frozen=True)
class _Rewards:
    """Where a partition's rewards come from (picklable, shipped with every pass).

    Attributes:
        weights: outcome weights w_j, shape (J,).
        layout: the stored predictions' column layout (None with a model).
        model: a fitted CATE model with ``predict(ExperimentData, out_of_fold="never")``
            (None with stored predictions); encoder: the experiment's LocalEncoder.
    """

    weights: np.ndarray
    layout: Any
    model: Any
    encoder: Any

    def __call__(self, pdf: pd.DataFrame, pred: pd.DataFrame | None) -> np.ndarray:
        """Rewards of a partition's units, shape (n, K)."""
        if self.model is None:
            tau = self.layout.to_local(pred).tau
        else:
            tau = self.model.predict(self.encoder.to_local(pdf), out_of_fold="never").tau
        return policy_rewards(tau, self.weights)


def _partition_pass(
    pdf: pd.DataFrame,
    pred: pd.DataFrame | None,
    schema: Any,
    layout: Binned,
    rewards: _Rewards,
    request: PassRequest,
    first: bool,
) -> dict[str, Any]:
    """One partition's share of a pass (on a worker, via ``map_partitions_reduce``).

    The first pass also returns the count of non-finite rewards, features with missing
    values and ``max |r|`` keyed by a random name: dictionaries add up key by key, so the
    client receives every partition's maximum and takes the largest.
    """
    R = rewards(pdf, pred)
    columns, *_ = feature_columns(pdf[list(schema.names)], schema)
    b = bin_codes(layout, columns)
    res = partition_statistics(b, R, request)
    out: dict[str, Any] = {"H": res.H, "C": res.C, "T": res.T, "N": res.N}
    if first:
        out["bad"] = np.array([count_nonfinite(R)], dtype=np.int64)
        out["missing"] = b.has_missing.astype(np.int64)
        out["max"] = {uuid.uuid4().hex: float(np.abs(R).max(initial=0.0))}
    return out


def global_layout(
    experiment: DistributedExperiment, n_bins: int, random_state: int | None, split: str | None
) -> tuple[Binned, ExperimentData]:
    """The bin layout of a partitioned experiment and the sample it was placed on.

    Edges are the quantiles of :meth:`DistributedExperiment.sample` of ``EDGE_SAMPLE`` units
    of ``split`` (unstratified, seeded by ``random_state``): every unit of the split when it
    has no more, so the layout is then the in-memory one.
    """
    seed = 0 if random_state is None else int(random_state)
    sample = experiment.sample(EDGE_SAMPLE, seed, stratify_by_arm=False, split=split)
    columns, names, kinds, cmap = feature_columns(sample.features, experiment.schema)
    return bin_layout(columns, names, kinds, cmap, n_bins), sample


class DaskGreedyTreeLearner(GreedyTreePolicyLearner):
    """GreedyTreeSearch-HTE on a :class:`DistributedExperiment` (see the module docstring).

    The hyperparameters, fitted attributes and ``predict`` of
    :class:`~pex_tuner.policies.GreedyTreePolicyLearner`; only ``fit`` differs: it takes the
    partitioned experiment and its effects, and runs on the current Dask client.
    ``to_local()`` gives the plain learner. Extra fitted attribute: ``n_units_``.

    Example:
        >>> learner = DaskGreedyTreeLearner(max_depth=3, outcome_weights=[1.0, 0.2, -0.2])
        >>> policy = learner.fit(experiment, predictions).policy_  # doctest: +SKIP
    """

    def fit(  # type: ignore[override]
        self,
        experiment: DistributedExperiment,
        predictions: DistributedPredictions | None = None,
        *,
        model: Any = None,
        split: str | None = "train",
    ) -> DaskGreedyTreeLearner:
        """Grow the tree on the rewards of the units of ``split``.

        Args:
            experiment: the partitioned experiment (raw features, schema, splits).
            predictions: CATE predictions stored for it; or
            model: a fitted CATE model (``CateModel``, ``DistributedCateModel``: anything with
                ``predict(ExperimentData, out_of_fold="never")``) that predicts every
                partition again in every pass, instead of stored predictions (dask-ml's
                ``ParallelPostFit``: nothing is written, each pass pays the prediction).
            split: ``"train"`` (default), another split, or None for every unit.

        Returns:
            self, with ``policy_`` over the experiment's raw features, arms and outcomes.
        """
        self._validate_params()
        if (predictions is None) == (model is None):
            raise ConfigurationError("pass either 'predictions' or 'model' to fit, not both")
        if split not in (None, *SPLITS):
            raise ConfigurationError(f"'split' must be None or one of {SPLITS}; got {split!r}")
        t0 = time.perf_counter()
        head = experiment.to_local(experiment.ddf.head(5, npartitions=1))  # outcomes, signs
        weights = outcome_weight_vector(head, self.outcome_weights)  # checked before any pass
        layout, _ = global_layout(experiment, self.n_bins, self.random_state, split)
        rewards = _Rewards(
            weights,
            None if predictions is None else predictions.layout,
            model,
            experiment.encoder,
        )
        grown = self._grow(experiment, predictions, split, layout, rewards)
        self._set_fitted(grown, tuple(experiment.arms), tuple(experiment.outcomes), t0)
        return self

    def _grow(
        self,
        experiment: DistributedExperiment,
        predictions: DistributedPredictions | None,
        split: str | None,
        layout: Binned,
        rewards: _Rewards,
    ) -> Any:
        """The first pass, the checks it allows, then the levels; the finished tree."""
        from pex_tuner.distributed.reduce import map_partitions_reduce

        def run(request: PassRequest, first: bool = False) -> dict[str, Any]:
            args = (experiment.schema, layout, rewards, request, first)
            return map_partitions_reduce(
                _partition_pass, experiment, predictions, split=split, local=False, args=args
            )

        first = run(PassRequest((), (0,), ()), first=True)
        n = round(float(first["C"][0, 0].sum()))
        if n == 0:
            raise InputDataError(f"the experiment has no units in split {split!r}")
        if int(first["bad"][0]):
            raise InputDataError(f"rewards have {int(first['bad'][0])} NaN or infinite value(s)")
        layout = replace(layout, has_missing=first["missing"] > 0)
        max_abs = max(first["max"].values())
        min_size = resolve_min_size(self.min_segment_size, n)
        rule = SplitRule(layout, SummedRewards(), self.max_depth, min_size, 1e-9 * max_abs)

        def run_pass(request: PassRequest) -> PassResult:
            out = run(request)
            return PassResult(out["H"], out["C"], out["T"], out["N"])

        root = grow_levels(rule, (n, first["H"][0], first["C"][0]), run_pass)
        self.n_units_ = n
        names, kinds = tuple(experiment.schema.names), tuple(experiment.schema.kinds)
        return finish_tree(root, layout, names, kinds, tuple(experiment.arms))

    def to_local(self) -> GreedyTreePolicyLearner:
        """A plain :class:`GreedyTreePolicyLearner` with the same parameters and fit."""
        local = GreedyTreePolicyLearner(**self.get_params())
        local.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        return local
