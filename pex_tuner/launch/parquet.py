"""Launch over a Parquet dataset: the holdout design applied partition by partition.

Every unit gets its group, arm and propensity from :meth:`LaunchedPolicy.assign` (hash-based,
so a unit's assignment does not depend on the partition it sits in), and each input partition
becomes one output Parquet file (:func:`pex_tuner.distributed.assign.write_parquet`). Unit ids
are checked for duplicates within each partition only (a global check would need a shuffle
of every id).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pex_tuner.distributed.assign import AssignResult, PartitionAssigner, read_units, write_parquet
from pex_tuner.errors import InputDataError
from pex_tuner.launch.holdout import LaunchedPolicy
from pex_tuner.policies.artifact import PolicyArtifact

__all__ = ["launch_parquet"]


@dataclass(frozen=True, eq=False)
class _LaunchPartition:
    """The launch with its artifact's policy (and model) preloaded, for one partition."""

    launched: LaunchedPolicy
    unit_id: str
    keep_columns: bool

    def __call__(self, pdf: pd.DataFrame) -> pd.DataFrame:
        out = self.launched.assign(pdf, unit_id=self.unit_id)
        for col in ("arm", "group", "policy_arm"):  # labels as strings (Parquet needs a type)
            out[col] = out[col].astype("string")
        if not self.keep_columns:
            return out.reset_index(drop=True)
        rest = pdf.drop(columns=[c for c in out.columns if c in pdf.columns])
        return pd.concat([rest, out], axis=1).reset_index(drop=True)


def launch_parquet(
    launched: LaunchedPolicy,
    data: str | list[str] | Any,
    out: str | os.PathLike[str],
    *,
    unit_id: str = "unit_id",
    keep_columns: bool = False,
    progress: bool = False,
) -> AssignResult:
    """Assign every unit of a Parquet dataset under a launch (policy plus holdout).

    Args:
        launched: the launch (its artifact's CATE model, if any, is loaded once here).
        data: Parquet file(s) / folder / glob of units, or a dask DataFrame.
        out: output folder, one Parquet file per input partition with the columns of
            :meth:`LaunchedPolicy.assign` (``<unit_id>``, ``arm``, ``group``,
            ``propensity``, ``policy_arm``), after the input columns if ``keep_columns``.
        unit_id: the column of unique unit ids.
        progress: Dask's progress bar.

    Returns:
        AssignResult whose counts are units per arm.
    """
    ddf = read_units(data)
    if unit_id not in ddf.columns:
        raise InputDataError(
            f"the units lack the unit id column '{unit_id}'; pass unit_id=<column> naming "
            "the column that identifies each unit"
        )
    artifact = launched.artifact
    ready = LaunchedPolicy(
        artifact=PartitionAssigner.from_artifact(artifact)
        if isinstance(artifact, PolicyArtifact)
        else artifact,
        holdout=launched.holdout,
        salt=launched.salt,
        created_at=launched.created_at,
    )
    func = _LaunchPartition(ready, unit_id, keep_columns)
    return write_parquet(ddf, func, out, count="arm", labels=launched.arms, progress=progress)
