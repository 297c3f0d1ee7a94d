"""TreePolicy: an ordered list of if-else segments over raw features, each with its arm.

A segment is a conjunction of conditions on single features (:class:`~pex_tuner.rules.Segment`,
:class:`~pex_tuner.rules.Condition`):

- numeric: ``x <= t`` or ``x > t`` (``t`` a finite float);
- categorical: ``platform in {"ios", "web"}`` or ``platform not in {...}``, tested on the raw
  category value as text (the same ``str(value)`` that :class:`~pex_tuner.schema.FeatureSchema`
  uses for one-hot encoding).

The first segment whose conditions all hold decides the unit's arm; units that match no segment
get ``default_arm``. The policy needs no CATE model at assignment time, so it can be exported as
SQL or as a dependency-free Python function (:mod:`pex_tuner.policies.export`).

Missing values (NaN, None, ``pd.NA``, SQL NULL) are data, routed identically in every
implementation (pandas, SQL, exported Python) by each condition's ``missing`` flag
(:attr:`~pex_tuner.rules.Condition.missing_ok`): the tree learners set it from the direction
they learned for features that had missing values in training. Conditions without the flag
(documents written before it existed, features never missing in training) keep the fixed rule:
a missing numeric value fails ``x <= t`` and satisfies ``x > t``; a missing category is in no
category set (``in`` fails, ``not in`` holds). A missing value in a feature the policy does not
test changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.rules import (
    CATEGORICAL,
    CATEGORICAL_OPS,
    NUMERIC,
    NUMERIC_OPS,
    Condition,
    Segment,
)

__all__ = ["TreePolicy"]

KIND = "tree"
VERSION = 1


def _numbers_or_missing(col: pd.Series) -> bool:
    """An object column holding only numbers and missing values."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return False
    kind = pd.api.types.infer_dtype(col, skipna=True)
    return kind in ("integer", "floating", "mixed-integer-float", "empty", "decimal")


@dataclass(frozen=True)
class TreePolicy:
    """An interpretable policy: ordered segments with their arms, and a default arm.

    Attributes:
        segments: segments in priority order; the first that matches a unit decides its arm.
        default_arm: arm of units that match no segment.
        arms: all arm labels, control first.
        features: names of the features the policy was built over.
        feature_kinds: ``"numeric"`` or ``"categorical"`` for each feature; numeric features
            take ``<=`` / ``>`` conditions, categorical ones ``in`` / ``not in``.
        outcomes: names of the outcomes whose weighted effects the policy was learned from
            (informational; may be empty).
        name: optional display name.

    Example:
        >>> policy = TreePolicy(
        ...     segments=(Segment((Condition("x0", "<=", 0.5),), "arm_1"),),
        ...     default_arm="control",
        ...     arms=("control", "arm_1"),
        ...     features=("x0",),
        ...     feature_kinds=("numeric",),
        ... )
        >>> policy.assign(pd.DataFrame({"x0": [0.2, 0.5, 0.9]})).tolist()
        ['arm_1', 'arm_1', 'control']
    """

    segments: tuple[Segment, ...]
    default_arm: str
    arms: tuple[str, ...]
    features: tuple[str, ...]
    feature_kinds: tuple[str, ...]
    outcomes: tuple[str, ...] = ()
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        arms = tuple(str(a) for a in self.arms)
        if len(arms) < 2:
            raise ConfigurationError(f"a policy needs at least two arms; got {list(arms)}")
        if len(set(arms)) != len(arms):
            raise ConfigurationError(f"arm labels must be unique; got {list(arms)}")
        features = tuple(str(f) for f in self.features)
        kinds = tuple(str(k) for k in self.feature_kinds)
        if len(set(features)) != len(features):
            raise ConfigurationError(f"feature names must be unique; got {list(features)}")
        if len(kinds) != len(features) or any(k not in (NUMERIC, CATEGORICAL) for k in kinds):
            raise ConfigurationError(
                f"'feature_kinds' must give 'numeric' or 'categorical' for each of the "
                f"{len(features)} features; got {list(kinds)}"
            )
        kind_of = dict(zip(features, kinds, strict=True))
        segments = tuple(self.segments)
        for i, seg in enumerate(segments, start=1):
            if not isinstance(seg, Segment):
                raise ConfigurationError(f"segment {i} is not a Segment; got {seg!r}")
            if seg.arm not in arms:
                raise ConfigurationError(
                    f"segment {i} assigns unknown arm '{seg.arm}'; expected one of {list(arms)}"
                )
            for cond in seg.conditions:
                kind = kind_of.get(cond.feature)
                if kind is None:
                    raise ConfigurationError(
                        f"segment {i} has a condition on unknown feature '{cond.feature}'; "
                        f"the policy's features are {list(features)}"
                    )
                if (kind == NUMERIC) != cond.is_numeric:
                    allowed = NUMERIC_OPS if kind == NUMERIC else CATEGORICAL_OPS
                    raise ConfigurationError(
                        f"segment {i} tests {kind} feature '{cond.feature}' with '{cond.op}'; "
                        f"use one of {list(allowed)}"
                    )
        default = str(self.default_arm)
        if default not in arms:
            raise ConfigurationError(f"default arm '{default}' is not one of the arms {list(arms)}")
        object.__setattr__(self, "arms", arms)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "feature_kinds", kinds)
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "default_arm", default)
        object.__setattr__(self, "outcomes", tuple(str(o) for o in self.outcomes))

    # ------------------------------------------------------------------ structure
    @property
    def n_segments(self) -> int:
        """Number of segments (the default arm is not counted)."""
        return len(self.segments)

    @property
    def depth(self) -> int:
        """Largest number of conditions in one segment (0 when every unit gets the default)."""
        return max((len(s.conditions) for s in self.segments), default=0)

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def used_features(self) -> tuple[str, ...]:
        """Features that some condition tests, in the order of ``features``."""
        used = {c.feature for s in self.segments for c in s.conditions}
        return tuple(f for f in self.features if f in used)

    def feature_kind(self, name: str) -> str:
        return self.feature_kinds[self.features.index(name)]

    # ------------------------------------------------------------------ decisions
    def _columns(self, frame: pd.DataFrame) -> dict[str, Any]:
        if not isinstance(frame, pd.DataFrame):
            raise InputDataError(
                f"expected a pandas DataFrame of features, got {type(frame).__name__}"
            )
        used = self.used_features
        cols: dict[str, Any] = {}
        for name in used:
            if name not in frame.columns:
                raise InputDataError(
                    f"feature column '{name}' is missing; this tree policy tests features "
                    f"{list(used)}"
                )
            col = frame[name]
            if self.feature_kind(name) == NUMERIC:
                if not pd.api.types.is_numeric_dtype(col.dtype) or isinstance(
                    col.dtype, pd.CategoricalDtype
                ):
                    if _numbers_or_missing(col):  # e.g. [1.5, None] or all None
                        col = pd.to_numeric(col)
                    else:
                        raise InputDataError(
                            f"feature '{name}' must be numeric for this tree policy; got "
                            f"dtype {col.dtype}"
                        )
                cols[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
                if np.isinf(cols[name]).any():
                    raise InputDataError(
                        f"feature '{name}' has {int(np.isinf(cols[name]).sum())} infinite "
                        "value(s); missing values (NaN) are allowed, infinite ones are not"
                    )
            else:
                cols[name] = (col.isna().to_numpy(), col.astype(str))
        return cols

    @staticmethod
    def _holds(cond: Condition, cols: dict[str, Any]) -> np.ndarray:
        """Whether each row satisfies ``cond``, bool ndarray of shape (n_units,)."""
        if isinstance(cond.value, float):
            x = cols[cond.feature]
            missing = np.isnan(x)
            with np.errstate(invalid="ignore"):
                test = x <= cond.value if cond.op == "<=" else x > cond.value
        else:
            missing, text = cols[cond.feature]
            inside = text.isin(cond.value).to_numpy()
            test = inside if cond.op == "in" else ~inside
        return np.where(missing, cond.missing_ok, test)

    def assign_index(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm index per row of ``frame`` (0 = control), int ndarray of shape (n_units,).

        Args:
            frame: DataFrame with (at least) the features the conditions test, raw (not
                one-hot encoded); extra columns are ignored.

        Missing values are allowed in every feature; each condition routes them by its
        ``missing`` flag (module docstring).

        Raises:
            InputDataError: a tested column is missing, or a numeric one is not numeric or
                holds infinite values.
        """
        cols = self._columns(frame)
        n = len(frame)
        out = np.full(n, self.arms.index(self.default_arm), dtype=np.intp)
        open_ = np.ones(n, dtype=bool)
        for seg in self.segments:
            match = open_.copy()
            for cond in seg.conditions:
                match &= self._holds(cond, cols)
            out[match] = self.arms.index(seg.arm)
            open_ &= ~match
        return out

    def assign_data(self, data: Any) -> np.ndarray:
        """Arm index into ``data.arms`` per unit of an ExperimentData, shape (n_units,).

        Decides from the experiment's raw feature frame (``data.features``), so the OPE metric
        and ``OfflineTuner.attach_policy`` evaluate tree policies like any other arm.

        Raises:
            InputDataError: a tested feature is missing, or the policy has an arm that the
                experiment does not.
        """
        features = getattr(data, "features", None)
        arms = tuple(str(a) for a in getattr(data, "arms", ()))
        if not isinstance(features, pd.DataFrame) or not arms:
            raise InputDataError(
                f"assign_data expects an ExperimentData, got {type(data).__name__}; use "
                "assign_index for a DataFrame of features"
            )
        idx = self.assign_index(features)
        if self.arms == arms:
            return idx
        unknown = [a for a in self.arms if a not in arms]
        if unknown:
            raise InputDataError(
                f"tree policy arm(s) {unknown} are not arms of the experiment {list(arms)}"
            )
        lookup = np.array([arms.index(a) for a in self.arms], dtype=np.intp)
        return lookup[idx]

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm label per row of ``frame``, object ndarray of shape (n_units,)."""
        return np.asarray(self.arms, dtype=object)[self.assign_index(frame)]

    def describe(self) -> str:
        """The policy as readable if-else text, one line per segment."""
        lines = [
            f"{'if' if i == 0 else 'elif'} {seg}: {seg.arm}" for i, seg in enumerate(self.segments)
        ]
        lines.append(f"else: {self.default_arm}" if lines else f"always: {self.default_arm}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": VERSION,
            "name": self.name,
            "arms": list(self.arms),
            "outcomes": list(self.outcomes),
            "features": [
                {"name": f, "kind": k}
                for f, k in zip(self.features, self.feature_kinds, strict=True)
            ],
            "segments": [s.to_dict() for s in self.segments],
            "default_arm": self.default_arm,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TreePolicy:
        """Read a policy document written by :meth:`to_dict`.

        Raises:
            InputDataError: the document is not a version-1 tree policy or is inconsistent
                (unknown arm or feature, wrong operator for a feature's kind, ...).
        """
        if not isinstance(d, Mapping) or d.get("kind") != KIND:
            kind = d.get("kind") if isinstance(d, Mapping) else type(d).__name__
            raise InputDataError(f"expected a '{KIND}' policy document; got kind {kind!r}")
        if d.get("version") != VERSION:
            raise InputDataError(
                f"policy document has version {d.get('version')!r}; this pex-tuner reads "
                f"version {VERSION}"
            )
        missing = [k for k in ("arms", "features", "segments", "default_arm") if k not in d]
        if missing:
            raise InputDataError(f"tree policy document lacks field(s) {missing}")
        for key in ("arms", "features", "segments"):
            if not isinstance(d[key], list):
                raise InputDataError(
                    f"tree policy field '{key}' must be a list; got {type(d[key]).__name__}"
                )
        feats = d["features"]
        if not all(isinstance(f, Mapping) and {"name", "kind"} <= set(f) for f in feats):
            raise InputDataError(
                "tree policy field 'features' must list objects with 'name' and 'kind'"
            )
        try:
            return cls(
                segments=tuple(Segment.from_dict(s) for s in d["segments"]),
                default_arm=d["default_arm"],
                arms=tuple(d["arms"]),
                features=tuple(f["name"] for f in feats),
                feature_kinds=tuple(f["kind"] for f in feats),
                outcomes=tuple(d.get("outcomes") or ()),
                name=d.get("name"),
            )
        except ConfigurationError as exc:
            raise InputDataError(f"invalid tree policy document: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TreePolicy:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"policy JSON is not valid JSON: {exc}") from exc
        return cls.from_dict(d)
