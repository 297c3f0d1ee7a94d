"""Rules over raw features: conditions, segments, their conjunction, and scikit-learn trees.

A :class:`Condition` tests one feature:

- numeric: ``x <= t`` or ``x > t`` (``t`` a finite float);
- categorical: ``platform in {"ios", "web"}`` or ``platform not in {...}``, tested on the raw
  category value as text (the same ``str(value)`` that :class:`~pex_tuner.schema.FeatureSchema`
  uses for one-hot encoding).

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
from collections.abc import Callable, Mapping, Sequence
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
CATEGORICAL_OPS = ("in", "not in")
_LEAF = -1  # sklearn.tree._tree.TREE_LEAF

Op = Literal["<=", ">", "in", "not in"]


@dataclass(frozen=True)
class Condition:
    """One test on one feature.

    Attributes:
        feature: feature column name.
        op: ``"<="`` or ``">"`` (numeric features), ``"in"`` or ``"not in"`` (categorical).
        value: the threshold (float) for numeric ops; the category set (sorted tuple of
            strings) for categorical ops.
    """

    feature: str
    op: Op
    value: float | tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature", str(self.feature))
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

    def __str__(self) -> str:
        if isinstance(self.value, float):
            return f"{self.feature} {self.op} {format(self.value, '.6g')}"
        cats = ", ".join(json.dumps(c) for c in self.value)
        return f"{self.feature} {self.op} {{{cats}}}"

    def to_dict(self) -> dict[str, Any]:
        if isinstance(self.value, float):
            return {"feature": self.feature, "op": self.op, "threshold": self.value}
        return {"feature": self.feature, "op": self.op, "categories": list(self.value)}

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
        return cls(feature=d["feature"], op=op, value=d.get(key))


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
def conjoin(
    conditions: Sequence[Condition], categories: Mapping[str, Sequence[str]] | None = None
) -> tuple[Condition, ...] | None:
    """The conjunction of ``conditions`` with one condition per (feature, side), or None when
    no unit can satisfy it.

    Numeric bounds keep the tightest ``<=`` and ``>`` per feature (None when ``x <= a`` and
    ``x > b`` with ``a <= b``); category sets merge (``in`` sets intersect, ``not in`` sets
    unite, ``in`` minus ``not in``; None when an ``in`` set becomes empty). Order follows the
    first appearance of each (feature, side).

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
                c = Condition(
                    c.feature, c.op, min(pv, c.value) if c.op == "<=" else max(pv, c.value)
                )
            out[key] = c
            continue
        key = (c.feature, "cat")
        prev = out.get(key)
        if prev is not None:
            a, b = set(prev.value), set(c.value)  # type: ignore[arg-type]
            if prev.op == "in" or c.op == "in":
                cats = a & b if prev.op == c.op else (a - b if prev.op == "in" else b - a)
                if not cats:
                    return None
                c = Condition(c.feature, "in", cats)
            else:
                c = Condition(c.feature, "not in", a | b)
        out[key] = c
    for (feature, op), c in out.items():
        if op == "<=":
            low = out.get((feature, ">"))
            if low is not None and float(c.value) <= float(low.value):  # type: ignore[arg-type]
                return None
    merged = tuple(out.values())
    return merged if categories is None else _canonical(merged, categories)


def _canonical(
    conditions: tuple[Condition, ...], categories: Mapping[str, Sequence[str]]
) -> tuple[Condition, ...]:
    """Merged conditions regrouped per feature (``>``, ``<=``, categories), category sets
    written as the shorter of ``in`` / ``not in`` over the known categories."""
    by_feature: dict[str, dict[str, Condition]] = {}
    for c in conditions:
        by_feature.setdefault(c.feature, {})["cat" if not c.is_numeric else c.op] = c
    out: list[Condition] = []
    for name, sides in by_feature.items():
        out.extend(sides[op] for op in (">", "<=") if op in sides)
        cat = sides.get("cat")
        if cat is None:
            continue
        known = set(categories[name])
        keep = set(cat.value) & known if cat.op == "in" else known - set(cat.value)
        drop = known - keep
        if not drop or not keep:
            continue  # no restriction (or an empty region sklearn never creates)
        if len(keep) <= len(drop):
            out.append(Condition(name, "in", tuple(keep)))
        else:
            out.append(Condition(name, "not in", tuple(drop)))
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


def leaf_paths(
    tree: Any,
    columns: Sequence[tuple[str, str | None]],
    stop: Callable[[int], bool] | None = None,
) -> list[tuple[int, list[Condition]]]:
    """Walk a fitted scikit-learn tree into (node, raw conditions from the root) per leaf.

    Args:
        tree: the fitted ``Tree`` (``estimator.tree_``), grown on the columns ``columns``
            (see :func:`encoded_columns`).
        columns: (feature, category or None) per column the tree splits on.
        stop: nodes to treat as leaves (collapsed or pruned subtrees); sklearn leaves always
            are.

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
        feature, category = columns[int(tree.feature[node])]
        if category is None:
            thr = float(tree.threshold[node])
            lc, rc = Condition(feature, "<=", thr), Condition(feature, ">", thr)
        else:  # one-hot column: <= 0.5 means "not this category"
            lc = Condition(feature, "not in", (category,))
            rc = Condition(feature, "in", (category,))
        walk(int(left[node]), [*path, lc])
        walk(int(right[node]), [*path, rc])

    walk(0, [])
    return out
