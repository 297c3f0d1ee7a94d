"""The shared greedy tree search: quantile-binned features, histogram split search, segments.

Every tree learner of :mod:`pex_tuner.policies` grows its tree here; they differ only in the
*criterion*, the reward definition that says what a set of units is worth under each arm:

- :class:`~pex_tuner.policies.rewards.SummedRewards` (GreedyTreeSearch-HTE, the guidance
  split): statistic columns are per-arm rewards, a set's value is their sum;
- :class:`~pex_tuner.policies.rewards.DifferenceInMeans` (No-HTE): statistic columns are
  per-arm sums of the raw outcomes, a set's value is its in-segment lift over control, and a
  split must pass a significance test (the reject option).

The algorithm (module docstring of :mod:`pex_tuner.policies.greedy_tree` for timings):

1. Every feature is binned once (:mod:`pex_tuner.policies.tree_bins`): numeric features at
   (up to ``n_bins - 1``) quantile edges, which are observed values, so a split
   ``x <= edge`` is exact; features with at most ``n_bins`` distinct values get an edge at
   every value. Categorical features are split as one category vs the rest.
2. At a node, one histogram pass gives the statistic sums per (feature, bin, column) and the
   unit counts per (feature, bin). Cumulative sums over bins give the left totals of every
   threshold at once, right totals are node total minus left, and the value of a split is
   ``max_k left_k + max_k right_k``. The best split with at least ``min_size`` units on both
   sides is kept if it beats the node's best single arm; ties go to the first feature, lowest
   threshold and lowest arm index (control first).
3. Children are grown recursively to ``max_depth``; only the smaller child's histogram is
   computed, the larger one is parent minus smaller (the LightGBM subtraction trick).
4. Leaves become segments with merged conditions (:func:`pex_tuner.rules.conjoin`). The arm
   with the most training units across leaves becomes the default arm and its leaves are
   dropped; this is exact because leaves partition the feature space.

Missing values (XGBoost's sparsity-aware split finding): every feature has one more bin, the
last, for its missing values, and every split is evaluated twice, with the node's missing units
sent left and sent right; the better is kept (ties: right, the fixed rule of a numeric ``>``).
A side must hold at least one unit whose feature is present, so a region is never "missing
only" and conjunctions along a path stay satisfiable by present values. The learned direction
becomes the conditions' ``missing`` flag on features that had missing values in training; a
node without missing units of the split feature sends them right (the direction new units with
a missing value take there). Features never missing in training keep the fixed rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from pex_tuner.checks import Interval
from pex_tuner.policies.tree_bins import Binned, bin_features
from pex_tuner.rules import Condition, Segment, conjoin
from pex_tuner.schema import FeatureSchema

__all__ = [
    "TREE_CONSTRAINTS",
    "Candidates",
    "Criterion",
    "GrownTree",
    "Leaf",
    "Node",
    "SplitRule",
    "finish_tree",
    "goes_left",
    "grow_tree",
    "histogram",
    "resolve_min_size",
]

# the hyperparameters of the search, shared by every learner that grows its tree here
TREE_CONSTRAINTS = {
    "max_depth": [Interval(int, 0, 20, closed="both")],
    "min_segment_size": [Interval(int, 1, None), Interval(float, 0, 0.5, closed="right")],
    "n_bins": [Interval(int, 2, 65536, closed="both")],
}


@dataclass(frozen=True)
class Candidates:
    """The candidate splits of one node, as a criterion's eligibility test sees them.

    Attributes:
        L: statistic sums left of each split, shape (F, B, M); ``T - L`` is the right side.
        n_left: units left of each split, shape (F, B).
        T: the node's statistic sums, shape (M,); N: its units.
        VL, VR: arm values of the left and right sides, shape (F, B, K); VT: of the node (K,).
        valid: splits with enough units on both sides, shape (F, B).
    """

    L: np.ndarray
    n_left: np.ndarray
    T: np.ndarray
    N: float
    VL: np.ndarray
    VR: np.ndarray
    VT: np.ndarray
    valid: np.ndarray


# Candidate splits of a node, as returned by _best_split: (feature, bin, missing-left)
Split = tuple[int, int, bool]


class Criterion(Protocol):
    """What a set of units is worth under each arm, from the sums of its statistic columns."""

    def arm_values(self, S: np.ndarray, n: np.ndarray | float) -> np.ndarray:
        """Value of giving a set of units each arm, shape (..., K), from the sums S (..., M)
        of their statistic columns and their count n (...)."""
        ...

    def eligible(self, c: Candidates) -> np.ndarray | None:
        """Extra eligibility mask of shape (F, B) for the ``c.valid`` splits, or None."""
        ...


@dataclass
class Node:
    """A node of a growing tree: its units, best arm and value; its split, if any (feature
    index, bin of the threshold or category, where missing values go) and children."""

    n: int
    arm: int
    value: float
    feature: int = -1
    bin: int = -1
    missing_left: bool = False
    left: Node | None = None
    right: Node | None = None
    values: np.ndarray | None = None  # (K,) value of giving the node's units each arm


@dataclass(frozen=True)
class Leaf:
    """A leaf of the grown (unpruned) tree: its merged conditions and arm values.

    Attributes:
        conditions: the merged conditions of its path (empty for the root).
        n: training units in the leaf.
        arm: index of its best arm.
        values: value of giving its units each arm, shape (n_arms,).
    """

    conditions: tuple[Condition, ...]
    n: int
    arm: int
    values: np.ndarray


@dataclass(frozen=True)
class GrownTree:
    """The result of :func:`grow_tree`.

    Attributes:
        segments: the pruned tree's segments (leaves of the default arm dropped).
        default: index of the default arm.
        reward: total value of the leaves (each with its best arm) on the training units.
        leaves: the leaves before pruning, left to right.
        names, kinds: the feature names and kinds the tree was grown over.
    """

    segments: tuple[Segment, ...]
    default: int
    reward: float
    leaves: tuple[Leaf, ...]
    names: tuple[str, ...]
    kinds: tuple[str, ...]


def resolve_min_size(min_segment_size: int | float, n: int) -> int:
    """Fewest units per leaf: an int as is, a fraction of ``n`` rounded up (at least 1)."""
    if isinstance(min_segment_size, float):
        return max(1, int(np.ceil(min_segment_size * n)))
    return int(min_segment_size)


# ---------------------------------------------------------------------- search
def histogram(b: Binned, R: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Statistic sums (F, B, M) and counts (F, B) of the units ``idx`` (None: all).

    Per feature, the sums are ``onehot(bin)^T @ R`` with the one-hot matrix in sparse CSC
    form (one nonzero per unit): a bincount whose weights are whole rows of R, about 4x
    faster than M weighted ``np.bincount`` calls.
    """
    from scipy import sparse

    F, B, M = b.codes.shape[0], b.n_bins, R.shape[1]
    R_node = R if idx is None else R[idx]
    n = R_node.shape[0]
    H = np.empty((F, B, M))
    C = np.empty((F, B))
    ones, indptr = np.ones(n), np.arange(n + 1)
    for f in range(F):
        codes = b.codes[f] if idx is None else b.codes[f, idx]
        C[f] = np.bincount(codes, minlength=B)
        onehot = sparse.csc_matrix((ones, codes, indptr), shape=(B, n))
        H[f] = onehot @ R_node
    return H, C


def _best_split(
    b: Binned, H: np.ndarray, C: np.ndarray, min_size: int, tol: float, crit: Criterion
) -> Split | None:
    """The best split of a node from its histograms H (F, B, M) and counts C (F, B).

    Every (feature, threshold) is a candidate twice: missing units right (bins ``0..B-2``
    of the candidate axis) and left (bins ``B-1..2B-3``), the latter only for features
    with missing units in the node. Returns (feature, bin, missing-left) or None.
    """
    T = H[0].sum(axis=0)  # (M,) node totals
    N = C[0].sum()
    m = b.missing_bin
    Hm, Cm = H[:, m, :], C[:, m]  # missing units per feature
    Hp, Cp = H[:, :m, :], C[:, :m]  # present units per (feature, bin)
    Np = N - Cm  # (F,) present units per feature
    # numeric: left = bins <= b (x <= edge[b]); categorical: left = every category but b
    num = b.is_num[:, None]
    L0 = np.where(num[:, :, None], np.cumsum(Hp, axis=1), (T - Hm)[:, None, :] - Hp)
    n0 = np.where(num, np.cumsum(Cp, axis=1), Np[:, None] - Cp)  # present units left
    L = np.concatenate([L0, L0 + Hm[:, None, :]], axis=1)  # (F, 2m, M)
    n_left = np.concatenate([n0, n0 + Cm[:, None]], axis=1)
    n_present = np.concatenate([n0, n0], axis=1)
    cand = np.arange(m)[None, :] < b.n_cand[:, None]
    valid = np.concatenate([cand, cand & (Cm > 0)[:, None]], axis=1)
    valid &= (n_left >= min_size) & (N - n_left >= min_size)
    valid &= (n_present >= 1) & (Np[:, None] - n_present >= 1)
    if not valid.any():
        return None
    VT = crit.arm_values(T, N)
    VL = crit.arm_values(L, n_left)
    VR = crit.arm_values(T - L, N - n_left)
    extra = crit.eligible(Candidates(L, n_left, T, N, VL, VR, VT, valid))
    if extra is not None:
        valid &= extra
        if not valid.any():
            return None
    total = np.where(valid, VL.max(axis=2) + VR.max(axis=2), -np.inf)
    flat = int(np.argmax(total))
    if float(total.flat[flat]) <= VT.max() + tol:
        return None
    f, col = divmod(flat, 2 * m)
    return f, col % m, col >= m


@dataclass(frozen=True)
class SplitRule:
    """What decides a node while one tree grows, whoever computes its histograms.

    Attributes:
        layout: the bin layout (codes unused).
        crit: the criterion.
        max_depth, min_size: the validated hyperparameters (``min_size`` a unit count).
        tol_unit: per-unit tolerance of a split's gain, ``1e-9 * max |R|`` over all units.
    """

    layout: Binned
    crit: Criterion
    max_depth: int
    min_size: int
    tol_unit: float

    def node(self, n: int, H: np.ndarray, C: np.ndarray, depth: int) -> Node:
        """The node of ``n`` units with histograms H (F, B, M) and counts C (F, B) at
        ``depth``, with its best split set (``feature`` -1: a leaf)."""
        vals = self.crit.arm_values(H[0].sum(axis=0), float(n))
        node = Node(n=n, arm=int(np.argmax(vals)), value=float(vals.max()), values=vals)
        if depth >= self.max_depth or n < 2 * self.min_size:
            return node
        split = _best_split(self.layout, H, C, self.min_size, self.tol_unit * n, self.crit)
        if split is not None:
            node.feature, node.bin, node.missing_left = split
        return node


def goes_left(b: Binned, node: Node, codes: np.ndarray) -> np.ndarray:
    """Which units with bin ``codes`` (n,) of the node's feature go left, bool of shape (n,)."""
    present = codes != b.missing_bin
    inside = codes <= node.bin if b.is_num[node.feature] else codes != node.bin
    return np.where(present, inside, node.missing_left)


def _grow(
    s: SplitRule,
    b: Binned,
    R: np.ndarray,
    idx: np.ndarray | None,
    H: np.ndarray,
    C: np.ndarray,
    depth: int,
) -> Node:
    """Grow the subtree of the units ``idx`` (None: all) of ``b`` and ``R`` (n, M)."""
    n = R.shape[0] if idx is None else len(idx)
    node = s.node(n, H, C, depth)
    if node.feature < 0:
        return node
    T = H[0].sum(axis=0)
    go_left = goes_left(
        b, node, b.codes[node.feature] if idx is None else b.codes[node.feature, idx]
    )
    all_idx = np.arange(n) if idx is None else idx
    left_idx, right_idx = all_idx[go_left], all_idx[~go_left]
    if depth + 1 >= s.max_depth:  # children are leaves: their totals suffice
        left_total = R[left_idx].sum(axis=0)
        HL, HR = left_total[None, None, :], (T - left_total)[None, None, :]
        CL, CR = np.full((1, 1), float(len(left_idx))), np.full((1, 1), float(len(right_idx)))
    elif len(left_idx) <= len(right_idx):
        HL, CL = histogram(b, R, left_idx)
        HR, CR = H - HL, C - CL
    else:
        HR, CR = histogram(b, R, right_idx)
        HL, CL = H - HR, C - CR
    node.left = _grow(s, b, R, left_idx, HL, CL, depth + 1)
    node.right = _grow(s, b, R, right_idx, HR, CR, depth + 1)
    return node


# ---------------------------------------------------------------------- tree -> segments
def _prune(node: Node) -> set[int]:
    """Collapse subtrees whose leaves all give the same arm; return the arms below."""
    if node.left is None or node.right is None:
        return {node.arm}
    arms = _prune(node.left) | _prune(node.right)
    if len(arms) == 1:
        node.arm = next(iter(arms))
        node.left = node.right = None
    return arms


def _leaves(
    node: Node, path: list[Condition], b: Binned, names: tuple[str, ...]
) -> list[tuple[list[Condition], Node]]:
    """(raw path conditions, leaf) for every leaf below ``node``, left to right."""
    if node.left is None or node.right is None:
        return [(path, node)]
    f, name = node.feature, names[node.feature]
    ml, mr = (node.missing_left, not node.missing_left) if b.has_missing[f] else (None, None)
    if b.is_num[f]:
        t = float(b.edges[f][node.bin])
        left, right = Condition(name, "<=", t, ml), Condition(name, ">", t, mr)
    else:
        cat = (b.categories[f][node.bin],)
        left, right = Condition(name, "not in", cat, ml), Condition(name, "in", cat, mr)
    return _leaves(node.left, [*path, left], b, names) + _leaves(
        node.right, [*path, right], b, names
    )


def _merged(path: list[Condition]) -> tuple[Condition, ...]:
    # the paths of a grown tree always hold units, so their conjunction is never empty
    return conjoin(path) or ()


def finish_tree(
    root: Node, b: Binned, names: tuple[str, ...], kinds: tuple[str, ...], labels: tuple[str, ...]
) -> GrownTree:
    """Prune a grown tree (in place) and convert it: segments, default arm, leaves.

    Args:
        root: the grown tree; b: its bin layout (``has_missing`` over all training units).
        names, kinds: the feature names and kinds; labels: the arm labels, control first.
    """
    grown = _leaves(root, [], b, names)
    leaves = tuple(
        Leaf(_merged(path), node.n, node.arm, node.values)  # type: ignore[arg-type]
        for path, node in grown
    )
    _prune(root)
    pruned = _leaves(root, [], b, names)
    size = np.zeros(len(labels))
    for _, node in pruned:
        size[node.arm] += node.n
    default = int(np.argmax(size))
    segments = tuple(
        Segment(_merged(path), labels[node.arm]) for path, node in pruned if node.arm != default
    )
    reward = float(sum(node.value for _, node in grown))
    return GrownTree(segments, default, reward, leaves, names, kinds)


def grow_tree(
    X: pd.DataFrame | np.ndarray,
    R: np.ndarray,
    labels: tuple[str, ...],
    *,
    criterion: Criterion,
    max_depth: int,
    min_size: int,
    n_bins: int,
    random_state: int | None,
    schema: FeatureSchema | None = None,
) -> GrownTree:
    """Grow, prune and convert one greedy tree over statistic columns ``R``.

    Args:
        X: raw features, a DataFrame (schema inferred unless given) or a float array of shape
            (n_units, n_features) (features named x0, x1, ...).
        R: statistic columns of the criterion, shape (n_units, M).
        labels: arm labels, control first (n_arms = the criterion's K).
        criterion: the reward definition (see :class:`Criterion`).
        max_depth, min_size, n_bins: validated hyperparameters (``min_size`` a unit count).
        random_state: seed of the row sample that places quantile edges on large data.
        schema: the feature schema of a DataFrame ``X``.
    """
    n = R.shape[0]
    binned, names, kinds = bin_features(X, schema, n_bins, random_state)
    H, C = (
        histogram(binned, R, None)
        if max_depth > 0
        else (R.sum(axis=0)[None, None, :], np.full((1, 1), float(n)))
    )
    tol_unit = 1e-9 * float(np.abs(R).max(initial=0.0))
    rule = SplitRule(binned, criterion, max_depth, min_size, tol_unit)
    root = _grow(rule, binned, R, None, H, C, 0)
    return finish_tree(root, binned, names, kinds, labels)
