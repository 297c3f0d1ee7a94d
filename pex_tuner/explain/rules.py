"""Tree structure for Distill-HTE: pruning by units per arm, and segments as readable rules.

The distillation trees are scikit-learn trees grown on the *encoded* features
(:attr:`~pex_tuner.schema.FeatureSchema.encoded_names`): numeric columns as they are and one
column per category of a categorical feature. A split on a one-hot column ``platform=ios`` at
0.5 is a category test, so rules are written over the raw features with the conditions of
:class:`~pex_tuner.policies.tree.Condition` (``x0 <= 0.31``, ``platform in {"ios"}``), and the
conditions along a path are merged (the tightest threshold per side of a numeric feature, one
category set per categorical feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pex_tuner.policies.tree import Condition
from pex_tuner.schema import CATEGORICAL, FeatureSchema

__all__ = ["encoded_columns", "node_owner", "path_conditions", "prune", "rule_text"]

_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
ALL_UNITS = "all units"


def encoded_columns(schema: FeatureSchema) -> list[tuple[str, str | None]]:
    """Per encoded column: (feature name, category) for one-hot columns, (name, None) else."""
    cmap = schema.category_map
    out: list[tuple[str, str | None]] = []
    for name, kind in zip(schema.names, schema.kinds, strict=True):
        if kind == CATEGORICAL:
            out.extend((name, c) for c in cmap[name])
        else:
            out.append((name, None))
    return out


def prune(tree: Any, ok: np.ndarray) -> list[int]:
    """Final leaves of ``tree`` after collapsing every split that has a child which is not ok.

    Args:
        tree: a fitted sklearn ``Tree`` (``estimator.tree_``).
        ok: bool ndarray of shape (n_nodes,), whether a node holds enough units of each arm.

    Returns:
        Node ids of the final leaves, left to right. If ``ok[0]``, every final leaf is ok: a node
        is kept as a split only when both children are ok, and the leaves of an ok child are
        ok by the same argument one level down. (Collapsing top-down gives the same tree as
        pruning bottom-up and then collapsing a parent of an insufficient child.)
    """
    left, right = tree.children_left, tree.children_right

    def visit(node: int) -> list[int]:
        lo, hi = int(left[node]), int(right[node])
        if lo == _LEAF or not (ok[lo] and ok[hi]):
            return [node]
        return visit(lo) + visit(hi)

    return visit(0)


def node_owner(tree: Any, leaves: Sequence[int]) -> np.ndarray:
    """Segment index (position in ``leaves``) of every node at or below a final leaf, else -1.

    ``node_owner(tree, leaves)[estimator.apply(X)]`` maps units to segments.
    """
    left, right = tree.children_left, tree.children_right
    owner = np.full(tree.node_count, -1, dtype=np.intp)
    for i, leaf in enumerate(leaves):
        stack = [int(leaf)]
        while stack:
            node = stack.pop()
            owner[node] = i
            if left[node] != _LEAF:
                stack.extend((int(left[node]), int(right[node])))
    return owner


def path_conditions(
    tree: Any, node: int, columns: Sequence[tuple[str, str | None]], schema: FeatureSchema
) -> tuple[Condition, ...]:
    """The merged conditions on the path from the root to ``node``, in order of first use."""
    left, right = tree.children_left, tree.children_right
    parent: dict[int, tuple[int, bool]] = {}
    for p in range(tree.node_count):
        if left[p] != _LEAF:
            parent[int(left[p])] = (p, True)
            parent[int(right[p])] = (p, False)
    steps: list[tuple[int, bool]] = []
    cur = int(node)
    while cur in parent:
        p, went_left = parent[cur]
        steps.append((p, went_left))
        cur = p
    raw: list[Condition] = []
    for p, went_left in reversed(steps):
        name, category = columns[int(tree.feature[p])]
        if category is None:
            raw.append(Condition(name, "<=" if went_left else ">", float(tree.threshold[p])))
        else:  # one-hot column: <= 0.5 means "not this category"
            raw.append(Condition(name, "not in" if went_left else "in", (category,)))
    return simplify(raw, schema)


def simplify(conditions: Sequence[Condition], schema: FeatureSchema) -> tuple[Condition, ...]:
    """Merge conditions on the same feature: tightest ``<=`` and ``>``, one category set."""
    cmap = schema.category_map
    order: list[str] = []
    upper: dict[str, float] = {}
    lower: dict[str, float] = {}
    allowed: dict[str, set[str]] = {}
    for c in conditions:
        if c.feature not in order:
            order.append(c.feature)
        if c.op == "<=":
            upper[c.feature] = min(upper.get(c.feature, np.inf), float(c.value))  # type: ignore[arg-type]
        elif c.op == ">":
            lower[c.feature] = max(lower.get(c.feature, -np.inf), float(c.value))  # type: ignore[arg-type]
        else:
            cur = allowed.setdefault(c.feature, set(cmap[c.feature]))
            cats = set(c.value)  # type: ignore[arg-type]
            if c.op == "in":
                cur &= cats
            else:
                cur -= cats
    out: list[Condition] = []
    for name in order:
        if name in lower:
            out.append(Condition(name, ">", lower[name]))
        if name in upper:
            out.append(Condition(name, "<=", upper[name]))
        if name in allowed:
            keep = allowed[name]
            drop = set(cmap[name]) - keep
            if not drop or not keep:
                continue  # no restriction (or an empty region sklearn never creates)
            if len(keep) <= len(drop):
                out.append(Condition(name, "in", tuple(keep)))
            else:
                out.append(Condition(name, "not in", tuple(drop)))
    return tuple(out)


def rule_text(conditions: Sequence[Condition]) -> str:
    """Conditions joined with ``and`` (as :class:`~pex_tuner.policies.tree.Segment` prints)."""
    return " and ".join(str(c) for c in conditions) if conditions else ALL_UNITS
