"""Pareto frontier, hypervolume and hypervolume-maximizing candidate subsets (BoTorch).

All functions work in *maximization* space: multiply minimized objectives by -1 first
(``to_max_space``). Points that do not dominate the reference point add no hypervolume.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from pex_tuner.errors import ConfigurationError

__all__ = [
    "hypervolume",
    "pareto_mask",
    "select_candidates",
    "select_subset",
    "to_max_space",
]

# Exact subset search is used while the number of subsets stays below this; BoTorch's greedy
# selection (within (1 - 1/e) of optimal, hypervolume being submodular) beyond it.
EXACT_SUBSET_LIMIT = 3000


def to_max_space(values: np.ndarray, directions: tuple[str, ...]) -> np.ndarray:
    """Values of shape (P, M) with minimized columns negated."""
    sign = np.array([1.0 if d == "max" else -1.0 for d in directions])
    return np.asarray(values, dtype=float) * sign


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of Y (P, M), maximization."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    if len(Y) == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(torch.as_tensor(np.asarray(Y, dtype=float))).numpy()


def hypervolume(Y: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume dominated by the rows of Y (P, M) above ``ref_point`` (M,).

    Exact. Two and three objectives by a sweep (:func:`_sweep_hypervolume`); four or more by
    BoTorch's ``Hypervolume``. Why our own for M <= 3: BoTorch's exact algorithm took 4.7 s for
    300 frontier points in three objectives and 44 s for 1,000 on this machine, and the dense
    design's frontiers have hundreds of points (the sweep: milliseconds; equal to BoTorch's to
    1e-12 in ``tests/test_tuning_design.py``)."""
    Y = np.asarray(Y, dtype=float)
    ref = np.asarray(ref_point, dtype=float)
    if len(Y) == 0:
        return 0.0
    Y = Y[(ref < Y).all(axis=1)]
    if len(Y) == 0:
        return 0.0
    if Y.shape[1] == 1:
        return float(Y.max() - ref[0])
    if Y.shape[1] <= 3:
        return _sweep_hypervolume(Y, ref)
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    Y = Y[pareto_mask(Y)]
    return float(Hypervolume(torch.as_tensor(ref)).compute(torch.as_tensor(Y)))


def _area(xy: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by points ``xy`` (n, 2), all above ``ref`` (2,)."""
    order = np.argsort(-xy[:, 0], kind="stable")
    x, y = xy[order, 0], np.maximum.accumulate(xy[order, 1])
    widths = x - np.append(x[1:], ref[0])
    return float(np.sum(widths * (y - ref[1])))


def _sweep_hypervolume(Y: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of points Y (n, 2 or 3), all above ``ref``: the area sweep in two
    dimensions; in three, slabs between successive values of the last objective, each the
    area of the points at or above it (O(n^2 log n))."""
    if Y.shape[1] == 2:
        return _area(Y, ref)
    order = np.argsort(-Y[:, 2], kind="stable")
    Y = Y[order]
    z = np.append(Y[:, 2], ref[2])
    total = 0.0
    for i in range(len(Y)):
        depth = z[i] - z[i + 1]
        if depth > 0:
            total += depth * _area(Y[: i + 1, :2], ref[:2])
    return float(total)


def select_subset(Y: np.ndarray, ref_point: np.ndarray, k: int) -> np.ndarray:
    """Indices of k rows of Y whose hypervolume against ``ref_point`` is largest.

    Exact search over all subsets when there are at most ``EXACT_SUBSET_LIMIT`` of them,
    otherwise BoTorch's greedy ``get_hypervolume_maximizing_subset``. Ties (e.g. points that add
    nothing) are broken by the order of Y.
    """
    import torch
    from botorch.utils.multi_objective.hypervolume import get_hypervolume_maximizing_subset

    Y = np.asarray(Y, dtype=float)
    if not k >= 1:
        raise ConfigurationError(f"'k' must be a positive integer; got {k!r}")
    if k >= len(Y):
        return np.arange(len(Y))
    if comb(len(Y), k) <= EXACT_SUBSET_LIMIT:
        best, best_hv = None, -1.0
        for subset in combinations(range(len(Y)), k):
            hv = hypervolume(Y[list(subset)], ref_point)
            if hv > best_hv + 1e-15:
                best, best_hv = subset, hv
        return np.asarray(best)
    _, idx = get_hypervolume_maximizing_subset(
        k, torch.as_tensor(Y), torch.as_tensor(np.asarray(ref_point, dtype=float))
    )
    return idx.numpy()


def select_candidates(
    Y: np.ndarray, ref_point: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """The k frontier rows of Y (P, M) with the largest joint hypervolume against ``ref_point``.

    Takes the Pareto frontier of Y first. When no frontier point beats the reference on every
    objective (every subset has zero hypervolume), the nadir point of the frontier is used
    instead, so candidates still spread along the front.

    Returns:
        (indices into Y, sorted; the reference point used; its label: ``"given"`` or
        ``"nadir (no policy beats the reference on every objective)"``).
    """
    Y = np.asarray(Y, dtype=float)
    front = np.flatnonzero(pareto_mask(Y))
    F = Y[front]
    ref, label = np.asarray(ref_point, dtype=float), "given"
    if hypervolume(F, ref) == 0.0:
        ref = F.min(axis=0) - 1e-9 * (1.0 + np.abs(F.min(axis=0)))
        label = "nadir (no policy beats the reference on every objective)"
    idx = front[select_subset(F, ref, int(k))]
    return np.sort(idx), ref, label
