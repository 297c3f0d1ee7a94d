"""OPE intervals with estimated (empirical-share) propensities, against known truth.

With arm shares as propensities, IPS of assign-all-k equals the arm-k mean, so its standard
error must be the arm mean's; and 95% intervals of IPS / SNIPS must cover the true policy value
about 95% of the time (not far more, as they did when the variance treated the estimated
propensities as known).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pex_tuner import ExperimentData
from pex_tuner.ope import evaluate_assignments

EFFECT = {"c": 0.0, "a": 1.0, "b": -0.5}
# Y(k) = 10 + 3 x + effect_k (1 + x) + 4 e, x ~ N(0, 1). The policy "a if x > 0 else c" has
# value 10 + E[1{x > 0} (1 + x)] = 10.5 + phi(0); its lift over control is 0.5 + phi(0).
TRUE_VALUE = 10.5 + stats.norm.pdf(0.0)
TRUE_LIFT = 0.5 + stats.norm.pdf(0.0)


def _experiment(rng: np.random.Generator, n: int) -> tuple[ExperimentData, np.ndarray]:
    x = rng.normal(size=n)
    arm = rng.choice(list(EFFECT), size=n, p=[0.5, 0.3, 0.2])
    effect = np.array([EFFECT[a] for a in arm])
    y = 10 + 3 * x + effect * (1 + x) + 4 * rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "arm": arm, "y": y})
    data = ExperimentData.from_frame(
        frame, treatment="arm", control="c", outcomes={"y": "max"}, features=["x"]
    )
    return data, np.where(x > 0, "a", "c")


def test_ips_of_assign_all_has_the_arm_means_standard_error() -> None:
    data, _ = _experiment(np.random.default_rng(0), 5000)
    assert data.propensity_source == "empirical"
    y, arms = data.Y[:, 0], data.arm_labels
    ev = evaluate_assignments(
        data, {a: np.full(data.n_units, a) for a in EFFECT}, estimator="ips"
    ).to_frame()
    for a in EFFECT:
        ya, yc = y[arms == a], y[arms == "c"]
        row = ev[ev.policy == a].iloc[0]
        assert row.value == pytest.approx(ya.mean(), rel=1e-12)
        assert row.se == pytest.approx(ya.std(ddof=1) / np.sqrt(len(ya)), rel=2e-3)
        if a != "c":  # the lift is the difference of two independent arm means (Welch)
            welch = np.sqrt(ya.var(ddof=1) / len(ya) + yc.var(ddof=1) / len(yc))
            assert row.lift_se == pytest.approx(welch, rel=2e-3)


def _coverage(n_reps: int, n: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits = {f"{e}:{w}": 0 for e in ("ips", "snips") for w in ("value", "lift")}
    for _ in range(n_reps):
        data, pol = _experiment(rng, n)
        for est in ("ips", "snips"):
            row = evaluate_assignments(data, {"pol": pol}, estimator=est).to_frame().iloc[0]
            hits[f"{est}:value"] += row.ci_low <= TRUE_VALUE <= row.ci_high
            hits[f"{est}:lift"] += row.lift_ci_low <= TRUE_LIFT <= row.lift_ci_high
    return {k: v / n_reps for k, v in hits.items()}


def test_ips_intervals_cover_the_truth_with_empirical_propensities() -> None:
    cov = _coverage(n_reps=120, n=1500, seed=1)
    # 120 replications: a 95% interval's coverage has a standard error of about 2%.
    for key, c in cov.items():
        assert 0.88 <= c <= 0.995, (key, c)


@pytest.mark.slow
def test_ips_interval_coverage_is_nominal_over_many_replications() -> None:
    cov = _coverage(n_reps=400, n=2000, seed=2)
    for key, c in cov.items():
        assert 0.92 <= c <= 0.98, (key, c)
