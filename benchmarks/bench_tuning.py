"""Benchmark of record for offline tuning: true hypervolume of each method's frontier.

Experiments with known potential outcomes (``--experiments``): ``synthetic`` is
``make_synthetic(n)`` (4 arms; engagement max, retention max, cost min); ``synthetic-3arm`` is
``make_synthetic(n, n_treatments=2, n_outcomes=2, design_seed=1)`` (3 arms; a goal and a
guardrail outcome, both objectives). Seeds vary the sample (``random_state``); the split is the
tuner's (train / validation / test, seeded).

Per (experiment, seed):

* every candidate CATE learner (T, X, DR, S on LightGBM, 5 folds) is fitted on the train split
  and scored by ``pex_tuner.effects.score_learners`` (exactly what ``learner="auto"`` does);
* **new default**: ``OfflineTuner(data)`` with its defaults (the picked learner; every non-test
  unit scored; the 1,024-policy dense design, its ``model_points`` nearest the frontier in Ax;
  ParEGO refinement of ``--budget`` policies in batches of 8; the frontier by the GP's
  posterior mean). Its frontier is also scored from the observed OPE values
  ("observed" rows) and after each batch (the budget curve);
* the same with ``acquisition`` qLogNParEGO-HV and qLogNEHVI (``--acquisitions``);
* **dense design alone**: the design's OPE frontier (observed), for every learner;
* **old defaults**: T-learner, validation split, Sobol then qLogNParEGO for 64 evaluations in
  batches of 4, observed frontier (the defaults before issue #11);
* **Sobol, same wall time**: scrambled Sobol policies of the picked learner's space evaluated in
  batched OPE passes for as long as the new default's tuning took, their observed OPE frontier.

TRUE values: a policy acts on the CATE model's predictions for the TEST units (never seen by
the model, the policy ranges or the selection); its true value is the mean true potential
outcome of the arms it assigns there. True HV of a method = hypervolume (maximization space,
reference: assign-all-control's true value) of the true values of the policies on its frontier.
**Oracle**: 4,096 argmax policies over the TRUE effects (dense weights and biases over ranges
from the true effects) plus the assign-all arms. **Ceiling** of a learner: the true HV of all
1,024 design policies of that learner (the best any subset chosen by truth can do).

Usage:
    python benchmarks/bench_tuning.py [--n 30000] [--seeds 0 1 2] [--budget 32]
        [--experiments synthetic synthetic-3arm] [--acquisitions ...] [--jobs 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import CateModel, EffectPredictions, score_learners
from pex_tuner.tuning import OfflineTuner, PolicySpace
from pex_tuner.tuning.frontier import hypervolume, pareto_mask, to_max_space

LEARNERS = ("t", "x", "dr", "s")
EXPERIMENTS = {
    "synthetic": lambda n, seed: make_synthetic(n, random_state=seed),
    "synthetic-3arm": lambda n, seed: make_synthetic(
        n, n_treatments=2, n_outcomes=2, design_seed=1, random_state=seed
    ),
}
OLD_BUDGET = 64


def library_version() -> str:
    """The git commit of the checkout and whether pex_tuner had uncommitted changes."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pex_tuner"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"commit {head}" + (" with uncommitted changes in pex_tuner/" if dirty else "")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def true_values(
    W: np.ndarray, B: np.ndarray, tau: np.ndarray, po: np.ndarray, chunk: int = 64
) -> np.ndarray:
    """True mean outcomes (P, J) of P linear policies (weights W (P, J), biases B (P, K)).

    Utilities are summed as ``LinearUtilityPolicy.utilities`` does (biases, then outcome by
    outcome), argmax over arms with ties to the lowest index, then the true potential outcomes
    ``po`` (n, K, J) of the assigned arms are averaged over units.
    """
    n = tau.shape[0]
    rows = np.arange(n)[None, :]
    out = np.empty((len(W), po.shape[2]))
    for s in range(0, len(W), chunk):
        w, b = W[s : s + chunk], B[s : s + chunk]
        u = np.empty((len(w), n, tau.shape[1]))
        u[:] = b[:, None, :]
        for j in range(tau.shape[2]):
            u += w[:, j, None, None] * tau[None, :, :, j]
        a = np.argmax(u, axis=2)  # (p, n)
        out[s : s + chunk] = po[rows, a].mean(axis=1)
    return out


def sobol_unit(d: int, n: int, seed: int) -> np.ndarray:
    """The first n points (n, d) of a scrambled Sobol sequence in the unit cube."""
    from scipy.stats import qmc

    m = int(np.ceil(np.log2(max(n, 2))))
    return qmc.Sobol(d=d, scramble=True, seed=seed).random_base2(m)[:n]


def sobol_params(space, n: int, seed: int) -> list[dict[str, float]]:
    """The first n Sobol points over the space, mapped as the tuner searches it
    (``PolicySpace.from_unit``: log scale for log-scaled parameters)."""
    return space.from_unit(sobol_unit(len(space.parameter_names), n, seed))


class Truth:
    """True values of policies on the test units of one (experiment, seed)."""

    def __init__(self, exp, test_idx: np.ndarray) -> None:
        self.test = exp.subset(test_idx)
        self.po = self.test.potential_outcomes
        self.dirs = exp.data.directions
        control = self.test.policy_value(np.zeros(len(test_idx), dtype=np.int64))
        self.ref = to_max_space(control[None, :], self.dirs)[0]

    def hv_linear(self, W: np.ndarray, B: np.ndarray, tau: np.ndarray) -> float:
        """True HV of linear policies acting on effects ``tau`` of the test units."""
        Y = to_max_space(true_values(W, B, tau, self.po), self.dirs)
        return hypervolume(Y, self.ref)

    def hv_frontier(self, tuner: OfflineTuner, frame, pred: EffectPredictions) -> float:
        """True HV of the policies named in ``frame`` (a frontier or candidate set)."""
        Y = [
            self.test.policy_value(tuner.policy(name).assign_index_from_effects(pred))
            for name in frame["policy"]
        ]
        return hypervolume(to_max_space(np.asarray(Y), self.dirs), self.ref)

    def oracle(self, n: int, seed: int) -> float:
        """True HV of ``n`` dense argmax policies over the TRUE effects plus assign-all."""
        true = EffectPredictions(
            tau=self.test.true_effects,
            mu=self.po,
            arms=self.test.data.arms,
            outcomes=self.test.data.outcomes,
        )
        space = PolicySpace.from_predictions(true, self.dirs)
        W, B = space.to_matrices(sobol_params(space, n, seed))
        K = len(true.arms)
        W = np.vstack([W, np.zeros((K, W.shape[1]))])
        B = np.vstack([B, 1e6 * np.eye(K)])
        return self.hv_linear(W, B, true.tau)


def design_hvs(tuner: OfflineTuner, truth: Truth, tau: np.ndarray) -> tuple[float, float]:
    """(true HV of the design's observed OPE frontier, true HV of all design policies)."""
    tuner.evaluate_design()
    rows = [r for r in tuner.records if r["node"] == "design"]
    W, B = tuner.space.to_matrices([r["parameters"] for r in rows])
    frame = tuner.log.frame_of(rows)
    Y = tuner.log.objective_matrix(frame)
    ok = frame["feasible"].to_numpy(dtype=bool)
    front = np.flatnonzero(ok)[pareto_mask(Y[ok])]
    return truth.hv_linear(W[front], B[front], tau), truth.hv_linear(W, B, tau)


def sobol_same_time(tuner: OfflineTuner, truth: Truth, tau, seconds: float, seed: int):
    """Sobol policies evaluated in passes of 512 for ``seconds``: (true HV of their OPE
    frontier, number evaluated)."""
    space, t0 = tuner.space, time.perf_counter()
    params = sobol_params(space, 65536, seed + 7)
    Ys, n = [], 0
    while n < len(params) and (n == 0 or time.perf_counter() - t0 < seconds):
        ev = tuner.metric.evaluate_matrix(*space.to_matrices(params[n : n + 512]))
        Ys.append(
            to_max_space(
                ev.value[:, [tuner.data.outcomes.index(o) for o in tuner.log.objectives]],
                tuner.log.objective_directions,
            )
        )
        n += 512
    Y = np.vstack(Ys)
    front = np.flatnonzero(pareto_mask(Y))
    W, B = space.to_matrices([params[i] for i in front])
    return truth.hv_linear(W, B, tau), n


def run_tuner(tuner: OfflineTuner, truth: Truth, pred, budget: int, batch: int) -> dict:
    """Run ``budget`` refinements batch by batch: seconds, and true HV of the model and
    observed frontiers and of 4 candidates after each batch."""
    out: dict = {"curve": {}, "seconds": 0.0}
    t0 = time.perf_counter()
    _ = tuner.client  # the design and the Ax experiment
    out["seconds"] += time.perf_counter() - t0
    done = 0
    while done < budget:
        t0 = time.perf_counter()
        tuner.run(min(batch, budget - done))
        out["seconds"] += time.perf_counter() - t0
        done += batch
        out["curve"][done] = truth.hv_frontier(tuner, tuner.get_pareto_frontier(True), pred)
    out["model"] = out["curve"][done]
    out["observed"] = truth.hv_frontier(tuner, tuner.get_pareto_frontier(False), pred)
    for est in (True, False):
        cand = tuner.select_online_candidates(4, use_model_predictions=est)
        out[f"cand4_{'model' if est else 'observed'}"] = truth.hv_frontier(tuner, cand, pred)
    return out


def run_task(name: str, seed: int, args) -> dict:
    """Every method on one (experiment, seed)."""
    import torch

    torch.set_num_threads(1)
    t_task = time.perf_counter()
    exp = EXPERIMENTS[name](args.n, seed)
    data = exp.data
    split = data.split_indices(random_state=seed)
    train = data.subset(split["train"])
    truth = Truth(exp, split["test"])
    tag = f"{name} seed {seed}"
    res: dict = {"fit": {}, "ceiling": {}, "dense": {}}
    models = {}
    for lr in LEARNERS:
        t0 = time.perf_counter()
        models[lr] = CateModel(learner=lr, n_folds=5, random_state=seed, progress=False).fit(train)
        res["fit"][lr] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_learners(train, models, nuisance=models["t"], fit_seconds=res["fit"])
    res["score_seconds"] = time.perf_counter() - t0
    res["scores"] = scores[["learner", "rank", "score", "diff", "diff_se"]].to_dict("records")
    pick = res["pick"] = str(scores["learner"].iloc[0])
    log(f"{tag}: fits {res['fit']}, pick {pick}")
    res["oracle"] = truth.oracle(4096, seed)
    preds = {}
    for lr in LEARNERS:
        preds[lr] = models[lr].predict(truth.test.data, out_of_fold="never")
        tuner = OfflineTuner(data, effects=models[lr], random_state=seed, progress=False)
        res["dense"][lr], res["ceiling"][lr] = design_hvs(tuner, truth, preds[lr].tau)
    log(f"{tag}: oracle {res['oracle']:.4g}, ceilings {res['ceiling']}, dense {res['dense']}")
    res["runs"] = {}
    for acq in args.acquisitions:
        tuner = OfflineTuner(
            data, effects=models[pick], acquisition=acq, random_state=seed, progress=False
        )
        res["runs"][acq] = run_tuner(tuner, truth, preds[pick], args.budget, 8)
        log(f"{tag}: {acq}: {res['runs'][acq]}")
    default = res["runs"][args.acquisitions[0]]
    res["sobol"], res["sobol_n"] = sobol_same_time(
        tuner, truth, preds[pick].tau, default["seconds"], seed
    )
    t0 = time.perf_counter()
    old = OfflineTuner(
        data,
        effects=models["t"],
        learner="t",
        split="validation",
        design_size=0,
        batch_size=4,
        frontier_estimate="observed",
        random_state=seed,
        progress=False,
    )
    old.run(args.old_budget)
    res["old_seconds"] = time.perf_counter() - t0
    res["old"] = truth.hv_frontier(old, old.get_pareto_frontier(False), preds["t"])
    res["old_cand4"] = truth.hv_frontier(old, old.select_online_candidates(4), preds["t"])
    res["seconds"] = time.perf_counter() - t_task
    log(f"{tag}: old {res['old']:.4g} in {res['old_seconds']:.0f}s; task {res['seconds']:.0f}s")
    return res


def run_all(args) -> dict:
    """results[experiment][seed], ``args.jobs`` tasks at a time."""
    tasks = [(e, s) for e in args.experiments for s in args.seeds]
    results: dict = {e: {} for e in args.experiments}
    if args.jobs <= 1:
        for e, s in tasks:
            results[e][s] = run_task(e, s, args)
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_task, e, s, args): (e, s) for e, s in tasks}
        for f in as_completed(futures):
            e, s = futures[f]
            results[e][s] = f.result()
            if args.json:  # what is done so far survives an interrupted run
                with open(args.json + ".partial", "w") as fh:
                    json.dump({"results": results}, fh, default=float)
    return results


def _ms(v: list[float], d: int = 3) -> str:
    a = np.asarray(v, dtype=float)
    return f"{a.mean():.{d}f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.{d}f}"


def method_rows(r: dict, acqs: list[str]) -> dict[str, tuple[float, float, float]]:
    """method -> (true HV, fit seconds, tuning seconds) of one (experiment, seed)."""
    fit_auto = sum(r["fit"].values()) + r["score_seconds"]
    default = r["runs"][acqs[0]]
    rows = {
        f"new default ({acqs[0]}; 24 refinements), GP-mean frontier": (
            default["model"],
            fit_auto,
            default["seconds"],
        ),
        "new default, observed-OPE frontier (the frontier's default)": (
            default["observed"],
            fit_auto,
            default["seconds"],
        ),
    }
    for acq in acqs[1:]:
        run = r["runs"][acq]
        rows[f"{acq} instead (GP-mean frontier)"] = (run["model"], fit_auto, run["seconds"])
    rows["dense design alone (OPE frontier)"] = (r["dense"][r["pick"]], fit_auto, np.nan)
    rows[f"Sobol, same wall time ({r['sobol_n']} policies)"] = (
        r["sobol"],
        fit_auto,
        default["seconds"],
    )
    rows["old defaults (T, validation, 64 x qLogNParEGO)"] = (
        r["old"],
        r["fit"]["t"],
        r["old_seconds"],
    )
    rows["4 candidates: new default (GP mean; the candidates' default)"] = (
        default["cand4_model"],
        np.nan,
        np.nan,
    )
    rows["4 candidates: new default (observed)"] = (default["cand4_observed"], np.nan, np.nan)
    rows["4 candidates: old defaults"] = (r["old_cand4"], np.nan, np.nan)
    return rows


def render(args, results: dict, wall: float) -> str:
    import torch

    commands = args.commands or [" ".join(["python", *sys.argv])]
    lines = [
        "# Tuning benchmark: true hypervolume of each method's frontier",
        "",
        "Command(s), run at the same time on this machine, then rendered together:",
        "",
        *[f"    {c}" for c in commands],
        "",
        f"Wall time (longest run): {wall / 60:.1f} min; machine: {platform.machine()}, "
        f"{os.cpu_count()} logical cores (shared with other work), Python "
        f"{platform.python_version()}, torch {torch.__version__}; pex_tuner {args.library}.",
        "",
        "Setting: see the docstring of `benchmarks/bench_tuning.py`. Ratios: true HV / oracle "
        "HV; / the ceiling (true HV of all 1,024 design policies) of the picked learner; / the "
        "best learner's ceiling. Seconds: CATE fit (all four learners and the scoring for the "
        "new default; the T-learner for the old defaults) and tuning.",
    ]
    for e, per_seed in results.items():
        seeds = sorted(per_seed)
        acqs = list(per_seed[seeds[0]]["runs"])  # the first is the default's
        table: dict[str, list] = {}
        for s in seeds:
            r = per_seed[s]
            best_ceiling = max(r["ceiling"].values())
            for m, (hv, fit, tune) in method_rows(r, acqs).items():
                row = table.setdefault(
                    m, {"oracle": [], "pick": [], "best": [], "fit": [], "tune": []}
                )
                row["oracle"].append(hv / r["oracle"])
                row["pick"].append(hv / r["ceiling"][r["pick"]])
                row["best"].append(hv / best_ceiling)
                row["fit"].append(fit)
                row["tune"].append(tune)
        lines += ["", f"## {e} (n = {args.n:,}; seeds {', '.join(map(str, seeds))})", ""]
        lines += [
            "| method | true HV / oracle | / ceiling of picked learner | / best learner's ceiling "
            "| per seed (/ oracle) | fit s | tuning s |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for m, row in table.items():
            per = ", ".join(f"{v:.3f}" for v in row["oracle"])
            fit = "" if np.isnan(row["fit"]).all() else f"{np.nanmean(row['fit']):.0f}"
            tune = "" if np.isnan(row["tune"]).all() else f"{np.nanmean(row['tune']):.0f}"
            lines.append(
                f"| {m} | {_ms(row['oracle'])} | {_ms(row['pick'])} | {_ms(row['best'])} "
                f"| {per} | {fit} | {tune} |"
            )
        lines += ["", "Refinement budget (new default, GP-mean frontier; true HV / oracle):", ""]
        budgets = sorted(per_seed[seeds[0]]["runs"][acqs[0]]["curve"])
        lines += ["| acquisition | " + " | ".join(f"after {b}" for b in budgets) + " |"]
        lines += ["| --- |" + " ---: |" * len(budgets)]
        for acq in acqs:
            cells = [
                _ms([per_seed[s]["runs"][acq]["curve"][b] / per_seed[s]["oracle"] for s in seeds])
                for b in budgets
            ]
            lines.append(f"| {acq} | " + " | ".join(cells) + " |")
        lines += ["", "Learner selection (criterion: DR pseudo-outcome loss, lower is better):", ""]
        lines += [
            "| seed | criterion ranking | ceiling / oracle per learner | dense-design frontier / "
            "oracle | Spearman(criterion, ceiling) | pick's ceiling / best |",
            "| --- | --- | --- | --- | ---: | ---: |",
        ]
        from scipy.stats import spearmanr

        for s in seeds:
            r = per_seed[s]
            order = [x["learner"] for x in r["scores"]]
            crit = [x["score"] for x in r["scores"]]
            ceil = [r["ceiling"][lr] for lr in order]
            rho = spearmanr(crit, [-c for c in ceil]).statistic
            lines.append(
                f"| {s} | {' < '.join(order)} | "
                + ", ".join(f"{lr} {r['ceiling'][lr] / r['oracle']:.3f}" for lr in LEARNERS)
                + " | "
                + ", ".join(f"{lr} {r['dense'][lr] / r['oracle']:.3f}" for lr in LEARNERS)
                + f" | {rho:.2f} | {r['ceiling'][r['pick']] / max(r['ceiling'].values()):.3f} |"
            )
    return "\n".join(lines) + "\n"


def gp_timing(args) -> str:
    """Seconds per ParEGO batch of 8 against the number of design points given to the GP."""
    import torch

    torch.set_num_threads(1)
    exp = EXPERIMENTS["synthetic"](args.n, 0)
    effects = None
    rows = ["| model_points | seconds per batch of 8 (mean of 2) |", "| ---: | ---: |"]
    for m in args.gp_timing:
        tuner = OfflineTuner(exp.data, learner="t", model_points=m, effects=effects, progress=False)
        effects = tuner.effects
        tuner.run(16)
        secs = sorted({r["batch_seconds"] for r in tuner.records if "batch_seconds" in r})
        rows.append(f"| {m} | {np.mean(secs):.1f} |")
        log(f"model_points {m}: {secs}")
    return "\n".join(rows) + "\n"


def wall_times(args) -> str:
    """Wall seconds of the whole tuner, fit included, new defaults vs old, one after the other
    on the same machine (``--wall``): the benchmark's per-method seconds come from runs that
    shared the machine with each other."""
    import torch

    torch.set_num_threads(1)
    rows = [
        "| experiment | seed | new defaults: fit + tuning (s) | old defaults: fit + tuning (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for e in args.experiments:
        for seed in args.seeds:
            data = EXPERIMENTS[e](args.n, seed).data
            t0 = time.perf_counter()
            new = OfflineTuner(data, random_state=seed, progress=False)
            fit_new = time.perf_counter() - t0
            new.run(args.budget)
            new.select_online_candidates(4)
            total_new = time.perf_counter() - t0
            t0 = time.perf_counter()
            old = OfflineTuner(
                data,
                learner="t",
                split="validation",
                design_size=0,
                batch_size=4,
                frontier_estimate="observed",
                candidate_estimate="observed",
                random_state=seed,
                progress=False,
            )
            fit_old = time.perf_counter() - t0
            old.run(args.old_budget)
            old.select_online_candidates(4)
            total_old = time.perf_counter() - t0
            rows.append(
                f"| {e} | {seed} | {fit_new:.0f} + {total_new - fit_new:.0f} = {total_new:.0f} "
                f"| {fit_old:.0f} + {total_old - fit_old:.0f} = {total_old:.0f} |"
            )
            log(rows[-1])
    return "\n".join(rows) + "\n"


def _read_runs(paths: list[str]) -> tuple[dict, float, list[str]]:
    """Merge the results of several ``--json`` files: (results, longest wall, commands)."""
    results: dict = {}
    wall, commands = 0.0, []
    for path in paths:
        with open(path) as f:
            saved = json.load(f)
        for e, per in saved["results"].items():
            for s, r in per.items():
                for run in r["runs"].values():
                    run["curve"] = {int(b): v for b, v in run["curve"].items()}
                results.setdefault(e, {})[int(s)] = r
        wall = max(wall, saved["wall"])
        commands.append(" ".join(["python", *saved["argv"]]) + f"   # pex_tuner {saved['library']}")
    return results, wall, commands


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000, help="units per experiment")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS)
    )
    ap.add_argument("--budget", type=int, default=32, help="ParEGO refinements (multiple of 8)")
    ap.add_argument(
        "--acquisitions",
        nargs="+",
        default=["qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI"],
        help="the first is the default's",
    )
    ap.add_argument("--old-budget", type=int, default=OLD_BUDGET, help="old defaults' evals")
    ap.add_argument("--jobs", type=int, default=1, help="(experiment, seed) tasks in parallel")
    ap.add_argument("--out", type=str, default=None, help="write the markdown report here")
    ap.add_argument("--json", type=str, default=None, help="also keep the raw results here")
    ap.add_argument("--render", nargs="+", default=None, help="render these --json files")
    ap.add_argument(
        "--gp-timing",
        type=int,
        nargs="*",
        default=None,
        help="only measure seconds per batch for these model_points (e.g. 32 64 128 256)",
    )
    ap.add_argument("--wall", action="store_true", help="only time new vs old defaults")
    args = ap.parse_args()
    args.library = library_version()
    if args.wall:
        text = f"Command: `{' '.join(['python', *sys.argv])}`\n\n" + wall_times(args)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        print(text)
        return
    if args.gp_timing:
        text = f"Command: `{' '.join(['python', *sys.argv])}`\n\n" + gp_timing(args)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        print(text)
        return
    t0 = time.perf_counter()
    args.commands = None
    if args.render:
        results, wall, args.commands = _read_runs(args.render)
        render_cmd = " ".join(["python", *sys.argv])
        args.commands.append(f"{render_cmd}   # renders the runs above into this file")
    else:
        results = run_all(args)
        wall = time.perf_counter() - t0
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {"results": results, "wall": wall, "library": args.library, "argv": sys.argv},
                    f,
                    default=float,
                )
    text = render(args, results, wall)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
