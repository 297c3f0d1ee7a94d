"""DistributedPredictions: per-unit CATE predictions, computed once, stored as Parquet.

Predicting every unit is the costliest pass (LightGBM over all rows); OPE, tuning and the tree
learners need the predictions many times. So :meth:`DistributedPredictions.compute` predicts
each experiment partition on the cluster (``map_partitions``) and writes one Parquet file per
partition, in partition order, into a folder beside the run; later passes read them back
partition by partition, aligned with the experiment's partitions (each file carries the
``_unit_hash`` column, checked against the experiment's on every pass).

Columns: ``_unit_hash`` (uint64), ``mu[0,j]`` (the control arm's outcome surface) and
``tau[k,j]`` for the treatment arms k >= 1 (float64), in the experiment's arm and outcome order;
``mu[:, k]`` is rebuilt as ``mu[:, 0] + tau[:, k]`` (1 + K J columns instead of 1 + 2 K J:
half the bytes every later pass reads). A small ``pex_predictions.json`` beside the files
records arms, outcomes and counts. The folder
is written to a temporary name first and renamed, so a failed pass leaves nothing half-written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import InputDataError
from pex_tuner.files import atomic_directory

if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.distributed.experiment import DistributedExperiment

__all__ = ["DistributedPredictions", "PredictionLayout"]

META_FILE = "pex_predictions.json"
LAYOUT = "hash, mu0, tau[1:]"
HASH = "_unit_hash"


@dataclass(frozen=True)
class PredictionLayout:
    """How EffectPredictions map to Parquet columns (picklable, shipped to workers).

    Attributes:
        arms, outcomes: as in the experiment; out_of_fold: whether every unit was predicted
            by models that did not see it.
    """

    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    out_of_fold: bool = False

    @property
    def mu0_columns(self) -> list[str]:
        """``mu[0,j]`` column names: the control arm's outcome surface (J of them)."""
        return [f"mu[0,{j}]" for j in range(len(self.outcomes))]

    @property
    def tau_columns(self) -> list[str]:
        """``tau[k,j]`` column names of the treatment arms k >= 1, arm-major ((K - 1) J)."""
        K, J = len(self.arms), len(self.outcomes)
        return [f"tau[{k},{j}]" for k in range(1, K) for j in range(J)]

    def meta(self) -> pd.DataFrame:
        """Empty frame with the stored columns and dtypes."""
        cols: dict[str, Any] = {HASH: pd.Series(dtype="uint64")}
        for c in self.mu0_columns + self.tau_columns:
            cols[c] = pd.Series(dtype="float64")
        return pd.DataFrame(cols)

    def to_frame(self, predictions: EffectPredictions, unit_hash: np.ndarray) -> pd.DataFrame:
        """Predictions of n units as a frame of 1 + K J columns: the hash, mu of the control
        arm and tau of every other arm (``mu[:, k] = mu[:, 0] + tau[:, k]``)."""
        n, K, J = predictions.tau.shape
        values = np.concatenate(
            [predictions.mu[:, 0, :], predictions.tau[:, 1:, :].reshape(n, (K - 1) * J)], axis=1
        )
        frame = pd.DataFrame(values, columns=self.mu0_columns + self.tau_columns)
        frame.insert(0, HASH, np.asarray(unit_hash, dtype=np.uint64))
        return frame

    def to_local(self, pdf: pd.DataFrame) -> EffectPredictions:
        """One stored partition as EffectPredictions with tau and mu of shape (n, K, J)."""
        n, K, J = len(pdf), len(self.arms), len(self.outcomes)
        tau = np.zeros((n, K, J))
        tau[:, 1:, :] = pdf[self.tau_columns].to_numpy(dtype=np.float64).reshape(n, K - 1, J)
        mu = pdf[self.mu0_columns].to_numpy(dtype=np.float64)[:, None, :] + tau
        return EffectPredictions(
            tau=tau, mu=mu, arms=self.arms, outcomes=self.outcomes, out_of_fold=self.out_of_fold
        )


def _predict_partition(pdf: pd.DataFrame, encoder: Any, model: Any, layout: PredictionLayout):
    """Predictions of one experiment partition as a frame (see PredictionLayout.to_frame)."""
    data = encoder.to_local(pdf)
    if hasattr(model, "predict_partition"):
        preds = model.predict_partition(data, pdf["_fold"].to_numpy())
    else:
        preds = model.predict(data, out_of_fold="never")
    if preds.arms != layout.arms or preds.outcomes != layout.outcomes:
        raise InputDataError(
            f"the model predicts arms {list(preds.arms)} / outcomes {list(preds.outcomes)}; "
            f"the experiment has {list(layout.arms)} / {list(layout.outcomes)}"
        )
    return layout.to_frame(preds, pdf["_unit_hash"].to_numpy())


class DistributedPredictions:
    """CATE predictions for every unit of a DistributedExperiment, stored as Parquet.

    Attributes:
        path: the folder holding one Parquet file per experiment partition.
        layout: arms, outcomes and the column layout.
        ddf: dask DataFrame over the stored files (one partition per file, in order).
        n_units: rows stored.
    """

    def __init__(self, path: str | Path, layout: PredictionLayout, n_units: int) -> None:
        from pex_tuner.distributed.parquet import read_files

        self.path = str(path)
        self.layout = layout
        self.n_units = int(n_units)
        files = sorted(Path(self.path).glob("part.*.parquet"))
        if not files:
            raise InputDataError(f"{self.path!r} holds no predictions files (part.*.parquet)")
        # one partition per file, in order: file i holds experiment partition i
        self.ddf = read_files([str(f) for f in files], meta=layout.meta())

    @property
    def arms(self) -> tuple[str, ...]:
        return self.layout.arms

    @property
    def outcomes(self) -> tuple[str, ...]:
        return self.layout.outcomes

    @property
    def out_of_fold(self) -> bool:
        return self.layout.out_of_fold

    @property
    def npartitions(self) -> int:
        return int(self.ddf.npartitions)

    def __repr__(self) -> str:
        return (
            f"DistributedPredictions(n_units={self.n_units}, npartitions={self.npartitions}, "
            f"arms={list(self.arms)}, outcomes={list(self.outcomes)}, path={self.path!r})"
        )

    @classmethod
    def compute(
        cls,
        experiment: DistributedExperiment,
        model: Any,
        path: str | Path,
        *,
        progress: bool = False,
    ) -> DistributedPredictions:
        """Predict every unit of ``experiment`` on the cluster and store the predictions.

        Args:
            experiment: the partitioned experiment.
            model: a DistributedCateModel (each unit predicted by its hash fold's model: out
                of fold for every unit) or any fitted model with ``predict(ExperimentData,
                out_of_fold="never")`` such as a CateModel.
            path: local folder to write (replaced if it exists); on a multi-machine cluster,
                a folder on a disk every worker and the client share.
            progress: Dask's progress bar.
        """
        from pex_tuner.distributed.reduce import compute as run

        layout = PredictionLayout(
            experiment.arms,
            experiment.outcomes,
            out_of_fold=bool(getattr(model, "out_of_fold_", False)),
        )
        import dask

        # the model enters the graph once, as one task every partition depends on
        shared = dask.delayed(model, pure=True)
        preds = experiment.ddf.map_partitions(
            _predict_partition, experiment.encoder, shared, layout, meta=layout.meta()
        )
        with atomic_directory(path) as tmp:
            width = max(5, len(str(experiment.npartitions)))
            task = preds.to_parquet(
                str(tmp),
                write_index=False,
                compute=False,
                name_function=lambda i: f"part.{i:0{width}d}.parquet",
                write_metadata_file=False,
            )
            run(task, progress=progress)
            info = {
                "layout": LAYOUT,
                "arms": list(layout.arms),
                "outcomes": list(layout.outcomes),
                "out_of_fold": layout.out_of_fold,
                "n_units": experiment.n_units,
                "npartitions": experiment.npartitions,
            }
            (tmp / META_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        return cls(path, layout, experiment.n_units)

    @classmethod
    def open(cls, path: str | Path) -> DistributedPredictions:
        """Stored predictions, written earlier by :meth:`compute`."""
        meta_path = Path(path) / META_FILE
        if not meta_path.exists():
            raise InputDataError(
                f"{str(path)!r} holds no stored predictions ({META_FILE} is missing); write "
                "them with DistributedPredictions.compute"
            )
        info = json.loads(meta_path.read_text(encoding="utf-8"))
        if info.get("layout") != LAYOUT:
            raise InputDataError(
                f"the predictions in {str(path)!r} were stored in another column layout "
                f"({info.get('layout')!r}, expected {LAYOUT!r}); compute them again"
            )
        layout = PredictionLayout(
            tuple(info["arms"]), tuple(info["outcomes"]), bool(info["out_of_fold"])
        )
        return cls(path, layout, info["n_units"])

    def partitions(self) -> list[Any]:
        """The stored partitions as ``dask.delayed`` pandas DataFrames, in experiment order."""
        return list(self.ddf.to_delayed())

    def partition(self, i: int) -> EffectPredictions:
        """Partition ``i`` as in-memory EffectPredictions (computed now)."""
        return self.layout.to_local(self.partitions()[i].compute())

    def to_local(self, pdf: pd.DataFrame) -> EffectPredictions:
        """A stored pandas partition as EffectPredictions, tau and mu of shape (n, K, J)."""
        return self.layout.to_local(pdf)
