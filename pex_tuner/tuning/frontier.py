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
    """Hypervolume dominated by the rows of Y (P, M) above ``ref_point`` (M,)."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    Y = np.asarray(Y, dtype=float)
    ref = np.asarray(ref_point, dtype=float)
    if len(Y) == 0:
        return 0.0
    Y = Y[(ref < Y).all(axis=1)]
    if len(Y) == 0:
        return 0.0
    Y = Y[pareto_mask(Y)]
    if Y.shape[1] == 1:
        return float(Y.max() - ref[0])
    return float(Hypervolume(torch.as_tensor(ref)).compute(torch.as_tensor(Y)))


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
