"""Benchmark: GreedyTreeSearch-HTE of depth 3 on Dask over Parquet, vs in memory (issue #12).

Step 3 of benchmarks/bench_scale.py (``step_tree`` calls :func:`tree_step`), runnable alone:
for each size (10M units by default; 10 features, 4 arms, 3 outcomes, generated once by
``write_synthetic_parquet`` under ``--workdir`` and shared with bench_scale.py) on a
LocalCluster of ``--workers`` worker processes (``--memory-limit`` each), fit
:class:`~pex_tuner.distributed.greedy_tree.DaskGreedyTreeLearner` (depth 3, 256 bins, leaves
of at least 5% of the train split) on the train split, and report the seconds and the peak
RSS of every worker (sampled every 0.5 s). Inside bench_scale.py the rewards are the stored
predictions of its step 1; alone, a quick T-learner (depth-6 scikit-learn trees, fitted on a
20,000-unit sample) predicts every partition in every pass (``fit(..., model=)``), so nothing
but the dataset is written.

At ``--in-memory-size`` (default: the smallest size) the same fit runs in this single process
with :class:`~pex_tuner.policies.GreedyTreePolicyLearner` on the gathered train split, and
the two trees are compared (with more than 200,000 train units the bin edges come from
different 200,000-unit samples, a seeded row sample in memory and a hash sample on Dask, so
thresholds may differ slightly).

Usage:
    nice -n 10 python benchmarks/bench_scale_trees.py --sizes 10000000 30000000 100000000 \\
        --workdir /work/scale_data --out benchmarks/results/scale_trees.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = (1.0, 1.0, -0.5)  # engagement, retention, cost
PARAMS = {"max_depth": 3, "min_segment_size": 0.05, "n_bins": 256, "random_state": 0}


def quick_model(exp: Any) -> Any:
    """A cheap fitted CATE model (T-learner, depth-6 trees) on a 20,000-unit train sample."""
    from sklearn.tree import DecisionTreeRegressor

    from pex_tuner.effects import CateModel

    sample = exp.sample(20_000, 0, split="train")
    base = DecisionTreeRegressor(max_depth=6, min_samples_leaf=50, random_state=0)
    return CateModel(base_learner=base, n_folds=2, random_state=0, progress=False).fit(sample)


def _gather_train(exp: Any, preds: Any, model: Any) -> tuple[Any, np.ndarray]:
    """The train split in this process, partition by partition: (features, tau)."""
    import pandas as pd

    feats, taus = [], []
    pred_parts = [None] * len(exp.partitions()) if preds is None else preds.partitions()
    for part, pred in zip(exp.partitions(), pred_parts, strict=True):
        pdf = part.compute(scheduler="sync")
        mask = (pdf["_split"] == "train").to_numpy()
        if pred is None:
            tau = model.predict(exp.to_local(pdf.loc[mask]), out_of_fold="never").tau
        else:
            tau = preds.to_local(pred.compute(scheduler="sync").loc[mask]).tau
        feats.append(pdf.loc[mask, list(exp.features)])
        taus.append(tau)
    return pd.concat(feats, ignore_index=True), np.concatenate(taus)


def _shape(policy: Any) -> list[Any]:
    """The tree's structure without thresholds: per segment its (feature, operator) pairs
    and arm, then the default arm."""
    segs = [([(c.feature, c.op) for c in s.conditions], s.arm) for s in policy.segments]
    return [*segs, policy.default_arm]


def _in_memory(exp: Any, preds: Any, model: Any, dask_learner: Any) -> dict[str, Any]:
    from scale_common import PeakMemory

    from pex_tuner.policies import GreedyTreePolicyLearner

    with PeakMemory(None) as mem:
        t0 = time.perf_counter()
        frame, tau = _gather_train(exp, preds, model)
        gather_s = time.perf_counter() - t0
        learner = GreedyTreePolicyLearner(outcome_weights=WEIGHTS, **PARAMS).fit_rewards(
            frame, tau, arms=exp.arms, schema=exp.schema
        )
    same = learner.policy_.segments == dask_learner.policy_.segments
    shape = [_shape(m.policy_) for m in (learner, dask_learner)]
    return mem.result(
        rows=len(frame),
        gather_seconds=round(gather_s, 1),
        fit_seconds=round(learner.fit_seconds_, 1),
        same_tree=bool(same and learner.policy_.default_arm == dask_learner.policy_.default_arm),
        same_structure=shape[0] == shape[1],
        reward_ratio=round(dask_learner.reward_ / learner.reward_, 6),
        policy=learner.policy_.describe(),
    )


def tree_step(
    client: Any, exp: Any, preds: Any, *, in_memory: bool, model: Any = None
) -> dict[str, Any]:
    """Seconds and peak memory per worker of a depth-3 Dask fit (and in memory if asked).

    Args:
        client: the Dask client; exp: DistributedExperiment; preds: DistributedPredictions,
            or None to predict with ``model`` in every pass.
        in_memory: also fit in this process and compare.
    """
    from scale_common import PeakMemory

    from pex_tuner.distributed.greedy_tree import DaskGreedyTreeLearner

    learner = DaskGreedyTreeLearner(outcome_weights=WEIGHTS, **PARAMS)
    with PeakMemory(client) as mem:
        learner.fit(exp, preds, model=model if preds is None else None)
    out = mem.result(
        rows=learner.n_units_,
        rewards="stored predictions" if preds is not None else "model, every pass",
        policy=learner.policy_.describe(),
    )
    print(f"{exp.n_units:,}: tree {out}", flush=True)
    if in_memory:
        out["in_memory"] = _in_memory(exp, preds, model, learner)
        print(f"{exp.n_units:,}: tree in memory {out['in_memory']}", flush=True)
    return out


# ---------------------------------------------------------------------- standalone
def _cell(step: dict | None, key: str = "peak_worker_gb") -> str:
    if not step:
        return "not run"
    return f"{step['seconds']:.0f} s / {step.get(key) or step['peak_client_gb']:.2f} GB"


def _same(m: dict) -> str:
    if m["same_tree"]:
        return "yes"
    return "same structure, thresholds differ" if m.get("same_structure") else "no"


def write_report(results: list[dict], args: argparse.Namespace) -> None:
    lines = [
        "# Scale: GreedyTreeSearch-HTE of depth 3 on Dask over Parquet (issue #12)",
        "",
        "Command: `nice -n 10 python benchmarks/bench_scale_trees.py "
        + " ".join(sys.argv[1:])
        + "`",
        "",
        f"Machine: {os.cpu_count()} cores (shared), {platform.platform()}, Python "
        f"{platform.python_version()}; a LocalCluster of {args.workers} worker processes x 1 "
        f"thread, memory limit {args.memory_limit} each. Data: write_synthetic_parquet, 10 "
        f"features, 4 arms, 3 outcomes, {args.chunk_size:,} rows per file; rewards: a quick "
        "T-learner's effects (depth-6 trees on a 20,000-unit sample, predicted in every "
        "pass) weighted (1, 1, -0.5); tree: depth 3, 256 bins, leaves >= 5% of the train "
        "split (42% of the units). Cells: seconds / peak RSS of the largest worker (in "
        "memory: of the process, gathering included).",
        "",
        "| units | train units | Dask fit (2 workers) | in memory (1 process) | same tree |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        t, m = r["tree"], r["tree"].get("in_memory")
        lines.append(
            f"| {r['n_units']:,} | {t['rows']:,} | {_cell(t)} | "
            + (f"{_cell(m, 'peak_client_gb')} (fit {m['fit_seconds']:.0f} s) | " if m else "| ")
            + (
                f"{'yes' if m['same_tree'] else 'no'} (reward ratio {m['reward_ratio']}) |"
                if m
                else " |"
            )
        )
    if len(results) >= 2:
        a, b = results[0], results[-1]
        ratio = b["tree"]["seconds"] / a["tree"]["seconds"]
        lines += [
            "",
            f"- {b['n_units']:,} / {a['n_units']:,} units "
            f"({b['n_units'] / a['n_units']:.0f}x rows) took {ratio:.1f}x the time.",
        ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    from scale_common import ensure_dataset

    from pex_tuner.distributed import DistributedExperiment
    from pex_tuner.distributed.client import local_cluster

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000_000])
    p.add_argument("--workdir", default="/work/scale_data")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="4GiB")
    p.add_argument("--chunk-size", type=int, default=1_000_000)
    p.add_argument("--in-memory-size", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/scale_trees.md")
    p.add_argument("--resume", action="store_true", help="keep sizes measured before")
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    in_mem = args.in_memory_size or min(args.sizes)
    client = local_cluster(args.workers, memory_limit=args.memory_limit, dashboard_address=None)
    try:
        for n in sorted(args.sizes):
            if args.resume and (workdir / f"tree_result_{n}.json").exists():
                continue
            info = ensure_dataset(workdir, n, args.chunk_size)
            exp = DistributedExperiment.from_parquet(info.path, n_folds=2, **info.options)
            model = quick_model(exp)
            tree = tree_step(client, exp, None, in_memory=n == in_mem, model=model)
            res = {"n_units": n, "tree": tree}
            (workdir / f"tree_result_{n}.json").write_text(json.dumps(res, indent=2))
    finally:
        client.close()
        client.cluster.close()
    results = [
        json.loads((workdir / f"tree_result_{n}.json").read_text())
        for n in sorted(args.sizes)
        if (workdir / f"tree_result_{n}.json").exists()
    ]
    write_report(results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
