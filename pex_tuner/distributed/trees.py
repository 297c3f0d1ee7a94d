"""Level-wise growth of the shared greedy tree from per-partition histograms, reduced.

The tree is the one :class:`~pex_tuner.policies.GreedyTreePolicyLearner` grows in memory
(:mod:`pex_tuner.policies.tree_search`), grown level by level, one pass over the partitions per
level:

1. **Bins.** One global bin layout (:func:`~pex_tuner.policies.tree_bins.bin_layout`) with the
   in-memory rule: when the training units number at most ``EDGE_SAMPLE`` (200,000) the
   quantile edges are exact over all of them (then the layout equals the in-memory one);
   above, they are the quantiles of a sample of ``EDGE_SAMPLE`` training units
   (:meth:`~pex_tuner.distributed.DistributedExperiment.sample`: the units with the smallest
   seeded hash keys, whatever the partitioning), the sample size the in-memory learner draws
   on large data.
2. **Passes.** A pass sends the tree grown so far to every partition; the partition bins its
   units (:func:`~pex_tuner.policies.tree_bins.bin_codes`), computes their rewards from its
   predictions, routes them down the tree (:func:`route`) and returns the histograms
   (:func:`~pex_tuner.policies.tree_search.histogram`) of the nodes asked for:
   :func:`partition_statistics`. The sums over partitions are the histograms of all units.
3. **Decisions.** Each node is decided by the in-memory rule
   (:class:`~pex_tuner.policies.tree_search.SplitRule`) from the reduced histograms; as in
   memory only the smaller child's histogram is computed (the larger is parent minus
   smaller) and children at ``max_depth`` need only their totals. A tree of depth D takes
   D + 1 passes (the first also counts units, missing values and ``max |r|``).

So on data that fits, the tree equals the in-memory one (tests/test_distributed_trees.py),
up to float rounding of sums taken in another order. This module is pure numpy (a pass is any
callable); :mod:`pex_tuner.distributed.greedy_tree` runs the passes on the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pex_tuner.policies.tree_bins import Binned
from pex_tuner.policies.tree_search import Node, SplitRule, goes_left, histogram

__all__ = ["PassRequest", "PassResult", "grow_levels", "partition_statistics", "route"]


@dataclass(frozen=True)
class PassRequest:
    """What one pass over the partitions computes.

    Attributes:
        steps: the splits known so far, parents before children: (node id, node with its
            split, left child id, right child id). Units start at node 0.
        hist_ids: nodes whose histograms (F, B, M) and counts (F, B) are wanted.
        total_ids: nodes whose statistic totals (M,) and unit counts are wanted.
    """

    steps: tuple[tuple[int, Node, int, int], ...]
    hist_ids: tuple[int, ...]
    total_ids: tuple[int, ...]


@dataclass(frozen=True)
class PassResult:
    """The summed statistics of a pass (each a sum over partitions).

    Attributes:
        H: histograms, shape (len(hist_ids), F, B, M); C: counts, (len(hist_ids), F, B).
        T: totals, shape (len(total_ids), M); N: unit counts, (len(total_ids),).
    """

    H: np.ndarray
    C: np.ndarray
    T: np.ndarray
    N: np.ndarray


def route(b: Binned, steps: tuple[tuple[int, Node, int, int], ...]) -> np.ndarray:
    """Node id of each unit of ``b`` (codes (F, n)) after the splits ``steps``, shape (n,)."""
    ids = np.zeros(b.codes.shape[1], dtype=np.int64)
    for node_id, node, left_id, right_id in steps:
        at = np.flatnonzero(ids == node_id)
        left = goes_left(b, node, b.codes[node.feature, at])
        ids[at] = np.where(left, left_id, right_id)
    return ids


def partition_statistics(b: Binned, R: np.ndarray, request: PassRequest) -> PassResult:
    """The statistics ``request`` asks for, over the units of one partition.

    Args:
        b: the partition's units binned with the global layout, codes of shape (F, n).
        R: their statistic columns (rewards), shape (n, M).
        request: the tree so far and the nodes asked for.
    """
    F, B, M = b.codes.shape[0], b.n_bins, R.shape[1]
    ids = route(b, request.steps)
    H = np.zeros((len(request.hist_ids), F, B, M))
    C = np.zeros((len(request.hist_ids), F, B))
    for i, node_id in enumerate(request.hist_ids):
        idx = np.flatnonzero(ids == node_id)
        if len(idx):
            H[i], C[i] = histogram(b, R, idx)
    T = np.zeros((len(request.total_ids), M))
    N = np.zeros(len(request.total_ids))
    for i, node_id in enumerate(request.total_ids):
        inside = ids == node_id
        T[i] = R[inside].sum(axis=0)
        N[i] = inside.sum()
    return PassResult(H, C, T, N)


@dataclass
class _Open:
    """A node whose statistics are known and that is still to be decided."""

    node_id: int
    n: int
    H: np.ndarray
    C: np.ndarray
    depth: int
    parent: Node | None = None
    is_left: bool = False


def _left_count(b: Binned, node: Node, C: np.ndarray) -> int:
    """Units a split sends left, from the node's counts C (F, B)."""
    f, m = node.feature, b.missing_bin
    present = C[f, :m]
    n_left = present[: node.bin + 1].sum() if b.is_num[f] else present.sum() - present[node.bin]
    return round(float(n_left + (C[f, m] if node.missing_left else 0.0)))


def grow_levels(
    rule: SplitRule,
    root: tuple[int, np.ndarray, np.ndarray],
    run_pass: Callable[[PassRequest], PassResult],
) -> Node:
    """Grow a tree level by level from summed statistics; returns its root.

    Args:
        rule: decides every node (layout, criterion, depth, sizes, tolerance).
        root: (n, H, C) of all units: count, histograms (F, B, M) and counts (F, B).
        run_pass: computes one :class:`PassRequest` over all units (sum over partitions).
    """
    n, H, C = root
    frontier = [_Open(0, n, H, C, 0)]
    steps: list[tuple[int, Node, int, int]] = []
    top: Node | None = None
    next_id = 1
    while frontier:
        split: list[tuple[_Open, Node, int, int, bool]] = []
        for o in frontier:
            node = rule.node(o.n, o.H, o.C, o.depth)
            if o.parent is None:
                top = node
            elif o.is_left:
                o.parent.left = node
            else:
                o.parent.right = node
            if node.feature >= 0:
                lid, rid, next_id = next_id, next_id + 1, next_id + 2
                steps.append((o.node_id, node, lid, rid))
                n_left = _left_count(rule.layout, node, o.C)
                split.append((o, node, lid, rid, n_left <= o.n - n_left))
        if not split:
            break
        frontier = _children(rule, tuple(steps), split, run_pass)
    assert top is not None  # the root is always decided
    return top


def _children(
    rule: SplitRule,
    steps: tuple[tuple[int, Node, int, int], ...],
    split: list[tuple[_Open, Node, int, int, bool]],
    run_pass: Callable[[PassRequest], PassResult],
) -> list[_Open]:
    """One pass: the statistics of the children of the nodes just split."""
    leaves = split[0][0].depth + 1 >= rule.max_depth  # one level at a time: same depth
    small = tuple(lid if left_small else rid for _, _, lid, rid, left_small in split)
    left_ids = tuple(lid for _, _, lid, _, _ in split)
    res = run_pass(PassRequest(steps, () if leaves else small, left_ids if leaves else ()))
    out: list[_Open] = []
    for i, (o, node, lid, rid, left_small) in enumerate(split):
        d = o.depth + 1
        if leaves:  # as in memory: the left total, the right one is the rest
            T = o.H[0].sum(axis=0)
            HL, HR = res.T[i][None, None, :], (T - res.T[i])[None, None, :]
            nl = round(float(res.N[i]))
            CL, CR = np.full((1, 1), float(nl)), np.full((1, 1), float(o.n - nl))
        elif left_small:
            HL, CL = res.H[i], res.C[i]
            HR, CR = o.H - HL, o.C - CL
        else:
            HR, CR = res.H[i], res.C[i]
            HL, CL = o.H - HR, o.C - CR
        nl = round(float(CL[0].sum()))
        out.append(_Open(lid, nl, HL, CL, d, node, True))
        out.append(_Open(rid, o.n - nl, HR, CR, d, node, False))
    return out
