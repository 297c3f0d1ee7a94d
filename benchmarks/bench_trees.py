"""Benchmark: GreedyTreeSearch-HTE (binned, vectorized) vs econml's PolicyTree (exact search).

Setting (issue: tree learners): both learners run in this process on identical inputs,

* n = 1,000,000 training units, 11 features, 4 arms, depth 2;
* n = 1,000,000 training units, 30 features, 20 arms, depth 3.

Inputs are synthetic with known truth. Features mix continuous columns (uniform, normal,
log-normal) with a few discrete-valued ones (binary, 0..4, 0..9). The true reward of each arm,
``R(x)`` of shape (n, K) with control (arm 0) at zero, has planted piecewise heterogeneity
(steps and a two-feature interaction at thresholds that are not quantile edges) plus smooth
terms, so no depth-limited tree is exactly optimal. Both learners get the same noisy
"predicted" rewards ``R_hat = R + noise`` (what a CATE model would give: float64,
C-contiguous, one array shared by both). Regret of a policy pi is
``mean_i (max_k R[i, k] - R[i, pi(x_i)])`` on a held-out test set drawn from the same
distribution, with TRUE rewards; the oracle has regret 0.

Both learners get the same minimum leaf size (``--min-leaf``, default 1% of n, as a count):
``min_segment_size`` for ours, ``min_samples_leaf`` (and ``min_samples_split`` = 2x that) for
PolicyTree. PolicyTree runs with ``honest=False`` (ours is not honest either) and
``min_balancedness_tol=0.5``, which requires a fraction of at least 0.5 - 0.5 = 0 of the
node's units on each side, i.e. it switches the balance constraint off (ours has none), so the
two search the same space of splits up to our quantile binning.

Timed: ``fit`` only (data generation and the test-set predictions are outside), best of
``--repeats``. Memory: the rise of the process's resident-set high-water mark (VmHWM, reset
through /proc/self/clear_refs before each fit) over its resident size before the fit, which
counts C allocations that tracemalloc does not see (freed heap is trimmed first).

Usage:
    python benchmarks/bench_trees.py [--sizes 1000000x11x4x2,1000000x30x20x3] [--repeats 3]
        [--econml-repeats 2] [--econml-n N] [--n-bins 32,256,4096] [--test-n 200000] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pex_tuner.policies.greedy_tree import GreedyTreePolicyLearner

DEFAULT_SIZES = "1000000x11x4x2,1000000x30x20x3"


# ---------------------------------------------------------------------- synthetic truth
def make_truth(p: int, K: int, seed: int = 0) -> dict:
    """Random but fixed reward structure for p features and K arms (arm 0 = control = 0)."""
    rng = np.random.default_rng(seed)
    n_disc = 3
    kinds = []
    for j in range(p - n_disc):
        kinds.append(("uniform", "normal", "lognormal")[j % 3])
    kinds += ["binary", "int5", "int10"]
    informative = list(range(min(p, 8))) + list(range(p - n_disc, p))  # the rest is noise
    arms = []
    for _ in range(1, K):
        steps = []
        for _ in range(2):
            j = int(rng.choice(informative))
            steps.append((j, _threshold(kinds[j], rng), float(rng.normal(0, 0.6))))
        a, b = (int(v) for v in rng.choice(informative, 2, replace=False))
        inter = (a, _threshold(kinds[a], rng), b, _threshold(kinds[b], rng))
        arms.append(
            {
                "intercept": float(rng.normal(-0.15, 0.15)),
                "steps": steps,
                "inter": inter,
                "inter_size": float(rng.normal(0, 0.6)),
                "smooth": (int(rng.choice(informative)), float(rng.normal(0, 0.3))),
            }
        )
    return {"p": p, "K": K, "kinds": kinds, "arms": arms}


def _threshold(kind: str, rng: np.random.Generator) -> float:
    # thresholds at "odd" places (not at 1/32-quantiles), in the bulk of each distribution
    q = float(rng.uniform(0.2, 0.8))
    if kind == "uniform":
        return q
    if kind == "normal":
        return float(np.quantile(rng.normal(size=4001), q))
    if kind == "lognormal":
        return float(np.quantile(rng.lognormal(size=4001), q))
    if kind == "binary":
        return 0.5
    if kind == "int5":
        return float(rng.integers(0, 4)) + 0.5
    return float(rng.integers(1, 8)) + 0.5  # int10


def draw(truth: dict, n: int, noise_sd: float, seed: int) -> tuple[np.ndarray, ...]:
    """Features X (n, p), true rewards R (n, K) and noisy predictions R_hat (n, K)."""
    rng = np.random.default_rng(seed)
    p, K = truth["p"], truth["K"]
    X = np.empty((n, p))
    for j, kind in enumerate(truth["kinds"]):
        if kind == "uniform":
            X[:, j] = rng.uniform(0, 1, n)
        elif kind == "normal":
            X[:, j] = rng.normal(0, 1, n)
        elif kind == "lognormal":
            X[:, j] = rng.lognormal(0, 1, n)
        elif kind == "binary":
            X[:, j] = rng.integers(0, 2, n)
        elif kind == "int5":
            X[:, j] = rng.integers(0, 5, n)
        else:
            X[:, j] = rng.integers(0, 10, n)
    R = np.zeros((n, K))
    for k, arm in enumerate(truth["arms"], start=1):
        r = np.full(n, arm["intercept"])
        for j, t, size in arm["steps"]:
            r += size * (X[:, j] > t)
        a, ta, b, tb = arm["inter"]
        r += arm["inter_size"] * ((X[:, a] > ta) & (X[:, b] <= tb))
        j, size = arm["smooth"]
        z = (X[:, j] - X[:, j].mean()) / X[:, j].std()
        r += size * np.tanh(z)
        R[:, k] = r
    R_hat = np.ascontiguousarray(R + rng.normal(0, noise_sd, size=(n, K)))
    return X, R, R_hat


def arm_index(learner: GreedyTreePolicyLearner, X: np.ndarray) -> np.ndarray:
    """Arm index per row of the feature array X (n, F) under the learner's policy."""
    frame = pd.DataFrame(X, columns=list(learner.feature_names_in_))
    return learner.policy_.assign_index(frame)


def regret(R: np.ndarray, arm: np.ndarray) -> float:
    return float(losses(R, arm).mean())


def losses(R: np.ndarray, arm: np.ndarray) -> np.ndarray:
    """Per-unit regret, shape (n,): the paired difference of two policies' losses gives the
    standard error of their regret difference on the same test units."""
    return R.max(axis=1) - R[np.arange(len(R)), arm]


# ---------------------------------------------------------------------- measurement
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None


def measured_fit(fit) -> tuple[float, float, object]:
    """(seconds, MiB above the pre-fit resident size at the fit's peak, fitted model)."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)  # hand freed heap pages back, so earlier fits do not hide growth
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
    before = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    model = fit()
    sec = time.perf_counter() - t0
    peak = _rss_kib("VmHWM")
    return sec, (peak - before) / 1024, model


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------- main
def run_case(n, p, K, depth, args, log) -> dict:
    truth = make_truth(p, K, seed=args.seed)
    X, R, R_hat = draw(truth, n, args.noise_sd, seed=args.seed + 1)
    del R
    Xt, Rt, _ = draw(truth, args.test_n, args.noise_sd, seed=args.seed + 2)
    min_leaf = args.min_leaf if args.min_leaf >= 1 else int(np.ceil(args.min_leaf * n))
    out: dict = {"n": n, "p": p, "K": K, "depth": depth, "min_leaf": min_leaf, "rows": []}

    best_const = int(np.argmax(R_hat.mean(axis=0)))
    out["const_arm"] = best_const
    out["const_regret"] = regret(Rt, np.full(args.test_n, best_const))

    def train_welfare(arm):
        return float(R_hat[np.arange(n), arm].mean())

    # ours
    for n_bins in args.n_bins:
        times, mems = [], []
        model = None
        for _ in range(args.repeats):
            learner = GreedyTreePolicyLearner(
                max_depth=depth, min_segment_size=min_leaf, n_bins=n_bins, random_state=0
            )
            sec, mem, model = measured_fit(lambda learner=learner: learner.fit_rewards(X, R_hat))
            times.append(sec)
            mems.append(mem)
            log(f"  ours n_bins={n_bins}: {sec:.2f} s, +{mem:.0f} MiB")
        out["rows"].append(
            {
                "name": f"GreedyTreeSearch-HTE (ours, n_bins={n_bins})",
                "fit_n": n,
                "seconds": min(times),
                "all_seconds": times,
                "mem": max(mems),
                "regret": regret(Rt, arm_index(model, Xt)),
                "losses": losses(Rt, arm_index(model, Xt)),
                "welfare": train_welfare(arm_index(model, X)),
                "leaves": len(model.leaves_),
            }
        )

    # econml PolicyTree
    from econml.policy import PolicyTree

    en = n if args.econml_n is None else min(n, args.econml_n)
    e_leaf = min_leaf if en == n else max(1, int(np.ceil(min_leaf * en / n)))
    Xe, Re = (X, R_hat) if en == n else (X[:en], np.ascontiguousarray(R_hat[:en]))
    times, mems = [], []
    tree = None
    for _ in range(args.econml_repeats):
        tree = PolicyTree(
            max_depth=depth,
            min_samples_leaf=e_leaf,
            min_samples_split=2 * e_leaf,
            min_balancedness_tol=0.5,
            honest=False,
            random_state=0,
        )
        sec, mem, tree = measured_fit(lambda tree=tree: tree.fit(Xe, Re))
        times.append(sec)
        mems.append(mem)
        log(f"  econml PolicyTree (n={en:,}): {sec:.2f} s, +{mem:.0f} MiB")
    out["rows"].append(
        {
            "name": "econml PolicyTree" + ("" if en == n else f" (fit on first {en:,} units)"),
            "fit_n": en,
            "seconds": min(times),
            "all_seconds": times,
            "mem": max(mems),
            "regret": regret(Rt, tree.predict(Xt)),
            "losses": losses(Rt, tree.predict(Xt)),
            "welfare": train_welfare(tree.predict(X)),
            "leaves": int(tree.get_n_leaves()),
        }
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        type=str,
        default=DEFAULT_SIZES,
        help="comma-separated cases n x features x arms x depth",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed fits of ours per case")
    ap.add_argument("--econml-repeats", type=int, default=2, help="timed fits of PolicyTree")
    ap.add_argument(
        "--econml-n",
        type=int,
        default=None,
        help="fit PolicyTree on the first N units only (default: all n)",
    )
    ap.add_argument(
        "--n-bins", type=str, default="32,256,4096", help="comma-separated n_bins for our learner"
    )
    ap.add_argument(
        "--min-leaf", type=float, default=0.01, help="min leaf size: count, or fraction of n"
    )
    ap.add_argument("--noise-sd", type=float, default=1.0, help="sd of R_hat - R")
    ap.add_argument("--test-n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=str, default=None, help="write a markdown report here")
    args = ap.parse_args()
    args.n_bins = [int(v) for v in args.n_bins.split(",")]
    if args.min_leaf >= 1:
        args.min_leaf = int(args.min_leaf)

    import econml
    import scipy
    import sklearn

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load_start = load()
    t_start = time.perf_counter()
    cases = []
    for spec in args.sizes.split(","):
        n, p, K, depth = (int(v) for v in spec.lower().split("x"))
        log(f"case n={n:,} p={p} K={K} depth={depth}")
        cases.append(run_case(n, p, K, depth, args, log))
    wall = time.perf_counter() - t_start
    load_end = load()

    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    lines = [
        "# Tree benchmark: GreedyTreeSearch-HTE vs econml PolicyTree",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical cores (shared with other "
        f"work), Python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, scikit-learn {sklearn.__version__}, econml {econml.__version__}.",
        f"Load (`uptime`) at start: `{load_start}`; at end: `{load_end}`. Total wall time "
        f"{wall:,.0f} s.",
        "",
        "Inputs: synthetic with known truth (see the script's docstring): continuous and "
        f"discrete features, planted piecewise + smooth heterogeneity, learners fit on "
        f"`R_hat = R + N(0, {args.noise_sd:g}^2)`, identical float64 C-contiguous arrays for "
        f"both. Regret is measured with the true rewards on {args.test_n:,} held-out units "
        "(oracle = 0). Seconds: `fit` only, best of the listed runs. Memory: rise of the "
        "resident-set high-water mark over the pre-fit resident size, largest over runs. "
        "Leaves: ours before merging sibling leaves that give the same arm (like "
        "PolicyTree's count). Train welfare: mean of R_hat under the learned policy on the "
        "training units (the objective both maximize). Our quantile edges are placed on a "
        "200,000-row sample (the learner's `_EDGE_SAMPLE`), so even n_bins=4096 is not an "
        "exact search.",
        "",
        "Both learners are single-threaded: ours is numpy / scipy on one thread; econml's "
        "`PolicyTree` has no `n_jobs` (only `PolicyForest` has), so there is no parallel "
        "variant to report. PolicyTree: `honest=False`, `min_balancedness_tol=0.5` (no balance "
        "constraint, like ours), `min_samples_leaf` = our `min_segment_size`, "
        "`min_samples_split` = twice that, `random_state=0`.",
        "",
    ]
    for c in cases:
        lines += [
            f"## n = {c['n']:,}, {c['p']} features, {c['K']} arms, depth {c['depth']}",
            "",
            f"Minimum leaf: {c['min_leaf']:,} units (both learners).",
            "",
            "| learner | fit seconds | runs (s) | peak memory rise (MiB) | leaves | "
            "train welfare (mean R_hat) | test regret (true R) |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in c["rows"]:
            runs = ", ".join(f"{s:.2f}" for s in r["all_seconds"])
            lines.append(
                f"| {r['name']} | {r['seconds']:.2f} | {runs} | {r['mem']:,.0f} | "
                f"{r['leaves']} | {r['welfare']:.4f} | {r['regret']:.4f} |"
            )
        lines += [
            f"| assign everyone the best arm (arm {c['const_arm']}, by mean R_hat) | | | | 1 | "
            f"| {c['const_regret']:.4f} |",
            "| oracle (true best arm per unit) | | | | | | 0 |",
            "",
        ]
        theirs = c["rows"][-1]
        if theirs["fit_n"] == c["n"]:
            for ours, n_bins in zip(c["rows"][:-1], args.n_bins, strict=True):
                d = ours["losses"] - theirs["losses"]
                diff, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
                # "equal" = not significantly worse on the held-out units (paired, 2 SE)
                equal_or_lower = diff <= 2 * se
                met = ours["seconds"] <= theirs["seconds"] and equal_or_lower
                lines.append(
                    f"- n_bins={n_bins}: speed-up over PolicyTree "
                    f"**{theirs['seconds'] / ours['seconds']:.1f}x**, "
                    f"regret {ours['regret']:.5f} vs {theirs['regret']:.5f} (difference "
                    f"{diff:+.5f}, paired SE {se:.5f} over {len(d):,} test units; "
                    f"{'lower' if diff < 0 else 'higher' if diff > 2 * se else 'equal, 2 SE'})"
                    f" (target, at least as fast with equal or lower regret: "
                    f"{'met' if met else 'NOT met'})."
                )
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
