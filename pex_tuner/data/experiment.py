"""ExperimentData: one validated, immutable logged randomized experiment.

Arms are stored as strings with the control arm first (``arms[0] == control``), followed by the
other arms in sorted order; ``treatment`` holds each unit's arm as an index into ``arms``.
Outcomes carry a direction, ``"max"`` or ``"min"``. ``propensity`` is the probability with which
each unit received the arm it received: the logged column when one is given, otherwise the
empirical share of that arm (the design probability of a randomized experiment).

Validation happens once, in :meth:`ExperimentData.from_frame`; every error subclasses
``ValueError`` (:class:`~pex_tuner.errors.InputDataError`), names the column and says what was
expected, and nothing is built unless everything passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.data import validation
from pex_tuner.data.validation import DIRECTIONS
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.files import read_table
from pex_tuner.schema import FeatureSchema

__all__ = ["DIRECTIONS", "DataSplit", "ExperimentData"]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ExperimentData:
    """A validated logged randomized experiment.

    Attributes:
        features: the raw feature columns, DataFrame of shape (n_units, n_features).
        schema: how features are encoded (numeric vs one-hot categorical).
        X: encoded features, ndarray of shape (n_units, n_encoded), read-only.
        treatment: arm index of each unit into ``arms``, int ndarray of shape (n_units,).
        arms: arm labels (strings), control first.
        outcomes: outcome names, in order.
        directions: ``"max"`` or ``"min"`` per outcome.
        Y: outcomes, float ndarray of shape (n_units, n_outcomes), read-only.
        propensity: probability of the logged arm, ndarray of shape (n_units,), in (0, 1].
        propensity_source: ``"logged"`` (a column) or ``"empirical"`` (arm shares).
        unit_ids: optional unit identifiers, ndarray of shape (n_units,).
        treatment_column: name of the arm column in the source frame.
    """

    features: pd.DataFrame
    schema: FeatureSchema
    X: np.ndarray
    treatment: np.ndarray
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    directions: tuple[str, ...]
    Y: np.ndarray
    propensity: np.ndarray
    propensity_source: str = "empirical"
    unit_ids: np.ndarray | None = None
    treatment_column: str = "arm"

    # ------------------------------------------------------------------ basic facts
    @property
    def n_units(self) -> int:
        return int(self.Y.shape[0])

    def __len__(self) -> int:
        return self.n_units

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def n_outcomes(self) -> int:
        return len(self.outcomes)

    @property
    def control(self) -> str:
        return self.arms[0]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.schema.names

    @property
    def arm_labels(self) -> np.ndarray:
        """Arm label of each unit, object ndarray of shape (n_units,)."""
        return np.asarray(self.arms, dtype=object)[self.treatment]

    @property
    def arm_counts(self) -> dict[str, int]:
        counts = np.bincount(self.treatment, minlength=self.n_arms)
        return {a: int(c) for a, c in zip(self.arms, counts, strict=True)}

    @property
    def signs(self) -> np.ndarray:
        """+1 for maximized outcomes, -1 for minimized ones, shape (n_outcomes,)."""
        return np.array([1.0 if d == "max" else -1.0 for d in self.directions])

    def arm_index(self, label: Any) -> int:
        """Index of an arm label in ``arms`` (labels compare as strings)."""
        try:
            return self.arms.index(str(label))
        except ValueError:
            raise InputDataError(
                f"unknown arm {label!r}; expected one of {list(self.arms)}"
            ) from None

    @property
    def missing_counts(self) -> dict[str, int]:
        """Missing values per feature (every feature, zeros included), in feature order."""
        return {str(n): int(self.features[n].isna().sum()) for n in self.feature_names}

    def __repr__(self) -> str:
        outs = ", ".join(f"{o}:{d}" for o, d in zip(self.outcomes, self.directions, strict=True))
        n_missing = sum(self.missing_counts.values())
        missing = f", missing feature values={n_missing}" if n_missing else ""
        return (
            f"ExperimentData(n_units={self.n_units}, arms={list(self.arms)} (control "
            f"'{self.control}'), outcomes=[{outs}], features={len(self.feature_names)}"
            f"{missing}, propensity={self.propensity_source})"
        )

    def describe(self) -> dict[str, pd.DataFrame]:
        """What the experiment holds, as three small tables.

        Returns:
            ``{"features": ..., "arms": ..., "outcomes": ...}``: per feature its ``kind``
            (numeric / categorical), pandas ``dtype``, ``n_missing`` and ``share_missing``
            (index: feature name); per arm its ``n_units`` and ``share`` (index: arm, control
            first); per outcome its ``direction``, ``mean`` and per-arm means ``mean[<arm>]``
            (index: outcome).
        """
        missing = self.missing_counts
        features = pd.DataFrame(
            {
                "kind": list(self.schema.kinds),
                "dtype": [str(self.features[n].dtype) for n in self.feature_names],
                "n_missing": [missing[n] for n in self.feature_names],
                "share_missing": [missing[n] / max(self.n_units, 1) for n in self.feature_names],
            },
            index=pd.Index(self.feature_names, name="feature"),
        )
        counts = np.bincount(self.treatment, minlength=self.n_arms)
        arms = pd.DataFrame(
            {"n_units": counts, "share": counts / self.n_units},
            index=pd.Index(self.arms, name="arm"),
        )
        outcomes = pd.DataFrame(
            {"direction": list(self.directions), "mean": self.Y.mean(axis=0)},
            index=pd.Index(self.outcomes, name="outcome"),
        )
        for k, arm in enumerate(self.arms):
            outcomes[f"mean[{arm}]"] = self.Y[self.treatment == k].mean(axis=0)
        return {"features": features, "arms": arms, "outcomes": outcomes}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        treatment: str,
        control: Any,
        outcomes: Mapping[str, str],
        features: Sequence[str] | None = None,
        propensity: str | None = None,
        unit_id: str | None = None,
        arms: Sequence[Any] | None = None,
    ) -> ExperimentData:
        """Validate a logged experiment held in a DataFrame.

        Args:
            frame: one row per unit.
            treatment: column holding the arm each unit received.
            control: the control arm's label.
            outcomes: outcome column -> ``"max"`` or ``"min"``.
            features: feature columns; ``None`` means every column not used otherwise.
            propensity: optional column with the probability of the logged arm.
            unit_id: optional column with unique unit ids.
            arms: optional full list of the design's arms; an arm listed with no units is an
                error (as is an unused category of a categorical treatment column).

        Raises:
            InputDataError: anything wrong with the data (see the message).
            ConfigurationError: an outcome direction other than "max"/"min".
        """
        validation.check_arguments(frame, outcomes)
        roles, feature_names = validation.column_roles(
            frame, treatment, outcomes, features, propensity, unit_id
        )
        validation.check_columns_present(frame, roles, feature_names)
        validation.check_required_complete(frame, treatment, outcomes, propensity)
        arm_tuple, treat_idx = validation.treatment_arms(frame[treatment], treatment, control, arms)
        Y = validation.outcome_matrix(frame, outcomes)
        feat_frame, schema, X = validation.encoded_features(frame, feature_names)
        if propensity is not None:
            p, source = validation.logged_propensity(frame[propensity], propensity), "logged"
        else:
            shares = np.bincount(treat_idx, minlength=len(arm_tuple)) / len(treat_idx)
            p, source = shares[treat_idx], "empirical"
        ids = None if unit_id is None else validation.unit_ids(frame[unit_id], unit_id)
        return cls(
            features=feat_frame,
            schema=schema,
            X=_readonly(X),
            treatment=_readonly(treat_idx),
            arms=arm_tuple,
            outcomes=tuple(str(o) for o in outcomes),
            directions=tuple(outcomes.values()),
            Y=_readonly(Y),
            propensity=_readonly(p),
            propensity_source=source,
            unit_ids=None if ids is None else _readonly(ids),
            treatment_column=str(treatment),
        )

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> ExperimentData:
        """Read a CSV file and validate it; keyword arguments as in :meth:`from_frame`."""
        return cls.from_frame(read_table(path, "csv"), **kwargs)

    @classmethod
    def from_parquet(cls, path: str | Path, **kwargs: Any) -> ExperimentData:
        """Read a Parquet file and validate it; keyword arguments as in :meth:`from_frame`."""
        return cls.from_frame(read_table(path, "parquet"), **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ExperimentData:
        """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file."""
        return cls.from_frame(read_table(path), **kwargs)

    # ------------------------------------------------------------------ new units
    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode new units' features exactly as the experiment's: shape (n, n_encoded)."""
        return self.schema.encode(frame)

    # ------------------------------------------------------------------ subsets and splits
    def subset(self, indices: np.ndarray) -> ExperimentData:
        """The units at ``indices`` (keeping their propensities and the arm list)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        counts = np.bincount(self.treatment[idx], minlength=self.n_arms)
        if (counts == 0).any():
            empty = [a for a, c in zip(self.arms, counts, strict=True) if c == 0]
            raise InputDataError(f"subset has no units in arm(s) {empty}")
        return ExperimentData(
            features=self.features.iloc[idx].reset_index(drop=True),
            schema=self.schema,
            X=_readonly(self.X[idx]),
            treatment=_readonly(self.treatment[idx]),
            arms=self.arms,
            outcomes=self.outcomes,
            directions=self.directions,
            Y=_readonly(self.Y[idx]),
            propensity=_readonly(self.propensity[idx]),
            propensity_source=self.propensity_source,
            unit_ids=None if self.unit_ids is None else _readonly(self.unit_ids[idx]),
            treatment_column=self.treatment_column,
        )

    def split_indices(
        self,
        *,
        test_size: float = 0.4,
        validation_size: float = 0.3,
        random_state: int | None = 0,
    ) -> dict[str, np.ndarray]:
        """Seeded train / validation / test indices, stratified by arm.

        Defaults follow the interpretable-experimentation paper: 40% test, then 30% of the rest
        validation (so 42% train, 18% validation, 40% test).
        """
        from sklearn.model_selection import train_test_split

        for name, v in (("test_size", test_size), ("validation_size", validation_size)):
            if not 0.0 <= v < 1.0:
                raise ConfigurationError(f"'{name}' must be in [0, 1); got {v!r}")
        idx = np.arange(self.n_units)
        try:
            if test_size > 0:
                rest, test = train_test_split(
                    idx, test_size=test_size, random_state=random_state, stratify=self.treatment
                )
            else:
                rest, test = idx, idx[:0]
            if validation_size > 0:
                train, val = train_test_split(
                    rest,
                    test_size=validation_size,
                    random_state=random_state,
                    stratify=self.treatment[rest],
                )
            else:
                train, val = rest, idx[:0]
        except ValueError as exc:
            raise InputDataError(
                f"cannot split the experiment stratified by arm ({exc}); arm counts "
                f"{self.arm_counts}"
            ) from exc
        return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}

    def split(
        self,
        *,
        test_size: float = 0.4,
        validation_size: float = 0.3,
        random_state: int | None = 0,
    ) -> DataSplit:
        """Seeded train / validation / test split, stratified by arm (see :meth:`split_indices`)."""
        ind = self.split_indices(
            test_size=test_size, validation_size=validation_size, random_state=random_state
        )
        parts = {k: (self.subset(v) if len(v) else None) for k, v in ind.items()}
        return DataSplit(
            train=parts["train"],  # type: ignore[arg-type]
            validation=parts["validation"],
            test=parts["test"],
            indices=ind,
        )

    def to_frame(self) -> pd.DataFrame:
        """The experiment as a DataFrame: features, arm, outcomes, propensity (and unit id)."""
        out = self.features.copy()
        out[self.treatment_column] = self.arm_labels
        for j, name in enumerate(self.outcomes):
            out[name] = self.Y[:, j]
        out["propensity"] = self.propensity
        if self.unit_ids is not None:
            out.insert(0, "unit_id", self.unit_ids)
        return out


@dataclass(frozen=True, eq=False)
class DataSplit:
    """Train / validation / test parts of one experiment, with their indices into the parent."""

    train: ExperimentData
    validation: ExperimentData | None
    test: ExperimentData | None
    indices: dict[str, np.ndarray]

    def __iter__(self):  # allows ``train, val, test = data.split()``
        return iter((self.train, self.validation, self.test))


def _feature_matrix(
    units: ExperimentData | pd.DataFrame | np.ndarray,
    schema: FeatureSchema,
    *,
    fitted: str = "the model was",
) -> np.ndarray:
    """Encoded features of ``units`` for an estimator fitted with ``schema``.

    Args:
        units: an ExperimentData (its schema must equal ``schema``), a DataFrame of raw features,
            or an encoded matrix of shape (n_units, n_encoded) (NaN for missing values, no
            infinite ones).
        schema: the feature schema the estimator was fitted on.
        fitted: what was fitted, for the schema-mismatch message ("the segments were").

    Returns:
        ndarray of shape (n_units, n_encoded).
    """
    if isinstance(units, ExperimentData):
        if units.schema != schema:
            raise InputDataError(
                f"the experiment's feature schema differs from the one {fitted} fitted on "
                f"(fitted: {schema.to_dict()}, given: {units.schema.to_dict()})"
            )
        return units.X
    if isinstance(units, pd.DataFrame):
        return schema.encode(units)
    X = np.asarray(units, dtype=float)
    if X.ndim != 2 or X.shape[1] != schema.n_encoded:
        raise InputDataError(
            f"feature matrix has shape {X.shape}; expected (n_units, {schema.n_encoded}) "
            f"encoded as {list(schema.encoded_names)}"
        )
    n_inf = int(np.isinf(X).sum())
    if n_inf:
        raise InputDataError(
            f"feature matrix has {n_inf} infinite value(s); missing values (NaN) are allowed, "
            "infinite ones are not"
        )
    return X
