"""Benchmark: doubly robust OPE of many linear policies, batched kernel vs a per-policy loop.

Setting (issue #2): n = 1,000,000 units, 4 arms, 3 outcomes, 64 linear-utility policies, DR.
Both run in this process on identical inputs:

* batched: ``pex_tuner.evaluate_linear_policies`` (chunked, fused numba kernel);
* peer: a plain per-policy numpy loop (utilities, argmax, gather of DR scores, mean / se /
  paired lift), with everything that does not depend on the policy precomputed once.

Reported: row-policy evaluations per second (n x P / seconds), the ratio, peak memory traced
during each phase (numpy allocations via tracemalloc) and the process's peak RSS, and the largest
difference between the two results. Targets: >= 1e8 row-policy evaluations / s, >= 10x the loop,
peak memory < 2 GB.

Usage:
    python benchmarks/bench_ope.py [--n 1000000] [--policies 64] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.effects import EffectPredictions
from pex_tuner.ope import evaluate_linear_policies


def make_inputs(n: int, K: int, J: int, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    W = rng.integers(0, K, size=n)
    tau = rng.normal(0, 1, size=(n, K, J))
    tau[:, 0, :] = 0.0
    mu0 = rng.normal(0, 1, size=(n, J))
    mu = mu0[:, None, :] + tau
    Y = mu[np.arange(n), W] + rng.normal(0, 1, size=(n, J))
    frame = pd.DataFrame({"x": rng.normal(size=n)})
    arms = [f"a{k}" for k in range(K)]
    frame["arm"] = np.asarray(arms, dtype=object)[W]
    for j in range(J):
        frame[f"y{j}"] = Y[:, j]
    data = ExperimentData.from_frame(
        frame, treatment="arm", control="a0", outcomes={f"y{j}": "max" for j in range(J)}
    )
    pred = EffectPredictions(tau=tau, mu=mu, arms=data.arms, outcomes=data.outcomes)
    return data, pred


def per_policy_loop(data: ExperimentData, pred: EffectPredictions, Wm: np.ndarray, Bm: np.ndarray):
    """The peer: one numpy pass per policy (DR value, se, paired lift and its se)."""
    n = data.n_units
    rows = np.arange(n)
    T, Y, p, mu, tau = data.treatment, data.Y, data.propensity, pred.mu, pred.tau
    resid = (Y - mu[rows, T]) / p[:, None]  # (n, J), policy independent
    gc = mu[:, 0, :] + (T == 0)[:, None] * resid  # control DR score
    out = []
    for w, b in zip(Wm, Bm, strict=True):
        u = tau @ w + b  # (n, K)
        a = np.argmax(u, axis=1)
        g = mu[rows, a] + (a == T)[:, None] * resid  # (n, J)
        d = g - gc
        out.append(
            (g.mean(0), g.std(0, ddof=1) / np.sqrt(n), d.mean(0), d.std(0, ddof=1) / np.sqrt(n))
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--arms", type=int, default=4)
    ap.add_argument("--outcomes", type=int, default=3)
    ap.add_argument("--policies", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=str, default=None, help="write a markdown table here")
    args = ap.parse_args()

    n, K, J, P = args.n, args.arms, args.outcomes, args.policies
    data, pred = make_inputs(n, K, J)
    rng = np.random.default_rng(1)
    Wm = rng.normal(0, 1, size=(P, J))
    Bm = rng.normal(0, 0.5, size=(P, K))
    Bm[:, 0] = 0.0

    # warm-up: compile (or load the cached) kernel on a small slice
    small = data.subset(np.arange(min(n, 5000)))
    evaluate_linear_policies(small, pred.subset(np.arange(min(n, 5000))), Wm, Bm)

    def timed(fn):
        best = np.inf
        res = None
        tracemalloc.start()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = fn()
            best = min(best, time.perf_counter() - t0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return best, peak, res

    t_batch, mem_batch, res = timed(lambda: evaluate_linear_policies(data, pred, Wm, Bm))
    t_loop, mem_loop, loop = timed(lambda: per_policy_loop(data, pred, Wm, Bm))

    lv = np.array([o[0] for o in loop])
    ls = np.array([o[1] for o in loop])
    ll = np.array([o[2] for o in loop])
    lls = np.array([o[3] for o in loop])
    max_diff = max(
        np.abs(res.value - lv).max(),
        np.abs(res.se - ls).max(),
        np.abs(res.lift - ll).max(),
        np.abs(res.lift_se - lls).max(),
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    rate_b = n * P / t_batch
    rate_l = n * P / t_loop
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    lines = [
        "# OPE benchmark: batched doubly robust evaluation vs a per-policy numpy loop",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}.",
        f"Setting: n = {n:,} units, {K} arms, {J} outcomes, {P} linear policies, DR estimator, "
        f"best of {args.repeats} runs.",
        "",
        "| method | seconds | row-policy evals / s | peak traced memory (MiB) |",
        "| --- | ---: | ---: | ---: |",
        f"| batched (`evaluate_linear_policies`) | {t_batch:.3f} | {rate_b:,.0f} | "
        f"{mem_batch / 2**20:,.0f} |",
        f"| per-policy numpy loop | {t_loop:.3f} | {rate_l:,.0f} | {mem_loop / 2**20:,.0f} |",
        "",
        f"Speed-up of batched over loop: **{t_loop / t_batch:.1f}x**. Process peak RSS "
        f"(inputs included): {rss:,.0f} MiB. Largest difference between the two results: "
        f"{max_diff:.2e}.",
        "",
        "Targets: >= 100,000,000 row-policy evaluations / s "
        f"({'met' if rate_b >= 1e8 else 'NOT met'}), >= 10x the loop "
        f"({'met' if t_loop / t_batch >= 10 else 'NOT met'}), peak memory < 2 GB "
        f"({'met' if max(rss, mem_batch / 2**20) < 2048 else 'NOT met'}).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
