"""Categorical features to LightGBM: one-hot columns (the FeatureSchema encoding) vs native
categoricals (pandas ``category`` columns, LightGBM's categorical splits).

A T-learner with the default base learner (``pex_tuner.effects.default_base_learner``) is fitted
per arm on 60% of the units and scored on the other 40% against the true effects:

- Hillstrom (``load_hillstrom()``, categorical ``zip_code``, ``channel``, ``history_segment``;
  5-NN imputed potential outcomes as truth), a random subsample of 16,000 customers, outcome
  ``visit``;
- a synthetic experiment whose effect is driven by a 12-level categorical ``region`` (10% of
  it missing) plus a numeric feature, 6,000 units, outcome noise sd 1.

Per (experiment, encoding, seed): PEHE (root mean squared error of tau over arms and test
units), the true value of the argmax-tau policy (mean true outcome gain over control), and fit
seconds. Run:

    .venv/bin/python benchmarks/bench_categoricals.py --seeds 3 > benchmarks/results/categoricals.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from pex_tuner.datasets import load_hillstrom
from pex_tuner.effects import default_base_learner


def _synthetic(seed: int, n: int = 6000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """(features, arm (n,), outcome (n,), true tau (n, 2)) with a categorical-driven effect."""
    rng = np.random.default_rng(seed)
    levels = [f"r{i:02d}" for i in range(12)]
    region = rng.choice(levels, n)
    effect_of = dict(zip(levels, np.linspace(-1.0, 1.0, 12)[rng.permutation(12)], strict=True))
    x = rng.normal(size=n)
    tau = np.array([effect_of[r] for r in region]) + 0.3 * x
    w = rng.integers(0, 2, n)
    y = 0.5 * x + w * tau + rng.normal(size=n)
    region_obs = region.astype(object)
    region_obs[rng.random(n) < 0.1] = None
    X = pd.DataFrame({"region": region_obs, "x": x, "z": rng.normal(size=n)})
    return X, w, y, np.column_stack([np.zeros(n), tau])


def _hillstrom(seed: int, n: int = 16000):
    exp = load_hillstrom()
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(exp.data.n_units, n, replace=False))
    po = exp.potential_outcomes[idx, :, 0]  # visit
    data = exp.data
    return (
        data.features.iloc[idx].reset_index(drop=True),
        data.treatment[idx],
        data.Y[idx, 0],
        po - po[:, :1],
    )


def _encode(X: pd.DataFrame, native: bool, cats: dict[str, list[str]]) -> pd.DataFrame:
    out = {}
    for name in X.columns:
        col = X[name]
        if name not in cats:
            out[name] = col.astype(float)
        elif native:
            out[name] = pd.Categorical(col.astype(object), categories=cats[name])
        else:
            for c in cats[name]:
                v = (col.astype(str) == c).astype(float)
                out[f"{name}={c}"] = v.where(col.notna(), np.nan)
    frame = pd.DataFrame(out)
    frame.columns = [f"f{i}" for i in range(frame.shape[1])]  # LightGBM rejects "=" etc.
    return frame


def _run(X, w, y, tau, native: bool, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed + 100)
    test = rng.random(len(y)) < 0.4
    cats = {
        n: sorted(str(v) for v in X[n].dropna().unique())
        for n in X.columns
        if not pd.api.types.is_numeric_dtype(X[n])
    }
    E = _encode(X, native, cats)
    K = tau.shape[1]
    t0 = time.perf_counter()
    mu = np.zeros((int(test.sum()), K))
    for k in range(K):
        rows = (~test) & (w == k)
        model = default_base_learner(seed, min_arm_units=int(rows.sum()))
        model.fit(E[rows], y[rows])
        mu[:, k] = model.predict(E[test])
    seconds = time.perf_counter() - t0
    tau_hat = mu - mu[:, :1]
    pehe = float(np.sqrt(((tau_hat[:, 1:] - tau[test, 1:]) ** 2).mean()))
    chosen = np.argmax(tau_hat, axis=1)
    value = float(tau[test][np.arange(len(chosen)), chosen].mean())
    return pehe, value, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name, make in (
        ("synthetic (region drives tau)", _synthetic),
        ("hillstrom visit", _hillstrom),
    ):
        for seed in range(args.seeds):
            X, w, y, tau = make(seed)
            for native in (False, True):
                pehe, value, sec = _run(X, w, y, tau, native, seed)
                rows.append((name, "native" if native else "one-hot", seed, pehe, value, sec))
    df = pd.DataFrame(rows, columns=["experiment", "encoding", "seed", "pehe", "value", "seconds"])
    print("# Categorical features to LightGBM: one-hot vs native categoricals\n")
    print(f"Command: `.venv/bin/python benchmarks/bench_categoricals.py --seeds {args.seeds}`\n")
    print("T-learner, default LightGBM base learner, 60/40 split; value = mean true gain of")
    print("the argmax-tau policy over control on the test units (higher is better).\n")
    summary = df.groupby(["experiment", "encoding"])[["pehe", "value", "seconds"]].agg(
        ["mean", "std"]
    )
    print(summary.round(4).to_markdown())
    print("\nPer seed:\n")
    print(df.round(4).to_markdown(index=False))


if __name__ == "__main__":
    main()
