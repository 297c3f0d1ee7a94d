"""GreedyTreePolicyLearner: GreedyTreeSearch-HTE, a depth-limited greedy tree over CATE rewards.

The interpretable-experimentation paper (Wu, Tan et al., "Interpretable Personalized
Experimentation", KDD 2022) learns if-else policies from HTE predictions by a greedy tree search.
We implement its natural form (the paper's pseudo-code was not at hand; this is our reading):

1. Reward of giving unit i arm k: ``r[i, k] = sum_j w_j tau[i, k, j]`` (control 0), see
   :func:`policy_rewards`.
2. Every feature is binned once: numeric features at (up to ``n_bins - 1``) quantile edges,
   which are observed values, so a split ``x <= edge`` is exact; features with at most
   ``n_bins`` distinct values get an edge at every value. Categorical features are split as
   one category vs the rest.
3. At a node, one histogram pass gives the reward sums per (feature, bin, arm) and the unit
   counts per (feature, bin): per feature, ``np.bincount`` of the bin codes for the counts and
   ``onehot(codes)^T @ r`` for the sums (a sparse CSC product with one nonzero per unit, i.e. a
   bincount whose weights are whole rows of K rewards). Cumulative sums over bins give the left
   totals of every threshold at once, right totals are node total minus left, and the value of
   a split is ``max_k left_k + max_k right_k``: each side takes its best arm. The best split
   over all (feature, threshold) pairs with at least ``min_segment_size`` units on both sides
   is kept if it beats the node's single best arm ``max_k total_k``; ties go to the first
   feature, lowest threshold and lowest arm index (control first).
4. Children are grown recursively to ``max_depth``; only the smaller child's histogram is
   computed, the larger one is parent minus smaller (the LightGBM subtraction trick), so each
   level costs at most half a pass over the data after the root.
5. Leaves become segments with simplified conditions (one ``<=`` / ``>`` bound per side, merged
   category sets). The arm with the most training units across leaves becomes the default arm
   and its leaves are dropped; this is exact because leaves partition the feature space.

Timing (2 shared CPU cores, numpy 2.4, scipy 1.17): n = 1,000,000 units, 30 numeric features,
20 arms, ``max_depth=3``: 3.3 s per fit with 32 bins, 4.4 s with 256 (the default), 6.3 s with
4096, against 44 s for econml's PolicyTree (benchmarks/results/trees.md). Binning dominates
(``np.searchsorted`` of every value into its feature's edges), not the split search.
``fit_seconds_`` records the time of each fit.

Why 256 bins by default: with 32, planted thresholds that fall inside a bin cost regret against
PolicyTree's exact search in all 6 benchmark case-seed pairs; 256 closes most of that gap at
about 1.3x the time of 32.

Sanity check against ``econml.policy.PolicyTree`` (exact split search, the same greedy welfare
criterion, ``min_balancedness_tol=0.5``, ``honest=False``), depth 2, 1,500 units, 3 features,
3 arms, leaves of at least 20 units, five seeds: with ``n_bins`` at least the number of distinct
values (exact search) our training reward equals PolicyTree's (536.242 vs 536.242, ...); with
32 bins it is 99.1% to 100.2% of it (tests/test_tree_policy.py). Quantile bins lose
most when a sharp threshold falls inside a bin: about 3.5% on a planted rule at x0 = 0.3 with
32 bins; raise ``n_bins`` (the cost barely grows with it) when that matters.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies.tree import NUMERIC, Condition, Segment, TreePolicy
from pex_tuner.schema import FeatureSchema

__all__ = ["GreedyTreePolicyLearner", "policy_rewards"]

# rows used to place quantile edges (the edges are still applied to every row)
_EDGE_SAMPLE = 200_000


def policy_rewards(
    effects: EffectPredictions | np.ndarray, outcome_weights: Sequence[float] | None = None
) -> np.ndarray:
    """Per-unit, per-arm rewards ``r[i, k] = sum_j w_j tau[i, k, j]``, shape (n_units, n_arms).

    Args:
        effects: EffectPredictions, or tau of shape (n_units, n_arms, n_outcomes) with the
            control slice zero.
        outcome_weights: w_j, one per outcome, applied to raw-scale effects (negative for
            outcomes to minimize). May be omitted only when there is one outcome.
    """
    tau = effects.tau if isinstance(effects, EffectPredictions) else np.asarray(effects, float)
    if tau.ndim != 3:
        raise InputDataError(
            f"effects must have shape (n_units, n_arms, n_outcomes); got shape {tau.shape}"
        )
    J = tau.shape[2]
    if outcome_weights is None:
        if J != 1:
            raise ConfigurationError(
                f"'outcome_weights' is needed to combine {J} outcomes into one reward"
            )
        w = np.ones(1)
    else:
        w = np.asarray(outcome_weights, dtype=float)
        if w.shape != (J,) or not np.isfinite(w).all():
            raise ConfigurationError(
                f"'outcome_weights' must be {J} finite numbers (one per outcome); got "
                f"{np.asarray(outcome_weights).tolist()}"
            )
    out = np.zeros(tau.shape[:2])
    for j in range(J):  # fixed order, as in LinearUtilityPolicy.utilities
        out += w[j] * tau[:, :, j]
    return out


def _param_error(name: str, expected: str, value: Any) -> ConfigurationError:
    return ConfigurationError(f"The '{name}' parameter must be {expected}. Got {value!r} instead.")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass
class _Node:
    n: int
    arm: int
    value: float
    feature: int = -1
    bin: int = -1
    left: _Node | None = None
    right: _Node | None = None
    values: np.ndarray | None = None  # (K,) value of giving the node's units each arm


@dataclass(frozen=True)
class _Binned:
    codes: np.ndarray  # (n_features, n_units) uint8 / uint16 bin codes
    n_cand: np.ndarray  # (n_features,) candidate splits per feature
    is_num: np.ndarray  # (n_features,) bool
    edges: list[np.ndarray]  # numeric thresholds per feature (empty for categorical)
    categories: list[tuple[str, ...]]  # categories per feature (empty for numeric)
    n_bins: int  # width of the histogram axis


class GreedyTreePolicyLearner:
    """Learn an interpretable :class:`TreePolicy` from per-unit, per-arm rewards.

    GreedyTreeSearch-HTE over quantile-binned features, vectorized across features and arms;
    see the module docstring for the algorithm and timings.

    Parameters:
        max_depth: largest number of splits from the root to a leaf (0: one arm for all).
        min_segment_size: fewest training units in a leaf; an int is a count, a float in
            (0, 0.5] a fraction of the units.
        n_bins: bins per numeric feature (quantile edges), 2 to 65536.
        outcome_weights: w_j used when ``fit`` gets effects of shape (n, K, J) or
            EffectPredictions instead of rewards of shape (n, K).
        random_state: seed of the row sample that places quantile edges on large data.

    Attributes (after ``fit``):
        policy_: the learned TreePolicy.
        reward_: total training reward of ``policy_`` (sum over units of their arm's reward).
        feature_names_in_: feature names, in input order.
        n_features_in_: number of features.
        arms_: arm labels, control first.
        fit_seconds_: wall time of the last fit.

    Example:
        >>> learner = GreedyTreePolicyLearner(max_depth=2, min_segment_size=0.05)
        >>> policy = learner.fit(frame, rewards, arms=["control", "a", "b"]).policy_
        >>> print(policy.describe())  # doctest: +SKIP
    """

    _name_prefix = "greedy_tree"

    def __init__(
        self,
        *,
        max_depth: int = 2,
        min_segment_size: int | float = 0.05,
        n_bins: int = 256,
        outcome_weights: Sequence[float] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.min_segment_size = min_segment_size
        self.n_bins = n_bins
        self.outcome_weights = outcome_weights
        self.random_state = random_state

    def __repr__(self) -> str:
        return (
            f"GreedyTreePolicyLearner(max_depth={self.max_depth}, "
            f"min_segment_size={self.min_segment_size}, n_bins={self.n_bins})"
        )

    # ------------------------------------------------------------------ validation
    def _check_params(self, n: int) -> int:
        if not _is_int(self.max_depth) or not 0 <= self.max_depth <= 20:
            raise _param_error("max_depth", "an int in the range [0, 20]", self.max_depth)
        if not _is_int(self.n_bins) or not 2 <= self.n_bins <= 65536:
            raise _param_error("n_bins", "an int in the range [2, 65536]", self.n_bins)
        m = self.min_segment_size
        if _is_int(m) and m >= 1:
            return int(m)
        if isinstance(m, float) and 0.0 < m <= 0.5:
            return max(1, int(np.ceil(m * n)))
        raise _param_error("min_segment_size", "an int >= 1 or a float in the range (0, 0.5]", m)

    def _rewards(
        self, rewards: Any, n: int, arms: Sequence[str] | None
    ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
        outcomes: tuple[str, ...] = ()
        if isinstance(rewards, EffectPredictions):
            arms = rewards.arms if arms is None else arms
            outcomes = rewards.outcomes
            R = policy_rewards(rewards, self.outcome_weights)
        else:
            R = np.asarray(rewards, dtype=float)
            if R.ndim == 3:
                R = policy_rewards(R, self.outcome_weights)
            elif self.outcome_weights is not None:
                raise ConfigurationError(
                    "'outcome_weights' combines effects of shape (n_units, n_arms, "
                    f"n_outcomes); rewards of shape {R.shape} are already one reward per arm"
                )
        if R.ndim != 2 or R.shape[0] != n or R.shape[1] < 2:
            raise InputDataError(
                f"rewards must have shape (n_units, n_arms) = ({n}, K) with K >= 2 arms; got "
                f"shape {R.shape}"
            )
        if not np.isfinite(R).all():
            raise InputDataError(
                f"rewards have {int((~np.isfinite(R)).sum())} NaN or infinite value(s)"
            )
        K = R.shape[1]
        labels = (
            ("control", *(f"arm_{k}" for k in range(1, K)))
            if arms is None
            else tuple(str(a) for a in arms)
        )
        if len(labels) != K:
            raise InputDataError(f"rewards have {K} arms; got {len(labels)} arm labels {labels}")
        return R, labels, outcomes

    # ------------------------------------------------------------------ binning
    def _bin(
        self, X: Any, schema: FeatureSchema | None
    ) -> tuple[_Binned, tuple[str, ...], tuple[str, ...]]:
        if isinstance(X, pd.DataFrame):
            schema = schema or FeatureSchema.infer(X, [str(c) for c in X.columns])
            schema.validate_frame(X)
            names, kinds = schema.names, schema.kinds
            cmap = schema.category_map
            columns: list[np.ndarray] = []
            for name, kind in zip(names, kinds, strict=True):
                if kind == NUMERIC:
                    columns.append(X[name].to_numpy(dtype=np.float64))
                else:
                    cats = cmap[name]
                    codes = pd.Categorical(X[name].astype(str), categories=list(cats)).codes
                    columns.append(codes.astype(np.int64))
            n = len(X)
        else:
            arr = np.asarray(X, dtype=float)
            if arr.ndim != 2:
                raise InputDataError(
                    f"X must be a DataFrame or a 2-D array (n_units, n_features); got shape "
                    f"{arr.shape}"
                )
            if not np.isfinite(arr).all():
                raise InputDataError(
                    f"X has {int((~np.isfinite(arr)).sum())} NaN or infinite value(s); drop "
                    "or impute them before fitting"
                )
            n = arr.shape[0]
            names = tuple(f"x{i}" for i in range(arr.shape[1]))
            kinds = tuple([NUMERIC] * arr.shape[1])
            cmap = {}
            columns = [np.ascontiguousarray(arr[:, i]) for i in range(arr.shape[1])]
        if not names:
            raise InputDataError("X has no feature columns")
        rng = np.random.default_rng(self.random_state)
        sample = rng.choice(n, _EDGE_SAMPLE, replace=False) if n > _EDGE_SAMPLE else None
        edges: list[np.ndarray] = []
        cats_of: list[tuple[str, ...]] = []
        n_cand = np.zeros(len(names), dtype=np.intp)
        width = 1
        for f, (name, kind) in enumerate(zip(names, kinds, strict=True)):
            if kind == NUMERIC:
                e = self._edges(columns[f] if sample is None else columns[f][sample])
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
        dtype = np.uint8 if width <= 256 else np.uint16
        codes = np.empty((len(names), n), dtype=dtype)
        for f, kind in enumerate(kinds):
            if kind == NUMERIC:
                codes[f] = np.searchsorted(edges[f], columns[f], side="left")
            else:
                codes[f] = columns[f]
        is_num = np.array([k == NUMERIC for k in kinds])
        binned = _Binned(codes, n_cand, is_num, edges, cats_of, width)
        return binned, tuple(names), tuple(kinds)

    def _edges(self, x: np.ndarray) -> np.ndarray:
        """Thresholds t (observed values) so that ``x <= t`` splits; at most n_bins - 1."""
        s = np.sort(x)
        distinct = s[np.r_[True, s[1:] != s[:-1]]]
        if len(distinct) <= self.n_bins:
            return distinct[:-1]
        m = len(s)
        probs = np.arange(1, self.n_bins) / self.n_bins
        pos = np.clip(np.ceil(probs * m).astype(np.intp) - 1, 0, m - 1)  # inverted CDF
        e = np.unique(s[pos])
        return e[e < s[-1]]

    # ------------------------------------------------------------------ search
    def _histogram(
        self, b: _Binned, R: np.ndarray, idx: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reward sums (F, B, K) and counts (F, B) of the units ``idx`` (None: all).

        Per feature, the sums are ``onehot(bin)^T @ R`` with the one-hot matrix in sparse CSC
        form (one nonzero per unit): a bincount whose weights are whole K-vectors of rewards,
        about 4x faster than K weighted ``np.bincount`` calls.
        """
        from scipy import sparse

        F, B, K = b.codes.shape[0], b.n_bins, R.shape[1]
        R_node = R if idx is None else R[idx]
        n = R_node.shape[0]
        H = np.empty((F, B, K))
        C = np.empty((F, B))
        ones, indptr = np.ones(n), np.arange(n + 1)
        for f in range(F):
            codes = b.codes[f] if idx is None else b.codes[f, idx]
            C[f] = np.bincount(codes, minlength=B)
            onehot = sparse.csc_matrix((ones, codes, indptr), shape=(B, n))
            H[f] = onehot @ R_node
        return H, C

    # hooks for learners whose statistic columns are not rewards (see nohte.py)
    def _arm_values(self, S: np.ndarray, n: np.ndarray | float) -> np.ndarray:
        """Total reward of giving a set of units each arm, shape (..., K), from the sums S
        (..., M) of their statistic columns and their count n (...). Here the columns are the
        rewards themselves."""
        return S

    def _eligible(
        self,
        L: np.ndarray,
        n_left: np.ndarray,
        T: np.ndarray,
        N: float,
        VL: np.ndarray,
        VR: np.ndarray,
        VT: np.ndarray,
        valid: np.ndarray,
    ) -> np.ndarray | None:
        """Extra eligibility mask of shape (F, B) for the ``valid`` candidates, or None."""
        return None

    def _best_split(
        self, b: _Binned, H: np.ndarray, C: np.ndarray, min_size: int, tol: float
    ) -> tuple[int, int, float] | None:
        T = H[0].sum(axis=0)  # (M,) node totals
        N = C[0].sum()
        cumH = np.cumsum(H, axis=1)
        cumC = np.cumsum(C, axis=1)
        # numeric: left = bins <= b (x <= edge[b]); categorical: left = every category but b
        num = b.is_num[:, None]
        L = np.where(num[:, :, None], cumH, T - H)
        n_left = np.where(num, cumC, N - C)
        valid = (np.arange(b.n_bins)[None, :] < b.n_cand[:, None]) & (n_left >= min_size)
        valid &= N - n_left >= min_size
        if not valid.any():
            return None
        VT = self._arm_values(T, N)
        VL = self._arm_values(L, n_left)
        VR = self._arm_values(T - L, N - n_left)
        extra = self._eligible(L, n_left, T, N, VL, VR, VT, valid)
        if extra is not None:
            valid &= extra
            if not valid.any():
                return None
        total = VL.max(axis=2) + VR.max(axis=2)
        total = np.where(valid, total, -np.inf)
        flat = int(np.argmax(total))
        best = float(total.flat[flat])
        if best <= VT.max() + tol:
            return None
        f, bin_ = divmod(flat, b.n_bins)
        return f, bin_, best

    def _grow(
        self,
        b: _Binned,
        R: np.ndarray,
        idx: np.ndarray | None,
        n: int,
        H: np.ndarray,
        C: np.ndarray,
        depth: int,
        min_size: int,
        tol_unit: float,
    ) -> _Node:
        T = H[0].sum(axis=0)
        vals = self._arm_values(T, float(n))
        node = _Node(n=n, arm=int(np.argmax(vals)), value=float(vals.max()), values=vals)
        if depth >= self.max_depth or n < 2 * min_size:
            return node
        split = self._best_split(b, H, C, min_size, tol_unit * n)
        if split is None:
            return node
        f, bin_, _ = split
        codes = b.codes[f] if idx is None else b.codes[f, idx]
        go_left = codes <= bin_ if b.is_num[f] else codes != bin_
        all_idx = np.arange(n) if idx is None else idx
        left_idx, right_idx = all_idx[go_left], all_idx[~go_left]
        node.feature, node.bin = f, bin_
        if depth + 1 >= self.max_depth:  # children are leaves: their totals suffice
            left_total = R[left_idx].sum(axis=0)
            HL, HR = left_total[None, None, :], (T - left_total)[None, None, :]
            CL, CR = np.full((1, 1), float(len(left_idx))), np.full((1, 1), float(len(right_idx)))
        elif len(left_idx) <= len(right_idx):
            HL, CL = self._histogram(b, R, left_idx)
            HR, CR = H - HL, C - CL
        else:
            HR, CR = self._histogram(b, R, right_idx)
            HL, CL = H - HR, C - CR
        node.left = self._grow(b, R, left_idx, len(left_idx), HL, CL, depth + 1, min_size, tol_unit)
        node.right = self._grow(
            b, R, right_idx, len(right_idx), HR, CR, depth + 1, min_size, tol_unit
        )
        return node

    # ------------------------------------------------------------------ tree -> policy
    @staticmethod
    def _prune(node: _Node) -> set[int]:
        """Collapse subtrees whose leaves all give the same arm; return the arms below."""
        if node.left is None or node.right is None:
            return {node.arm}
        arms = GreedyTreePolicyLearner._prune(node.left) | GreedyTreePolicyLearner._prune(
            node.right
        )
        if len(arms) == 1:
            node.arm = next(iter(arms))
            node.left = node.right = None
        return arms

    def _leaves(
        self,
        node: _Node,
        path: list[Condition],
        b: _Binned,
        names: tuple[str, ...],
        out: list[tuple[list[Condition], _Node]],
    ) -> None:
        if node.left is None or node.right is None:
            out.append((path, node))
            return
        f, name = node.feature, names[node.feature]
        if b.is_num[f]:
            t = float(b.edges[f][node.bin])
            left, right = Condition(name, "<=", t), Condition(name, ">", t)
        else:
            cat = (b.categories[f][node.bin],)
            left, right = Condition(name, "not in", cat), Condition(name, "in", cat)
        self._leaves(node.left, [*path, left], b, names, out)
        self._leaves(node.right, [*path, right], b, names, out)

    @staticmethod
    def _simplify(path: list[Condition]) -> tuple[Condition, ...]:
        """One condition per (feature, side): the tightest bound, merged category sets."""
        out: dict[tuple[str, str], Condition] = {}
        for c in path:
            if isinstance(c.value, float):
                key = (c.feature, c.op)
                prev = out.get(key)
                if prev is None:
                    out[key] = c
                else:
                    bounds = (float(prev.value), float(c.value))  # type: ignore[arg-type]
                    out[key] = Condition(
                        c.feature, c.op, min(bounds) if c.op == "<=" else max(bounds)
                    )
                continue
            key = (c.feature, "cat")
            prev = out.get(key)
            if prev is None:
                out[key] = c
                continue
            a, bset = set(prev.value), set(c.value)  # type: ignore[arg-type]
            if prev.op == "in" and c.op == "in":
                merged = Condition(c.feature, "in", a & bset)
            elif prev.op == "in":
                merged = Condition(c.feature, "in", a - bset)
            elif c.op == "in":
                merged = Condition(c.feature, "in", bset - a)
            else:
                merged = Condition(c.feature, "not in", a | bset)
            out[key] = merged
        return tuple(out.values())

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        X: pd.DataFrame | np.ndarray,
        rewards: EffectPredictions | np.ndarray,
        *,
        arms: Sequence[str] | None = None,
        schema: FeatureSchema | None = None,
    ) -> GreedyTreePolicyLearner:
        """Grow the tree and build ``policy_``.

        Args:
            X: raw features, a DataFrame (numeric and categorical columns; the schema is
                inferred unless given) or a float array of shape (n_units, n_features)
                (features named x0, x1, ...).
            rewards: ndarray of shape (n_units, n_arms): the reward of giving each unit each
                arm, control first (e.g. :func:`policy_rewards`); or effects of shape
                (n_units, n_arms, n_outcomes) / EffectPredictions, combined with
                ``outcome_weights``.
            arms: arm labels, control first (default: from EffectPredictions, else
                ``control, arm_1, ...``).
            schema: the feature schema of a DataFrame ``X`` (e.g. ``ExperimentData.schema``).

        Returns:
            self.
        """
        t0 = time.perf_counter()
        n = len(X) if isinstance(X, pd.DataFrame) else int(np.shape(X)[0]) if np.ndim(X) else 0
        R, labels, outcomes = self._rewards(rewards, n, arms)
        return self._fit_arrays(X, R, labels, outcomes, schema, t0)

    def _fit_arrays(
        self,
        X: Any,
        R: np.ndarray,
        labels: tuple[str, ...],
        outcomes: tuple[str, ...],
        schema: FeatureSchema | None,
        t0: float,
    ) -> GreedyTreePolicyLearner:
        """Grow, prune and convert the tree over statistic columns R of shape (n, M)."""
        n = R.shape[0]
        K = len(labels)
        min_size = self._check_params(n)
        binned, names, kinds = self._bin(X, schema)
        H, C = (
            self._histogram(binned, R, None)
            if self.max_depth > 0
            else (R.sum(axis=0)[None, None, :], np.full((1, 1), float(n)))
        )
        tol_unit = 1e-9 * float(np.abs(R).max(initial=0.0))
        root = self._grow(binned, R, None, n, H, C, 0, min_size, tol_unit)
        leaves: list[tuple[list[Condition], _Node]] = []
        self._leaves(root, [], binned, names, leaves)
        reward = float(sum(leaf.value for _, leaf in leaves))
        # leaves before pruning: (simplified conditions, node); used by the iterative learner
        self.leaves_ = [(self._simplify(path), leaf) for path, leaf in leaves]
        self._prune(root)
        leaves = []
        self._leaves(root, [], binned, names, leaves)
        size = np.zeros(K)
        for _, leaf in leaves:
            size[leaf.arm] += leaf.n
        default = int(np.argmax(size))
        segments = tuple(
            Segment(self._simplify(path), labels[leaf.arm])
            for path, leaf in leaves
            if leaf.arm != default
        )
        self._set_fitted(segments, default, labels, names, kinds, outcomes, reward, t0)
        return self

    def _set_fitted(
        self,
        segments: tuple[Segment, ...],
        default: int,
        labels: tuple[str, ...],
        names: tuple[str, ...],
        kinds: tuple[str, ...],
        outcomes: tuple[str, ...],
        reward: float,
        t0: float,
    ) -> None:
        """Set ``policy_`` (default arm ``labels[default]``) and the other fitted attributes."""
        self.policy_ = TreePolicy(
            segments=segments,
            default_arm=labels[default],
            arms=labels,
            features=names,
            feature_kinds=kinds,
            outcomes=outcomes,
            name=f"{self._name_prefix}_d{self.max_depth}",
        )
        self.reward_ = reward
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        self.arms_ = labels
        self.fit_seconds_ = time.perf_counter() - t0

    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != self.n_features_in_:
            raise InputDataError(
                f"X must have shape (n_units, {self.n_features_in_}); got {arr.shape}"
            )
        return pd.DataFrame(arr, columns=list(self.feature_names_in_))

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Arm index per unit (0 = control) under ``policy_``, shape (n_units,)."""
        if not hasattr(self, "policy_"):
            raise NotFittedError("this GreedyTreePolicyLearner is not fitted yet; call 'fit' first")
        return self.policy_.assign_frame(self._frame(X))
