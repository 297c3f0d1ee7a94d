"""The dense design: many quasi-random policies evaluated in a few batched OPE passes.

A policy's OPE value costs microseconds per policy in the batched kernel
(``pex_tuner.ope.kernel``), while one BoTorch batch costs seconds. So the tuner starts its Ax
experiment with a dense scrambled-Sobol design over the policy space (``design_size`` policies,
1,024 by default), evaluated in passes of ``DESIGN_PASS`` policies, and only then lets ParEGO
refine. Every design policy is recorded in the tuner's evaluation log (frontier, hypervolume,
saved state); Ax gets the ``model_points`` design policies nearest the observed frontier as
attached trials (:func:`near_frontier`): attaching costs about 20 ms per trial in Ax 1.3 and a
GP's fit and acquisition cost grow with every observation (measured in
``benchmarks/results/tuning.md``: one batch of 8 took 10 s with 64 observations and 29 s with
200 on this machine), while the points far below the frontier tell the surrogate nothing the
acquisition needs.
"""

from __future__ import annotations

import numpy as np

from pex_tuner.tuning.frontier import pareto_mask
from pex_tuner.tuning.space import PolicySpace

__all__ = ["DESIGN_PASS", "design_parameters", "near_frontier"]

#: policies per batched OPE pass (memory is units x 4 accumulators per policy per thread)
DESIGN_PASS = 512


def design_parameters(space: PolicySpace, n: int, seed: int) -> list[dict[str, float]]:
    """``n`` parameterizations from a scrambled Sobol sequence over the space (uniform in the
    coordinates the tuner searches, as Ax's Sobol generator maps them).

    Args:
        space: the policy space.
        n: number of policies (>= 1).
        seed: scrambling seed (the tuner's random_state).

    Returns:
        A list of ``n`` dicts parameter name -> value.
    """
    from scipy.stats import qmc

    d = len(space.parameter_names)
    if d == 0:
        return [{}]
    u = qmc.Sobol(d=d, scramble=True, seed=seed).random(int(n))
    return space.from_unit(u)


def near_frontier(Y: np.ndarray, feasible: np.ndarray, m: int) -> np.ndarray:
    """Indices of about ``m`` rows of ``Y`` nearest the Pareto frontier: whole non-dominated
    layers of the feasible rows (the frontier, then the frontier of the rest, ...), the last
    layer thinned evenly; infeasible rows' layers only when fewer than ``m`` rows are feasible.

    Args:
        Y: objective values in maximization space, shape (P, M).
        feasible: whether each row meets the guardrails, bool of shape (P,).
        m: how many rows to return at most.

    Returns:
        Sorted int array of at most ``m`` row indices.
    """
    Y = np.asarray(Y, dtype=float)
    chosen: list[np.ndarray] = []
    count = 0
    for pool in (np.flatnonzero(feasible), np.flatnonzero(~np.asarray(feasible, dtype=bool))):
        rest = pool
        while len(rest) and count < m:
            mask = pareto_mask(Y[rest])
            layer, rest = rest[mask], rest[~mask]
            if count + len(layer) > m:
                keep = np.linspace(0, len(layer) - 1, m - count).round().astype(int)
                layer = layer[np.unique(keep)]
            chosen.append(layer)
            count += len(layer)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
