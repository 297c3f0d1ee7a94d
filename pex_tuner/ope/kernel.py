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

__all__ = [
    "accumulate_assignments",
    "accumulate_linear_mean",
    "accumulate_linear_snips",
    "linear_arm_index",
    "linear_utilities",
]

# Below this many units a chunk runs on one thread: thread start-up costs more than it saves,
# and OpenMP threads spin badly when the machine is busy with other work.
PARALLEL_MIN_UNITS = 32_768


def linear_utilities(tau: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """Utilities ``b_k + sum_j w_j tau[n, k, j]`` of one policy, shape (n_units, n_arms).

    Summed outcome by outcome in a fixed order, the same order as the batched kernel, so the
    one-policy and the batched paths pick identical arms (ties to the lowest index).
    """
    u = np.empty(tau.shape[:2])
    u[:] = np.asarray(biases, dtype=float)
    for j, w in enumerate(np.asarray(weights, dtype=float)):
        u += w * tau[:, :, j]
    return u


def linear_arm_index(tau: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """Arm index per unit (0 = control) of one linear-utility policy, shape (n_units,)."""
    return np.argmax(linear_utilities(tau, weights, biases), axis=1)


def _run(kernel, n: int, *args):
    threads = numba.get_num_threads()
    use = threads if n >= PARALLEL_MIN_UNITS else 1
    numba.set_num_threads(use)
    try:
        return kernel(*args, max(1, min(4 * use, n)))
    finally:
        numba.set_num_threads(threads)


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
def _mean_kernel(tau, Wt, Bt, mu, T, r, c, g, n_blocks):  # pragma: no cover - compiled
    # sums per (policy, arm) of [S, S**2, S * g] over the units the policy sends to the arm,
    # with the centred score S = (mu - c) + 1{T = arm} r built on the fly
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
        cn = cnt[b]
        for i in range(lo, hi):
            _choose_arms(tau, Wt, Bt, i, u, best, arm)
            logged = T[i]
            for p in range(P):
                k = arm[p]
                cn[p, k] += 1
                hit = 1.0 if k == logged else 0.0
                for j in range(J):
                    s = (mu[i, k, j] - c[j]) + hit * r[i, j]
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


def accumulate_linear_mean(
    tau: np.ndarray,
    W: np.ndarray,
    B: np.ndarray,
    mu: np.ndarray | None,
    T: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    g: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of [S, S**2, S * g] per (policy, chosen arm), mean-type estimators (dr, ips, dm).

    Args:
        tau: effects, shape (n, K, J). W: weights, shape (P, J). B: biases, shape (P, K).
        mu: outcome model, shape (n, K, J), or None (IPS).
        T: logged arm index, shape (n,). r, g: from ``estimators.residual_parts``, (n, J).
        c: centring shift, shape (J,).

    Returns:
        (sums of shape (P, K, 3J), counts of shape (P, K)).
    """
    n = tau.shape[0]
    f64 = np.float64
    # IPS has no outcome model: a zero one gives S = -c + 1{T = k} r, exactly its score
    mu_arr = np.zeros(tau.shape) if mu is None else np.ascontiguousarray(mu, dtype=f64)
    return _run(
        _mean_kernel,
        n,
        np.ascontiguousarray(tau, dtype=f64),
        np.ascontiguousarray(np.asarray(W, f64).T),
        np.ascontiguousarray(np.asarray(B, f64).T),
        mu_arr,
        np.ascontiguousarray(T, dtype=np.int64),
        np.ascontiguousarray(r, dtype=f64),
        np.ascontiguousarray(c, dtype=f64),
        np.ascontiguousarray(g, dtype=f64),
    )


def accumulate_linear_snips(
    tau: np.ndarray, W: np.ndarray, B: np.ndarray, w: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of [w, w y, w**2, w**2 y, w**2 y**2] per (policy, chosen arm) for SNIPS.

    Args:
        tau: effects, shape (n, K, J). W: weights, (P, J). B: biases, (P, K).
        w, y: from ``estimators.components`` for SNIPS: (n, K) weights and (n, J) outcomes.

    Returns:
        (sums of shape (P, K, 2 + 3J), counts of shape (P, K)).
    """
    n = tau.shape[0]
    f64 = np.float64
    return _run(
        _snips_kernel,
        n,
        np.ascontiguousarray(tau, dtype=f64),
        np.ascontiguousarray(np.asarray(W, f64).T),
        np.ascontiguousarray(np.asarray(B, f64).T),
        np.ascontiguousarray(w, dtype=f64),
        np.ascontiguousarray(y, dtype=f64),
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
