"""Distill-HTE on a partitioned experiment: structure on a sample, estimates over all units.

:class:`DaskDistillHTE` is :class:`~pex_tuner.explain.DistillHTE` (same hyperparameters,
fitted attributes, ``predict_segment`` / ``predict_effects``) with one change of scale:

1. **Structure sample.** A unit belongs to the structure sample when its sampling key (a
   seeded function of its unit hash, :func:`~pex_tuner.distributed.hashing.sample_key`) is
   below ``f = min(1/2, max_structure_units / n_units)`` (``min(1, ...)`` when not honest):
   a Bernoulli sample that does not depend on partitioning (in memory the halves are
   stratified by arm; here they are not, which only matters for tiny arms). The sample and
   its predicted effects are gathered on the client; the multi-task trees are fitted there,
   exactly as in memory.
2. **Estimation units.** With ``honest=True`` every unit outside the structure sample (all
   the rest, not just a half), else every unit. One pass over the partitions computes, per
   arm tree and per node, the additive moments of the treated and the control units
   (:func:`~pex_tuner.explain.estimates.moment_rows`: counts, sums of weights, weighted sums
   and squares) and the node's unit count; their sums over partitions prune the tree and give
   each segment's effect and Welch interval
   (:func:`~pex_tuner.explain.estimates.segment_effect_from_moments`).

On data that fits, with ``honest=False`` and ``max_structure_units`` at least the number of
units, the segments and their estimates equal the in-memory ones up to rounding
(tests/test_distributed_trees.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.checks import is_int, param_error
from pex_tuner.data import ExperimentData
from pex_tuner.errors import InputDataError
from pex_tuner.explain.distill import DistillHTE, _ArmTree
from pex_tuner.explain.estimates import moment_rows, segment_effect_from_moments
from pex_tuner.explain.segments import node_owner, pruned_segments, rule_text

if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.distributed.experiment import DistributedExperiment
    from pex_tuner.distributed.predictions import DistributedPredictions

__all__ = ["DaskDistillHTE"]


def _structure_mask(pdf: pd.DataFrame, seed: int, frac: float) -> np.ndarray:
    """Structure-sample membership of a partition's units, bool of shape (n,)."""
    from pex_tuner.distributed.hashing import sample_key

    return sample_key(pdf["_unit_hash"].to_numpy(), seed) < frac


def _gather_part(
    pdf: pd.DataFrame, pred: pd.DataFrame, seed: int, frac: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    mask = _structure_mask(pdf, seed, frac)
    return pdf.loc[mask], pred.loc[mask]


def _node_moments(
    pdf: pd.DataFrame,
    encoder: Any,
    trees: dict[int, Any],
    seed: int,
    frac: float,
    honest: bool,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per arm k: moments of the treated and control estimation units per tree node, shapes
    (n_nodes, 3 + 3 J) each, and the node's estimation-unit counts (n_nodes,)."""
    if honest:
        pdf = pdf.loc[~_structure_mask(pdf, seed, frac)]
    data = encoder.to_local(pdf)
    rows = moment_rows(data.Y, data.propensity)
    out = {}
    for k, tree in trees.items():
        path = tree.decision_path(data.X).T.tocsr()  # (n_nodes, n)
        t, c = data.treatment == k, data.treatment == 0
        out[k] = (path @ (rows * t[:, None]), path @ (rows * c[:, None]), path @ np.ones(len(t)))
    return out


class DaskDistillHTE(DistillHTE):
    """Distill-HTE over a :class:`DistributedExperiment` (see the module docstring).

    Args:
        max_structure_units: largest structure sample (about; it is a Bernoulli sample of
            that expected size), gathered on the client to fit the trees.
        others: as :class:`~pex_tuner.explain.DistillHTE`.

    Fitted attributes: those of DistillHTE, except that ``structure_indices_`` and
    ``estimation_indices_`` are None (membership is a function of the unit hash) and
    ``n_structure_`` / ``n_estimation_`` count the two sets.
    """

    def __init__(
        self,
        *,
        max_depth: int = 3,
        min_samples_leaf: int | float | None = None,
        min_units_per_arm: int = 30,
        outcome_weights: Mapping[str, float] | Sequence[float] | None = None,
        confidence: float = 0.95,
        honest: bool = True,
        random_state: int | None = None,
        max_structure_units: int = 200_000,
    ) -> None:
        super().__init__(
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            min_units_per_arm=min_units_per_arm,
            outcome_weights=outcome_weights,
            confidence=confidence,
            honest=honest,
            random_state=random_state,
        )
        self.max_structure_units = max_structure_units

    def fit(  # type: ignore[override]
        self, experiment: DistributedExperiment, predictions: DistributedPredictions
    ) -> DaskDistillHTE:
        """Learn the segments on the structure sample, estimate them over all other units.

        Args:
            experiment: the partitioned experiment.
            predictions: CATE predictions persisted for it (only the structure sample's are
                read; for strict honesty they should come from a model that did not see the
                estimation units).
        """
        msu = self.max_structure_units
        if not is_int(msu) or msu < 2:
            raise param_error("max_structure_units", "an integer >= 2", msu)
        # the in-memory checks, on a few rows, before any pass over the data
        weights = self._check_params(experiment.to_local(experiment.ddf.head(5, npartitions=1)))
        seed = 0 if self.random_state is None else int(self.random_state)
        cap = 0.5 if self.honest else 1.0
        frac = min(cap, msu / max(experiment.n_units, 1)) if msu < experiment.n_units else cap
        struct, tau = self._gather(experiment, predictions, seed, frac)
        trees = {
            k: self._arm_tree(experiment, struct, k, tau[:, k, :], weights)
            for k in range(1, struct.n_arms)
        }
        moments = self._moments(experiment, trees, seed, frac)
        self._finish(experiment, struct, trees, moments, weights)
        return self

    def _gather(
        self,
        experiment: DistributedExperiment,
        predictions: DistributedPredictions,
        seed: int,
        frac: float,
    ) -> tuple[ExperimentData, np.ndarray]:
        """The structure sample in partition order and its tau (n_s, n_arms, n_outcomes)."""
        import dask

        from pex_tuner.distributed.reduce import compute

        pairs = zip(experiment.partitions(), predictions.partitions(), strict=True)
        parts = compute([dask.delayed(_gather_part)(p, q, seed, frac) for p, q in pairs])
        pdf = pd.concat([p for p, _ in parts], ignore_index=True)
        if len(pdf) < 2:
            raise InputDataError(
                f"the structure sample holds {len(pdf)} unit(s); raise max_structure_units"
            )
        pred = predictions.to_local(pd.concat([q for _, q in parts], ignore_index=True))
        return experiment.to_local(pdf), pred.tau

    def _arm_tree(
        self,
        experiment: DistributedExperiment,
        struct: ExperimentData,
        k: int,
        tau: np.ndarray,
        weights: np.ndarray,
    ) -> Any:
        """The multi-task tree of arm k on the structure sample (as DistillHTE grows it).

        Args:
            tau: predicted effects of arm k for the structure units, shape (n_s, n_outcomes).
        """
        from sklearn.tree import DecisionTreeRegressor

        sd = tau.std(axis=0)
        target = (tau - tau.mean(axis=0)) / np.where(sd > 0, sd, 1.0) * np.sqrt(weights)
        leaf = self.min_samples_leaf
        if leaf is None:  # the in-memory default, from the arm shares of every unit
            counts = np.array([experiment.arm_counts[a] for a in experiment.arms], dtype=float)
            shares = counts / counts.sum()
            leaf = max(1, math.ceil(2 * self.min_units_per_arm / min(shares[k], shares[0])))
        return DecisionTreeRegressor(
            max_depth=self.max_depth, min_samples_leaf=leaf, random_state=self.random_state
        ).fit(struct.X, target)

    def _moments(
        self,
        experiment: DistributedExperiment,
        trees: dict[int, Any],
        seed: int,
        frac: float,
    ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One pass: :func:`_node_moments` summed over partitions."""
        import dask

        from pex_tuner.distributed.reduce import add, compute, tree_reduce

        enc = dask.delayed(experiment.encoder, pure=True)
        ts = dask.delayed(trees, pure=True)
        parts = [
            dask.delayed(_node_moments)(p, enc, ts, seed, frac, bool(self.honest))
            for p in experiment.partitions()
        ]
        return compute(tree_reduce(parts, add))

    def _finish(
        self,
        experiment: DistributedExperiment,
        struct: ExperimentData,
        trees: dict[int, Any],
        moments: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
        weights: np.ndarray,
    ) -> None:
        """Prune every arm's tree, estimate its segments, set the fitted attributes."""
        arm_trees: dict[str, _ArmTree] = {}
        rows: list[dict[str, Any]] = []
        n_est = float(moments[1][2][0]) if moments else 0.0
        for k, tree in trees.items():
            arm_trees[struct.arms[k]], arm_rows = self._segments(
                experiment, struct, k, tree, moments[k], n_est
            )
            rows.extend(arm_rows)
        segments = pd.DataFrame(rows)
        segments.attrs["directions"] = dict(zip(struct.outcomes, struct.directions, strict=True))
        segments.attrs["control"] = struct.control
        self.arms_, self.treatments_ = struct.arms, struct.arms[1:]
        self.outcomes_, self.directions_ = struct.outcomes, struct.directions
        self.schema_, self.n_features_in_ = struct.schema, struct.X.shape[1]
        self.outcome_weights_ = weights
        self.structure_indices_ = self.estimation_indices_ = None
        self.n_structure_, self.n_estimation_ = struct.n_units, round(float(n_est))
        self.model_ = None
        self._arm_trees = arm_trees
        self.trees_ = {a: t.estimator for a, t in arm_trees.items()}
        self.conditions_ = {a: list(t.conditions) for a, t in arm_trees.items()}
        self.segments_ = segments

    def _segments(
        self,
        experiment: DistributedExperiment,
        struct: ExperimentData,
        k: int,
        tree: Any,
        moments: tuple[np.ndarray, np.ndarray, np.ndarray],
        n_est: float,
    ) -> tuple[_ArmTree, list[dict[str, Any]]]:
        """Arm k's pruned tree and its rows of ``segments_`` (DistillHTE._fit_arm's)."""
        stats_t, stats_c, n_node = moments
        arm, m = struct.arms[k], self.min_units_per_arm
        n_t, n_c = stats_t[:, 0], stats_c[:, 0]
        ok = (n_t >= m) & (n_c >= m)
        if not ok[0]:
            raise InputDataError(
                f"arm '{arm}' vs control '{struct.control}': the estimation units hold "
                f"{int(n_t[0])} treated and {int(n_c[0])} control units; every segment "
                f"needs at least min_units_per_arm={m} of each (lower min_units_per_arm "
                "or use more units)"
            )
        with_missing = [n for n, c in experiment.missing_counts.items() if c]
        leaves, conds = pruned_segments(tree.tree_, ok, struct.schema, with_missing)
        effects = np.zeros((len(leaves), struct.n_outcomes))
        rows: list[dict[str, Any]] = []
        for s, leaf in enumerate(leaves):
            row: dict[str, Any] = {
                "treatment": arm,
                "segment": s + 1,
                "rule": rule_text(conds[s]),
                "n_units": round(float(n_node[leaf])),
                "n_treated": round(float(n_t[leaf])),
                "n_control": round(float(n_c[leaf])),
                "share": float(n_node[leaf] / n_est),
            }
            eff, lo, hi = segment_effect_from_moments(
                stats_t[leaf], stats_c[leaf], confidence=float(self.confidence)
            )
            for j, o in enumerate(struct.outcomes):
                row[f"effect[{o}]"] = float(eff[j])
                row[f"ci_low[{o}]"] = float(lo[j])
                row[f"ci_high[{o}]"] = float(hi[j])
                row[f"significant[{o}]"] = bool(lo[j] > 0 or hi[j] < 0)
            effects[s] = eff
            rows.append(row)
        owner = node_owner(tree.tree_, leaves)
        return _ArmTree(estimator=tree, owner=owner, conditions=conds, effects=effects), rows
