"""Benchmark: how well a GP surrogate predicts OPE values in absolute vs relative coordinates.

The tuner's GP (BoTorch SingleTaskGP: RBF kernel with BoTorch's dimension-scaled lengthscale
prior, inputs normalized to the unit cube, outcomes standardized, the OPE standard errors as
fixed noise, as Ax builds it) assumes the metrics vary about equally fast everywhere in the
parameter cube. This script measures how true that is for the two scalings of
``pex_tuner.tuning.space.PolicySpace``: per seed, 2,000 Sobol policies of each policy class are
scored by the tuner's OPE metric (DR on train + validation, out-of-fold predictions on the
training units); a GP per objective is fitted on 64 random policies and predicts the other 1,936
(repeated with ``--reps`` random draws of the 64). Reported: R^2 of those predictions per
objective, and the true hypervolume of the 2,000 policies of each class (the Sobol-2000
reference of ``bench_tuning.py``), so that a better-fitting class is not bought with a worse
policy class.

Usage:
    python benchmarks/surrogate_fit.py [--n 100000] [--seeds 0 1 2] [--train 64] [--reps 3]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from pex_tuner.datasets import make_synthetic
from pex_tuner.tuning import OfflineTuner
from pex_tuner.tuning.frontier import hypervolume, to_max_space

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_tuning import library_version, sobol_unit, true_values

SCALINGS = ("absolute", "relative")


def gp_r2(U: np.ndarray, Y: np.ndarray, se: np.ndarray, train: np.ndarray) -> np.ndarray:
    """R^2 per objective of GPs fitted on rows ``train`` of (U, Y, se), predicting the rest."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    test = np.setdiff1d(np.arange(len(U)), train)
    out = []
    for j in range(Y.shape[1]):
        gp = SingleTaskGP(
            torch.tensor(U[train]),
            torch.tensor(Y[train, j : j + 1]),
            train_Yvar=torch.tensor(se[train, j : j + 1] ** 2),
            outcome_transform=Standardize(1),
        )
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        with torch.no_grad():
            mu = gp.posterior(torch.tensor(U[test])).mean.numpy()[:, 0]
        y = Y[test, j]
        out.append(1.0 - np.mean((mu - y) ** 2) / np.var(y))
    return np.array(out)


def run_seed(seed: int, args) -> dict:
    exp = make_synthetic(args.n, random_state=seed)
    dirs = exp.data.directions
    res: dict = {}
    effects = None
    for scaling in SCALINGS:
        tuner = OfflineTuner(
            exp.data,
            split="train+validation",
            scaling=scaling,
            n_folds=3,
            random_state=seed,
            effects=effects,
            progress=False,
        )
        effects = tuner.effects
        space = tuner.space
        # the GP sees unit-cube coordinates (log scale for log-scaled parameters): exactly the
        # Sobol points before from_unit maps them
        U = sobol_unit(len(space.parameter_names), args.reference, seed)
        W, B = space.to_matrices(space.from_unit(U))
        ev = tuner.metric.evaluate_matrix(W, B)
        Y = to_max_space(ev.value, dirs)
        r2 = np.mean(
            [
                gp_r2(U, Y, ev.se, np.random.default_rng(r).choice(len(U), args.train, False))
                for r in range(args.reps)
            ],
            axis=0,
        )
        test = exp.subset(tuner.split_indices["test"])
        pred = effects.predict(test.data, out_of_fold="never")
        ref = to_max_space(
            test.policy_value(np.zeros(test.data.n_units, dtype=np.int64))[None, :], dirs
        )[0]
        Yt = to_max_space(true_values(W, B, pred.tau, test.potential_outcomes), dirs)
        res[scaling] = {"r2": r2, "ref_hv": hypervolume(Yt, ref)}
        print(
            f"[{time.strftime('%H:%M:%S')}] seed {seed} {scaling}: R2 {np.round(r2, 3)}, "
            f"Sobol-{args.reference} true HV {res[scaling]['ref_hv']:.4g}",
            file=sys.stderr,
            flush=True,
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train", type=int, default=64, help="policies the GP is fitted on")
    ap.add_argument("--reps", type=int, default=3, help="random training draws per seed")
    ap.add_argument("--reference", type=int, default=2000, help="Sobol policies per class")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = {s: run_seed(s, args) for s in args.seeds}
    wall = time.perf_counter() - t0
    outcomes = ("engagement", "retention", "cost")
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    lines = [
        "# Surrogate fit: absolute vs relative policy-space scaling",
        "",
        f"Command: `{cmd}`",
        "",
        f"Wall time: {wall / 60:.1f} min. Machine: {platform.machine()}, {os.cpu_count()} "
        f"logical cores, Python {platform.python_version()}, torch {torch.__version__}; "
        f"pex_tuner at {library_version()}.",
        "",
        f"`make_synthetic({args.n:,})`, seeds {', '.join(map(str, args.seeds))}. Per seed and "
        f"scaling: {args.reference:,} Sobol policies scored by DR OPE on train + validation; "
        f"a GP per objective fitted on {args.train} of them (random, {args.reps} draws) "
        f"predicts the other {args.reference - args.train:,}. R^2 of those predictions (mean "
        "over draws), and the true hypervolume of all the policies (units of 1e-3; test "
        "split, reference point assign-all-control).",
        "",
        "| seed | scaling | "
        + " | ".join(f"R^2 {o}" for o in outcomes)
        + f" | Sobol-{args.reference} true HV |",
        "| --- | --- | " + " | ".join("---:" for _ in outcomes) + " | ---: |",
    ]
    for s, res in results.items():
        for scaling in SCALINGS:
            r = res[scaling]
            lines.append(
                f"| {s} | {scaling} | "
                + " | ".join(f"{v:.3f}" for v in r["r2"])
                + f" | {r['ref_hv'] * 1e3:.3f} |"
            )
    for scaling in SCALINGS:
        r2 = np.mean([results[s][scaling]["r2"] for s in results], axis=0)
        hv = np.mean([results[s][scaling]["ref_hv"] for s in results])
        lines.append(
            f"| mean | {scaling} | " + " | ".join(f"{v:.3f}" for v in r2) + f" | {hv * 1e3:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
