"""The ``pex-tuner`` command line: parses arguments and calls a workflow.

Commands:
    demo      all three phases on the built-in synthetic experiment: offline (CATE models, OPE
              next to the ground truth, tuning, Pareto frontier, candidates), online rounds
              through the service API against the simulator, launch with holdout, backtest.
    tune      tune linear-utility policies on your CSV / Parquet experiment (writes frontier.csv,
              candidates.json, report.html, policy artifacts and the saved tuner).
    assign    assign arms to new units with a policy artifact.
    evaluate  fit CATE models and print an OPE table of example policies on your experiment.
    export    print a tree policy artifact as SQL, a plain Python function, or JSON.
    explain   Distill-HTE segments per treatment with honest effect intervals (writes
              segments.csv and segments.html).
    learn-policy  learn an interpretable tree policy (greedy-tree, distill, no-hte-greedy,
              no-hte-iterative, guide-ope, guide-explore-exploit) and write its artifact.
    serve     the online service that experiment systems poll for candidate policies.

The flows themselves live in :mod:`pex_tuner.workflows` (callable from Python too); every
command's work is imported lazily, so ``pex-tuner --help`` is quick. Every option is checked
before any data is read (:mod:`pex_tuner.cli.checks`); without ``--features``, the commands
that read an experiment print the features they use and warn on outcome-like columns
(:mod:`pex_tuner.data.leakage`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pex_tuner.cli import scale, scale_policies, values
from pex_tuner.cli.checks import (
    check_options,
    cli_message,
    fraction,
    int_at_least,
    int_in_range,
    report_features,
    segment_size,
)
from pex_tuner.cli.scale import add_scale_args, is_scale
from pex_tuner.errors import PexTunerError
from pex_tuner.files import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from pex_tuner.data import ExperimentData

__all__ = ["main"]

LEARNER_CHOICES = ["t", "x", "s", "dr"]
#: tune and demo also take "auto": the learner chosen by the data (pex_tuner.effects.selection)
TUNE_LEARNER_CHOICES = ["auto", *LEARNER_CHOICES]
#: ParEGO refinements after the dense design (benchmarks/results/tuning.md)
DEFAULT_BUDGET = 8
ESTIMATOR_CHOICES = ["dr", "ips", "snips", "dm"]
DEMO_MIN_UNITS = 500  # 100 units leave an arm under 10 training units (5-fold cross-fitting)


def _load_data(args: argparse.Namespace) -> ExperimentData:
    """The ExperimentData named by the experiment-file arguments (see :func:`_add_data_args`);
    without --features, prints the features used and warns on outcome-like columns."""
    from pex_tuner.data import ExperimentData
    from pex_tuner.files import read_table

    frame = read_table(args.data)
    data = ExperimentData.from_frame(
        frame,
        treatment=args.treatment,
        control=args.control,
        outcomes=dict(args.outcome),
        features=args.features or None,
        propensity=args.propensity,
    )
    if not args.features:
        report_features(frame, data, args)
    return data


# ---------------------------------------------------------------------- commands
def _service_app_factory() -> Callable[..., Any]:
    """``pex_tuner.service.create_app``, imported only by the commands that serve."""
    from pex_tuner.service import create_app

    return create_app


def _cmd_demo(args: argparse.Namespace) -> int:
    from pex_tuner.workflows.demo import run_demo

    run_demo(
        n_units=args.n_units,
        seed=args.seed,
        learner=args.learner,
        budget=args.budget,
        batch_size=args.batch_size,
        candidates=args.candidates,
        rounds=args.rounds,
        offline_only=args.offline_only,
        out=args.out,
        app_factory=None if args.offline_only else _service_app_factory(),
    )
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    if is_scale(args):
        return scale.cmd_tune(args)
    from pex_tuner.workflows.offline import run_offline_tuning

    run = run_offline_tuning(
        _load_data(args),
        out=args.out,
        budget=args.budget,
        batch_size=args.batch_size,
        candidates=args.candidates,
        seed=args.seed,
        guardrails=dict(args.guardrail or []),
        learner=args.learner,
        estimator=args.estimator,
        acquisition=args.acquisition,
        scaling=args.scaling,
        compare_no_bias=not args.no_compare,
        design_size=args.design_size,
    )
    print(run.summary())
    return 0


def _cmd_assign(args: argparse.Namespace) -> int:
    if is_scale(args):
        return scale_policies.cmd_assign(args)
    from pex_tuner.files import read_table
    from pex_tuner.policies import PolicyArtifact

    artifact = PolicyArtifact.load(args.policy)
    frame = read_table(args.data)
    arms = artifact.assign(frame)
    out = frame.copy()
    out["arm"] = arms
    target = atomic_write(args.out, lambda tmp: out.to_csv(tmp, index=False))
    counts = out["arm"].value_counts().reindex(artifact.policy.arms, fill_value=0)
    print(
        f"assigned {len(out)} units with policy '{artifact.name}': "
        + ", ".join(f"{a}={c}" for a, c in counts.items())
        + f"; wrote {target}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if is_scale(args):
        return scale.cmd_evaluate(args)
    from pex_tuner.workflows.ope_report import ope_report

    data = _load_data(args)
    report = ope_report(data, learner=args.learner, seed=args.seed, estimator=args.estimator)
    print(report.text())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pex_tuner.policies import PolicyArtifact, export_policy

    artifact = PolicyArtifact.load(args.policy)
    text = export_policy(artifact.policy, args.format)
    if not text.endswith("\n"):
        text += "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target = atomic_write_text(args.out, text)
    print(f"wrote the {args.format} export of policy '{artifact.name}' to {target}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    if is_scale(args):
        return scale_policies.cmd_explain(args)
    from pex_tuner.workflows.segments import explain_segments

    report = explain_segments(
        _load_data(args),
        out=args.out,
        max_depth=args.max_depth,
        min_units_per_arm=args.min_units_per_arm,
        outcome_weights=dict(args.weight) if args.weight else None,
        learner=args.learner,
        n_folds=args.n_folds,
        seed=args.seed,
    )
    print(report.text())
    return 0


def _cmd_learn_policy(args: argparse.Namespace) -> int:
    if is_scale(args):
        return scale_policies.cmd_learn_policy(args)
    from pex_tuner.policies import preference_weights, write_artifact
    from pex_tuner.workflows.learn_policy import learn_policy

    data = _load_data(args)
    weights = preference_weights(data, dict(args.weight or []))
    t0 = time.perf_counter()
    result = learn_policy(
        data,
        args.method,
        outcome_weights=weights,
        max_depth=args.max_depth,
        min_segment_size=args.min_segment_size,
        validation_size=args.validation_size,
        learner=args.learner,
        n_folds=args.n_folds,
        random_state=args.seed,
    )
    path = write_artifact(args.out, result.policy, schema=data.schema)
    shown = ", ".join(f"{o}={w:+g}" for o, w in zip(data.outcomes, weights, strict=True))
    print(f"{data!r}")
    print(f"outcome weights (signed, raw scale): {shown}")
    print(result.summary())
    print(f"wrote the policy artifact {path} ({time.perf_counter() - t0:.1f} s)")
    return 0


# ---------------------------------------------------------------------- parsers
Subparsers = argparse._SubParsersAction


def _add_data_args(
    p: argparse.ArgumentParser, *, learner: bool = True, estimator: bool = True, seed: bool = True
) -> None:
    """The experiment-file arguments (--data ... --propensity), then optionally --learner,
    --estimator and --seed (commands that place those later add them themselves)."""
    p.add_argument("--data", required=True, help="CSV or Parquet file, one row per unit")
    p.add_argument("--treatment", required=True, help="column with the arm each unit got")
    p.add_argument("--control", required=True, help="label of the control arm")
    p.add_argument(
        "--outcome",
        type=values.parse_outcome,
        action="append",
        required=True,
        help="NAME:max or NAME:min (repeat for every outcome)",
    )
    p.add_argument(
        "--features",
        nargs="*",
        default=None,
        help="default: every other column (listed, with a warning for outcome-like ones)",
    )
    p.add_argument("--propensity", default=None, help="column with logged propensities")
    add_scale_args(p)  # --scheduler / --workers ...: pex_tuner/cli/scale.py
    if learner:
        p.add_argument("--learner", choices=LEARNER_CHOICES, default="t")
    if estimator:
        p.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default="dr")
    if seed:
        p.add_argument("--seed", type=int_at_least(0), default=0)


def _add_demo_parser(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="run all three phases on the built-in experiment")
    demo.add_argument("--n-units", type=int_at_least(DEMO_MIN_UNITS), default=20_000)
    demo.add_argument("--seed", type=int_at_least(0), default=0)
    demo.add_argument(
        "--learner", choices=LEARNER_CHOICES, default="t", help="CATE learner of the OPE report"
    )
    demo.add_argument(
        "--budget", type=int_at_least(1), default=DEFAULT_BUDGET, help="ParEGO refinements"
    )
    demo.add_argument("--batch-size", type=int_at_least(1), default=8)
    demo.add_argument("--candidates", type=int_at_least(1), default=3)
    demo.add_argument("--rounds", type=int_at_least(1), default=3, help="online rounds")
    demo.add_argument("--offline-only", action="store_true", help="stop after the offline phase")
    demo.add_argument("--out", default="pex_tuner_demo", help="output folder")
    demo.set_defaults(func=_cmd_demo)


def _add_tune_parser(sub: Subparsers) -> None:
    tune = sub.add_parser("tune", help="tune linear-utility policies on an experiment file")
    _add_data_args(tune, learner=False)
    tune.add_argument(
        "--learner",
        choices=TUNE_LEARNER_CHOICES,
        default="auto",
        help="CATE learner; auto (default): T, X, DR and S fitted, the best by a held-out "
        "DR loss kept (the table is printed and in report.html)",
    )
    positive = int_at_least(1)
    tune.add_argument(
        "--budget",
        type=positive,
        default=DEFAULT_BUDGET,
        help="ParEGO refinements after the dense design",
    )
    tune.add_argument("--batch-size", type=positive, default=8, help="q: trials per batch")
    tune.add_argument(
        "--design-size",
        type=int_at_least(0),
        default=1024,
        help="quasi-random policies evaluated before the model (0: Sobol inside Ax instead)",
    )
    tune.add_argument("--candidates", type=positive, default=4, help="online candidates")
    tune.add_argument(
        "--guardrail",
        type=values.parse_guardrail,
        action="append",
        help="NAME=TOL: outcome kept as a constraint, may degrade at most TOL vs control",
    )
    tune.add_argument(
        "--acquisition",
        choices=["qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI", "qLogNEI", "sobol"],
        default="qLogNParEGO",
        help="qLogNParEGO-HV: ParEGO with the hypervolume scalarization (see the README)",
    )
    tune.add_argument(
        "--scaling",
        choices=["absolute", "relative"],
        default="absolute",
        help="policy-space coordinates; relative: log-scaled weights, biases in units of the "
        "policy's RMS weighted effect",
    )
    tune.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the second, no-bias tuning run used for the comparison plot",
    )
    tune.add_argument("--out", required=True, help="output folder")
    tune.set_defaults(func=_cmd_tune)


def _add_assign_parser(sub: Subparsers) -> None:
    assign = sub.add_parser("assign", help="assign arms to new units with a policy artifact")
    assign.add_argument("--policy", required=True, help="policy artifact JSON")
    assign.add_argument("--data", required=True, help="CSV or Parquet of units (features)")
    assign.add_argument("--out", required=True, help="output CSV: the input plus a column 'arm'")
    scale_policies.add_assign_scale_args(assign)  # Parquet in, Parquet folder out
    assign.set_defaults(func=_cmd_assign)


def _add_evaluate_parser(sub: Subparsers) -> None:
    ev = sub.add_parser("evaluate", help="fit CATE models and evaluate example policies")
    _add_data_args(ev)
    ev.set_defaults(func=_cmd_evaluate)


def _add_export_parser(sub: Subparsers) -> None:
    export = sub.add_parser("export", help="print a tree policy artifact as SQL, Python or JSON")
    export.add_argument("--policy", required=True, help="policy artifact JSON")
    export.add_argument(
        "--format",
        choices=["sql", "python", "json"],
        required=True,
        help="sql: a CASE expression; python: def assign(row: dict) -> str; json: the policy",
    )
    export.add_argument("--out", default=None, help="write to this file instead of stdout")
    export.set_defaults(func=_cmd_export)


def _add_explain_parser(sub: Subparsers) -> None:
    ex = sub.add_parser(
        "explain", help="Distill-HTE: honest segments with effect intervals per treatment"
    )
    _add_data_args(ex, estimator=False, seed=False)
    ex.add_argument("--n-folds", type=int_at_least(2), default=5, help="CATE cross-fitting folds")
    ex.add_argument("--max-depth", type=int_at_least(1), default=3, help="depth of each tree")
    ex.add_argument(
        "--min-units-per-arm",
        type=int_at_least(1),
        default=30,
        help="treated and control units every segment keeps (estimation half)",
    )
    ex.add_argument(
        "--weight",
        type=values.parse_weight,
        action="append",
        help="NAME=C: loss weight of an outcome in the tree (default 1 each)",
    )
    ex.add_argument("--seed", type=int_at_least(0), default=0)
    ex.add_argument("--out", required=True, help="output folder (segments.csv, segments.html)")
    ex.set_defaults(func=_cmd_explain)


def _add_learn_policy_parser(sub: Subparsers) -> None:
    from pex_tuner.workflows.learn_policy import METHODS

    lp = sub.add_parser(
        "learn-policy", help="learn an interpretable tree policy and write its artifact"
    )
    lp.add_argument("--method", choices=list(METHODS), required=True)
    _add_data_args(lp, learner=False, estimator=False, seed=False)
    lp.add_argument(
        "--weight",
        type=values.parse_preference,
        action="append",
        help="NAME=W: non-negative preference of an outcome, signed by its direction "
        "(default 1 each; with any --weight, unnamed outcomes get 0)",
    )
    lp.add_argument("--max-depth", type=int_in_range(0, 20), default=2, help="tree depth")
    lp.add_argument(
        "--min-segment-size",
        type=segment_size,
        default=0.05,
        help="fewest training units per segment: a share (<= 0.5) or a count",
    )
    lp.add_argument(
        "--validation-size", type=fraction, default=0.3, help="share held out for GUIDE and OPE"
    )
    lp.add_argument("--learner", choices=LEARNER_CHOICES, default="t")
    lp.add_argument("--n-folds", type=int_at_least(2), default=5, help="CATE cross-fitting folds")
    lp.add_argument("--seed", type=int_at_least(0), default=0)
    lp.add_argument("--out", required=True, help="the policy artifact JSON to write")
    lp.set_defaults(func=_cmd_learn_policy)


def _add_serve_parser(sub: Subparsers) -> None:
    from pex_tuner.cli.serve import add_serve_parser  # workers, scopes, runs root: cli/serve.py

    add_serve_parser(sub, int_in_range)


def build_parser() -> argparse.ArgumentParser:
    """The ``pex-tuner`` parser: one subcommand per workflow (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="pex-tuner",
        description="Personalized experimentation: CATE models, linear-utility policies and "
        "off-policy evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_demo_parser,
        _add_tune_parser,
        _add_assign_parser,
        _add_evaluate_parser,
        _add_export_parser,
        _add_explain_parser,
        _add_learn_policy_parser,
        _add_serve_parser,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a pex-tuner error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import pandas as pd  # after parsing: --help and argument errors stay quick

    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    try:
        check_options(args)  # before any data is read or model fitted
        return int(args.func(args))
    except PexTunerError as exc:
        print(f"pex-tuner: error: {cli_message(str(exc))}", file=sys.stderr)
        return 2
