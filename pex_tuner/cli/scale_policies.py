"""Interpretable policies past one machine: ``learn-policy``, ``explain`` and ``assign`` on Dask.

Reached from :mod:`pex_tuner.cli` when :func:`pex_tuner.cli.scale.is_scale` says so
(``--scheduler``, ``--workers``, or ``--data`` naming a Parquet folder / glob / URL):

* ``learn-policy --method greedy-tree``: GreedyTreeSearch-HTE with per-partition histograms
  (:class:`~pex_tuner.distributed.greedy_tree.DaskGreedyTreeLearner`) on the train split's stored
  CATE predictions; writes the policy artifact;
* ``explain``: Distill-HTE with trees on a structure sample and honest estimates over all
  other units (:class:`~pex_tuner.distributed.distill.DaskDistillHTE`); writes
  ``segments.csv`` and ``segments.html``;
* ``assign``: every unit of a Parquet dataset, partition by partition, into a Parquet folder
  (:func:`~pex_tuner.distributed.assign.assign_parquet`).

The CATE predictions come from :func:`pex_tuner.cli.scale.predictions_for` (stored once as
Parquet, reused when they exist).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pex_tuner.cli.scale import client_from_args, load_experiment, predictions_for
from pex_tuner.errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["add_assign_scale_args", "cmd_assign", "cmd_explain", "cmd_learn_policy"]

SCALE_METHODS = ("greedy-tree",)


def add_assign_scale_args(p: argparse.ArgumentParser) -> None:
    """``--scheduler`` / ``--workers`` / ``--memory-limit`` for ``assign``."""
    g = p.add_argument_group("running on a cluster (Dask): --data a Parquet folder or glob")
    where = g.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", default=None, help="address of a Dask scheduler, e.g. tcp://HOST:8786"
    )
    where.add_argument(
        "--workers", type=int, default=None, help="start a local Dask cluster of N workers"
    )
    g.add_argument(
        "--memory-limit", default="auto", help="memory per local worker, e.g. 4GiB (--workers)"
    )


def _weights(exp: Any, preferences: dict[str, float]) -> np.ndarray:
    """Signed outcome weights from preferences (``preference_weights`` on a few rows of the
    first partition: only the outcomes and their directions matter)."""
    from pex_tuner.policies import preference_weights

    head = exp.to_local(exp.ddf.head(10, npartitions=1))
    return preference_weights(head, preferences)


def cmd_learn_policy(args: argparse.Namespace) -> int:
    """``pex-tuner learn-policy`` at scale (greedy-tree)."""
    from pex_tuner.distributed.greedy_tree import DaskGreedyTreeLearner
    from pex_tuner.policies import write_artifact

    if args.method not in SCALE_METHODS:
        raise ConfigurationError(
            f"--method {args.method} does not run on a cluster yet; at scale use --method "
            f"{' or '.join(SCALE_METHODS)}, or pass one Parquet / CSV file without "
            "--scheduler / --workers"
        )
    client_from_args(args)
    exp = load_experiment(args)
    weights = _weights(exp, dict(args.weight or []))
    preds = predictions_for(args, exp)
    t0 = time.perf_counter()
    learner = DaskGreedyTreeLearner(
        max_depth=args.max_depth,
        min_segment_size=args.min_segment_size,
        outcome_weights=weights,
        random_state=args.seed,
    ).fit(exp, preds, split="train")
    path = write_artifact(args.out, learner.policy_, schema=exp.schema)
    shown = ", ".join(f"{o}={w:+g}" for o, w in zip(exp.outcomes, weights, strict=True))
    print(f"outcome weights (signed, raw scale): {shown}")
    print(learner.policy_.describe())
    print(
        f"greedy-tree (depth {args.max_depth}) on {learner.n_units_} train units in "
        f"{args.max_depth + 1} cluster passes ({time.perf_counter() - t0:.1f} s); training "
        f"reward {learner.reward_:.6g}; wrote the policy artifact {path}"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """``pex-tuner explain`` at scale: segments.csv and segments.html in ``--out``."""
    from pex_tuner.distributed.distill import DaskDistillHTE
    from pex_tuner.files import atomic_write
    from pex_tuner.plotting import plot_segments, write_report

    client_from_args(args)
    exp = load_experiment(args)
    preds = predictions_for(args, exp)
    t0 = time.perf_counter()
    dh = DaskDistillHTE(
        max_depth=args.max_depth,
        min_units_per_arm=args.min_units_per_arm,
        outcome_weights=dict(args.weight) if args.weight else None,
        random_state=args.seed,
    ).fit(exp, preds)
    seg = dh.segments_
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    csv = atomic_write(folder / "segments.csv", lambda tmp: seg.to_csv(tmp, index=False))
    html = folder / "segments.html"
    write_report(
        html,
        [plot_segments(seg)],
        title="pex-tuner: Distill-HTE segments",
        sections=[
            repr(exp),
            f"One multi-task tree per treatment (max depth {args.max_depth}) distilled from "
            f"the stored CATE predictions of {dh.n_structure_} structure units (a hash "
            f"sample); segment effects and 95% intervals from the {dh.n_estimation_} other "
            f"units, each segment with at least {args.min_units_per_arm} treated and control "
            "units.",
        ],
        tables={"Segments": seg},
    )
    for r in seg.to_dict("records"):
        print(f"{r['treatment']} S{r['segment']} ({r['n_units']} units): {r['rule']}")
        for o in exp.outcomes:
            star = "*" if r[f"significant[{o}]"] else " "
            print(
                f"    {o}: {r[f'effect[{o}]']:+.4f} [{r[f'ci_low[{o}]']:+.4f}, "
                f"{r[f'ci_high[{o}]']:+.4f}]{star}"
            )
    print(
        f"\n{len(seg)} segments in {time.perf_counter() - t0:.1f} s (* = 95% interval "
        f"excludes 0); wrote {csv} and {html}"
    )
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    """``pex-tuner assign`` at scale: a Parquet folder, one file per input partition."""
    from pex_tuner.distributed.assign import assign_parquet

    client_from_args(args)
    t0 = time.perf_counter()
    result = assign_parquet(args.policy, args.data, args.out, progress=True)
    print(
        f"assigned {result.n_units} units: "
        + ", ".join(f"{a}={c}" for a, c in result.counts.items())
        + f"; wrote {result.npartitions} Parquet file(s) to {result.path} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return 0
