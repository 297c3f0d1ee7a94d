"""The validation steps of :meth:`ExperimentData.from_frame`, in the order it runs them.

Each step checks one thing about the logged frame and returns what it validated (arm indices,
the outcome matrix, encoded features, ...); the first problem raises
:class:`~pex_tuner.errors.InputDataError` (or :class:`~pex_tuner.errors.ConfigurationError` for
an argument) with a message that names the column and says what was expected.

Missing values are allowed in features (they are data: encoded as NaN and routed by every model
and tree) but not in the arm, outcome or propensity columns, which every unit needs.
:func:`check_required_complete` lists every such column with its counts in one message, before
anything else is built; infinite feature values are an error listing every column at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.schema import FeatureSchema, infinite_values_message

__all__ = [
    "DIRECTIONS",
    "check_arguments",
    "check_columns_present",
    "check_declared_arms",
    "check_required_complete",
    "column_roles",
    "count_nonfinite",
    "encoded_features",
    "logged_propensity",
    "outcome_matrix",
    "treatment_arms",
    "unit_ids",
]

DIRECTIONS = ("max", "min")


def count_nonfinite(values: np.ndarray) -> int:
    """Number of NaN or infinite entries of ``values``."""
    return int((~np.isfinite(values)).sum())


def check_arguments(frame: Any, outcomes: Any) -> None:
    """A DataFrame with rows, and outcomes as a non-empty mapping of name -> direction."""
    if not isinstance(frame, pd.DataFrame):
        raise InputDataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if not isinstance(outcomes, Mapping) or len(outcomes) == 0:
        raise ConfigurationError(
            "'outcomes' must be a non-empty mapping of outcome column to 'max' or 'min'"
        )
    for name, direction in outcomes.items():
        if direction not in DIRECTIONS:
            raise ConfigurationError(
                f"outcome '{name}' has direction {direction!r}; expected 'max' or 'min'"
            )
    if len(frame) == 0:
        raise InputDataError(
            "the experiment frame is empty (0 rows); expected at least one unit per arm"
        )


def column_roles(
    frame: pd.DataFrame,
    treatment: str,
    outcomes: Mapping[str, str],
    features: Sequence[str] | None,
    propensity: str | None,
    unit_id: str | None,
) -> tuple[dict[str, str], list[str]]:
    """Each named column's role (no column in two roles) and the feature column names.

    Returns:
        (column -> role for treatment, outcomes, propensity and unit id; feature names), the
        features being every other column of ``frame`` when ``features`` is None.
    """
    roles: dict[str, str] = {treatment: "treatment"}
    for name in outcomes:
        if name in roles:
            raise InputDataError(f"column '{name}' is used both as {roles[name]} and outcome")
        roles[name] = "outcome"
    for opt, role in ((propensity, "propensity"), (unit_id, "unit id")):
        if opt is not None:
            if opt in roles:
                raise InputDataError(f"column '{opt}' is used both as {roles[opt]} and {role}")
            roles[opt] = role
    if features is None:
        return roles, [str(c) for c in frame.columns if c not in roles]
    feature_names = list(features)
    for name in feature_names:
        if name in roles:
            raise InputDataError(f"column '{name}' is used both as {roles[name]} and feature")
    if len(set(feature_names)) != len(feature_names):
        raise InputDataError(f"feature list has duplicates: {feature_names}")
    return roles, feature_names


def check_columns_present(
    frame: pd.DataFrame, roles: Mapping[str, str], feature_names: Sequence[str]
) -> None:
    """Every named column is in ``frame`` (all missing ones listed), and no name repeats."""
    missing = [c for c in [*roles, *feature_names] if c not in frame.columns]
    if missing:
        described = ", ".join(f"'{c}' ({roles.get(c, 'feature')})" for c in missing)
        raise InputDataError(
            f"missing column(s) {described}; the frame has columns {list(frame.columns)}"
        )
    if len(set(frame.columns)) != len(frame.columns):
        dup = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
        raise InputDataError(f"the frame has duplicate column names {dup}")


def _counts_text(n_nan: int, n_inf: int) -> str:
    parts = ([f"{n_nan} NaN"] if n_nan else []) + ([f"{n_inf} infinite"] if n_inf else [])
    return ", ".join(parts)


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_required_complete(
    frame: pd.DataFrame, treatment: str, outcomes: Mapping[str, str], propensity: str | None
) -> None:
    """No missing arm, outcome or propensity values (nor infinite outcomes).

    Every offending column is listed with its counts in one message, e.g. ``"outcomes 'spend'
    (12 NaN) and 'visit' (3 NaN) have missing or infinite values"``, so one fix suffices.
    Non-numeric outcome or propensity columns are left to the type checks that follow.

    Raises:
        InputDataError: some unit lacks its arm, an outcome or its propensity.
    """
    problems: list[str] = []
    n_arm = int(frame[treatment].isna().sum())
    if n_arm:
        problems.append(f"treatment column '{treatment}' has {n_arm} missing value(s)")
    bad_outcomes: list[str] = []
    for name in outcomes:
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col.dtype) or isinstance(
            col.dtype, pd.CategoricalDtype
        ):
            n_nan, n_inf = int(col.isna().sum()), 0
        else:
            y = col.to_numpy(dtype=np.float64, na_value=np.nan)
            n_nan, n_inf = int(np.isnan(y).sum()), int(np.isinf(y).sum())
        if n_nan or n_inf:
            bad_outcomes.append(f"'{name}' ({_counts_text(n_nan, n_inf)})")
    if len(bad_outcomes) == 1:
        problems.append(f"outcome {bad_outcomes[0]} has missing or infinite values")
    elif bad_outcomes:
        problems.append(f"outcomes {_listed(bad_outcomes)} have missing or infinite values")
    if propensity is not None:
        n_p = int(frame[propensity].isna().sum())
        if n_p:
            problems.append(f"propensity column '{propensity}' has {n_p} missing value(s)")
    if problems:
        raise InputDataError(
            "; ".join(problems) + "; every unit needs its arm, outcomes and propensity (only "
            "features may be missing): drop those rows or fill them before fitting"
        )


def treatment_arms(
    tcol: pd.Series, treatment: str, control: Any, arms: Sequence[Any] | None
) -> tuple[tuple[str, ...], np.ndarray]:
    """The arm labels (control first, then sorted) and each unit's arm index.

    Args:
        tcol: the treatment column; treatment: its name (for messages).
        control: the control arm's label.
        arms: the design's declared arms, or None (a categorical column declares its
            categories).

    Returns:
        (arms as strings, int64 ndarray of shape (n_units,) indexing them).
    """
    n_na = int(tcol.isna().sum())
    if n_na:
        raise InputDataError(
            f"treatment column '{treatment}' has {n_na} missing value(s); every unit "
            "needs the arm it received"
        )
    labels = tcol.astype(str).to_numpy()
    present = sorted(set(labels))
    declared: list[str] | None = None
    if arms is not None:
        declared = [str(a) for a in arms]
    elif isinstance(tcol.dtype, pd.CategoricalDtype):
        declared = [str(a) for a in tcol.cat.categories]
    if declared is not None:
        check_declared_arms(declared, present, treatment)
    control_s = str(control)
    if control_s not in present:
        raise InputDataError(
            f"control arm {control!r} does not occur in treatment column '{treatment}'; "
            f"arms present: {present}"
        )
    if len(present) < 2:
        raise InputDataError(
            f"treatment column '{treatment}' has only one arm ({present[0]!r}); an "
            "experiment needs at least two arms"
        )
    arm_tuple = (control_s, *[a for a in present if a != control_s])
    lookup = {a: i for i, a in enumerate(arm_tuple)}
    treat_idx = np.fromiter((lookup[v] for v in labels), dtype=np.int64, count=len(labels))
    return arm_tuple, treat_idx


def check_declared_arms(declared: Sequence[str], present: Sequence[str], treatment: str) -> None:
    """Every declared arm has units, and every arm with units is declared."""
    empty = [a for a in declared if a not in present]
    if empty:
        raise InputDataError(
            f"arm(s) {empty} of treatment column '{treatment}' have no units; every "
            "arm needs logged units (drop the arm from the design)"
        )
    unknown = [a for a in present if a not in declared]
    if unknown:
        raise InputDataError(
            f"treatment column '{treatment}' holds arm(s) {unknown} that are not in "
            f"the declared arms {list(declared)}"
        )


def outcome_matrix(frame: pd.DataFrame, outcomes: Mapping[str, str]) -> np.ndarray:
    """Numeric, finite outcomes: float ndarray of shape (n_units, n_outcomes)."""
    ys: list[np.ndarray] = []
    for name in outcomes:
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col.dtype) or isinstance(
            col.dtype, pd.CategoricalDtype
        ):
            converted = pd.to_numeric(col, errors="coerce")
            bad = col[converted.isna() & col.notna()]
            example = f", e.g. {bad.iloc[0]!r}" if len(bad) else ""
            raise InputDataError(
                f"outcome '{name}' must be numeric; got dtype {col.dtype}{example}"
            )
        y = col.to_numpy(dtype=np.float64, na_value=np.nan)
        n_bad = count_nonfinite(y)
        if n_bad:
            raise InputDataError(
                f"outcome '{name}' has {n_bad} NaN or infinite value(s); drop or impute "
                "them before fitting"
            )
        ys.append(y)
    return np.column_stack(ys)


def encoded_features(
    frame: pd.DataFrame, feature_names: Sequence[str]
) -> tuple[pd.DataFrame, FeatureSchema, np.ndarray]:
    """The raw feature frame (index reset), its inferred schema, and the encoded matrix of
    shape (n_units, n_encoded); missing values are kept (NaN in the encoding), infinite
    numeric values are an error listing every offending feature."""
    feat_frame = frame[list(feature_names)].copy()
    schema = FeatureSchema.infer(feat_frame, feature_names)
    numeric = [n for n, k in zip(schema.names, schema.kinds, strict=True) if k == "numeric"]
    msg = infinite_values_message(feat_frame, numeric)
    if msg:
        raise InputDataError(
            f"{msg}; missing values (NaN or None) are allowed, infinite ones are not: replace "
            "them with NaN or a finite value"
        )
    X = schema.encode(feat_frame, validate=False)
    return feat_frame.reset_index(drop=True), schema, X


def logged_propensity(col: pd.Series, name: str) -> np.ndarray:
    """The logged propensity column as floats in (0, 1], shape (n_units,)."""
    if not pd.api.types.is_numeric_dtype(col.dtype):
        raise InputDataError(f"propensity column '{name}' must be numeric; got dtype {col.dtype}")
    p = col.to_numpy(dtype=np.float64, na_value=np.nan)
    n_bad = int((~np.isfinite(p) | (p <= 0) | (p > 1)).sum())
    if n_bad:
        raise InputDataError(
            f"propensity column '{name}' has {n_bad} value(s) outside (0, 1] "
            "(or NaN); expected the probability of the logged arm"
        )
    return p


def unit_ids(col: pd.Series, name: str) -> np.ndarray:
    """The unit id column, which must have no missing and no duplicate ids."""
    n_na = int(col.isna().sum())
    if n_na:
        raise InputDataError(f"unit id column '{name}' has {n_na} missing value(s)")
    dup_mask = col.duplicated(keep=False)
    if dup_mask.any():
        n_dup = int(col.duplicated().sum())
        example = col[dup_mask].iloc[0]
        example = example.item() if hasattr(example, "item") else example
        raise InputDataError(
            f"unit id column '{name}' has {n_dup} duplicate id(s), e.g. {example!r}; "
            "expected one row per unit"
        )
    return col.to_numpy()
