"""Feature binning of the shared greedy tree search (:mod:`pex_tuner.policies.tree_search`).

Numeric features are binned at (up to ``n_bins - 1``) quantile edges, which are observed
values, so a split ``x <= edge`` is exact; features with at most ``n_bins`` distinct values get
an edge at every value. Categorical features get one bin per category. Every feature has one
more bin, the last, for its missing values.

The two halves are separate so that data that does not fit in memory is binned with the same
rule (:mod:`pex_tuner.distributed.trees`):

- :func:`bin_layout` places the edges from the rows it is given (all rows, or a sample of
  :data:`EDGE_SAMPLE` rows of larger data);
- :func:`bin_codes` applies a layout to any rows (one partition at a time).

:func:`bin_features` is both for data in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.rules import NUMERIC
from pex_tuner.schema import FeatureSchema

__all__ = [
    "EDGE_SAMPLE",
    "Binned",
    "bin_codes",
    "bin_features",
    "bin_layout",
    "feature_columns",
    "quantile_edges",
]

# rows used to place quantile edges (the edges are still applied to every row)
EDGE_SAMPLE = 200_000

# numeric columns as floats, categorical ones as category codes (-1: missing)
Columns = list[np.ndarray]


@dataclass(frozen=True)
class Binned:
    """Bin layout of the features and, once applied to units, their bin codes.

    Attributes:
        codes: bin codes, shape (n_features, n_units), uint8 / uint16; ``n_bins - 1`` is
            the missing bin (n_units is 0 for a layout not applied to units).
        n_cand: candidate splits per feature, shape (n_features,).
        is_num: numeric features, bool of shape (n_features,).
        edges: numeric thresholds per feature (empty for categorical ones).
        categories: categories per feature (empty for numeric ones).
        n_bins: width of the histogram axis, the missing bin included.
        has_missing: features some unit lacks, bool of shape (n_features,).
    """

    codes: np.ndarray
    n_cand: np.ndarray
    is_num: np.ndarray
    edges: list[np.ndarray]
    categories: list[tuple[str, ...]]
    n_bins: int
    has_missing: np.ndarray

    @property
    def missing_bin(self) -> int:
        return self.n_bins - 1


def feature_columns(
    X: Any, schema: FeatureSchema | None
) -> tuple[Columns, tuple[str, ...], tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Numeric columns as floats and categorical ones as category codes (-1 for missing),
    each of shape (n_units,); the feature names, kinds and the categories of each
    categorical feature. ``X``: a DataFrame (schema inferred unless given) or a float array
    of shape (n_units, n_features) (features named x0, x1, ...)."""
    if isinstance(X, pd.DataFrame):
        schema = schema or FeatureSchema.infer(X, [str(c) for c in X.columns])
        schema.validate_frame(X)
        cmap = schema.category_map
        columns: Columns = []
        for name, kind in zip(schema.names, schema.kinds, strict=True):
            if kind == NUMERIC:
                col = pd.to_numeric(X[name], errors="coerce")  # validated: numbers, missing
                columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            else:  # category codes, -1 for missing
                codes = pd.Categorical(X[name].astype(str), categories=list(cmap[name])).codes
                columns.append(np.where(X[name].isna().to_numpy(), -1, codes).astype(np.int64))
        return columns, schema.names, schema.kinds, cmap
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise InputDataError(
            f"X must be a DataFrame or a 2-D array (n_units, n_features); got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise InputDataError(
            f"X has {int(np.isinf(arr).sum())} infinite value(s); missing values (NaN) are "
            "allowed, infinite ones are not"
        )
    names = tuple(f"x{i}" for i in range(arr.shape[1]))
    columns = [np.ascontiguousarray(arr[:, i]) for i in range(arr.shape[1])]
    return columns, names, (NUMERIC,) * arr.shape[1], {}


def quantile_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Thresholds t (observed values) so that ``x <= t`` splits; at most n_bins - 1."""
    s = np.sort(x[~np.isnan(x)])
    if len(s) == 0:
        return s
    distinct = s[np.r_[True, s[1:] != s[:-1]]]
    if len(distinct) <= n_bins:
        return distinct[:-1]
    m = len(s)
    probs = np.arange(1, n_bins) / n_bins
    pos = np.clip(np.ceil(probs * m).astype(np.intp) - 1, 0, m - 1)  # inverted CDF
    e = np.unique(s[pos])
    return e[e < s[-1]]


def bin_layout(
    columns: Columns,
    names: tuple[str, ...],
    kinds: tuple[str, ...],
    cmap: dict[str, tuple[str, ...]],
    n_bins: int,
) -> Binned:
    """The bin layout whose numeric edges are the quantiles of ``columns`` (every row given).

    Returns a :class:`Binned` with no units (codes of shape (n_features, 0)).
    """
    edges: list[np.ndarray] = []
    cats_of: list[tuple[str, ...]] = []
    n_cand = np.zeros(len(names), dtype=np.intp)
    width = 1
    for f, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == NUMERIC:
            e = quantile_edges(columns[f], n_bins)
            edges.append(e)
            cats_of.append(())
            n_cand[f] = len(e)
            width = max(width, len(e) + 1)
        else:
            cats = cmap[name]
            edges.append(np.empty(0))
            cats_of.append(tuple(cats))
            n_cand[f] = len(cats) if len(cats) > 1 else 0
            width = max(width, len(cats))
    width += 1  # the missing bin
    is_num = np.array([k == NUMERIC for k in kinds])
    dtype = np.uint8 if width <= 256 else np.uint16
    empty = np.zeros(len(names), dtype=bool)
    return Binned(np.empty((len(names), 0), dtype), n_cand, is_num, edges, cats_of, width, empty)


def bin_codes(layout: Binned, columns: Columns) -> Binned:
    """``layout`` applied to the units of ``columns`` (each of shape (n_units,)): their bin
    codes (n_features, n_units) and ``has_missing`` among them."""
    n = len(columns[0])
    width = layout.n_bins
    codes = np.empty((len(columns), n), dtype=layout.codes.dtype)
    has_missing = np.zeros(len(columns), dtype=bool)
    for f in range(len(columns)):
        num = bool(layout.is_num[f])
        missing = np.isnan(columns[f]) if num else columns[f] < 0
        has_missing[f] = missing.any()
        if num:
            codes[f] = np.where(missing, width - 1, np.searchsorted(layout.edges[f], columns[f]))
        else:
            codes[f] = np.where(missing, width - 1, columns[f])
    return replace(layout, codes=codes, has_missing=has_missing)


def bin_features(
    X: Any, schema: FeatureSchema | None, n_bins: int, random_state: int | None
) -> tuple[Binned, tuple[str, ...], tuple[str, ...]]:
    """Bin data in memory: edges from all rows, or from :data:`EDGE_SAMPLE` rows drawn with
    ``random_state`` when there are more; codes for every row. Returns the binned units,
    the feature names and kinds."""
    columns, names, kinds, cmap = feature_columns(X, schema)
    if not names:
        raise InputDataError("X has no feature columns")
    n = len(columns[0])
    rng = np.random.default_rng(random_state)
    sample = rng.choice(n, EDGE_SAMPLE, replace=False) if n > EDGE_SAMPLE else None
    placed = columns if sample is None else [c[sample] for c in columns]
    layout = bin_layout(placed, names, kinds, cmap, n_bins)
    return bin_codes(layout, columns), tuple(names), tuple(kinds)
