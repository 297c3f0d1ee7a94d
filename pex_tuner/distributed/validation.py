"""Validation of a partitioned experiment: per-partition counts, combined, one message.

:meth:`DistributedExperiment.from_dask` runs the checks of ``ExperimentData.from_frame`` in the
same order and with the same messages. Checks that need only the column names and dtypes run
on the Dask DataFrame's empty ``_meta`` frame with the very functions of
:mod:`pex_tuner.data.validation`; checks that count values run once per partition
(:func:`summarize`), the counts are added up (:func:`combine`) and one error names every
offending column with its total count (:func:`raise_incomplete`, :func:`raise_invalid`),
before anything is fitted or written.

Unit ids are checked for duplicates within each partition only: a global check would need a
shuffle of every id (see README, "Running on a cluster").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.schema import NUMERIC

__all__ = [
    "ColumnSpec",
    "Summary",
    "arm_shares",
    "combine",
    "raise_incomplete",
    "raise_invalid",
    "summarize",
]


@dataclass(frozen=True)
class ColumnSpec:
    """What each column is for: the arguments of ``from_frame``, resolved on ``_meta``."""

    treatment: str
    outcomes: tuple[str, ...]
    propensity: str | None
    unit_id: str | None
    features: tuple[str, ...]
    kinds: tuple[str, ...]


@dataclass
class Summary:
    """Counts over some partitions (see :func:`summarize`)."""

    n_rows: int = 0
    arm_counts: Counter = field(default_factory=Counter)
    n_arm_missing: int = 0
    outcome_nan: Counter = field(default_factory=Counter)
    outcome_inf: Counter = field(default_factory=Counter)
    outcome_example: dict[str, Any] = field(default_factory=dict)
    n_propensity_missing: int = 0
    n_propensity_bad: int = 0
    n_id_missing: int = 0
    n_id_duplicate: int = 0
    id_example: Any = None
    feature_inf: Counter = field(default_factory=Counter)
    feature_missing: Counter = field(default_factory=Counter)
    categories: dict[str, set[str]] = field(default_factory=dict)


def _numeric(col: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(col.dtype)) and not isinstance(
        col.dtype, pd.CategoricalDtype
    )


def _outcome_counts(pdf: pd.DataFrame, spec: ColumnSpec, out: Summary) -> None:
    for name in spec.outcomes:
        col = pdf[name]
        if not _numeric(col):
            out.outcome_nan[name] += int(col.isna().sum())
            converted = pd.to_numeric(col, errors="coerce")
            bad = col[converted.isna() & col.notna()]
            if len(bad) and name not in out.outcome_example:
                out.outcome_example[name] = bad.iloc[0]
            continue
        y = col.to_numpy(dtype=np.float64, na_value=np.nan)
        out.outcome_nan[name] += int(np.isnan(y).sum())
        out.outcome_inf[name] += int(np.isinf(y).sum())


def _feature_counts(pdf: pd.DataFrame, spec: ColumnSpec, out: Summary) -> None:
    for name, kind in zip(spec.features, spec.kinds, strict=True):
        col = pdf[name]
        out.feature_missing[name] += int(col.isna().sum())
        if kind == NUMERIC:
            if _numeric(col):
                x = col.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                x = pd.to_numeric(col, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            out.feature_inf[name] += int(np.isinf(x).sum())
        else:
            values = col.dropna().unique()
            out.categories.setdefault(name, set()).update(str(v) for v in values)


def summarize(pdf: pd.DataFrame, spec: ColumnSpec) -> Summary:
    """Counts of one partition: rows, units per arm label, missing and infinite values per
    required column and per feature, out-of-range propensities, missing and duplicate unit
    ids, and the categories of every categorical feature."""
    out = Summary(n_rows=len(pdf))
    tcol = pdf[spec.treatment]
    out.n_arm_missing = int(tcol.isna().sum())
    for label, count in tcol.value_counts(dropna=True).items():
        if count:  # a categorical column lists its unused categories with count 0
            out.arm_counts[str(label)] += int(count)
    _outcome_counts(pdf, spec, out)
    if spec.propensity is not None:
        col = pdf[spec.propensity]
        out.n_propensity_missing = int(col.isna().sum())
        if _numeric(col):
            p = col.to_numpy(dtype=np.float64, na_value=np.nan)
            out.n_propensity_bad = int((~np.isfinite(p) | (p <= 0) | (p > 1)).sum())
    if spec.unit_id is not None:
        ids = pdf[spec.unit_id]
        out.n_id_missing = int(ids.isna().sum())
        dup = ids.duplicated(keep=False)
        if dup.any():
            out.n_id_duplicate = int(ids.duplicated().sum())
            example = ids[dup].iloc[0]
            out.id_example = example.item() if hasattr(example, "item") else example
    _feature_counts(pdf, spec, out)
    return out


def combine(a: Summary, b: Summary) -> Summary:
    """The counts of two groups of partitions added up (sets of categories united)."""
    cats = {k: set(v) for k, v in a.categories.items()}
    for k, v in b.categories.items():
        cats.setdefault(k, set()).update(v)
    return Summary(
        n_rows=a.n_rows + b.n_rows,
        arm_counts=a.arm_counts + b.arm_counts,
        n_arm_missing=a.n_arm_missing + b.n_arm_missing,
        outcome_nan=_add(a.outcome_nan, b.outcome_nan),
        outcome_inf=_add(a.outcome_inf, b.outcome_inf),
        outcome_example={**b.outcome_example, **a.outcome_example},
        n_propensity_missing=a.n_propensity_missing + b.n_propensity_missing,
        n_propensity_bad=a.n_propensity_bad + b.n_propensity_bad,
        n_id_missing=a.n_id_missing + b.n_id_missing,
        n_id_duplicate=a.n_id_duplicate + b.n_id_duplicate,
        id_example=a.id_example if a.id_example is not None else b.id_example,
        feature_inf=_add(a.feature_inf, b.feature_inf),
        feature_missing=_add(a.feature_missing, b.feature_missing),
        categories=cats,
    )


def _add(a: Counter, b: Counter) -> Counter:
    out = Counter(a)
    for k, v in b.items():
        out[k] += v  # keeps zero counts, unlike Counter.__add__
    return out


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _counts_text(n_nan: int, n_inf: int) -> str:
    parts = ([f"{n_nan} NaN"] if n_nan else []) + ([f"{n_inf} infinite"] if n_inf else [])
    return ", ".join(parts)


def _required_message(s: Summary, spec: ColumnSpec) -> str | None:
    """``check_required_complete``'s message for the combined counts, or None."""
    problems: list[str] = []
    if s.n_arm_missing:
        problems.append(
            f"treatment column '{spec.treatment}' has {s.n_arm_missing} missing value(s)"
        )
    bad = [
        f"'{o}' ({_counts_text(s.outcome_nan[o], s.outcome_inf[o])})"
        for o in spec.outcomes
        if s.outcome_nan[o] or s.outcome_inf[o]
    ]
    if len(bad) == 1:
        problems.append(f"outcome {bad[0]} has missing or infinite values")
    elif bad:
        problems.append(f"outcomes {_listed(bad)} have missing or infinite values")
    if spec.propensity is not None and s.n_propensity_missing:
        problems.append(
            f"propensity column '{spec.propensity}' has {s.n_propensity_missing} missing value(s)"
        )
    if not problems:
        return None
    return (
        "; ".join(problems) + "; every unit needs its arm, outcomes and propensity (only "
        "features may be missing): drop those rows or fill them before fitting"
    )


def _infinite_message(s: Summary, spec: ColumnSpec) -> str | None:
    """``schema.infinite_values_message`` for the combined counts, or None."""
    bad = [f"'{n}' ({s.feature_inf[n]} infinite)" for n in spec.features if s.feature_inf[n]]
    if not bad:
        return None
    if len(bad) == 1:
        return f"feature {bad[0]} has infinite values"
    return f"features {', '.join(bad[:-1])} and {bad[-1]} have infinite values"


def raise_incomplete(s: Summary, spec: ColumnSpec) -> None:
    """Raise what ``from_frame`` raises for empty data or missing arms, outcomes or
    propensities (``check_arguments``, ``check_required_complete``), from combined counts.

    Raises:
        InputDataError: listing every offending column with its total count.
    """
    if s.n_rows == 0:
        raise InputDataError(
            "the experiment frame is empty (0 rows); expected at least one unit per arm"
        )
    msg = _required_message(s, spec)
    if msg:
        raise InputDataError(msg)


def raise_invalid(s: Summary, spec: ColumnSpec, meta: pd.DataFrame) -> None:
    """Raise what ``from_frame`` raises after the arm checks, from the combined counts.

    Order (as in ``from_frame``): non-numeric outcomes; infinite features (every column
    listed); propensities outside (0, 1]; missing or duplicate unit ids.

    Raises:
        InputDataError: the first problem found.
    """
    for name in spec.outcomes:
        col = meta[name]
        if not _numeric(col):
            ex = s.outcome_example.get(name)
            example = f", e.g. {ex!r}" if ex is not None else ""
            raise InputDataError(
                f"outcome '{name}' must be numeric; got dtype {col.dtype}{example}"
            )
    inf_msg = _infinite_message(s, spec)
    if inf_msg:
        raise InputDataError(
            f"{inf_msg}; missing values (NaN or None) are allowed, infinite ones are not: "
            "replace them with NaN or a finite value"
        )
    _raise_propensity_and_ids(s, spec, meta)


def _raise_propensity_and_ids(s: Summary, spec: ColumnSpec, meta: pd.DataFrame) -> None:
    if spec.propensity is not None:
        col = meta[spec.propensity]
        if not pd.api.types.is_numeric_dtype(col.dtype):
            raise InputDataError(
                f"propensity column '{spec.propensity}' must be numeric; got dtype {col.dtype}"
            )
        if s.n_propensity_bad:
            raise InputDataError(
                f"propensity column '{spec.propensity}' has {s.n_propensity_bad} value(s) "
                "outside (0, 1] (or NaN); expected the probability of the logged arm"
            )
    if spec.unit_id is not None:
        if s.n_id_missing:
            raise InputDataError(
                f"unit id column '{spec.unit_id}' has {s.n_id_missing} missing value(s)"
            )
        if s.n_id_duplicate:
            raise InputDataError(
                f"unit id column '{spec.unit_id}' has {s.n_id_duplicate} duplicate id(s), "
                f"e.g. {s.id_example!r}; expected one row per unit"
            )


def arm_shares(arms: Sequence[str], counts: Mapping[str, int]) -> np.ndarray:
    """Share of units in each arm, in ``arms`` order, shape (n_arms,)."""
    c = np.array([counts.get(a, 0) for a in arms], dtype=float)
    return c / c.sum()
