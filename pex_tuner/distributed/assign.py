"""Assign arms to every unit of a Parquet dataset, partition by partition, into Parquet.

Each input partition becomes one output file (``part.00000.parquet``, ... in partition order),
written by the worker that read it; the client receives only the arm counts. The output folder
is filled under a temporary name and renamed at the end, so a failed run leaves nothing
half-written (on a multi-machine cluster it must be a folder every worker and the client share).

The policy's decision is the in-memory one (``PolicyArtifact.assign``), row by row; a
linear-utility artifact's CATE model is loaded once on the client and shipped with the tasks.
Launches with a randomized holdout use the same writer (:mod:`pex_tuner.launch.parquet`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.files import atomic_directory
from pex_tuner.policies.artifact import PolicyArtifact
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.schema import FeatureSchema

__all__ = ["AssignResult", "PartitionAssigner", "assign_parquet", "read_units", "write_parquet"]

ARM = "arm"


@dataclass(frozen=True)
class AssignResult:
    """What an assignment over Parquet wrote.

    Attributes:
        path: the output folder (one Parquet file per input partition).
        n_units: rows written; npartitions: files written.
        counts: units per value of the counted column (arms, in the policy's order).
    """

    path: str
    n_units: int
    npartitions: int
    counts: dict[str, int]


@dataclass(frozen=True, eq=False)
class PartitionAssigner:
    """A policy ready to assign one pandas partition on a worker (picklable).

    Attributes:
        policy: the policy; schema: its feature schema; model: the CATE model of a
            linear-utility policy (None for policies that decide from features).
    """

    policy: Any
    schema: FeatureSchema
    model: Any = None

    @classmethod
    def from_artifact(cls, artifact: PolicyArtifact) -> PartitionAssigner:
        model = artifact._model() if isinstance(artifact.policy, LinearUtilityPolicy) else None
        return cls(artifact.policy, artifact.schema, model)

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.policy.arms)

    def assign_index(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm index per row of ``frame``, shape (n,): ``PolicyArtifact.assign_index``."""
        if len(frame) == 0:
            return np.zeros(0, dtype=np.int64)
        self.schema.validate_frame(frame)
        if self.model is not None:
            pred = self.model.predict(self.schema.encode(frame, validate=False))
            return np.asarray(self.policy.assign_index_from_effects(pred))
        return np.asarray(self.policy.assign_index(frame))

    def __call__(self, pdf: pd.DataFrame) -> pd.DataFrame:
        """The partition with an ``arm`` column (labels, string dtype) appended."""
        labels = np.asarray(self.arms, dtype=object)
        return pdf.assign(**{ARM: pd.array(labels[self.assign_index(pdf)], dtype="string")})


def _call(pdf: pd.DataFrame, func: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    return func(pdf)


def read_units(data: str | list[str] | Any) -> Any:
    """A dask DataFrame of units: Parquet path(s) / glob(s), or a dask DataFrame as is."""
    import dask.dataframe as dd

    if isinstance(data, dd.DataFrame):
        return data
    if isinstance(data, str | os.PathLike):
        return dd.read_parquet(str(data))
    return dd.read_parquet([str(p) for p in data])


def write_parquet(
    ddf: Any,
    func: Callable[[pd.DataFrame], pd.DataFrame],
    out: str | os.PathLike[str],
    *,
    count: str,
    labels: tuple[str, ...],
    progress: bool = False,
) -> AssignResult:
    """Write ``func`` of every partition of ``ddf`` to ``out`` and count its ``count`` column.

    Args:
        ddf: dask DataFrame of units.
        func: partition -> output frame (pandas, run on a worker).
        out: output folder (replaced atomically).
        count: column of the output whose values are counted; labels: its expected values,
            in reporting order.
        progress: Dask's progress bar.
    """
    import dask

    meta = func(ddf._meta)
    # the function (a policy, maybe with its CATE model) is shipped once, not once per task
    mapped = ddf.map_partitions(_call, dask.delayed(func, pure=True), meta=meta)
    width = max(5, len(str(ddf.npartitions)))
    with atomic_directory(out) as tmp:
        task = mapped.to_parquet(
            str(tmp),
            write_index=False,
            compute=False,
            name_function=lambda i: f"part.{i:0{width}d}.parquet",
            write_metadata_file=False,
        )
        counts = mapped[count].astype(str).value_counts()
        if progress:
            from distributed import progress as show

            futures = dask.persist(task, counts)
            show(futures)
            _, counted = dask.compute(*futures)
        else:
            _, counted = dask.compute(task, counts)
    found = {str(k): int(v) for k, v in counted.items()}
    unknown = sorted(set(found) - set(labels))
    if unknown:
        raise InputDataError(f"assigned values {unknown} outside the expected {list(labels)}")
    ordered = {a: found.get(a, 0) for a in labels}
    return AssignResult(str(Path(out)), sum(ordered.values()), int(ddf.npartitions), ordered)


def assign_parquet(
    artifact: PolicyArtifact | str | os.PathLike[str],
    data: str | list[str] | Any,
    out: str | os.PathLike[str],
    *,
    progress: bool = False,
) -> AssignResult:
    """Assign an arm to every unit of a Parquet dataset with a policy artifact.

    Args:
        artifact: a PolicyArtifact or the path of its JSON.
        data: Parquet file(s) / folder / glob of units with the policy's feature columns, or a
            dask DataFrame.
        out: output folder: one Parquet file per input partition, the input columns plus
            ``arm`` (the arm label).
        progress: Dask's progress bar.

    Returns:
        AssignResult with the units per arm. Runs on the current Dask client (or Dask's
        local threads).
    """
    if not isinstance(artifact, PolicyArtifact):
        artifact = PolicyArtifact.load(artifact)
    ddf = read_units(data)
    missing = [f for f in artifact.schema.names if f not in ddf.columns]
    if missing:
        raise InputDataError(
            f"the units lack the policy's feature column(s) {missing}; the policy uses "
            f"{list(artifact.schema.names)}"
        )
    assigner = PartitionAssigner.from_artifact(artifact)
    return write_parquet(ddf, assigner, out, count=ARM, labels=assigner.arms, progress=progress)
