"""The batched evaluation kernel: many linear policies in one pass over the units.

For every unit i and policy p the kernel computes the linear utilities
``u_k = b_pk + sum_j w_pj tau[i, k, j]``, picks the argmax arm a (ties to the lowest index,
control first) and adds the unit's statistic row ``R[i, a, :]`` to the running sums of (p, a).
Nothing of size n x policies (let alone n x arms x policies) is ever stored; memory is the
chunk of statistics plus P x K x M accumulators per thread.

Why our own kernel rather than numpy: the numpy formulation must materialize utilities of shape
(chunk, P, K), an argmax array and a gather per policy, which is memory-bound and about an order
of magnitude slower than this fused loop (see benchmarks/results/ope.md). numba compiles it
once (cached on disk) and runs it on all cores.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["accumulate_assignments", "accumulate_linear"]


@numba.njit(inline="always")
def _choose_arms(tau, Wt, Bt, i, u, best, arm):  # pragma: no cover - compiled
    # arm[p] = argmax_k Bt[k, p] + sum_j Wt[j, p] * tau[i, k, j] for all policies p at once.
    # Loops run k, j outer and p inner so the policy loop vectorizes (SIMD) and the argmax is a
    # branch-free select; utilities are summed in the same order as LinearUtilityPolicy.
    K, J = tau.shape[1], tau.shape[2]
    P = Wt.shape[1]
    for k in range(K):
        for p in range(P):
            u[p] = Bt[k, p]
        for j in range(J):
            t = tau[i, k, j]
            for p in range(P):
                u[p] += Wt[j, p] * t
        if k == 0:
            for p in range(P):
                best[p] = u[p]
                arm[p] = 0
        else:
            for p in range(P):
                better = u[p] > best[p]
                arm[p] = k if better else arm[p]
                best[p] = u[p] if better else best[p]


@numba.njit(parallel=True, cache=True, nogil=True)
def _mean_kernel(tau, Wt, Bt, S, g, n_blocks):  # pragma: no cover - compiled
    # sums per (policy, arm) of [S, S**2, S * g] over the units the policy sends to the arm
    n, K, J = tau.shape
    P = Wt.shape[1]
    acc = np.zeros((n_blocks, P, K, 3 * J))
    cnt = np.zeros((n_blocks, P, K), dtype=np.int64)
    step = (n + n_blocks - 1) // n_blocks
    for b in numba.prange(n_blocks):
        lo = b * step
        hi = min(n, lo + step)
        u = np.empty(P)
        best = np.empty(P)
        arm = np.empty(P, dtype=np.int64)
        a = acc[b]
        c = cnt[b]
        for i in range(lo, hi):
            _choose_arms(tau, Wt, Bt, i, u, best, arm)
            for p in range(P):
                k = arm[p]
                c[p, k] += 1
                for j in range(J):
                    s = S[i, k, j]
                    a[p, k, j] += s
                    a[p, k, J + j] += s * s
                    a[p, k, 2 * J + j] += s * g[i, j]
    return acc.sum(axis=0), cnt.sum(axis=0)


@numba.njit(parallel=True, cache=True, nogil=True)
def _snips_kernel(tau, Wt, Bt, w, y, n_blocks):  # pragma: no cover - compiled
    # sums per (policy, arm) of [w, w y, w**2, w**2 y, w**2 y**2]
    n, K, J = tau.shape
    P = Wt.shape[1]
    acc = np.zeros((n_blocks, P, K, 2 + 3 * J))
    cnt = np.zeros((n_blocks, P, K), dtype=np.int64)
    step = (n + n_blocks - 1) // n_blocks
    for b in numba.prange(n_blocks):
        lo = b * step
        hi = min(n, lo + step)
        u = np.empty(P)
        best = np.empty(P)
        arm = np.empty(P, dtype=np.int64)
        a = acc[b]
        c = cnt[b]
        for i in range(lo, hi):
            _choose_arms(tau, Wt, Bt, i, u, best, arm)
            for p in range(P):
                k = arm[p]
                c[p, k] += 1
                wi = w[i, k]
                if wi != 0.0:
                    w2 = wi * wi
                    a[p, k, 0] += wi
                    a[p, k, 1 + J] += w2
                    for j in range(J):
                        yj = y[i, j]
                        a[p, k, 1 + j] += wi * yj
                        a[p, k, 2 + J + j] += w2 * yj
                        a[p, k, 2 + 2 * J + j] += w2 * yj * yj
    return acc.sum(axis=0), cnt.sum(axis=0)


def accumulate_linear(
    tau: np.ndarray,
    W: np.ndarray,
    B: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    *,
    snips: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of statistics per (policy, chosen arm) for linear-utility policies.

    Args:
        tau: effects, shape (n, K, J), float64.
        W: weights, shape (P, J). B: biases, shape (P, K).
        first, second: the estimator's components (see ``estimators.components``):
            mean-type (S of shape (n, K, J), g of shape (n, J)); SNIPS (w of shape (n, K),
            y of shape (n, J)).
        snips: which of the two kernels to run.

    Returns:
        (sums of shape (P, K, M), counts of shape (P, K)), M as in ``estimators.statistics``.
    """
    n = tau.shape[0]
    n_blocks = max(1, min(4 * numba.get_num_threads(), n))
    kernel = _snips_kernel if snips else _mean_kernel
    return kernel(
        np.ascontiguousarray(tau, dtype=np.float64),
        np.ascontiguousarray(np.asarray(W, dtype=np.float64).T),
        np.ascontiguousarray(np.asarray(B, dtype=np.float64).T),
        np.ascontiguousarray(first, dtype=np.float64),
        np.ascontiguousarray(second, dtype=np.float64),
        n_blocks,
    )


def accumulate_assignments(A: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of statistics per (policy, arm) for explicit assignments.

    Args:
        A: arm index per unit and policy, int array of shape (n, P).
        R: statistics, shape (n, K, M).

    Returns:
        (sums of shape (P, K, M), counts of shape (P, K)).
    """
    _n, K, M = R.shape
    P = A.shape[1]
    sums = np.zeros((P, K, M))
    counts = np.zeros((P, K), dtype=np.int64)
    for p in range(P):
        a = A[:, p]
        for k in range(K):
            mask = a == k
            counts[p, k] = int(mask.sum())
            if counts[p, k]:
                sums[p, k] = R[mask, k, :].sum(axis=0)
    return sums, counts
