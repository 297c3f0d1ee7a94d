"""The ``pex-tuner`` command line.

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
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pex_tuner.errors import PexTunerError
from pex_tuner.files import atomic_write, atomic_write_text

__all__ = ["main"]


def _parse_outcome(text: str) -> tuple[str, str]:
    name, sep, direction = text.rpartition(":")
    if not sep or not name or direction not in ("max", "min"):
        raise argparse.ArgumentTypeError(f"--outcome expects NAME:max or NAME:min, got {text!r}")
    return name, direction


def _example_policies(data, predictions):
    """Assign-all baselines plus a few linear policies that trade the outcomes off."""
    from pex_tuner.policies import LinearUtilityPolicy

    arms, outs, dirs = data.arms, data.outcomes, data.directions
    pols = {f"all:{a}": LinearUtilityPolicy.assign_all(a, arms, outs) for a in arms}
    # preferences are scaled by each outcome's effect spread so weights are comparable
    scale = predictions.tau[:, 1:, :].std(axis=(0, 1))
    scale = np.where(scale > 0, scale, 1.0)
    first_only = np.zeros(len(outs))
    first_only[0] = 1.0
    equal = np.ones(len(outs))
    pols[f"linear: {outs[0]} only"] = LinearUtilityPolicy.from_preferences(
        first_only / scale, dirs, arms, outs
    )
    pols["linear: equal weights"] = LinearUtilityPolicy.from_preferences(
        equal / scale, dirs, arms, outs
    )
    if len(outs) > 1:
        guard = np.ones(len(outs))
        guard[1] = 3.0
        pols[f"linear: protect {outs[1]}"] = LinearUtilityPolicy.from_preferences(
            guard / scale, dirs, arms, outs
        )
    return pols


def _format_table(df: pd.DataFrame, truth: dict[str, np.ndarray] | None) -> str:
    outcomes = list(dict.fromkeys(df["outcome"]))
    share_cols = [c for c in df.columns if c.startswith("share[")]
    rows = []
    for policy, g in df.groupby("policy", sort=False):
        row = {"policy": policy}
        for j, o in enumerate(outcomes):
            r = g[g["outcome"] == o].iloc[0]
            cell = f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if truth is not None:
                cell += f" (true {truth[policy][j]:.3f})"
            row[f"{o} ({r['direction']})"] = cell
            row[f"lift {o}"] = f"{r['lift']:+.3f} ± {1.96 * r['lift_se']:.3f}"
        first = g.iloc[0]
        row["arm shares"] = " ".join(f"{c[6:-1]}={first[c]:.0%}" for c in share_cols)
        rows.append(row)
    return pd.DataFrame(rows).to_string(index=False)


def _run_ope_report(data, *, learner: str, seed: int, truth=None, estimator: str = "dr") -> str:
    from pex_tuner.effects import fit_effects
    from pex_tuner.ope import evaluate

    split = data.split(random_state=seed)
    train, test = split.train, split.test
    t0 = time.perf_counter()
    model = fit_effects(train, learner=learner, random_state=seed)
    fit_s = time.perf_counter() - t0
    pred = model.predict(test)
    pols = _example_policies(test, pred)
    df = evaluate(test, pols, predictions=pred, estimator=estimator)
    truth_values = None
    if truth is not None:
        test_truth = truth.subset(split.indices["test"])
        truth_values = {
            name: test_truth.policy_value(p.assign_index(pred)) for name, p in pols.items()
        }
    lines = [
        f"{data!r}",
        f"split: train {train.n_units}, validation "
        f"{0 if split.validation is None else split.validation.n_units}, test {test.n_units}",
        f"{learner.upper()}-learner fitted on train in {fit_s:.1f}s (5-fold cross-fitting); "
        f"policies evaluated on test with the {estimator.upper()} estimator, 95% intervals.",
        "",
        _format_table(df, truth_values),
    ]
    return "\n".join(lines)


def _cmd_demo(args: argparse.Namespace) -> int:
    from pex_tuner.datasets import make_synthetic

    truth = make_synthetic(args.n_units, random_state=args.seed)
    print("pex-tuner demo: built-in synthetic experiment (goal, guardrail and cost outcomes)")
    print("\n== Phase 1a: CATE models and off-policy evaluation of simple policies ==")
    print(_run_ope_report(truth.data, learner=args.learner, seed=args.seed, truth=truth))
    print(
        "\nEach cell: doubly robust estimate on the test split with its 95% CI and, because "
        "the experiment is simulated, the true value; 'lift' is the paired difference to "
        "assign-all-control."
    )
    print(f"\n== Phase 1b: offline tuning ({args.budget} evaluations, qLogNParEGO) ==")
    summary = run_tuning(
        truth.data,
        out=args.out,
        budget=args.budget,
        batch_size=args.batch_size,
        candidates=args.candidates,
        seed=args.seed,
        truth=truth,
    )
    _print_tuning_summary(summary, truth.data)
    print(
        "\nColumns '<outcome>_true_test' are the true values of each frontier policy on the "
        "held-out test units. Open report.html for the Pareto front, the with/without-bias "
        "comparison and the hypervolume trace."
    )
    if args.offline_only:
        return 0
    from pex_tuner.service.demo import run_online_phase, summarize

    print(
        f"\n== Phase 2: online tuning, {args.rounds} rounds through the service API, against "
        "the online simulator (a long-term outcome joins the objectives) =="
    )
    online = run_online_phase(
        summary["out"] / "tuner",
        summary["out"],
        rounds=args.rounds,
        candidates=args.candidates,
        seed=args.seed,
        data=truth.data,
    )
    print("\n== Phase 3: launch with a randomized holdout, and backtest ==")
    print(summarize(online))
    print(
        f"\nWrote {online['report']} (online results, calibration, backtest) and the launch "
        f"file {online['launch_file']}. All online state is in the SQLite database "
        f"{online['db']}."
    )
    return 0


def _load_data(args: argparse.Namespace):
    from pex_tuner.data import ExperimentData

    return ExperimentData.from_file(
        args.data,
        treatment=args.treatment,
        control=args.control,
        outcomes=dict(args.outcome),
        features=args.features or None,
        propensity=args.propensity,
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    data = _load_data(args)
    print(_run_ope_report(data, learner=args.learner, seed=args.seed, estimator=args.estimator))
    return 0


def _parse_guardrail(text: str) -> tuple[str, float]:
    name, sep, tol = text.rpartition("=")
    try:
        value = float(tol.rstrip("%")) / (100.0 if tol.endswith("%") else 1.0)
    except ValueError:
        value = float("nan")
    if not sep or not name or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"--guardrail expects NAME=TOLERANCE with a fraction in [0, 1) or a percentage "
            f"(retention=0.005 or retention=0.5%), got {text!r}"
        )
    return name, value


def run_tuning(
    data,
    *,
    out: str,
    budget: int,
    batch_size: int,
    candidates: int,
    seed: int,
    guardrails: dict[str, float] | None = None,
    learner: str = "t",
    estimator: str = "dr",
    acquisition: str = "qLogNParEGO",
    scaling: str = "absolute",
    compare_no_bias: bool = True,
    truth=None,
    n_folds: int = 5,
) -> dict:
    """The whole offline phase: tune, frontier, candidates, artifacts, report, saved tuner.

    Returns a summary dict (paths and tables) and writes into ``out``:
    frontier.csv, candidates.json, report.html, policies/*.json (+ effects.joblib), tuner/.
    """
    import json
    from pathlib import Path

    from pex_tuner.plotting import (
        plot_front_comparison,
        plot_hypervolume,
        plot_pareto_front,
        write_report,
    )
    from pex_tuner.tuning import OfflineTuner

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"{data!r}", flush=True)
    common = dict(
        guardrails=guardrails,
        learner=learner,
        estimator=estimator,
        acquisition=acquisition,
        scaling=scaling,
        batch_size=batch_size,
        random_state=seed,
        n_folds=n_folds,
    )
    tuner = OfflineTuner(data, **common)
    print(
        f"CATE model ({learner.upper()}-learner) fitted on {len(tuner.split_indices['train'])} "
        f"train units; policies evaluated by {estimator.upper()} OPE on "
        f"{len(tuner.split_indices['validation'])} validation units. Parameters: "
        + ", ".join(f"{k} in [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in tuner.space.bounds().items()),
        flush=True,
    )
    tuner.run(budget)
    fronts = {"with biases": tuner.get_pareto_frontier()}
    traces = {"with biases": tuner.hypervolume_trace()}
    if compare_no_bias and tuner.space.use_biases:
        plain = OfflineTuner(
            data, **common, use_biases=False, effects=tuner.effects, name="pex_tuner_no_bias"
        )
        plain.run(budget)
        fronts["without biases"] = plain.get_pareto_frontier()
        traces["without biases"] = plain.hypervolume_trace()
    front = fronts["with biases"]
    cand = tuner.select_online_candidates(candidates)
    # candidates come from the frontier of tuned policies, which a baseline may dominate
    names = list(dict.fromkeys([*front["policy"], *cand["policy"]]))
    paths = tuner.write_artifacts(str(out_dir / "policies"), names=names)
    rel = {k: str(Path(v).relative_to(out_dir)) for k, v in paths.items()}

    outs = list(data.outcomes)
    params = tuner.space.parameter_names
    table = front[
        [
            "policy",
            "kind",
            *params,
            *[c for o in outs for c in (o, f"{o}_se")],
            *[f"share[{a}]" for a in data.arms],
        ]
    ].copy()
    table.insert(0, "policy_id", table["policy"])
    table["policy"] = table["policy_id"].map(rel)
    if truth is not None:
        test = truth.subset(tuner.split_indices["test"])
        pred = tuner.effects.predict(test.data)
        for o_idx, o in enumerate(outs):
            table[f"{o}_true_test"] = [
                test.policy_value(tuner.policy(n).assign_index(pred))[o_idx]
                for n in table["policy_id"]
            ]
    table.to_csv(out_dir / "frontier.csv", index=False)
    cand_doc = {
        "reference_point": {
            "policy": "all:" + data.arms[0],
            **{o: float(tuner.baseline_eval.value[0, j]) for j, o in enumerate(outs)},
        },
        "objectives": tuner.config["objectives"],
        "guardrails": tuner.guardrail_bounds,
        "subset_hypervolume": float(cand["subset_hypervolume"].iloc[0]),
        "hypervolume_reference": str(cand["reference"].iloc[0]),
        "candidates": [
            {
                "policy_id": r["policy"],
                "artifact": rel[r["policy"]],
                **{o: r[o] for o in outs},
                **{f"{o}_se": r[f"{o}_se"] for o in outs},
            }
            for r in cand.to_dict("records")
        ],
    }
    (out_dir / "candidates.json").write_text(json.dumps(cand_doc, indent=2))
    ev = tuner.evaluations()
    figs = [
        plot_pareto_front(
            ev, tuner, frontier=list(front["policy"]), candidates=list(cand["policy"])
        ),
        plot_front_comparison(
            fronts,
            tuner,
            baselines=ev[ev["kind"] == "baseline"],
            title="Pareto fronts with and without biases (PEX Fig. 2, left)",
        ),
        plot_hypervolume(traces),
    ]
    write_report(
        out_dir / "report.html",
        figs,
        title="pex-tuner: offline tuning report",
        sections=[
            repr(tuner),
            f"Evaluated {tuner.n_evaluations} tuned policies with {acquisition} (batches of "
            f"{batch_size}); values are {estimator.upper()} OPE estimates on the validation "
            "split with 95% error bars. Reference point: assign everyone to control.",
            f"Selected {len(cand)} online candidates: {', '.join(cand['policy'])} "
            f"(subset hypervolume {cand_doc['subset_hypervolume']:.4g} against the "
            f"{cand['reference'].iloc[0]} reference point).",
        ],
        tables={"Pareto frontier": table, "Online candidates": cand.drop(columns=params)},
    )
    tuner.save(str(out_dir / "tuner"))
    secs = time.perf_counter() - t0
    return {"tuner": tuner, "frontier": table, "candidates": cand, "seconds": secs, "out": out_dir}


def _print_tuning_summary(summary: dict, data) -> None:
    outs = list(data.outcomes)
    cand = summary["candidates"]
    front = summary["frontier"]
    cols = ["policy_id", *outs] + [c for c in front.columns if c.endswith("_true_test")]
    print(f"\nPareto frontier ({len(front)} policies; values on validation):")
    print(front[cols].round(4).to_string(index=False))
    print(f"\nOnline candidates (largest hypervolume subset of {len(cand)}):")
    print(cand[["policy", *outs]].round(4).to_string(index=False))
    out = summary["out"]
    print(
        f"\nWrote {out / 'frontier.csv'}, {out / 'candidates.json'}, {out / 'report.html'}, "
        f"policy artifacts in {out / 'policies'}, and the saved tuner in {out / 'tuner'} "
        f"({summary['seconds']:.0f} s)."
    )


def _cmd_tune(args: argparse.Namespace) -> int:
    data = _load_data(args)
    summary = run_tuning(
        data,
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
    )
    _print_tuning_summary(summary, data)
    return 0


def _cmd_assign(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pex_tuner.files import read_table
    from pex_tuner.policies import PolicyArtifact

    artifact = PolicyArtifact.load(args.policy)
    frame = read_table(args.data)
    arms = artifact.assign(frame)
    out = frame.copy()
    out["arm"] = arms
    target = Path(args.out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: out.to_csv(tmp, index=False))
    counts = out["arm"].value_counts().reindex(artifact.policy.arms, fill_value=0)
    print(
        f"assigned {len(out)} units with policy '{artifact.name}': "
        + ", ".join(f"{a}={c}" for a, c in counts.items())
        + f"; wrote {target}"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from pex_tuner.service import create_app

    app = create_app(args.db, tokens=args.token)  # token None: PEX_TUNER_TOKEN
    print(
        f"pex-tuner service on http://{args.host}:{args.port} (database {args.db}); "
        f"OpenAPI at /openapi.json",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pex_tuner.policies import PolicyArtifact, export_policy

    artifact = PolicyArtifact.load(args.policy)
    text = export_policy(artifact.policy, args.format)
    if not text.endswith("\n"):
        text += "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text)
    print(f"wrote the {args.format} export of policy '{artifact.name}' to {target}")
    return 0


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
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


def _split_weight(text: str) -> tuple[str, float] | None:
    """``NAME=NUMBER`` with a finite number >= 0 as (name, number); None when malformed."""
    name, sep, value = text.rpartition("=")
    try:
        weight = float(value)
    except ValueError:
        return None
    if not sep or not name or not np.isfinite(weight) or weight < 0:
        return None
    return name, weight


def _parse_weight(text: str) -> tuple[str, float]:
    pair = _split_weight(text)
    if pair is None:
        raise argparse.ArgumentTypeError(
            f"--weight expects NAME=C with a number C >= 0 (engagement=2), got {text!r}"
        )
    return pair


def _cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pex_tuner.effects import CateModel
    from pex_tuner.explain import DistillHTE
    from pex_tuner.plotting import plot_segments, write_report

    data = _load_data(args)
    explainer = DistillHTE(
        max_depth=args.max_depth,
        min_units_per_arm=args.min_units_per_arm,
        outcome_weights=dict(args.weight) if args.weight else None,
        random_state=args.seed,
    )
    model = CateModel(
        learner=args.learner, n_folds=args.n_folds, random_state=args.seed, progress=False
    )
    t0 = time.perf_counter()
    explainer.fit(data, model=model)
    seg = explainer.segments_
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "segments.csv", lambda tmp: seg.to_csv(tmp, index=False))
    n_s, n_e = len(explainer.structure_indices_), len(explainer.estimation_indices_)
    write_report(
        out / "segments.html",
        [plot_segments(seg)],
        title="pex-tuner: Distill-HTE segments",
        sections=[
            repr(data),
            f"One multi-task tree per treatment (max depth {args.max_depth}) distilled from "
            f"{args.learner.upper()}-learner CATE predictions of all outcomes on {n_s} "
            f"structure units; segment effects and 95% intervals from {n_e} other units "
            f"(honest), each segment with at least {args.min_units_per_arm} treated and "
            "control units. Green: significantly good (direction-aware), red: significantly "
            "bad, gray: not significant. Hover a bar for its rule.",
        ],
        tables={"Segments": seg},
    )
    lines = []
    for r in seg.to_dict("records"):
        cells = [f"{r['treatment']} S{r['segment']} ({r['n_units']} units): {r['rule']}"]
        for o in data.outcomes:
            star = "*" if r[f"significant[{o}]"] else " "
            cells.append(
                f"    {o}: {r[f'effect[{o}]']:+.4f} [{r[f'ci_low[{o}]']:+.4f}, "
                f"{r[f'ci_high[{o}]']:+.4f}]{star}"
            )
        lines.append("\n".join(cells))
    print(f"{data!r}")
    print("\n".join(lines))
    print(
        f"\n{len(seg)} segments in {time.perf_counter() - t0:.1f} s (* = 95% interval excludes "
        f"0); wrote {out / 'segments.csv'} and {out / 'segments.html'}"
    )
    return 0


def _add_explain_parser(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "explain", help="Distill-HTE: honest segments with effect intervals per treatment"
    )
    _add_data_args(ex, estimator=False, seed=False)
    ex.add_argument("--n-folds", type=int, default=5, help="cross-fitting folds of the CATE model")
    ex.add_argument("--max-depth", type=int, default=3, help="depth of each distillation tree")
    ex.add_argument(
        "--min-units-per-arm",
        type=int,
        default=30,
        help="treated and control units every segment keeps (estimation half)",
    )
    ex.add_argument(
        "--weight",
        type=_parse_weight,
        action="append",
        help="NAME=C: loss weight of an outcome in the tree (default 1 each)",
    )
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--out", required=True, help="output folder (segments.csv, segments.html)")
    ex.set_defaults(func=_cmd_explain)


def _parse_preference(text: str) -> tuple[str, float]:
    pair = _split_weight(text)
    if pair is None:
        raise argparse.ArgumentTypeError(
            f"--weight expects NAME=W with a number W >= 0 (its sign comes from the outcome's "
            f"direction), got {text!r}"
        )
    return pair


def _cmd_learn_policy(args: argparse.Namespace) -> int:
    from pex_tuner.policies import learn_policy, preference_weights, write_artifact

    data = _load_data(args)
    prefs = dict(args.weight or [])
    weights = preference_weights(data, prefs)
    mss = args.min_segment_size
    t0 = time.perf_counter()
    result = learn_policy(
        data,
        args.method,
        outcome_weights=weights,
        max_depth=args.max_depth,
        min_segment_size=int(mss) if mss >= 1 else mss,
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


def _add_learn_policy_parser(sub: argparse._SubParsersAction) -> None:
    from pex_tuner.policies.learners import METHODS

    lp = sub.add_parser(
        "learn-policy", help="learn an interpretable tree policy and write its artifact"
    )
    lp.add_argument("--method", choices=list(METHODS), required=True)
    _add_data_args(lp, learner=False, estimator=False, seed=False)
    lp.add_argument(
        "--weight",
        type=_parse_preference,
        action="append",
        help="NAME=W: non-negative preference of an outcome, signed by its direction "
        "(default 1 each; with any --weight, unnamed outcomes get 0)",
    )
    lp.add_argument("--max-depth", type=int, default=2, help="depth of the policy trees")
    lp.add_argument(
        "--min-segment-size",
        type=float,
        default=0.05,
        help="fewest training units per segment: a fraction (< 1) or a count",
    )
    lp.add_argument(
        "--validation-size", type=float, default=0.3, help="share held out for GUIDE and OPE"
    )
    lp.add_argument("--learner", choices=["t", "x", "s", "dr"], default="t")
    lp.add_argument("--n-folds", type=int, default=5, help="cross-fitting folds of the CATE model")
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--out", required=True, help="the policy artifact JSON to write")
    lp.set_defaults(func=_cmd_learn_policy)


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
        type=_parse_outcome,
        action="append",
        required=True,
        help="NAME:max or NAME:min (repeat for every outcome)",
    )
    p.add_argument("--features", nargs="*", default=None, help="default: all other columns")
    p.add_argument("--propensity", default=None, help="column with logged propensities")
    if learner:
        p.add_argument("--learner", choices=["t", "x", "s", "dr"], default="t")
    if estimator:
        p.add_argument("--estimator", choices=["dr", "ips", "snips", "dm"], default="dr")
    if seed:
        p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pex-tuner",
        description="Personalized experimentation: CATE models, linear-utility policies and "
        "off-policy evaluation.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run all three phases on the built-in experiment")
    demo.add_argument("--n-units", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--learner", choices=["t", "x", "s", "dr"], default="t")
    demo.add_argument("--budget", type=int, default=24, help="tuned policies to evaluate")
    demo.add_argument("--batch-size", type=int, default=4)
    demo.add_argument("--candidates", type=int, default=3)
    demo.add_argument("--rounds", type=int, default=3, help="online rounds (phase 2)")
    demo.add_argument("--offline-only", action="store_true", help="stop after the offline phase")
    demo.add_argument("--out", default="pex_tuner_demo", help="output folder")
    demo.set_defaults(func=_cmd_demo)

    tune = sub.add_parser("tune", help="tune linear-utility policies on an experiment file")
    _add_data_args(tune)
    tune.add_argument("--budget", type=int, default=48, help="tuned policies to evaluate")
    tune.add_argument("--batch-size", type=int, default=4, help="q: trials per batch")
    tune.add_argument("--candidates", type=int, default=4, help="online candidates to select")
    tune.add_argument(
        "--guardrail",
        type=_parse_guardrail,
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

    assign = sub.add_parser("assign", help="assign arms to new units with a policy artifact")
    assign.add_argument("--policy", required=True, help="policy artifact JSON")
    assign.add_argument("--data", required=True, help="CSV or Parquet of units (features)")
    assign.add_argument("--out", required=True, help="output CSV: the input plus a column 'arm'")
    assign.set_defaults(func=_cmd_assign)

    ev = sub.add_parser("evaluate", help="fit CATE models and evaluate example policies")
    ev.add_argument("--data", required=True, help="CSV or Parquet file, one row per unit")
    ev.add_argument("--treatment", required=True)
    ev.add_argument("--control", required=True)
    ev.add_argument(
        "--outcome",
        type=_parse_outcome,
        action="append",
        required=True,
        help="NAME:max or NAME:min (repeat)",
    )
    ev.add_argument("--features", nargs="*", default=None)
    ev.add_argument("--propensity", default=None)
    ev.add_argument("--learner", choices=["t", "x", "s", "dr"], default="t")
    ev.add_argument("--estimator", choices=["dr", "ips", "snips", "dm"], default="dr")
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=_cmd_evaluate)
    _add_export_parser(sub)
    _add_explain_parser(sub)
    _add_learn_policy_parser(sub)

    from pex_tuner.service.store import DEFAULT_URL

    serve = sub.add_parser("serve", help="run the online service (HTTP API for online systems)")
    serve.add_argument("--db", default=DEFAULT_URL, help="SQLAlchemy URL (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--token", default=None, help="bearer token clients must send (or PEX_TUNER_TOKEN)"
    )
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    try:
        return int(args.func(args))
    except PexTunerError as exc:
        print(f"pex-tuner: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
