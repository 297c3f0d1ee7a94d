"""Benchmark: does the learner-selection criterion rank CATE learners as the truth does?

For each built-in experiment with truth (``--experiments``) and seed (``--seeds``): the units are
split 60 / 40 (``split_indices(random_state=seed)``: train + validation vs test). Each candidate
learner (T, X, DR, S; LightGBM) is fitted, cross-fitted with ``--folds`` folds, on the 60%, and
scored there by :func:`pex_tuner.effects.score_learners` (the criterion ``select_learner`` uses:
relative DR pseudo-outcome loss with the T-learner's out-of-fold surfaces as the common outcome
model). Then the TRUTH of each learner:

* effects: on the test units, the fold-averaged predictions vs the true effects; ``mse`` is the
  mean over (treatment arm, outcome) of MSE / Var(Y_j), ``corr`` the mean Pearson correlation;
* policies: a dense design of ``--policies`` linear policies (scrambled Sobol over weights and
  biases; weights ``w_0 = ±1``, ``|w_j| <= 4 s_0 / s_j``, biases within ``±0.25`` of the 99th
  percentile of the largest weighted effect, s_j the SD of the learner's effects of outcome j:
  ``PolicySpace``'s absolute scaling) acting on the learner's predictions. Each policy is valued by
  DR OPE on the 60% (out-of-fold predictions, ``pex_tuner.ope.evaluate_linear_policies``; outcome
  model: the common T-learner surfaces) and its OPE Pareto frontier is kept, as the tuner would.
  ``hv``: the TRUE hypervolume of that frontier's policies on the test units (true potential
  outcomes of the arms they assign from the learner's test predictions; reference point: the
  true value of assign-all-control on the test units), divided by the ORACLE's: the true
  hypervolume of the true frontier (``--policies`` weight vectors on the simplex, each unit given
  the arm that maximizes the weighted true potential outcomes). Those are the supported points
  of the true frontier only, so with 3 outcomes a learner's ratio can exceed 1.
  ``hv_design``: the same for all the design's policies (not only the OPE frontier).

Agreement per (experiment, seed): Spearman correlation between the criterion (lower is better)
and the true ``hv`` (negated), whether the pick (lowest criterion) is the truly best learner or
within 0.02 of it (in hv / oracle), and the hv lost by the pick. For comparison the same for an
alternative criterion, ``ope_hv``: the OPE-estimated hypervolume of each learner's design on the
60% (reference: the DR value of assign-all-control there), which needs no truth either.

Usage:
    python benchmarks/bench_learner_selection.py [--experiments synthetic synthetic-3x2 ihdp]
        [--n 30000] [--seeds 0 1 2] [--folds 5] [--policies 1024] [--out FILE [--append]]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
from scipy import stats

from pex_tuner.datasets import load_ihdp, make_synthetic, make_synthetic_a
from pex_tuner.effects import CateModel, EffectPredictions, score_learners
from pex_tuner.ope import evaluate_linear_policies

LEARNERS = ("t", "x", "dr", "s")
NAMES = {"t": "T", "x": "X", "dr": "DR", "s": "S"}
EXPERIMENTS = {
    "synthetic": "make_synthetic(n, random_state=seed): 4 arms, 3 outcomes (defaults)",
    "synthetic-3x2": "make_synthetic(n, n_treatments=2, n_outcomes=2, random_state=seed)",
    "synthetic-het": "make_synthetic(n, heterogeneity=3.0, noise=0.5, random_state=seed): "
    "strong effects, little noise",
    "synthetic_a": "make_synthetic_a(2000, noise=0.5, random_state=seed): 2 arms, 1 outcome",
    "ihdp": "load_ihdp('B', random_state=seed): 747 units, 2 arms, 1 outcome, not randomized",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_experiment(name: str, n: int, seed: int):
    if name == "synthetic":
        return make_synthetic(n, random_state=seed)
    if name == "synthetic-3x2":
        return make_synthetic(n, n_treatments=2, n_outcomes=2, random_state=seed)
    if name == "synthetic-het":
        return make_synthetic(n, heterogeneity=3.0, noise=0.5, random_state=seed)
    if name == "synthetic_a":
        return make_synthetic_a(2000, noise=0.5, random_state=seed)
    return load_ihdp("B", random_state=seed)


def design(
    tau: np.ndarray, directions: tuple[str, ...], n: int, seed: int, biases: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (P, J) and biases (P, K) of n Sobol policies over the absolute policy space of
    effects ``tau`` (n_units, K, J) (biases 0 when ``biases`` is False), plus one all-control
    policy (zeros) in row 0."""
    from scipy.stats import qmc

    K, J = tau.shape[1:]
    sign = np.array([1.0 if d == "max" else -1.0 for d in directions])
    s = tau[:, 1:, :].std(axis=(0, 1))
    s = np.where(s > 0, s, 1e-12)
    wmax = np.r_[1.0, 4.0 * s[0] / s[1:]]
    bound = 0.25 * float(np.quantile(np.abs(tau[:, 1:, :]) @ wmax, 0.99))
    dim = (J - 1) + (K - 1 if biases else 0)
    if dim == 0:
        u = np.zeros((1, 0))
    else:
        m = int(np.ceil(np.log2(max(n, 2))))
        u = qmc.Sobol(d=dim, scramble=True, seed=seed).random_base2(m)[:n]
    W = np.zeros((len(u) + 1, J))
    W[1:, 0] = sign[0]
    W[1:, 1:] = sign[1:] * u[:, : J - 1] * wmax[1:]
    B = np.zeros((len(u) + 1, K))
    if biases:
        B[1:, 1:] = (2.0 * u[:, J - 1 :] - 1.0) * bound
    return W, B


def true_values(W: np.ndarray, B: np.ndarray, tau: np.ndarray, po: np.ndarray) -> np.ndarray:
    """True mean outcomes (P, J) of linear policies acting on ``tau``; ``po`` (n, K, J)."""
    rows = np.arange(tau.shape[0])[None, :]
    out = np.empty((len(W), po.shape[2]))
    for s in range(0, len(W), 64):
        w, b = W[s : s + 64], B[s : s + 64]
        u = np.broadcast_to(b[:, None, :], (len(w), tau.shape[0], tau.shape[1])).copy()
        for j in range(tau.shape[2]):
            u += w[:, j, None, None] * tau[None, :, :, j]
        out[s : s + 64] = po[rows, np.argmax(u, axis=2)].mean(axis=1)
    return out


def hypervolume(Y: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of the rows of Y (P, M) above ref (M,), maximization (BoTorch)."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    Y = Y[(ref < Y).all(axis=1)]
    if len(Y) == 0:
        return 0.0
    if Y.shape[1] == 1:
        return float(Y.max() - ref[0])
    t = torch.as_tensor(Y)
    return float(Hypervolume(torch.as_tensor(ref)).compute(t[is_non_dominated(t)]))


def oracle_hv(po: np.ndarray, ref: np.ndarray, n: int, seed: int) -> float:
    """True hypervolume of the oracle frontier: for n weight vectors w on the simplex (Sobol),
    every unit gets the arm maximizing ``w . po[i, k]`` (po (n_units, K, J), maximization)."""
    from scipy.stats import qmc

    J = po.shape[2]
    if J == 1:
        return hypervolume(po.max(axis=1).mean(axis=0)[None, :], ref)
    u = qmc.Sobol(d=J, scramble=True, seed=seed).random_base2(int(np.ceil(np.log2(n))))[:n]
    w = u / u.sum(axis=1, keepdims=True)
    rows = np.arange(po.shape[0])
    values = np.array([po[rows, np.argmax(po @ wi, axis=1)].mean(axis=0) for wi in w])
    return hypervolume(values, ref)


def pareto(Y: np.ndarray) -> np.ndarray:
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    return is_non_dominated(torch.as_tensor(Y)).numpy()


def learner_truth(model, fit, test, common_mu, sign, args, seed) -> dict:
    """The true quality of one fitted learner and its OPE-estimated hypervolume."""
    oof = model.oof_predictions_
    pred = model.predict(test.data, out_of_fold="never")
    true_tau = test.true_effects
    var_y = test.data.Y.var(axis=0)
    err = ((pred.tau - true_tau)[:, 1:] ** 2).mean(axis=0) / var_y  # (K-1, J)
    corr = [
        np.corrcoef(pred.tau[:, k, j], true_tau[:, k, j])[0, 1]
        if pred.tau[:, k, j].std() > 0
        else 0.0
        for k in range(1, true_tau.shape[1])
        for j in range(true_tau.shape[2])
    ]
    ope_pred = EffectPredictions(tau=oof.tau, mu=common_mu, arms=fit.arms, outcomes=fit.outcomes)
    out = {"mse": float(err.mean()), "corr": float(np.mean(corr))}
    for tag, biases in (("", True), ("_nb", False)):
        W, B = design(oof.tau, fit.directions, args.policies, seed, biases)
        ope = evaluate_linear_policies(fit, ope_pred, W, B).value * sign  # (P + 1, J)
        est = ope[1:]
        front = pareto(est) & (est > ope[0]).all(axis=1)
        Y = true_values(W[1:], B[1:], pred.tau, test.potential_outcomes) * sign
        out[f"ope_hv{tag}"] = hypervolume(est, ope[0])
        out[f"hv{tag}"] = hypervolume(Y[front], args.ref) / args.oracle
        out[f"hv_design{tag}"] = hypervolume(Y, args.ref) / args.oracle
    return out


def run_one(name: str, seed: int, args) -> dict:
    """Every learner on one experiment and seed: criterion, truth, fit seconds."""
    exp = make_experiment(name, args.n, seed)
    idx = exp.data.split_indices(random_state=seed)
    fit_idx = np.sort(np.r_[idx["train"], idx["validation"]])
    fit, test = exp.data.subset(fit_idx), exp.subset(idx["test"])
    sign = np.array([1.0 if d == "max" else -1.0 for d in fit.directions])
    models, seconds = {}, {}
    for learner in LEARNERS:
        t0 = time.perf_counter()
        models[learner] = CateModel(
            learner=learner, n_folds=args.folds, random_state=seed, progress=False
        ).fit(fit)
        seconds[learner] = time.perf_counter() - t0
    scores = score_learners(fit, models, fit_seconds=seconds).set_index("learner")
    args.ref = (test.policy_value(np.zeros(test.data.n_units, dtype=np.int64))) * sign
    oracle = oracle_hv(test.potential_outcomes * sign, args.ref, args.policies, seed)
    args.oracle = oracle
    common_mu = models["t"].oof_predictions_.mu
    rows = {}
    for learner in LEARNERS:
        r = learner_truth(models[learner], fit, test, common_mu, sign, args, seed)
        r["score"] = float(scores.loc[learner, "score"])
        r["diff_se"] = float(scores.loc[learner, "diff_se"])
        r["rank"] = int(scores.loc[learner, "rank"])
        r["seconds"] = seconds[learner]
        rows[learner] = r
    log(
        f"{name} seed {seed} (n_fit={fit.n_units}): "
        + ", ".join(
            f"{NAMES[m]} score {r['score']:.4f} hv {r['hv']:.3f} mse {r['mse']:.4f} "
            f"{r['seconds']:.0f}s"
            for m, r in rows.items()
        )
    )
    return {"learners": rows, "n_fit": fit.n_units, "oracle": oracle}


def agreement(rows: dict, key: str, lower_is_better: bool, target: str) -> dict:
    """Spearman of a criterion vs the true ``target`` (hv / oracle) and vs the true mse, the
    pick, whether it is the best or within 0.02 of it, and the hv it loses."""
    crit = np.array([rows[m][key] for m in LEARNERS])
    crit = crit if lower_is_better else -crit
    hv = np.array([rows[m][target] for m in LEARNERS])
    mse = np.array([rows[m]["mse"] for m in LEARNERS])
    pick, best = int(np.argmin(crit)), int(np.argmax(hv))
    return {
        "rho_hv": float(stats.spearmanr(crit, -hv).statistic),
        "rho_mse": float(stats.spearmanr(crit, mse).statistic),
        "pick": LEARNERS[pick],
        "best": "/".join(NAMES[m] for m, v in zip(LEARNERS, hv, strict=True) if v >= hv[best]),
        "hit": bool(hv[pick] >= hv[best]),
        "near": bool(hv[best] - hv[pick] <= 0.02),
        "lost": float(hv[best] - hv[pick]),
        "hv_pick": float(hv[pick]),
    }


def mean_sd(v, digits: int = 3) -> str:
    v = np.asarray(v, dtype=float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}f} ± {sd:.{digits}f}"


def render(args, results: dict, wall: float) -> str:
    import lightgbm

    cmd = "nice -n 10 python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    lines = [
        ("# Further experiments" if args.append else "# Learner selection")
        + ": criterion ranking vs the true ranking of CATE learners",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical cores (shared with other "
        f"jobs), Python {platform.python_version()}, numpy {np.__version__}, lightgbm "
        f"{lightgbm.__version__}. Total wall time: {wall / 60:.1f} min.",
        "",
        f"Setting: learners T, X, DR, S (LightGBM defaults), {args.folds}-fold cross-fitting on "
        f"60% of the units; {args.policies} Sobol linear policies per learner and class; see the "
        "script's docstring for every definition. `dr_loss`: the criterion `select_learner` "
        "picks by (lower is better). `hv`: true hypervolume of the learner's OPE frontier / the "
        "oracle's, policies with biases (the tuner's default class); `hv_nb`: the same without "
        "biases; `design`: true hypervolume of all the design's policies / oracle; `mse`: true "
        "effect MSE / Var(Y) on the test units; `corr`: correlation of predicted and true "
        "effects; `fit s`: seconds of the learner's cross-fitted fit.",
        "",
        "Experiments: "
        + "; ".join(f"`{e}`: {EXPERIMENTS[e]}" for e in args.experiments)
        + f" (n = {args.n:,} for the make_synthetic ones).",
        "",
        "## Per learner (mean ± SD over seeds)",
        "",
        "| experiment | learner | dr_loss | rank | mse | corr | hv | hv design | hv_nb | "
        "hv_nb design | fit s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in args.experiments:
        for m in LEARNERS:
            rs = [results[e][s]["learners"][m] for s in args.seeds]
            cells = [
                mean_sd([r["score"] for r in rs], 4),
                f"{np.mean([r['rank'] for r in rs]):.1f}",
            ]
            cells += [
                mean_sd([r[k] for r in rs])
                for k in ("mse", "corr", "hv", "hv_design", "hv_nb", "hv_design_nb")
            ]
            cells.append(f"{np.mean([r['seconds'] for r in rs]):.1f}")
            lines.append(f"| {e} | {NAMES[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines + agreement_tables(args, results)) + "\n"


CRITERIA = (
    ("score", True, "dr_loss (select_learner)"),
    ("ope_hv", False, "ope_hv (OPE hypervolume, alternative)"),
)
TARGETS = (("hv", "with biases"), ("hv_nb", "without biases"))


def agreement_tables(args, results: dict) -> list[str]:
    """Per (experiment, seed) agreement tables and the summary over all of them."""
    runs = [(e, s) for e in args.experiments for s in args.seeds]
    lines: list[str] = []
    summary = []
    for target, cls in TARGETS:
        for key, lower, label in CRITERIA:
            k = key + target[2:]  # ope_hv_nb goes with hv_nb
            k = "score" if key == "score" else k
            agg = [agreement(results[e][s]["learners"], k, lower, target) for e, s in runs]
            summary.append((f"{label}, policies {cls}", agg))
            if key != "score":
                continue
            lines += [
                "",
                f"## Agreement per experiment and seed: {label} vs true {target} ({cls})",
                "",
                "| experiment | seed | Spearman vs true hv | Spearman vs true mse | pick | "
                "true best (ties: all) | pick is best | within 0.02 | hv lost |",
                "| --- | ---: | ---: | ---: | --- | --- | --- | --- | ---: |",
            ]
            for (e, s), a in zip(runs, agg, strict=True):
                lines.append(
                    f"| {e} | {s} | {_num(a['rho_hv'])} | {_num(a['rho_mse'])} | "
                    f"{NAMES[a['pick']]} | {a['best']} | {'yes' if a['hit'] else 'no'} | "
                    f"{'yes' if a['near'] else 'no'} | {a['lost']:.3f} |"
                )
    lines += [
        "",
        f"## Summary over all {len(runs)} (experiment, seed) runs",
        "",
        "`hv lost`: the best learner's hv minus the pick's (both fractions of the oracle's); "
        "`picks the best` counts ties (all learners equal) as hits.",
        "",
        "| rule | mean Spearman vs true hv | mean Spearman vs true mse | picks the best | "
        "within 0.02 | mean hv lost | mean hv of the pick |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target, cls in TARGETS:
        for m in LEARNERS:
            fixed = [
                agreement(results[e][s]["learners"], "rank", True, target)
                | _fixed(results[e][s]["learners"], m, target)
                for e, s in runs
            ]
            summary.append((f"always {NAMES[m]}, policies {cls}", fixed))
    for label, agg in summary:
        rho = [a["rho_hv"] for a in agg if "fixed" not in a]
        rho_mse = [a["rho_mse"] for a in agg if "fixed" not in a]
        hits = f"{sum(a['hit'] for a in agg)}/{len(agg)}"
        lines.append(
            f"| {label} | {_mean(rho)} | {_mean(rho_mse)} | {hits} "
            f"| {sum(a['near'] for a in agg)}/{len(agg)} | "
            f"{np.mean([a['lost'] for a in agg]):.3f} | "
            f"{np.mean([a['hv_pick'] for a in agg]):.3f} |"
        )
    return lines


def _mean(v: list[float]) -> str:
    v = [x for x in v if np.isfinite(x)]
    return f"{np.mean(v):+.2f}" if v else ""


def _num(x: float) -> str:
    return f"{x:+.2f}" if np.isfinite(x) else "n/a (ties)"


def _fixed(rows: dict, learner: str, target: str) -> dict:
    """Agreement fields of the rule "always ``learner``"."""
    hv = {m: rows[m][target] for m in LEARNERS}
    best = max(hv.values())
    lost = best - hv[learner]
    return {
        "fixed": True,
        "hit": bool(lost <= 0),
        "near": lost <= 0.02,
        "lost": lost,
        "hv_pick": hv[learner],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--experiments",
        nargs="+",
        default=["synthetic", "synthetic-3x2", "ihdp"],
        choices=list(EXPERIMENTS),
    )
    ap.add_argument("--n", type=int, default=30_000, help="units of the make_synthetic ones")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--policies", type=int, default=1024)
    ap.add_argument("--out", type=str, default=None)
    ap.add_argument("--append", action="store_true", help="append to --out, not overwrite")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = {e: {s: run_one(e, s, args) for s in args.seeds} for e in args.experiments}
    text = render(args, results, time.perf_counter() - t0)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a" if args.append else "w") as f:
            if args.append:
                f.write("\n---\n\n")
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
