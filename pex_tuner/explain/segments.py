"""Segments of a Distill-HTE tree: pruning by units per arm, unit ownership, readable rules.

The distillation trees are scikit-learn trees grown on the *encoded* features
(:attr:`~pex_tuner.schema.FeatureSchema.encoded_names`): numeric columns as they are and one
column per category of a categorical feature. Their paths are read with the walker and the
conjunction of :mod:`pex_tuner.rules` (``x0 <= 0.31``, ``platform in {"ios"}``), in the
canonical form for people: per feature the lower bound, the upper bound, then the shorter of
the allowed and the excluded category sets. On features with missing values the rule says
where scikit-learn's learned ``missing_go_to_left`` sends them (``age <= 30 or age is
missing``, ``age > 30 and age is not missing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pex_tuner.rules import Condition, conjoin, encoded_columns, leaf_paths
from pex_tuner.schema import FeatureSchema

__all__ = ["ALL_UNITS", "node_owner", "pruned_segments", "rule_text"]

_LEAF = -1  # sklearn.tree._tree.TREE_LEAF
ALL_UNITS = "all units"


def pruned_segments(
    tree: Any, ok: np.ndarray, schema: FeatureSchema, with_missing: Sequence[str] = ()
) -> tuple[list[int], tuple[tuple[Condition, ...], ...]]:
    """Final leaves of ``tree`` after collapsing every split that has a child which is not ok,
    with their merged conditions.

    Args:
        tree: a fitted sklearn ``Tree`` (``estimator.tree_``) over ``schema``'s encoding.
        ok: bool ndarray of shape (n_nodes,), whether a node holds enough units of each arm.
        schema: the feature schema the tree's columns encode.
        with_missing: features with missing values in the data: their conditions say where
            the tree sends missing values (``age <= 30 or age is missing``).

    Returns:
        (node ids of the final leaves, left to right; each leaf's conditions). If ``ok[0]``,
        every final leaf is ok: a node is kept as a split only when both children are ok, and
        the leaves of an ok child are ok by the same argument one level down. (Collapsing
        top-down gives the same tree as pruning bottom-up and then collapsing a parent of an
        insufficient child.)
    """
    left, right = tree.children_left, tree.children_right

    def collapsed(node: int) -> bool:
        return not (ok[int(left[node])] and ok[int(right[node])])

    paths = leaf_paths(tree, encoded_columns(schema), stop=collapsed, with_missing=with_missing)
    cmap = schema.category_map
    # sklearn never grows an empty region, so no conjunction is None
    conditions = tuple(conjoin(path, cmap) or () for _, path in paths)
    return [node for node, _ in paths], conditions


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


def rule_text(conditions: Sequence[Condition]) -> str:
    """Conditions joined with ``and`` (as :class:`~pex_tuner.rules.Segment` prints)."""
    return " and ".join(str(c) for c in conditions) if conditions else ALL_UNITS
