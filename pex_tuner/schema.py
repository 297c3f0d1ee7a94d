"""Feature schema: which columns are numeric or categorical, and how they are encoded.

The schema is learned once from the logged experiment and then applied, unchanged, to every
frame of new units, so training data and new units are encoded the same way. Categorical
columns are one-hot encoded over the categories seen in the experiment (sorted); a category
that was never seen is an error rather than a silent all-zeros row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError, SchemaMismatchError

__all__ = ["FeatureSchema", "missing_values_message"]

NUMERIC = "numeric"
CATEGORICAL = "categorical"


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series.dtype)) and not isinstance(
        series.dtype, pd.CategoricalDtype
    )


def missing_values_message(name: str, kind: str, col: pd.Series) -> str | None:
    """Describe NaN / infinite numeric values or missing categories in a feature, if any."""
    if kind == NUMERIC:
        n_bad = int((~np.isfinite(col.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
        return f"feature '{name}' has {n_bad} NaN or infinite value(s)" if n_bad else None
    n_na = int(col.isna().sum())
    return f"feature '{name}' has {n_na} missing value(s)" if n_na else None


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
                values = pd.unique(col.astype(str))
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

        Raises:
            SchemaMismatchError: a feature column is missing, numeric data is not numeric or not
                finite, or a categorical column holds a category unseen in the experiment.
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
                example = repr(bad.iloc[0]) if len(bad) else "?"
                raise SchemaMismatchError(
                    f"feature '{name}' must be numeric (it was numeric in the experiment); "
                    f"got dtype {col.dtype} with {len(bad)} non-numeric value(s), "
                    f"e.g. {example}"
                )
            missing_msg = missing_values_message(name, kind, col)
            if missing_msg:
                raise SchemaMismatchError(missing_msg + "; drop or impute them first")
            if kind == CATEGORICAL:
                seen = set(cmap[name])
                values = pd.unique(col.astype(str))
                unseen = sorted(str(v) for v in values if str(v) not in seen)
                if unseen:
                    raise SchemaMismatchError(
                        f"feature '{name}' has categories {unseen[:5]} never seen in the "
                        f"experiment; expected one of {sorted(seen)}"
                    )

    def encode(self, frame: pd.DataFrame, *, validate: bool = True) -> np.ndarray:
        """Encode features as a float matrix.

        Args:
            frame: DataFrame with (at least) the schema's feature columns.
            validate: check types and categories first (the public path always does).

        Returns:
            ndarray of shape (n_units, n_encoded), float64.
        """
        if validate:
            self.validate_frame(frame)
        cmap = self.category_map
        blocks: list[np.ndarray] = []
        for name, kind in zip(self.names, self.kinds, strict=True):
            col = frame[name]
            if kind == NUMERIC:
                blocks.append(col.to_numpy(dtype=np.float64, na_value=np.nan)[:, None])
            else:
                cats = cmap[name]
                codes = pd.Categorical(col.astype(str), categories=list(cats)).codes
                onehot = np.zeros((len(col), len(cats)), dtype=np.float64)
                rows = np.flatnonzero(codes >= 0)
                onehot[rows, codes[rows]] = 1.0
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
