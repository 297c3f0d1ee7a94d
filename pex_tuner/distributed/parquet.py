"""Parquet datasets read one file per partition, with ``dask.dataframe.from_map``.

``dask.dataframe.read_parquet`` fuses several files into one partition when a query reads
only some of the columns (its planner's "compression factor"), so the same files give
different partitions for different column selections. The experiment's partitions and its
stored predictions must pair up file by file whatever each pass reads; so both are read here
with Dask's ``from_map`` over the sorted file list: one partition per file, always.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from pex_tuner.errors import InputDataError

__all__ = ["expand_files", "read_files", "read_meta"]


def expand_files(path: str | Sequence[str], storage_options: dict | None = None) -> list[str]:
    """The Parquet files of a folder, a glob or a list (any fsspec URL), sorted by name.

    Raises:
        InputDataError: nothing matches.
    """
    import fsspec

    paths = [path] if isinstance(path, str) else list(path)
    files: list[str] = []
    for p in paths:
        fs, _, found = fsspec.get_fs_token_paths(p, storage_options=storage_options or {})
        for f in found:
            if fs.isdir(f):
                inside = fs.glob(f.rstrip("/") + "/*.parquet") + fs.glob(f.rstrip("/") + "/*.pq")
                files.extend(fs.unstrip_protocol(x) for x in sorted(inside))
            else:
                files.append(fs.unstrip_protocol(f))
    if not files:
        raise InputDataError(f"no Parquet files found at {path!r}")
    return files


def read_meta(file: str, storage_options: dict | None = None) -> pd.DataFrame:
    """An empty frame with the columns and pandas dtypes of one Parquet file (its schema)."""
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(file, "rb", **(storage_options or {})) as f:
        schema = pq.read_schema(f)
    return schema.empty_table().to_pandas()


def _read(file: str, columns: list[str] | None, storage_options: dict | None) -> pd.DataFrame:
    return pd.read_parquet(file, columns=columns, storage_options=storage_options)


def read_files(
    files: Sequence[str],
    columns: Sequence[str] | None = None,
    *,
    meta: pd.DataFrame | None = None,
    storage_options: dict | None = None,
) -> Any:
    """A dask DataFrame with one partition per file (in the given order), of ``columns``."""
    import dask.dataframe as dd

    cols = None if columns is None else list(columns)
    if meta is None:
        meta = read_meta(files[0], storage_options)
    if cols is not None:
        meta = meta[cols]
    return dd.from_map(_read, list(files), columns=cols, storage_options=storage_options, meta=meta)
