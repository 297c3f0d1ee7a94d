"""Feature schema: which columns are numeric or categorical, and how they are encoded.

The schema is learned once from the logged experiment and then applied, unchanged, to every
frame of new units, so training data and new units are encoded the same way. Categorical
columns are one-hot encoded over the categories seen in the experiment (sorted); a category
that was never seen is an error rather than a silent all-zeros row.

Missing values are data, not errors: a missing numeric value (NaN, None, ``pd.NA``) is encoded
as NaN, a missing category as NaN in every one-hot column of its feature, so LightGBM and the
tree learners see it as missing (not as zero, nor as a category of its own). Infinite numeric
values are errors, listed for every offending column at once: they are not "unknown", a SQL
export cannot write them, and a threshold split treats them as extreme values silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError, SchemaMismatchError

__all__ = ["FeatureSchema", "infinite_values_message", "missing_counts"]

NUMERIC = "numeric"
CATEGORICAL = "categorical"
# object columns of numbers and missing values (e.g. [1.5, None]) are numeric columns
_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "empty", "decimal")


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series.dtype)) and not isinstance(
        series.dtype, pd.CategoricalDtype
    )


def _as_float(col: pd.Series) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values, shape (n_units,)."""
    if not _is_numeric(col):
        col = pd.to_numeric(col, errors="coerce")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def missing_counts(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, int]:
    """Missing values (NaN, None, ``pd.NA``) per named column of ``frame``, all columns."""
    return {str(n): int(frame[n].isna().sum()) for n in names}


def infinite_values_message(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    """Describe the infinite values of every numeric column among ``names`` at once, if any.

    Returns:
        e.g. ``"features 'age' (2 infinite) and 'income' (1 infinite) have infinite
        values"``, or None when every value is finite or missing.
    """
    bad: list[str] = []
    for name in names:
        col = frame[name]
        if _is_numeric(col):
            n_inf = int(np.isinf(_as_float(col)).sum())
            if n_inf:
                bad.append(f"'{name}' ({n_inf} infinite)")
    if not bad:
        return None
    if len(bad) == 1:
        return f"feature {bad[0]} has infinite values"
    return f"features {', '.join(bad[:-1])} and {bad[-1]} have infinite values"


@dataclass(frozen=True)
class FeatureSchema:
    """Names, kinds and categories of the feature columns.

    Attributes:
        names: feature column names, in order.
        kinds: ``"numeric"`` or ``"categorical"`` for each name.
        categories: for each categorical column, its sorted categories (as strings).
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()

    # ------------------------------------------------------------------ construction
    @classmethod
    def infer(cls, frame: pd.DataFrame, names: Sequence[str]) -> FeatureSchema:
        """Infer kinds from dtypes: numbers and booleans are numeric, the rest categorical."""
        kinds: list[str] = []
        cats: list[tuple[str, tuple[str, ...]]] = []
        for name in names:
            col = frame[name]
            if _is_numeric(col):
                kinds.append(NUMERIC)
            else:
                kinds.append(CATEGORICAL)
                values = pd.unique(col[col.notna()].astype(str))
                cats.append((name, tuple(sorted(str(v) for v in values))))
        return cls(names=tuple(names), kinds=tuple(kinds), categories=tuple(cats))

    @property
    def category_map(self) -> dict[str, tuple[str, ...]]:
        return dict(self.categories)

    @property
    def encoded_names(self) -> tuple[str, ...]:
        """Column names of the encoded matrix: numeric names, then ``name=category``."""
        cmap = self.category_map
        out: list[str] = []
        for name, kind in zip(self.names, self.kinds, strict=True):
            if kind == NUMERIC:
                out.append(name)
            else:
                out.extend(f"{name}={c}" for c in cmap[name])
        return tuple(out)

    @property
    def n_encoded(self) -> int:
        return len(self.encoded_names)

    # ------------------------------------------------------------------ encoding
    def validate_frame(self, frame: pd.DataFrame) -> None:
        """Check that ``frame`` holds every feature with the right type and known categories.

        Missing values are allowed in every feature (they are encoded as NaN).

        Raises:
            SchemaMismatchError: a feature column is missing, numeric data is not numeric or
                infinite (every infinite column listed at once), or a categorical column holds
                a category unseen in the experiment.
        """
        if not isinstance(frame, pd.DataFrame):
            raise SchemaMismatchError(
                f"expected a pandas DataFrame of features, got {type(frame).__name__}"
            )
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise SchemaMismatchError(
                f"missing feature column(s) {missing}; the model was fitted on features "
                f"{list(self.names)}"
            )
        cmap = self.category_map
        for name, kind in zip(self.names, self.kinds, strict=True):
            col = frame[name]
            if kind == NUMERIC and not _is_numeric(col):
                converted = pd.to_numeric(col, errors="coerce")
                bad = col[converted.isna() & col.notna()]
                numbers = pd.api.types.infer_dtype(col, skipna=True) in _NUMBER_KINDS
                if not numbers or isinstance(col.dtype, pd.CategoricalDtype):
                    example = repr(bad.iloc[0]) if len(bad) else "?"
                    raise SchemaMismatchError(
                        f"feature '{name}' must be numeric (it was numeric in the experiment); "
                        f"got dtype {col.dtype} with {len(bad)} non-numeric value(s), "
                        f"e.g. {example}"
                    )
            if kind == CATEGORICAL:
                seen = set(cmap[name])
                values = pd.unique(col[col.notna()].astype(str))
                unseen = sorted(str(v) for v in values if str(v) not in seen)
                if unseen:
                    raise SchemaMismatchError(
                        f"feature '{name}' has categories {unseen[:5]} never seen in the "
                        f"experiment; expected one of {sorted(seen)}"
                    )
        numeric = [n for n, k in zip(self.names, self.kinds, strict=True) if k == NUMERIC]
        inf_msg = infinite_values_message(frame, numeric)
        if inf_msg:
            raise SchemaMismatchError(
                f"{inf_msg}; missing values (NaN or None) are allowed, infinite ones are not"
            )

    def encode(self, frame: pd.DataFrame, *, validate: bool = True) -> np.ndarray:
        """Encode features as a float matrix.

        Args:
            frame: DataFrame with (at least) the schema's feature columns.
            validate: check types and categories first (the public path always does).

        Returns:
            ndarray of shape (n_units, n_encoded), float64: a missing numeric value is NaN,
            a missing category NaN in every one-hot column of its feature.
        """
        if validate:
            self.validate_frame(frame)
        cmap = self.category_map
        blocks: list[np.ndarray] = []
        for name, kind in zip(self.names, self.kinds, strict=True):
            col = frame[name]
            if kind == NUMERIC:
                blocks.append(_as_float(col)[:, None])
            else:
                cats = cmap[name]
                codes = pd.Categorical(col.astype(str), categories=list(cats)).codes
                onehot = np.zeros((len(col), len(cats)), dtype=np.float64)
                rows = np.flatnonzero(codes >= 0)
                onehot[rows, codes[rows]] = 1.0
                onehot[col.isna().to_numpy()] = np.nan
                blocks.append(onehot)
        if not blocks:
            return np.zeros((len(frame), 0))
        return np.ascontiguousarray(np.hstack(blocks))

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "kinds": list(self.kinds),
            "categories": {k: list(v) for k, v in self.categories},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSchema:
        try:
            names = tuple(str(n) for n in d["names"])
            kinds = tuple(str(k) for k in d["kinds"])
            cats = tuple((str(k), tuple(str(c) for c in v)) for k, v in d["categories"].items())
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputDataError(
                f"feature schema is malformed ({exc!r}); expected keys names, kinds, categories"
            ) from exc
        if len(names) != len(kinds) or any(k not in (NUMERIC, CATEGORICAL) for k in kinds):
            raise InputDataError(
                "feature schema is malformed: 'kinds' must give 'numeric' or 'categorical' "
                "for every name"
            )
        return cls(names=names, kinds=kinds, categories=cats)
