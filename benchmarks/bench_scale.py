"""Benchmark: the workflow on Dask over generated Parquet datasets (issue #12).

For each size (10M, 30M, 100M units by default; 10 features, 4 arms, 3 outcomes) on a local
cluster of ``--workers`` worker processes (one thread each, ``--memory-limit`` each):

1. fit the CATE model on a ``--sample-size`` sample of the train split, then predict every
   unit and persist the predictions as Parquet (``DistributedPredictions.compute``);
2. one DR OPE pass over ``--policies`` linear policies on every non-test unit (the offline
   tuner's ``train+validation``; predictions are out of fold for every unit);
3. a GreedyTreeSearch-HTE fit of depth 3 (``step_tree``, filled in by the trees half);
4. the OPE work of a ``--tuning-policies``-policy tuning run: baselines, a dense design and
   refinement batches of 8 (what the offline tuner sends), each batch one pass.

Each step reports seconds and the peak memory (RSS) of every worker, sampled every 0.5 s.
The same steps run in this single process on in-memory data at ``--in-memory-size``
(default: the smallest size), for comparison; in-memory prediction is timed on the first
``--in-memory-predict-rows`` units (one core, like a worker) and reported in rows per second.
Rows per second per core compare the Dask OPE pass with the in-memory kernel (which uses this
process's numba threads).

Resumable: datasets are generated once under ``--workdir`` (chunk files written atomically,
in parallel on the cluster) and reused; results are saved per size as JSON there, and the
markdown table is written from every size measured so far.

Usage:
    nice -n 10 python benchmarks/bench_scale.py --sizes 10000000 30000000 100000000 \\
        --workdir /work/scale_data --out benchmarks/results/scale.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scale_common import PeakMemory, base_learner, ensure_dataset  # benchmarks/ on sys.path

K, J = 4, 3
SPLIT = ("train", "validation")  # the offline tuner's default: every unit but the test split


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 30_000_000, 100_000_000])
    p.add_argument("--workdir", default="/work/scale_data")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="4GiB")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="rows per Parquet file (default: 250,000 below 10M units, else 1,000,000)",
    )
    p.add_argument("--sample-size", type=int, default=1_000_000)
    p.add_argument("--trees", type=int, default=50, help="LightGBM trees per model")
    p.add_argument("--policies", type=int, default=64)
    p.add_argument("--tuning-policies", type=int, default=200)
    p.add_argument("--in-memory-size", type=int, default=None)
    p.add_argument("--in-memory-predict-rows", type=int, default=1_000_000)
    p.add_argument("--skip", nargs="*", default=[], help="steps to skip: tree tuning memory")
    p.add_argument("--out", default="benchmarks/results/scale.md")
    p.add_argument("--report-only", action="store_true", help="rewrite the table from JSON")
    return p.parse_args(argv)


def policies(P: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    W = np.c_[np.ones(P), rng.uniform(0, 3, P), -rng.uniform(0, 1, P)]
    B = np.c_[np.zeros(P), rng.normal(scale=0.1, size=(P, K - 1))]
    return W, B


def step_predict(client: Any, exp: Any, args: argparse.Namespace, path: Path) -> tuple:
    from pex_tuner.distributed import DistributedCateModel, DistributedPredictions

    model = DistributedCateModel(
        sample_size=args.sample_size, base_learner=base_learner(args.trees), random_state=0
    )
    with PeakMemory(client) as fit_mem:
        model.fit(exp)
    with PeakMemory(client) as mem:
        preds = DistributedPredictions.compute(exp, model, path)
    out = mem.result(rows=exp.n_units, fit_seconds=round(fit_mem.seconds, 1))
    out["fit_peak_client_gb"] = fit_mem.result()["peak_client_gb"]
    return model, preds, out


def step_ope(client: Any, exp: Any, preds: Any, P: int, base: dict) -> dict[str, Any]:
    from pex_tuner.distributed import evaluate_linear_policies

    W, B = policies(P)
    with PeakMemory(client) as mem:
        ev = evaluate_linear_policies(exp, preds, W, B, estimator="dr", split=SPLIT, base=base)
    return mem.result(rows=ev.n_units, policies=P)


def step_tree(client: Any, exp: Any, preds: Any, args: argparse.Namespace) -> dict | None:
    """A GreedyTreeSearch-HTE fit of depth 3 on the partitioned experiment and its stored
    predictions (benchmarks/bench_scale_trees.py): ``PeakMemory(...).result()`` plus the
    policy; at ``--in-memory-size`` also the in-memory fit and whether the trees agree
    (under the key ``in_memory``)."""
    from bench_scale_trees import tree_step  # benchmarks/ is the script's folder

    in_memory = exp.n_units == args.in_memory_size and "memory" not in args.skip
    return tree_step(client, exp, preds, in_memory=in_memory)


def tuning_batches(n_policies: int) -> list[int]:
    """Batch sizes of a tuning run's OPE work: baselines (K), a design, refinement batches."""
    design = max(n_policies - 72, n_policies // 2)
    rest = n_policies - design
    return [K, design] + [8] * (rest // 8) + ([rest % 8] if rest % 8 else [])


def step_tuning(client: Any, exp: Any, preds: Any, n_policies: int) -> dict[str, Any]:
    from pex_tuner.distributed import DistributedOPEMetric

    batches = tuning_batches(n_policies)
    with PeakMemory(client) as mem:
        metric = DistributedOPEMetric(exp, preds, split=SPLIT, sample_size=10_000)
        for i, b in enumerate(batches):
            metric.evaluate_matrix(*policies(b, seed=1 + i))
    return mem.result(policies=sum(batches), passes=metric.passes)


# ---------------------------------------------------------------------- in memory
def in_memory(exp: Any, model: Any, preds: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Steps 1, 2 and 4 in this process on in-memory data: the same model, predictions and
    policies. Prediction is timed on the first ``--in-memory-predict-rows`` units (one core:
    LightGBM with n_jobs=1, as on the workers); OPE on every non-test unit, as on Dask."""
    import numba
    import pandas as pd

    from pex_tuner.ope import evaluate_linear_policies

    out: dict[str, Any] = {"threads": numba.get_num_threads()}
    with PeakMemory(None) as mem:
        rows = pd.concat([p.compute(scheduler="sync") for p in exp.partitions()])
        stored = pd.concat([p.compute(scheduler="sync") for p in preds.partitions()])
        keep = rows["_split"].isin(["train", "validation"]).to_numpy()
        head = rows.iloc[: args.in_memory_predict_rows]
        data = exp.to_local(rows.loc[keep])
        local_preds = preds.to_local(stored.loc[keep])
        del rows, stored
    out["load"] = mem.result(rows=data.n_units)
    with PeakMemory(None) as mem:
        model.predict_partition(exp.to_local(head), head["_fold"].to_numpy())
    out["predict"] = mem.result(rows=len(head))
    W, B = policies(args.policies)
    with PeakMemory(None) as mem:
        ev = evaluate_linear_policies(data, local_preds, W, B, estimator="dr")
    out["ope"] = mem.result(rows=ev.n_units, policies=args.policies)
    with PeakMemory(None) as mem:
        for i, b in enumerate(tuning_batches(args.tuning_policies)):
            evaluate_linear_policies(data, local_preds, *policies(b, seed=1 + i), estimator="dr")
    out["tuning"] = mem.result(policies=args.tuning_policies, rows=data.n_units)
    return out


# ---------------------------------------------------------------------- report
def _cell(step: dict | None) -> str:
    if not step:
        return "not run"
    peak = step.get("peak_worker_gb") or step.get("peak_client_gb")
    return f"{step['seconds']:.0f} s / {peak:.2f} GB"


def _per_core(step: dict, cores: int) -> float:
    return step["rows"] / step["seconds"] / cores


def _per_cpu(step: dict) -> str:
    cpu = step.get("cpu_seconds")
    return f"{step['rows'] / cpu:,.0f}" if cpu else "n/a"


def write_report(results: list[dict], args: argparse.Namespace, argv: list[str] | None) -> None:
    """benchmarks/results/scale.md: one row per size, then the in-memory comparison."""
    lines = [
        "# Scale: the workflow on Dask over Parquet (issue #12)",
        "",
        "Command: `nice -n 10 python benchmarks/bench_scale.py "
        + " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only")
        + "`",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; a LocalCluster of {args.workers} worker processes x 1 "
        f"thread, memory limit {args.memory_limit} each. Data: write_synthetic_parquet, 10 "
        f"features (9 numeric, 1 categorical), 4 arms, 3 outcomes, "
        f"{args.chunk_size or '250,000 (1,000,000 from 10M units)'} rows per file (one partition "
        f"each). CATE: T-learner per hash fold (2 folds), LightGBM {args.trees} trees x 15 "
        f"leaves per (arm, outcome), fitted on a {args.sample_size:,}-unit sample of the "
        "train split. Cells: seconds / peak RSS of the largest worker (in memory: of the "
        "process).",
        "",
        "| units | validate | fit (client) | predict + persist | OPE shift pass | DR OPE, "
        f"{args.policies} policies | OPE rows/s/core (per CPU-s) | tree depth 3 | tuning OPE "
        f"({args.tuning_policies} policies) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cores = args.workers
    for r in results:
        lines.append(
            f"| {r['n_units']:,} | {_cell(r['validate'])} | {r['predict']['fit_seconds']:.0f} s | "
            f"{_cell(r['predict'])} | {_cell(r['ope_shift_pass'])} | {_cell(r['ope'])} | "
            f"{_per_core(r['ope'], cores):,.0f} ({_per_cpu(r['ope'])}) | {_cell(r.get('tree'))} | "
            f"{_cell(r.get('tuning'))}"
            + (f" ({r['tuning']['passes']} passes)" if r.get("tuning") else "")
            + " |"
        )
    for r in results:
        m = r.get("in_memory")
        if not m:
            continue
        t = m["threads"]
        lines.append(
            f"| {r['n_units']:,} in memory (1 process, {t} numba threads) | | | "
            f"{_per_core(m['predict'], 1):,.0f} rows/s (1 core, first {m['predict']['rows']:,} "
            f"units) | | {_cell(m['ope'])} | {_per_core(m['ope'], t):,.0f} ({_per_cpu(m['ope'])}) "
            "| | "
            f"{_cell(m['tuning'])} |"
        )
    lines += ["", *_ratios(results, cores), "", *_projections(results), "", *NOTES]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


NOTES = [
    "Reading it: wall seconds were measured on a 2-core machine shared with other jobs (load",
    "average 11-16), so they overstate what dedicated cores need; the per-CPU-second figures",
    "and the projections use the workers' own CPU time. Peak memory per worker follows the",
    "partition size (1M rows: about 1.6 GB), not the dataset size. Sizes above 10M were not run",
    'in this session (see the README, "Running on a cluster"); their rows are projections.',
]


def _projections(results: list[dict]) -> list[str]:
    """Worker CPU-seconds per row at the largest size, scaled to 100M units on these 2
    workers and to 1B units on 100 one-thread workers (linear in rows, as measured)."""
    if not results:
        return []
    r = results[-1]
    out = [
        f"Projected from the {r['n_units']:,}-unit run (worker CPU-seconds per row, linear in "
        "rows; a dedicated core gives one CPU-second per second):",
        "",
        "| step | 100M units, 2 workers | 1B units, 100 workers |",
        "|---|---|---|",
    ]
    for step in ("predict", "ope", "tree", "tuning"):
        cpu = (r.get(step) or {}).get("cpu_seconds")
        if not cpu:
            continue
        per_row = cpu / r["n_units"]
        out.append(
            f"| {step} | {per_row * 1e8 / 2 / 60:,.0f} min | {per_row * 1e9 / 100 / 60:,.1f} min |"
        )
    return out


def _ratios(results: list[dict], cores: int) -> list[str]:
    out = []
    if len(results) >= 2:
        a, b = results[0], results[-1]
        x = b["n_units"] / a["n_units"]
        for step in ("predict", "ope", "tuning"):
            if a.get(step) and b.get(step):
                ratio = b[step]["seconds"] / a[step]["seconds"]
                out.append(
                    f"- {step}: {b['n_units']:,} / {a['n_units']:,} units ({x:.0f}x rows) took "
                    f"{ratio:.1f}x the time."
                )
    for r in results:
        out.append(
            f"- predict + persist at {r['n_units']:,} units: "
            f"{_per_core(r['predict'], cores):,.0f} rows/s/core on Dask "
            f"({_per_cpu(r['predict'])} rows per worker CPU-second)."
        )
        m = r.get("in_memory")
        if m:
            out.append(
                f"- in-memory prediction (same model, 1 core): "
                f"{_per_core(m['predict'], 1):,.0f} rows/s ({_per_cpu(m['predict'])} rows per "
                "CPU-second)."
            )
            d = _per_core(r["ope"], cores)
            s = _per_core(m["ope"], m["threads"])
            out.append(
                f"- DR OPE at {r['n_units']:,} units: Dask {d:,.0f} rows/s/core vs in-memory "
                f"kernel {s:,.0f} rows/s/core ({d / s:.0%}); per CPU-second "
                f"{_per_cpu(r['ope'])} vs {_per_cpu(m['ope'])}."
            )
    return out


# ---------------------------------------------------------------------- driver
def run_size(client: Any, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from pex_tuner.distributed import DistributedExperiment
    from pex_tuner.distributed.ope import base_sums

    workdir = Path(args.workdir)
    chunk = args.chunk_size or (250_000 if n < 10_000_000 else 1_000_000)
    info = ensure_dataset(workdir, n, chunk)
    res: dict[str, Any] = {"n_units": n, "workers": args.workers, "memory_limit": args.memory_limit}
    with PeakMemory(client) as mem:
        exp = DistributedExperiment.from_parquet(info.path, n_folds=2, **info.options)
    res["validate"] = mem.result(rows=exp.n_units, partitions=exp.npartitions)
    print(f"{n:,}: validated in {mem.seconds:.0f} s", flush=True)
    model, preds, res["predict"] = step_predict(client, exp, args, workdir / f"predictions_{n}")
    print(f"{n:,}: predicted {res['predict']}", flush=True)
    with PeakMemory(client) as mem:
        base = base_sums(exp, preds, SPLIT)
    res["ope_shift_pass"] = mem.result(rows=int(base["n"][0]))
    res["ope"] = step_ope(client, exp, preds, args.policies, base)
    print(f"{n:,}: OPE {res['ope']}", flush=True)
    if "tree" not in args.skip:
        res["tree"] = step_tree(client, exp, preds, args)
    if "tuning" not in args.skip:
        res["tuning"] = step_tuning(client, exp, preds, args.tuning_policies)
        print(f"{n:,}: tuning {res['tuning']}", flush=True)
    if n == args.in_memory_size and "memory" not in args.skip:
        res["in_memory"] = in_memory(exp, model, preds, args)
        print(f"{n:,}: in memory {res['in_memory']}", flush=True)
    (workdir / f"result_{n}.json").write_text(json.dumps(res, indent=2), encoding="utf-8")
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.in_memory_size = args.in_memory_size or min(args.sizes)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        from pex_tuner.distributed.client import local_cluster

        client = local_cluster(args.workers, memory_limit=args.memory_limit, dashboard_address=None)
        try:
            for n in sorted(args.sizes):
                run_size(client, n, args)
        finally:
            client.close()
            client.cluster.close()
    results = [
        json.loads((workdir / f"result_{n}.json").read_text(encoding="utf-8"))
        for n in sorted(args.sizes)
        if (workdir / f"result_{n}.json").exists()
    ]
    write_report(results, args, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
