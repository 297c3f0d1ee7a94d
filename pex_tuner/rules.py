"""Rules over raw features: conditions, segments, their conjunction, and scikit-learn trees.

A :class:`Condition` tests one feature:

- numeric: ``x <= t`` or ``x > t`` (``t`` a finite float);
- categorical: ``platform in {"ios", "web"}`` or ``platform not in {...}``, tested on the raw
  category value as text (the same ``str(value)`` that :class:`~pex_tuner.schema.FeatureSchema`
  uses for one-hot encoding).

Missing values. ``Condition.missing`` says whether a unit whose feature is missing (NaN, None,
SQL NULL) satisfies the condition: learners set it (True or False) on features that had missing
values in training, from the direction they learned for them. ``None`` (the default, and what
documents written before the field existed load as) keeps the fixed rule: a missing value fails
``<=`` and ``in`` and satisfies ``>`` and ``not in``. :attr:`Condition.missing_ok` resolves it.
The text form says so when set: ``age <= 30 or age is missing``, ``age > 30 and age is not
missing``; a split with every missing value on one side and every present value on the other
(scikit-learn's threshold ``inf``) reads ``age is missing`` / ``age is not missing``.

A :class:`Segment` is a conjunction of conditions with the arm its units get. Tree policies
(:mod:`pex_tuner.policies`) and Distill-HTE explanations (:mod:`pex_tuner.explain`) are both
written in this vocabulary, and both build their rules the same two ways:

- :func:`conjoin` merges the conditions along a path into one condition per feature and side
  (the one place where bounds are tightened and category sets merged);
- :func:`leaf_paths` walks a fitted scikit-learn tree grown on ``schema.encode(frame)`` into the
  raw conditions along each root-to-leaf path (a one-hot column ``platform=ios`` split at 0.5 is
  ``platform not in {"ios"}`` on the left and ``platform in {"ios"}`` on the right).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.schema import CATEGORICAL, NUMERIC, FeatureSchema

__all__ = [
    "CATEGORICAL",
    "CATEGORICAL_OPS",
    "NUMERIC",
    "NUMERIC_OPS",
    "Condition",
    "Segment",
    "conjoin",
    "encoded_columns",
    "leaf_paths",
]

NUMERIC_OPS = ("<=", ">")
# the threshold of "x is missing" / "x is not missing" (">" / "<=" a value no float exceeds)
MISSING_SPLIT = float(np.finfo(np.float64).max)
CATEGORICAL_OPS = ("in", "not in")
_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
_MISSING_TESTS = ((">", True), ("<=", False))

Op = Literal["<=", ">", "in", "not in"]


@dataclass(frozen=True)
class Condition:
    """One test on one feature.

    Attributes:
        feature: feature column name.
        op: ``"<="`` or ``">"`` (numeric features), ``"in"`` or ``"not in"`` (categorical).
        value: the threshold (float) for numeric ops; the category set (sorted tuple of
            strings) for categorical ops.
        missing: whether a missing value satisfies the condition; None: the fixed rule
            (fails ``<=`` and ``in``, satisfies ``>`` and ``not in``), see :attr:`missing_ok`.
    """

    feature: str
    op: Op
    value: float | tuple[str, ...]
    missing: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature", str(self.feature))
        if self.missing is not None:
            if not isinstance(self.missing, bool | np.bool_):
                raise ConfigurationError(
                    f"condition on '{self.feature}' has missing={self.missing!r}; expected "
                    "True, False or None"
                )
            object.__setattr__(self, "missing", bool(self.missing))
        if self.op in NUMERIC_OPS:
            if isinstance(self.value, bool | str | bytes) or not isinstance(
                self.value, int | float | np.integer | np.floating
            ):
                raise ConfigurationError(
                    f"condition on '{self.feature}' with op '{self.op}' needs a numeric "
                    f"threshold; got {self.value!r}"
                )
            t = float(self.value)
            if not math.isfinite(t):
                raise ConfigurationError(
                    f"condition on '{self.feature}' has threshold {t}; thresholds must be finite"
                )
            object.__setattr__(self, "value", t)
        elif self.op in CATEGORICAL_OPS:
            if isinstance(self.value, str | bytes) or not isinstance(
                self.value, Sequence | set | frozenset
            ):
                raise ConfigurationError(
                    f"condition on '{self.feature}' with op '{self.op}' needs a list of "
                    f"categories; got {self.value!r}"
                )
            cats = tuple(sorted({str(c) for c in self.value}))
            if not cats:
                raise ConfigurationError(
                    f"condition on '{self.feature}' with op '{self.op}' has no categories"
                )
            object.__setattr__(self, "value", cats)
        else:
            raise ConfigurationError(
                f"condition on '{self.feature}' has op {self.op!r}; expected one of "
                f"{[*NUMERIC_OPS, *CATEGORICAL_OPS]}"
            )

    @property
    def is_numeric(self) -> bool:
        return self.op in NUMERIC_OPS

    @property
    def missing_ok(self) -> bool:
        """Whether a unit whose feature is missing satisfies the condition."""
        return self.op in (">", "not in") if self.missing is None else self.missing

    def with_missing(self, missing: bool | None) -> Condition:
        """The same test with ``missing`` set."""
        return Condition(self.feature, self.op, self.value, missing)

    def __str__(self) -> str:
        if isinstance(self.value, float):
            if self.value == MISSING_SPLIT and (self.op, self.missing) in _MISSING_TESTS:
                return f"{self.feature} is {'' if self.missing else 'not '}missing"
            text = f"{self.feature} {self.op} {format(self.value, '.6g')}"
        else:
            cats = ", ".join(json.dumps(c) for c in self.value)
            text = f"{self.feature} {self.op} {{{cats}}}"
        if self.missing is None:
            return text
        if self.missing:
            return f"{text} or {self.feature} is missing"
        return f"{text} and {self.feature} is not missing"

    def to_dict(self) -> dict[str, Any]:
        """JSON form; ``missing`` is written only when set (None: the fixed rule)."""
        if isinstance(self.value, float):
            d: dict[str, Any] = {"feature": self.feature, "op": self.op, "threshold": self.value}
        else:
            d = {"feature": self.feature, "op": self.op, "categories": list(self.value)}
        if self.missing is not None:
            d["missing"] = self.missing
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        if not isinstance(d, Mapping) or "feature" not in d or "op" not in d:
            raise InputDataError(
                f"a condition must be an object with 'feature', 'op' and 'threshold' or "
                f"'categories'; got {d!r}"
            )
        op = d["op"]
        key = "threshold" if op in NUMERIC_OPS else "categories"
        if op in (*NUMERIC_OPS, *CATEGORICAL_OPS) and key not in d:
            raise InputDataError(f"condition {dict(d)!r} with op {op!r} lacks '{key}'")
        missing = d.get("missing")
        if missing is not None and not isinstance(missing, bool):
            raise InputDataError(
                f"condition {dict(d)!r} has 'missing' {missing!r}; expected true, false or null"
            )
        return cls(feature=d["feature"], op=op, value=d.get(key), missing=missing)


@dataclass(frozen=True)
class Segment:
    """A conjunction of conditions and the arm its units get.

    Attributes:
        conditions: the conditions, all of which must hold (at least one).
        arm: the arm label.
    """

    conditions: tuple[Condition, ...]
    arm: str

    def __post_init__(self) -> None:
        conds = tuple(self.conditions)
        if not conds or not all(isinstance(c, Condition) for c in conds):
            raise ConfigurationError(
                f"a segment needs at least one Condition; got {list(conds)!r} (units that "
                "match no segment get the policy's default_arm)"
            )
        object.__setattr__(self, "conditions", conds)
        object.__setattr__(self, "arm", str(self.arm))

    def __str__(self) -> str:
        return " and ".join(str(c) for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        return {"conditions": [c.to_dict() for c in self.conditions], "arm": self.arm}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Segment:
        if not isinstance(d, Mapping) or "conditions" not in d or "arm" not in d:
            raise InputDataError(
                f"a segment must be an object with 'conditions' and 'arm'; got {d!r}"
            )
        if not isinstance(d["conditions"], list):
            raise InputDataError(
                f"a segment's 'conditions' must be a list; got {d['conditions']!r}"
            )
        return cls(conditions=tuple(Condition.from_dict(c) for c in d["conditions"]), arm=d["arm"])


# ---------------------------------------------------------------------- the conjunction
def _both_missing(a: Condition, b: Condition) -> bool | None:
    """``missing`` of the conjunction of two tests of one feature (None if both are None)."""
    if a.missing is None and b.missing is None:
        return None
    return a.missing_ok and b.missing_ok


def _merge_categories(prev: Condition, c: Condition) -> Condition | None:
    """One category condition equal to ``prev and c``, or None when no present category
    satisfies both."""
    a, b = set(prev.value), set(c.value)  # type: ignore[arg-type]
    missing = _both_missing(prev, c)
    if prev.op == "in" or c.op == "in":
        cats = a & b if prev.op == c.op else (a - b if prev.op == "in" else b - a)
        return Condition(c.feature, "in", cats, missing) if cats else None
    return Condition(c.feature, "not in", a | b, missing)


def conjoin(
    conditions: Sequence[Condition], categories: Mapping[str, Sequence[str]] | None = None
) -> tuple[Condition, ...] | None:
    """The conjunction of ``conditions`` with one condition per (feature, side), or None when
    no unit can satisfy it.

    Numeric bounds keep the tightest ``<=`` and ``>`` per feature (None when ``x <= a`` and
    ``x > b`` with ``a <= b``); category sets merge (``in`` sets intersect, ``not in`` sets
    unite, ``in`` minus ``not in``; None when an ``in`` set becomes empty). A merged
    condition admits missing values when both did. When no present value satisfies the
    conjunction but missing values do, the conditions are kept unmerged (their conjunction is
    "the feature is missing"). Order follows the first appearance of each (feature, side).

    Args:
        conditions: the conditions along a path, in order.
        categories: every category of each categorical feature (``schema.category_map``).
            When given, the result is written in the canonical form of explanations: per
            feature, in order of first use, the lower bound, the upper bound, then the
            category set as the shorter of ``in`` (allowed) and ``not in`` (excluded), left
            out when it excludes no known category.
    """
    out: dict[tuple[str, str], Condition] = {}
    for c in conditions:
        if isinstance(c.value, float):
            key = (c.feature, c.op)
            prev = out.get(key)
            if prev is not None:
                pv = float(prev.value)  # type: ignore[arg-type]
                t = min(pv, c.value) if c.op == "<=" else max(pv, c.value)
                c = Condition(c.feature, c.op, t, _both_missing(prev, c))
            out[key] = c
            continue
        key = (c.feature, "cat")
        prev = out.get(key)
        if prev is not None:
            merged = _merge_categories(prev, c)
            if merged is None:
                if not (prev.missing_ok and c.missing_ok):
                    return None
                out[(c.feature, f"cat{len(out)}")] = c  # only missing values satisfy both
                continue
            c = merged
        out[key] = c
    for (feature, op), c in out.items():
        if op == "<=":
            low = out.get((feature, ">"))
            if (
                low is not None
                and float(c.value) <= float(low.value)  # type: ignore[arg-type]
                and not (c.missing_ok and low.missing_ok)  # else: only missing values pass
            ):
                return None
    merged = tuple(out.values())
    return merged if categories is None else _canonical(merged, categories)


def _canonical_categories(cat: Condition, known: set[str]) -> Condition | None:
    """A category condition over the ``known`` categories as the shorter of ``in`` / ``not
    in``, keeping which way missing values go; None when it restricts nothing."""
    keep = set(cat.value) & known if cat.op == "in" else known - set(cat.value)
    drop = known - keep
    explicit = cat.missing is not None
    if not keep:  # only missing values (an empty region otherwise, never grown)
        return Condition(cat.feature, "not in", tuple(known), True) if cat.missing_ok else None
    if not drop:  # every present category: restricts nothing unless missing values fail
        if explicit and not cat.missing:
            return Condition(cat.feature, "in", tuple(known), False)
        return None
    op = "in" if len(keep) <= len(drop) else "not in"
    missing = cat.missing if op == cat.op or not explicit else cat.missing_ok
    return Condition(cat.feature, op, tuple(keep if op == "in" else drop), missing)


def _canonical(
    conditions: tuple[Condition, ...], categories: Mapping[str, Sequence[str]]
) -> tuple[Condition, ...]:
    """Merged conditions regrouped per feature (``>``, ``<=``, categories), category sets
    written as the shorter of ``in`` / ``not in`` over the known categories."""
    by_feature: dict[str, list[Condition]] = {}
    for c in conditions:
        by_feature.setdefault(c.feature, []).append(c)
    out: list[Condition] = []
    for name, conds in by_feature.items():
        out.extend(c for op in (">", "<=") for c in conds if c.op == op)
        for cat in (c for c in conds if not c.is_numeric):
            canon = _canonical_categories(cat, set(categories[name]))
            if canon is not None:
                out.append(canon)
    return tuple(out)


# ---------------------------------------------------------------------- scikit-learn trees
def encoded_columns(schema: FeatureSchema) -> list[tuple[str, str | None]]:
    """(feature, category) per one-hot column, (feature, None) per numeric column, in
    ``schema.encoded_names`` order."""
    cmap = schema.category_map
    cols: list[tuple[str, str | None]] = []
    for name, kind in zip(schema.names, schema.kinds, strict=True):
        if kind == CATEGORICAL:
            cols.extend((name, c) for c in cmap[name])
        else:
            cols.append((name, None))
    return cols


def _split_conditions(
    tree: Any,
    node: int,
    columns: Sequence[tuple[str, str | None]],
    with_missing: Collection[str],
) -> tuple[Condition, Condition]:
    """The (left, right) conditions of one split of a scikit-learn tree."""
    feature, category = columns[int(tree.feature[node])]
    thr = float(tree.threshold[node])
    go_left = bool(tree.missing_go_to_left[node]) if feature in with_missing else None
    ml, mr = (None, None) if go_left is None else (go_left, not go_left)
    if category is None:
        t = thr if math.isfinite(thr) else MISSING_SPLIT  # inf: missing vs present
        return Condition(feature, "<=", t, ml), Condition(feature, ">", t, mr)
    if math.isfinite(thr):  # one-hot column: <= 0.5 means "not this category"
        return (
            Condition(feature, "not in", (category,), ml),
            Condition(feature, "in", (category,), mr),
        )
    every = tuple(c for f, c in columns if f == feature and c is not None)
    return Condition(feature, "in", every, ml), Condition(feature, "not in", every, mr)


def leaf_paths(
    tree: Any,
    columns: Sequence[tuple[str, str | None]],
    stop: Callable[[int], bool] | None = None,
    with_missing: Collection[str] = (),
) -> list[tuple[int, list[Condition]]]:
    """Walk a fitted scikit-learn tree into (node, raw conditions from the root) per leaf.

    Args:
        tree: the fitted ``Tree`` (``estimator.tree_``), grown on the columns ``columns``
            (see :func:`encoded_columns`).
        columns: (feature, category or None) per column the tree splits on.
        stop: nodes to treat as leaves (collapsed or pruned subtrees); sklearn leaves always
            are.
        with_missing: features that had missing values in training: their conditions carry
            the tree's learned ``missing_go_to_left`` (scikit-learn >= 1.3); the others keep
            the fixed rule (``Condition.missing`` None). A split at threshold ``inf`` (every
            missing value right, every present one left) becomes ``x is not missing`` /
            ``x is missing``.

    Returns:
        The final leaves left to right, each with the unmerged conditions along its path
        (merge them with :func:`conjoin`).
    """
    left, right = tree.children_left, tree.children_right
    out: list[tuple[int, list[Condition]]] = []

    def walk(node: int, path: list[Condition]) -> None:
        if left[node] == _LEAF or (stop is not None and stop(node)):
            out.append((node, path))
            return
        lc, rc = _split_conditions(tree, node, columns, with_missing)
        walk(int(left[node]), [*path, lc])
        walk(int(right[node]), [*path, rc])

    walk(0, [])
    return out
