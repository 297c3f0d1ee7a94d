"""Coverage study: do the 95% OPE intervals cover the true policy value 95% of the time?

Each replication draws a fresh sample of the built-in synthetic experiment (same design, new
units, new randomization, new noise), evaluates one fixed personalized policy (the oracle for
goal + guardrail - cost, a fixed function of x) with DR and IPS, and checks whether the 95%
intervals of the value and of the lift vs assign-all-control cover the *population* truth,
computed once on a large independent sample.

The outcome model is either ``fixed`` (a deliberately misspecified function of x: DR stays
unbiased) or ``fitted`` (a cross-fitted T-learner fitted on the replication's own sample, as in
real use; Ridge base learners by default so hundreds of replications stay cheap).

Usage:
    python benchmarks/ope_coverage.py [--reps 500] [--n 2000] [--model fitted] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import EffectPredictions, fit_effects
from pex_tuner.ope import evaluate

WEIGHTS = np.array([1.0, 1.0, -1.0])  # goal + guardrail - cost


def population_truth(n: int = 400_000) -> tuple[np.ndarray, np.ndarray]:
    """(value, lift) of the fixed policy in the population, each of shape (n_outcomes,)."""
    big = make_synthetic(n, random_state=987_654)
    a = big.oracle_assignment(WEIGHTS)
    value = big.policy_value(a)
    return value, value - big.policy_value(np.zeros(n, dtype=int))


def run_coverage(
    reps: int = 500,
    n_units: int = 2000,
    model: str = "fitted",
    estimators: tuple[str, ...] = ("dr", "ips"),
    seed0: int = 1,
    truth: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Coverage of 95% intervals per estimator, quantity (value / lift) and outcome."""
    from sklearn.linear_model import Ridge

    value_true, lift_true = population_truth() if truth is None else truth
    hits: list[dict] = []
    for r in range(reps):
        exp = make_synthetic(n_units, random_state=seed0 + r)
        data = exp.data
        assignment = exp.oracle_assignment(WEIGHTS)
        if model == "fixed":
            mu = 0.5 * exp.potential_outcomes + 0.5 * exp.potential_outcomes.mean(axis=0)
            pred = EffectPredictions(
                tau=mu - mu[:, :1], mu=mu, arms=data.arms, outcomes=data.outcomes
            )
        else:
            pred = fit_effects(
                data, base_learner=Ridge(alpha=1.0), n_folds=2, random_state=r, progress=False
            ).predict(data)
        labels = np.asarray(data.arms, dtype=object)[assignment]
        for est in estimators:
            df = evaluate(data, {"policy": labels}, predictions=pred, estimator=est)
            for j, row in enumerate(df.itertuples()):
                hits.append(
                    {
                        "estimator": est,
                        "outcome": row.outcome,
                        "quantity": "value",
                        "covered": row.ci_low <= value_true[j] <= row.ci_high,
                    }
                )
                hits.append(
                    {
                        "estimator": est,
                        "outcome": row.outcome,
                        "quantity": "lift",
                        "covered": row.lift_ci_low <= lift_true[j] <= row.lift_ci_high,
                    }
                )
    return pd.DataFrame(hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--model", choices=["fitted", "fixed"], default="fitted")
    ap.add_argument("--out", type=str, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    hits = run_coverage(args.reps, args.n, args.model)
    secs = time.perf_counter() - t0
    table = (
        hits.pivot_table(
            index=["estimator", "quantity"], columns="outcome", values="covered", aggfunc="mean"
        )
        .assign(pooled=hits.groupby(["estimator", "quantity"])["covered"].mean())
        .round(3)
    )
    cmd = "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    text = "\n".join(
        [
            "# Coverage of 95% OPE intervals (synthetic experiment, population truth)",
            "",
            f"Command: `{cmd}` ({secs:.0f} s)",
            "",
            f"{args.reps} replications of n = {args.n} units; outcome model: {args.model}; "
            "policy: oracle for goal + guardrail - cost. Each cell is the share of replications "
            "whose 95% interval covers the population value (or lift vs assign-all-control).",
            "",
            table.to_markdown(),
            "",
        ]
    )
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
