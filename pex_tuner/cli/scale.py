"""The command line past one machine: ``--data 'path/*.parquet' --scheduler tcp://HOST:8786``.

A command runs at scale when ``--scheduler`` or ``--workers`` is given, or when ``--data`` is
a Parquet dataset rather than one file (a folder, a glob, or an fsspec URL such as
``s3://bucket/exp/``). The experiment is then read with Dask
(:class:`~pex_tuner.distributed.DistributedExperiment`), the CATE model is fitted on a sample
(or with ``lightgbm.dask``), every unit's predictions are written once as Parquet
(``--predictions``, reused when they exist) and OPE runs on the cluster.

* ``evaluate``: the OPE table of the example policies on the test split;
* ``tune``: the dense design of ``--design-size`` linear policies, evaluated in batched
  passes on the validation split, with its Pareto frontier (``design.csv``,
  ``frontier.csv``). The Ax refinement rounds (``--budget``) need the offline tuner to accept
  a :class:`~pex_tuner.distributed.DistributedOPEMetric`; until then they are skipped, and
  the command says so.

``learn-policy``, ``explain`` and ``assign`` reach the same client through
:func:`client_from_args` and :func:`load_experiment`.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path
from typing import Any

from pex_tuner.errors import ConfigurationError

__all__ = [
    "add_scale_args",
    "check_scale_data",
    "client_from_args",
    "cmd_evaluate",
    "cmd_tune",
    "is_scale",
    "load_experiment",
    "predictions_for",
]

DEFAULT_PREDICTIONS = "pex_predictions"


def add_scale_args(p: argparse.ArgumentParser) -> None:
    """The cluster options of a command that reads an experiment."""
    g = p.add_argument_group("running on a cluster (Dask)")
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
    g.add_argument("--unit-id", default=None, help="column of unique unit ids (splits hash it)")
    g.add_argument(
        "--sample-size",
        type=int,
        default=1_000_000,
        help="units of the train split the CATE model is fitted on (sample mode)",
    )
    g.add_argument(
        "--cate-mode",
        choices=["sample", "lightgbm.dask"],
        default="sample",
        help="fit on a sample (default) or distributed with lightgbm.dask",
    )
    g.add_argument(
        "--predictions",
        default=None,
        help=f"folder of the stored CATE predictions (default {DEFAULT_PREDICTIONS}/, or "
        "predictions/ in --out); reused when it exists",
    )


def _is_dataset(path: str) -> bool:
    return "://" in path or glob.has_magic(path) or Path(path).is_dir()


def is_scale(args: argparse.Namespace) -> bool:
    """Whether the command runs on Dask (see the module docstring)."""
    if getattr(args, "scheduler", None) or getattr(args, "workers", None):
        return True
    data = getattr(args, "data", None)
    return data is not None and _is_dataset(str(data))


def check_scale_data(args: argparse.Namespace) -> None:
    """``--data`` names Parquet files that exist (URLs are left to fsspec); options sane."""
    data = str(args.data)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        raise ConfigurationError(f"--workers must be a positive integer; got {args.workers}")
    if getattr(args, "sample_size", 1000) < 100:
        raise ConfigurationError(f"--sample-size must be at least 100; got {args.sample_size}")
    if "://" in data:
        return
    if glob.has_magic(data):
        if not glob.glob(data):
            raise ConfigurationError(f"--data {data}: no file matches the pattern")
    elif not Path(data).exists():
        raise ConfigurationError(f"--data {data}: does not exist")


def client_from_args(args: argparse.Namespace) -> Any:
    """The Dask client of ``--scheduler`` / ``--workers`` (or the current one); prints where
    the dashboard (Dask's diagnostics: progress, memory per worker) is."""
    from pex_tuner.distributed import get_client

    client = get_client(
        scheduler=getattr(args, "scheduler", None),
        workers=getattr(args, "workers", None),
        memory_limit=getattr(args, "memory_limit", "auto"),
    )
    if client is not None:
        n = len(client.scheduler_info().get("workers", {}))
        print(f"Dask: {n} worker(s); dashboard {client.dashboard_link}")
    return client


def load_experiment(args: argparse.Namespace) -> Any:
    """The DistributedExperiment named by the experiment arguments."""
    from pex_tuner.distributed import DistributedExperiment

    exp = DistributedExperiment.from_parquet(
        args.data,
        treatment=args.treatment,
        control=args.control,
        outcomes=dict(args.outcome),
        features=args.features or None,
        propensity=args.propensity,
        unit_id=getattr(args, "unit_id", None),
        progress=True,
    )
    print(repr(exp))
    if not args.features:
        print(f"features used (pass --features to choose): {', '.join(exp.features)}")
    return exp


def predictions_for(args: argparse.Namespace, experiment: Any) -> Any:
    """The stored predictions of ``--predictions`` when they exist, else fit the CATE model
    and write them there."""
    from pex_tuner.distributed import DistributedCateModel, DistributedPredictions

    default = Path(args.out) / "predictions" if getattr(args, "out", None) else None
    path = Path(args.predictions or default or DEFAULT_PREDICTIONS)
    if (path / "pex_predictions.json").exists():
        preds = DistributedPredictions.open(path)
        print(f"reusing the stored predictions in {path}")
        return preds
    t0 = time.perf_counter()
    model = DistributedCateModel(
        mode=args.cate_mode,
        sample_size=args.sample_size,
        learner=getattr(args, "learner", "t") if getattr(args, "learner", "t") != "auto" else "t",
        random_state=getattr(args, "seed", 0),
    ).fit(experiment)
    print(f"fitted the CATE model on {model.n_train_} units ({model.fit_seconds_:.1f} s)")
    preds = DistributedPredictions.compute(experiment, model, path, progress=True)
    print(f"predicted {preds.n_units} units into {path} ({time.perf_counter() - t0:.1f} s)")
    return preds


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``pex-tuner evaluate`` at scale: example policies, OPE on the test split."""
    from pex_tuner.distributed import DistributedOPEMetric
    from pex_tuner.workflows.ope_report import example_policies, format_ope_table

    client_from_args(args)
    exp = load_experiment(args)
    preds = predictions_for(args, exp)
    metric = DistributedOPEMetric(
        exp, preds, split="test", estimator=args.estimator, random_state=args.seed, progress=True
    )
    t0 = time.perf_counter()
    ev = metric.evaluate(example_policies(metric.data, metric.predictions))
    print(
        f"OPE ({args.estimator}) on the test split: {ev.n_units} units, "
        f"{len(ev.policies)} policies in one pass ({time.perf_counter() - t0:.1f} s)"
    )
    print(format_ope_table(ev.to_frame()))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """``pex-tuner tune`` at scale: the dense design in batched passes and its frontier."""
    from pex_tuner.distributed import DistributedOPEMetric
    from pex_tuner.files import atomic_write
    from pex_tuner.policies import LinearUtilityPolicy
    from pex_tuner.tuning.design import DESIGN_PASS, design_parameters
    from pex_tuner.tuning.evaluations import EvaluationLog
    from pex_tuner.tuning.space import PolicySpace

    client_from_args(args)
    exp = load_experiment(args)
    preds = predictions_for(args, exp)
    metric = DistributedOPEMetric(
        exp, preds, split="validation", estimator=args.estimator, random_state=args.seed
    )
    guardrails = dict(args.guardrail or [])
    space = PolicySpace.from_predictions(metric.predictions, exp.directions, scaling=args.scaling)
    arms, outcomes = exp.arms, exp.outcomes
    baselines = {f"all:{a}": LinearUtilityPolicy.assign_all(a, arms, outcomes) for a in arms}
    base_ev = metric.evaluate(baselines)
    log = EvaluationLog(
        arms=exp.arms,
        outcomes=exp.outcomes,
        directions=exp.directions,
        objectives=[o for o in exp.outcomes if o not in guardrails],
        guardrails=guardrails,
        control=base_ev.value[0],
    )
    for k, name in enumerate(baselines):
        log.record(None, name, "baseline", None, base_ev, k, None)
    t0 = time.perf_counter()
    params = design_parameters(space, max(args.design_size, 1), args.seed)
    for start in range(0, len(params), DESIGN_PASS):
        chunk = params[start : start + DESIGN_PASS]
        ev = metric.evaluate_matrix(*space.to_matrices(chunk))
        log.extend(
            [
                log.make_record(None, f"design_{start + i}", "tuned", p, ev, i, "design")
                for i, p in enumerate(chunk)
            ]
        )
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    frame = log.frame()
    front = log.frontier(frame[frame["kind"] == "tuned"])
    atomic_write(out / "design.csv", lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(out / "frontier.csv", lambda tmp: front.to_csv(tmp, index=False))
    print(
        f"evaluated {len(params)} design policies on {metric.n_units} validation units in "
        f"{metric.passes} cluster passes ({seconds:.1f} s); {len(front)} on the frontier; "
        f"wrote {out / 'design.csv'} and {out / 'frontier.csv'}"
    )
    print(
        "note: the Ax refinement rounds (--budget) are not run at scale yet; the frontier is "
        "the dense design's"
    )
    return 0
