"""The shared greedy tree search: quantile-binned features, histogram split search, segments.

Every tree learner of :mod:`pex_tuner.policies` grows its tree here; they differ only in the
*criterion*, the reward definition that says what a set of units is worth under each arm:

- :class:`~pex_tuner.policies.rewards.SummedRewards` (GreedyTreeSearch-HTE, the guidance
  split): statistic columns are per-arm rewards, a set's value is their sum;
- :class:`~pex_tuner.policies.rewards.DifferenceInMeans` (No-HTE): statistic columns are
  per-arm sums of the raw outcomes, a set's value is its in-segment lift over control, and a
  split must pass a significance test (the reject option).

The algorithm (module docstring of :mod:`pex_tuner.policies.greedy_tree` for timings):

1. Every feature is binned once: numeric features at (up to ``n_bins - 1``) quantile edges,
   which are observed values, so a split ``x <= edge`` is exact; features with at most
   ``n_bins`` distinct values get an edge at every value. Categorical features are split as
   one category vs the rest.
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
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pex_tuner.checks import Interval
from pex_tuner.errors import InputDataError
from pex_tuner.rules import NUMERIC, Condition, Segment, conjoin
from pex_tuner.schema import FeatureSchema

__all__ = [
    "TREE_CONSTRAINTS",
    "Candidates",
    "Criterion",
    "GrownTree",
    "Leaf",
    "grow_tree",
    "resolve_min_size",
]

# the hyperparameters of the search, shared by every learner that grows its tree here
TREE_CONSTRAINTS = {
    "max_depth": [Interval(int, 0, 20, closed="both")],
    "min_segment_size": [Interval(int, 1, None), Interval(float, 0, 0.5, closed="right")],
    "n_bins": [Interval(int, 2, 65536, closed="both")],
}

# rows used to place quantile edges (the edges are still applied to every row)
_EDGE_SAMPLE = 200_000


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
class _Node:
    n: int
    arm: int
    value: float
    feature: int = -1
    bin: int = -1
    missing_left: bool = False
    left: _Node | None = None
    right: _Node | None = None
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


@dataclass(frozen=True)
class _Binned:
    codes: np.ndarray  # (n_features, n_units) uint8 / uint16 bin codes; n_bins - 1: missing
    n_cand: np.ndarray  # (n_features,) candidate splits per feature
    is_num: np.ndarray  # (n_features,) bool
    edges: list[np.ndarray]  # numeric thresholds per feature (empty for categorical)
    categories: list[tuple[str, ...]]  # categories per feature (empty for numeric)
    n_bins: int  # width of the histogram axis, the missing bin included
    has_missing: np.ndarray  # (n_features,) bool: some training unit lacks the feature

    @property
    def missing_bin(self) -> int:
        return self.n_bins - 1


def resolve_min_size(min_segment_size: int | float, n: int) -> int:
    """Fewest units per leaf: an int as is, a fraction of ``n`` rounded up (at least 1)."""
    if isinstance(min_segment_size, float):
        return max(1, int(np.ceil(min_segment_size * n)))
    return int(min_segment_size)


# ---------------------------------------------------------------------- binning
def _columns(
    X: Any, schema: FeatureSchema | None
) -> tuple[list[np.ndarray], tuple[str, ...], tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Numeric columns as floats and categorical ones as category codes, names, kinds."""
    if isinstance(X, pd.DataFrame):
        schema = schema or FeatureSchema.infer(X, [str(c) for c in X.columns])
        schema.validate_frame(X)
        cmap = schema.category_map
        columns: list[np.ndarray] = []
        for name, kind in zip(schema.names, schema.kinds, strict=True):
            if kind == NUMERIC:
                col = pd.to_numeric(X[name], errors="coerce")  # validated: numbers, missing
                columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            else:  # category codes, -1 for missing
                codes = pd.Categorical(X[name].astype(str), categories=list(cmap[name])).codes
                columns.append(np.where(X[name].isna().to_numpy(), -1, codes).astype(np.int64))
        return columns, schema.names, schema.kinds, cmap
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise InputDataError(
            f"X must be a DataFrame or a 2-D array (n_units, n_features); got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise InputDataError(
            f"X has {int(np.isinf(arr).sum())} infinite value(s); missing values (NaN) are "
            "allowed, infinite ones are not"
        )
    names = tuple(f"x{i}" for i in range(arr.shape[1]))
    columns = [np.ascontiguousarray(arr[:, i]) for i in range(arr.shape[1])]
    return columns, names, (NUMERIC,) * arr.shape[1], {}


def _edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Thresholds t (observed values) so that ``x <= t`` splits; at most n_bins - 1."""
    s = np.sort(x[~np.isnan(x)])
    if len(s) == 0:
        return s
    distinct = s[np.r_[True, s[1:] != s[:-1]]]
    if len(distinct) <= n_bins:
        return distinct[:-1]
    m = len(s)
    probs = np.arange(1, n_bins) / n_bins
    pos = np.clip(np.ceil(probs * m).astype(np.intp) - 1, 0, m - 1)  # inverted CDF
    e = np.unique(s[pos])
    return e[e < s[-1]]


def _bin(
    X: Any, schema: FeatureSchema | None, n_bins: int, random_state: int | None
) -> tuple[_Binned, tuple[str, ...], tuple[str, ...]]:
    columns, names, kinds, cmap = _columns(X, schema)
    if not names:
        raise InputDataError("X has no feature columns")
    n = len(columns[0])
    rng = np.random.default_rng(random_state)
    sample = rng.choice(n, _EDGE_SAMPLE, replace=False) if n > _EDGE_SAMPLE else None
    edges: list[np.ndarray] = []
    cats_of: list[tuple[str, ...]] = []
    n_cand = np.zeros(len(names), dtype=np.intp)
    width = 1
    for f, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == NUMERIC:
            e = _edges(columns[f] if sample is None else columns[f][sample], n_bins)
            edges.append(e)
            cats_of.append(())
            n_cand[f] = len(e)
            width = max(width, len(e) + 1)
        else:
            cats = cmap[name]
            edges.append(np.empty(0))
            cats_of.append(tuple(cats))
            n_cand[f] = len(cats) if len(cats) > 1 else 0
            width = max(width, len(cats))
    width += 1  # the missing bin
    codes = np.empty((len(names), n), dtype=np.uint8 if width <= 256 else np.uint16)
    has_missing = np.zeros(len(names), dtype=bool)
    for f, kind in enumerate(kinds):
        missing = np.isnan(columns[f]) if kind == NUMERIC else columns[f] < 0
        has_missing[f] = missing.any()
        if kind == NUMERIC:
            codes[f] = np.where(missing, width - 1, np.searchsorted(edges[f], columns[f]))
        else:
            codes[f] = np.where(missing, width - 1, columns[f])
    is_num = np.array([k == NUMERIC for k in kinds])
    binned = _Binned(codes, n_cand, is_num, edges, cats_of, width, has_missing)
    return binned, tuple(names), tuple(kinds)


# ---------------------------------------------------------------------- search
def _histogram(b: _Binned, R: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
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
    b: _Binned, H: np.ndarray, C: np.ndarray, min_size: int, tol: float, crit: Criterion
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
class _Search:
    """What stays fixed while one tree grows."""

    b: _Binned
    R: np.ndarray  # (n, M) statistic columns
    crit: Criterion
    max_depth: int
    min_size: int
    tol_unit: float


def _grow(
    s: _Search, idx: np.ndarray | None, n: int, H: np.ndarray, C: np.ndarray, depth: int
) -> _Node:
    b, R = s.b, s.R
    T = H[0].sum(axis=0)
    vals = s.crit.arm_values(T, float(n))
    node = _Node(n=n, arm=int(np.argmax(vals)), value=float(vals.max()), values=vals)
    if depth >= s.max_depth or n < 2 * s.min_size:
        return node
    split = _best_split(b, H, C, s.min_size, s.tol_unit * n, s.crit)
    if split is None:
        return node
    f, bin_, missing_left = split
    codes = b.codes[f] if idx is None else b.codes[f, idx]
    present = codes != b.missing_bin
    go_left = np.where(present, codes <= bin_ if b.is_num[f] else codes != bin_, missing_left)
    all_idx = np.arange(n) if idx is None else idx
    left_idx, right_idx = all_idx[go_left], all_idx[~go_left]
    node.feature, node.bin, node.missing_left = f, bin_, missing_left
    if depth + 1 >= s.max_depth:  # children are leaves: their totals suffice
        left_total = R[left_idx].sum(axis=0)
        HL, HR = left_total[None, None, :], (T - left_total)[None, None, :]
        CL, CR = np.full((1, 1), float(len(left_idx))), np.full((1, 1), float(len(right_idx)))
    elif len(left_idx) <= len(right_idx):
        HL, CL = _histogram(b, R, left_idx)
        HR, CR = H - HL, C - CL
    else:
        HR, CR = _histogram(b, R, right_idx)
        HL, CL = H - HR, C - CR
    node.left = _grow(s, left_idx, len(left_idx), HL, CL, depth + 1)
    node.right = _grow(s, right_idx, len(right_idx), HR, CR, depth + 1)
    return node


# ---------------------------------------------------------------------- tree -> segments
def _prune(node: _Node) -> set[int]:
    """Collapse subtrees whose leaves all give the same arm; return the arms below."""
    if node.left is None or node.right is None:
        return {node.arm}
    arms = _prune(node.left) | _prune(node.right)
    if len(arms) == 1:
        node.arm = next(iter(arms))
        node.left = node.right = None
    return arms


def _leaves(
    node: _Node, path: list[Condition], b: _Binned, names: tuple[str, ...]
) -> list[tuple[list[Condition], _Node]]:
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
    binned, names, kinds = _bin(X, schema, n_bins, random_state)
    H, C = (
        _histogram(binned, R, None)
        if max_depth > 0
        else (R.sum(axis=0)[None, None, :], np.full((1, 1), float(n)))
    )
    tol_unit = 1e-9 * float(np.abs(R).max(initial=0.0))
    search = _Search(binned, R, criterion, max_depth, min_size, tol_unit)
    root = _grow(search, None, n, H, C, 0)
    grown = _leaves(root, [], binned, names)
    leaves = tuple(
        Leaf(_merged(path), node.n, node.arm, node.values)  # type: ignore[arg-type]
        for path, node in grown
    )
    _prune(root)
    pruned = _leaves(root, [], binned, names)
    size = np.zeros(len(labels))
    for _, node in pruned:
        size[node.arm] += node.n
    default = int(np.argmax(size))
    segments = tuple(
        Segment(_merged(path), labels[node.arm]) for path, node in pruned if node.arm != default
    )
    reward = float(sum(node.value for _, node in grown))
    return GrownTree(segments, default, reward, leaves, names, kinds)
