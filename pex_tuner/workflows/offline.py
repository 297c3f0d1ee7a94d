"""The offline tuning run (``pex-tuner tune``, phase 1b of ``pex-tuner demo``).

Fit the CATE model and tune linear-utility policies (:class:`~pex_tuner.tuning.OfflineTuner`),
optionally tune again without biases for the comparison plot, then write into one folder::

    frontier.csv        the Pareto frontier: parameters, OPE values, arm shares, artifact paths
    candidates.json     the online candidates (largest hypervolume subset) and the reference point
    report.html         Pareto front, with/without-bias fronts, hypervolume traces, tables
    policies/*.json     policy artifacts of the frontier and the candidates (+ effects.joblib)
    tuner/              the saved tuner (resume it, or start the online phase from it)

:func:`run_offline_tuning` does it all; the steps are public so a notebook can run them one by
one: :func:`tune_policies`, :func:`frontier_table`, :func:`candidates_document`,
:func:`write_offline_report`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.datasets import ExperimentWithTruth
from pex_tuner.files import atomic_write, atomic_write_text
from pex_tuner.tuning import OfflineTuner
from pex_tuner.tuning.config import check_count
from pex_tuner.tuning.display import (
    describe_policy,
    display_parameters,
    display_table,
    parameter_columns,
)

__all__ = [
    "OfflineRun",
    "TunedPolicies",
    "candidates_document",
    "frontier_table",
    "run_offline_tuning",
    "tune_policies",
    "write_offline_report",
]


@dataclass(frozen=True, eq=False)
class TunedPolicies:
    """A tuned OfflineTuner, with its frontier and hypervolume trace per tuning run.

    Attributes:
        tuner: the tuner with biases (the one whose policies are written).
        fronts: ``"with biases"`` (and ``"without biases"``) -> Pareto frontier table.
        traces: the same keys -> hypervolume trace table.
    """

    tuner: OfflineTuner
    fronts: dict[str, pd.DataFrame]
    traces: dict[str, pd.DataFrame]

    @property
    def front(self) -> pd.DataFrame:
        """The frontier of the tuner with biases."""
        return self.fronts["with biases"]


@dataclass(frozen=True, eq=False)
class OfflineRun:
    """What :func:`run_offline_tuning` wrote and found.

    Attributes:
        tuner: the tuned OfflineTuner (also saved in ``out/tuner``).
        frontier: the table written to ``frontier.csv``, one row per frontier policy.
        candidates: the online candidates, one row per policy.
        seconds: wall time of the whole run.
        out: the output folder.
    """

    tuner: OfflineTuner
    frontier: pd.DataFrame
    candidates: pd.DataFrame
    seconds: float
    out: Path

    def summary(self) -> str:
        """Frontier, candidates and the files written, as ``pex-tuner tune`` prints them."""
        outs = list(self.tuner.data.outcomes)
        front, cand, out = self.frontier, self.candidates, self.out
        cols = ["policy_id", *outs, *[f"{o}_test" for o in outs]]
        cols += [c for c in front.columns if c.endswith("_true_test")]
        estimate = self.tuner.config["frontier_estimate"]
        basis = "GP posterior mean" if estimate == "model" else "observed OPE"
        lines = [
            f"\nPareto frontier ({len(front)} policies; selected by the {basis}; '<outcome>' "
            "is that estimate, '<outcome>_test' the OPE estimate on the untouched test split):",
            front[cols].round(4).to_string(index=False),
            f"\nOnline candidates (largest hypervolume subset of {len(cand)}):",
            cand[["policy", *outs]].round(4).to_string(index=False),
        ]
        if "note" in cand.attrs:
            lines.append(f"Note: {cand.attrs['note']}.")
        return "\n".join(
            [
                *lines,
                f"\nWrote {out / 'frontier.csv'}, {out / 'candidates.json'}, "
                f"{out / 'report.html'}, policy artifacts in {out / 'policies'}, and the saved "
                f"tuner in {out / 'tuner'} ({self.seconds:.0f} s).",
            ]
        )


def tune_policies(
    data: ExperimentData,
    *,
    budget: int,
    compare_no_bias: bool = True,
    verbose: bool = True,
    **tuner_options: Any,
) -> TunedPolicies:
    """Fit the CATE model, tune ``budget`` policies, and (optionally) tune again without biases.

    Args:
        data: the logged experiment.
        budget: tuned policies to evaluate (per tuning run).
        compare_no_bias: also tune policies without biases (sharing the CATE model), for the
            comparison of fronts; skipped when the policy space has no biases anyway.
        verbose: print the experiment and the fitted model's split and parameter bounds.
        **tuner_options: keyword arguments of :class:`~pex_tuner.tuning.OfflineTuner`.
    """
    check_count("budget", budget)  # the tuner checks its options before fitting
    if verbose:
        print(f"{data!r}", flush=True)
    tuner = OfflineTuner(data, **tuner_options)
    if verbose:
        _describe_tuner(tuner)
    tuner.run(budget)
    fronts = {"with biases": tuner.get_pareto_frontier()}
    traces = {"with biases": tuner.hypervolume_trace()}
    if compare_no_bias and tuner.space.use_biases:
        plain = OfflineTuner(
            data,
            **tuner_options,
            use_biases=False,
            effects=tuner.effects,
            name="pex_tuner_no_bias",
        )
        plain.run(budget)
        fronts["without biases"] = plain.get_pareto_frontier()
        traces["without biases"] = plain.hypervolume_trace()
    return TunedPolicies(tuner, fronts, traces)


def _describe_tuner(tuner: OfflineTuner) -> None:
    """Print the CATE model (with the learner-selection table), the scored units and the
    parameter ranges."""
    cfg, bounds = tuner.config, tuner.space.bounds().items()
    shown = tuner.space.display_names()
    n_train = len(tuner.split_indices["train"])
    if tuner.learner_selection is not None:
        print(tuner.learner_selection.to_text(), flush=True)
    learner = tuner.effects.learner.upper()
    print(
        f"CATE model ({learner}-learner) fitted on {n_train} train units; policies evaluated "
        f"by {str(cfg['estimator']).upper()} OPE on {tuner.metric.data.n_units} units "
        f"({cfg['split']}); the {len(tuner.split_indices['test'])} test units are kept for the "
        "honest estimates. Parameters: "
        + ", ".join(f"{shown.get(k, k)} in [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in bounds),
        flush=True,
    )


def frontier_table(
    tuner: OfflineTuner,
    front: pd.DataFrame,
    artifacts: Mapping[str, str],
    truth: ExperimentWithTruth | None = None,
) -> pd.DataFrame:
    """The frontier as written to ``frontier.csv``.

    Args:
        tuner: the tuned OfflineTuner.
        front: its Pareto frontier (``tuner.get_pareto_frontier()``).
        artifacts: policy name -> artifact path relative to the output folder.
        truth: the experiment with its potential outcomes (simulated data): adds the columns
            ``<outcome>_true_test``, the true value of each policy on the test units.

    Returns:
        One row per frontier policy: ``policy_id``, ``policy`` (the artifact path), ``kind``,
        ``description`` ("assign all to <arm>" for a baseline), the parameters named by outcome
        and arm (``w[retention]``, ``b[arm_2]``; blank for baselines), each outcome's value and
        standard error (the estimate that selected the frontier), the arm shares, and each
        outcome's OPE estimate on the untouched test split, ``<outcome>_test`` and
        ``<outcome>_test_se`` (honest: the test units played no part in the selection).
    """
    data = tuner.data
    outs = list(data.outcomes)
    columns = [
        "policy",
        "kind",
        *tuner.space.parameter_names,
        *[c for o in outs for c in (o, f"{o}_se")],
        *[f"share[{a}]" for a in data.arms],
    ]
    table = display_table(front[columns], tuner.space)
    table.insert(0, "policy_id", table["policy"])
    table["policy"] = table["policy_id"].map(artifacts)
    test = tuner.test_metric.evaluate(
        [tuner.policy(n) for n in table["policy_id"]], names=list(table["policy_id"])
    )
    for j, o in enumerate(outs):
        table[f"{o}_test"] = test.value[:, j]
        table[f"{o}_test_se"] = test.se[:, j]
    if truth is not None:
        test = truth.subset(tuner.split_indices["test"])
        pred = tuner.effects.predict(test.data)
        for o_idx, o in enumerate(outs):
            table[f"{o}_true_test"] = [
                test.policy_value(tuner.policy(n).assign_index_from_effects(pred))[o_idx]
                for n in table["policy_id"]
            ]
    return table


def candidates_document(
    tuner: OfflineTuner, candidates: pd.DataFrame, artifacts: Mapping[str, str]
) -> dict[str, Any]:
    """The content of ``candidates.json``: reference point, objectives, guardrail bounds,
    subset hypervolume and, per candidate, its artifact, what it is (``description``), its
    parameters named by outcome and arm (``{"w[retention]": ..., "b[arm_2]": ...}``; null for
    an assign-all baseline) and OPE values with standard errors.

    Args:
        tuner: the tuned OfflineTuner.
        candidates: ``tuner.select_online_candidates(k)``.
        artifacts: policy name -> artifact path relative to the output folder.
    """
    data = tuner.data
    outs = list(data.outcomes)
    return {
        "reference_point": {
            "policy": "all:" + data.arms[0],
            **{o: float(tuner.baseline_eval.value[0, j]) for j, o in enumerate(outs)},
        },
        "objectives": tuner.config["objectives"],
        "guardrails": tuner.guardrail_bounds,
        "subset_hypervolume": float(candidates["subset_hypervolume"].iloc[0]),
        "note": candidates.attrs.get("note"),
        "hypervolume_reference": str(candidates["reference"].iloc[0]),
        "candidates": [
            {
                "policy_id": r["policy"],
                "artifact": artifacts[r["policy"]],
                "description": describe_policy(str(r["policy"]), str(r["kind"])),
                "parameters": display_parameters(
                    tuner.space,
                    {p: r[p] for p in tuner.space.parameter_names if p in r},
                    str(r["kind"]),
                ),
                **{o: r[o] for o in outs},
                **{f"{o}_se": r[f"{o}_se"] for o in outs},
            }
            for r in candidates.to_dict("records")
        ],
    }


def write_offline_report(
    path: str | Path, tuned: TunedPolicies, table: pd.DataFrame, candidates: pd.DataFrame
) -> Path:
    """Write ``report.html``: Pareto front, fronts with/without biases, hypervolume traces,
    and the frontier and candidate tables.

    Args:
        path: the HTML file to write.
        tuned: the tuning runs (:func:`tune_policies`).
        table: the frontier table (:func:`frontier_table`).
        candidates: the online candidates.
    """
    from pex_tuner.plotting import (
        plot_front_comparison,
        plot_hypervolume,
        plot_pareto_front,
        write_report,
    )

    tuner, front = tuned.tuner, tuned.front
    ev = display_table(tuner.evaluations(), tuner.space)
    figs = [
        plot_pareto_front(
            ev, tuner, frontier=list(front["policy"]), candidates=list(candidates["policy"])
        ),
        plot_front_comparison(
            {k: display_table(f, tuner.space) for k, f in tuned.fronts.items()},
            tuner,
            baselines=ev[ev["kind"] == "baseline"],
            title="Pareto fronts with and without biases (PEX Fig. 2, left)",
        ),
        plot_hypervolume(tuned.traces),
    ]
    subset_hv = float(candidates["subset_hypervolume"].iloc[0])
    cand = display_table(candidates, tuner.space).rename(columns={"policy": "policy_id"})
    write_report(
        Path(path),
        figs,
        title="pex-tuner: offline tuning report",
        sections=[
            repr(tuner),
            _tuning_sentence(tuner),
            _guardrail_sentence(tuner),
            f"Selected {len(candidates)} online candidates: {', '.join(candidates['policy'])} "
            f"(subset hypervolume {subset_hv:.4g} against the "
            f"{candidates['reference'].iloc[0]} reference point).",
        ],
        tables={
            **_selection_table(tuner),
            "Pareto frontier": _report_table(tuner, table),
            "Online candidates": _report_table(tuner, cand),
        },
    )
    return Path(path)


def _tuning_sentence(tuner: OfflineTuner) -> str:
    """How the policies were evaluated and the frontier selected, in words."""
    cfg = tuner.config
    design = sum(r["node"] == "design" for r in tuner.records)
    refined = tuner.n_evaluations - design
    how = (
        f"a dense quasi-random design of {design} policies, then {refined} {cfg['acquisition']} "
        f"refinements (batches of {cfg['batch_size']})"
        if design
        else f"{refined} policies from Sobol then {cfg['acquisition']}"
    )
    basis = (
        "the GP's posterior mean (denoised: the best of many noisy estimates is biased upward)"
        if cfg["frontier_estimate"] == "model"
        else "the observed OPE estimates"
    )
    return (
        f"Evaluated {how}, by {str(cfg['estimator']).upper()} OPE on "
        f"{tuner.metric.data.n_units} units ({cfg['split']}). The frontier and candidates are "
        f"selected by {basis}; tables show that estimate with its 95% interval and, beside it, "
        "the OPE estimate on the untouched test split. Reference point: assign everyone to "
        "control."
    )


def _selection_table(tuner: OfflineTuner) -> dict[str, pd.DataFrame]:
    """The learner-selection table for the report (empty when the learner was given)."""
    sel = tuner.learner_selection
    if sel is None:
        return {}
    title = f"CATE learner chosen by the data: {sel.learner} (criterion {sel.criterion})"
    return {title: sel.scores.round(4)}


def _guardrail_sentence(tuner: OfflineTuner) -> str:
    """The guardrails in words, with their bounds and control's values."""
    guards = tuner.config["guardrails"] or {}
    if not guards:
        return "No guardrails: every evaluated policy may be on the frontier."
    outs = list(tuner.data.outcomes)
    parts = []
    for g, tol in guards.items():
        j = outs.index(g)
        worse = "below" if tuner.data.directions[j] == "max" else "above"
        control = float(tuner.baseline_eval.value[0, j])
        bound = tuner.guardrail_bounds[g]
        sign = ">=" if tuner.data.directions[j] == "max" else "<="
        parts.append(f"{g} {sign} {bound:.4g} (at most {tol:.1%} {worse} control's {control:.4g})")
    return (
        "Guardrails: " + "; ".join(parts) + ". Policies that break them are left off the "
        "frontier and the candidates."
    )


def _report_table(tuner: OfflineTuner, table: pd.DataFrame) -> pd.DataFrame:
    """A frontier or candidates table as the report shows it: one column per outcome with
    its 95% interval half-width, the arm shares in one column, parameters by outcome and arm
    (blank for baselines), and no bookkeeping columns."""
    data, z = tuner.data, 1.959964
    params = [c for c in parameter_columns(tuner.space) if c in table.columns]
    out = table[["policy_id", "description", *params]].copy()
    for o, d in zip(data.outcomes, data.directions, strict=True):
        label = f"{o} ({d}) ± 95%"
        pairs = zip(table[o], table[f"{o}_se"], strict=True)
        out[label] = [f"{v:.4g} ± {z * se:.2g}" for v, se in pairs]
        if f"{o}_test" in table.columns:
            pairs = zip(table[f"{o}_test"], table[f"{o}_test_se"], strict=True)
            out[f"{o} on test ± 95%"] = [f"{v:.4g} ± {z * se:.2g}" for v, se in pairs]
        if f"{o}_true_test" in table.columns:
            out[f"{o} true (test)"] = table[f"{o}_true_test"]
    shares = table[[f"share[{a}]" for a in data.arms]].to_numpy()
    out["arm shares"] = [
        ", ".join(f"{a} {s:.0%}" for a, s in zip(data.arms, row, strict=True) if s >= 0.005)
        for row in shares
    ]
    return out


def run_offline_tuning(
    data: ExperimentData,
    *,
    out: str | Path,
    budget: int,
    batch_size: int,
    candidates: int,
    seed: int,
    guardrails: dict[str, float] | None = None,
    learner: str = "auto",
    estimator: str = "dr",
    acquisition: str = "qLogNParEGO",
    scaling: str = "absolute",
    compare_no_bias: bool = True,
    truth: ExperimentWithTruth | None = None,
    n_folds: int = 5,
    design_size: int = 1024,
    verbose: bool = True,
) -> OfflineRun:
    """The whole offline phase: tune, frontier, candidates, artifacts, report, saved tuner.

    Args:
        data: the logged experiment.
        out: output folder (created): frontier.csv, candidates.json, report.html,
            policies/*.json (+ effects.joblib), tuner/.
        budget: ParEGO refinements after the dense design; batch_size: trials per batch (q).
        candidates: online candidates to select from the frontier.
        seed: ``random_state`` of the split, the CATE model and the tuner.
        guardrails, learner, estimator, acquisition, scaling, n_folds, design_size: as in
            :class:`~pex_tuner.tuning.OfflineTuner`.
        compare_no_bias: also tune without biases for the report's comparison plot.
        truth: the experiment with its potential outcomes (simulated data): frontier.csv
            gets each policy's true value on the test units.
        verbose: print progress lines (the experiment, the fitted model).

    Raises:
        ConfigurationError: a bad option, before anything is fitted or written.
    """
    check_count("budget", budget)
    check_count("candidates", candidates)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tuned = tune_policies(
        data,
        budget=budget,
        compare_no_bias=compare_no_bias,
        verbose=verbose,
        guardrails=guardrails,
        learner=learner,
        estimator=estimator,
        acquisition=acquisition,
        scaling=scaling,
        batch_size=batch_size,
        random_state=seed,
        n_folds=n_folds,
        design_size=design_size,
    )
    tuner, front = tuned.tuner, tuned.front
    cand = tuner.select_online_candidates(candidates)
    # candidates come from the frontier of tuned policies, which a baseline may dominate
    names = list(dict.fromkeys([*front["policy"], *cand["policy"]]))
    paths = tuner.write_artifacts(str(out_dir / "policies"), names=names)
    rel = {k: str(Path(v).relative_to(out_dir)) for k, v in paths.items()}
    table = frontier_table(tuner, front, rel, truth)
    atomic_write(out_dir / "frontier.csv", lambda tmp: table.to_csv(tmp, index=False))
    doc = candidates_document(tuner, cand, rel)
    atomic_write_text(out_dir / "candidates.json", json.dumps(doc, indent=2))
    write_offline_report(out_dir / "report.html", tuned, table, cand)
    tuner.save(str(out_dir / "tuner"))
    return OfflineRun(tuner, table, cand, time.perf_counter() - t0, out_dir)
