"""Off-policy evaluation against ground truth, batched vs explicit paths, and errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pex_tuner import ExperimentData, evaluate, evaluate_linear_policies
from pex_tuner.effects import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies import LinearUtilityPolicy

ROOT = Path(__file__).resolve().parents[1]


def _load_coverage_module():
    spec = importlib.util.spec_from_file_location(
        "ope_coverage", ROOT / "benchmarks" / "ope_coverage.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def policies(synth_parts, fitted):
    _, _pred = fitted
    d = synth_parts["test"].data
    pols = {f"all:{a}": LinearUtilityPolicy.assign_all(a, d.arms, d.outcomes) for a in d.arms}
    pols["goal"] = LinearUtilityPolicy((1.0, 0.0, 0.0), (0, 0, 0, 0), d.arms, d.outcomes)
    pols["balanced"] = LinearUtilityPolicy(
        (1.0, 1.5, -0.5), (0, -0.05, 0, 0.02), d.arms, d.outcomes
    )
    pols["guardrail"] = LinearUtilityPolicy((0.2, 1.0, 0.0), (0, 0, 0, 0), d.arms, d.outcomes)
    return pols


def test_dr_and_ips_within_three_standard_errors(synth_parts, fitted, policies):
    _, pred = fitted
    test = synth_parts["test"]
    for est in ("dr", "ips", "snips"):
        df = evaluate(test.data, policies, predictions=pred, estimator=est)
        for name, pol in policies.items():
            truth = test.policy_value(pol.assign_index_from_effects(pred))
            rows = df[df["policy"] == name]
            z = (rows["value"].to_numpy() - truth) / rows["se"].to_numpy()
            assert np.all(np.abs(z) < 3), (est, name, z)


def test_dr_standard_error_below_ips(synth_parts, fitted, policies):
    _, pred = fitted
    d = synth_parts["test"].data
    dr = evaluate(d, policies, predictions=pred, estimator="dr")
    ips = evaluate(d, policies, predictions=pred, estimator="ips")
    # engagement's outcome model explains much of its variance: DR must be tighter
    goal = dr["outcome"] == "engagement"
    assert (dr.loc[goal, "se"].to_numpy() < ips.loc[goal, "se"].to_numpy()).all()
    assert dr["se"].mean() < ips["se"].mean()


def test_table_columns_lift_and_shares(synth_parts, fitted, policies):
    _, pred = fitted
    d = synth_parts["test"].data
    df = evaluate(d, policies, predictions=pred)
    for col in ["policy", "outcome", "value", "se", "ci_low", "ci_high", "lift", "lift_se"]:
        assert col in df.columns
    assert len(df) == len(policies) * d.n_outcomes
    ctrl = df[df["policy"] == "all:control"]
    np.testing.assert_allclose(ctrl[["lift", "lift_se"]].to_numpy(), 0.0, atol=1e-9)
    shares = df[[f"share[{a}]" for a in d.arms]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(df["ci_high"] - df["value"], 1.959964 * df["se"], rtol=1e-5)
    arm1 = df[df["policy"] == "all:arm_1"]
    np.testing.assert_allclose(arm1["share[arm_1]"], 1.0)
    # the paired lift equals the difference of the two values
    np.testing.assert_allclose(
        arm1["lift"].to_numpy(), arm1["value"].to_numpy() - ctrl["value"].to_numpy(), atol=1e-9
    )


def test_hand_computed_ips_and_dr():
    frame = pd.DataFrame(
        {"x": [0.0, 1.0, 2.0, 3.0], "arm": ["c", "t", "c", "t"], "y": [1.0, 3.0, 2.0, 5.0]}
    )
    data = ExperimentData.from_frame(frame, treatment="arm", control="c", outcomes={"y": "max"})
    policy = np.array(["t", "t", "c", "c"])
    ips = evaluate(data, policy, estimator="ips").iloc[0]
    # matches: unit 1 (t, y=3) and unit 2 (c, y=2), each weighted 1 / 0.5
    assert ips["value"] == pytest.approx((3 / 0.5 + 2 / 0.5) / 4)
    scores = np.array([0.0, 6.0, 4.0, 0.0])
    # the propensities are estimated (arm shares): scores are centred within their logged arm
    # (c: units 0, 2 with mean 2; t: units 1, 3 with mean 3), the ratio-estimator variance
    within = np.array([0.0 - 2, 6.0 - 3, 4.0 - 2, 0.0 - 3])
    assert ips["se"] == pytest.approx(np.sqrt((within**2).sum() / 3 / 4))
    # with the same propensities logged as known, the total variance applies
    known = ExperimentData.from_frame(
        frame.assign(p=0.5), treatment="arm", control="c", outcomes={"y": "max"}, propensity="p"
    )
    ips_known = evaluate(known, policy, estimator="ips").iloc[0]
    assert ips_known["se"] == pytest.approx(scores.std(ddof=1) / 2)
    mu = np.zeros((4, 2, 1))
    mu[:, 1, 0] = 1.0
    pred = EffectPredictions(tau=mu - mu[:, :1], mu=mu, arms=data.arms, outcomes=data.outcomes)
    dr = evaluate(data, policy, predictions=pred, estimator="dr").iloc[0]
    dr_scores = np.array([1 + 0, 1 + (3 - 1) / 0.5, 0 + (2 - 0) / 0.5, 0 + 0])
    assert dr["value"] == pytest.approx(dr_scores.mean())
    snips = evaluate(data, policy, estimator="snips").iloc[0]
    assert snips["value"] == pytest.approx((3 + 2) / 2)


@pytest.mark.parametrize("estimator", ["dr", "ips", "snips", "dm"])
def test_batched_equals_explicit_assignments(synth_parts, fitted, policies, estimator):
    _, pred = fitted
    d = synth_parts["test"].data
    rng = np.random.default_rng(3)
    W = rng.normal(size=(20, d.n_outcomes))
    B = np.c_[np.zeros(20), rng.normal(0, 0.2, size=(20, d.n_arms - 1))]
    pols = [
        LinearUtilityPolicy(tuple(w), tuple(b), d.arms, d.outcomes, name=f"p{i}")
        for i, (w, b) in enumerate(zip(W, B, strict=True))
    ] + list(policies.values())
    names = [f"p{i}" for i in range(len(pols))]
    batched = evaluate_linear_policies(
        d, pred, pols, names=names, estimator=estimator, chunk_size=997
    )
    explicit = evaluate(
        d, dict(zip(names, pols, strict=True)), predictions=pred, estimator=estimator
    )
    cols = ["value", "se", "lift", "lift_se"] + [f"share[{a}]" for a in d.arms]
    np.testing.assert_allclose(
        batched.to_frame()[cols].to_numpy(), explicit[cols].to_numpy(), rtol=1e-9, atol=1e-7
    )
    # the matrix form and chunk size give identical results
    again = evaluate_linear_policies(d, pred, W, B, estimator=estimator, chunk_size=1 << 20)
    np.testing.assert_allclose(again.value, batched.value[:20], rtol=1e-12)


def test_evaluate_errors(synth_parts, fitted):
    _, pred = fitted
    d = synth_parts["test"].data
    labels = np.full(d.n_units, "control", dtype=object)
    with pytest.raises(ConfigurationError, match="estimator 'dr' needs outcome-model"):
        evaluate(d, labels)
    with pytest.raises(ConfigurationError, match=r"The 'estimator' parameter must be one of"):
        evaluate(d, labels, predictions=pred, estimator="magic")
    with pytest.raises(InputDataError, match=r"hold arm\(s\) \['arm_9'\]"):
        evaluate(d, np.append(labels[:-1], "arm_9"), predictions=pred)
    with pytest.raises(InputDataError, match=r"have shape \(3,\); expected"):
        evaluate(d, labels[:3], predictions=pred)
    with pytest.raises(InputDataError, match=r"predictions cover 10 units"):
        evaluate(d, labels, predictions=pred.subset(np.arange(10)))
    with pytest.raises(ConfigurationError, match=r"'weights' must have shape \(n_policies, 3\)"):
        evaluate_linear_policies(d, pred, np.ones((2, 2)))
    with pytest.raises(ConfigurationError, match=r"policy names must be unique"):
        evaluate_linear_policies(d, pred, np.ones((2, 3)), names=["a", "a"])
    with pytest.raises(ConfigurationError, match=r"'confidence' must be in \(0, 1\)"):
        evaluate(d, labels, predictions=pred, confidence=95)


def test_interval_coverage_small():
    """A small version of the slow coverage study: 60 replications, fitted outcome model."""
    mod = _load_coverage_module()
    hits = mod.run_coverage(
        reps=60, n_units=1500, model="fitted", truth=mod.population_truth(100_000)
    )
    cover = hits.groupby("estimator")["covered"].mean()
    assert 0.85 <= cover["dr"] <= 1.0
    assert 0.85 <= cover["ips"] <= 1.0


@pytest.mark.slow
def test_interval_coverage_slow():
    """95% CI coverage between 92% and 98% over 1,000 replications (DR and IPS, value and lift)."""
    mod = _load_coverage_module()
    hits = mod.run_coverage(reps=1000, n_units=2000, model="fitted")
    cover = hits.groupby(["estimator", "quantity"])["covered"].mean()
    for key, c in cover.items():
        assert 0.92 <= c <= 0.98, (key, c)
