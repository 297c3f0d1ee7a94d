"""OnlineSimulator: online metrics against the true potential outcomes, and the offline gap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pex_tuner.datasets import OnlineSimulator, make_synthetic
from pex_tuner.datasets.online import GAP_SHIFT
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies import LinearUtilityPolicy, PolicyArtifact, write_artifact

ARMS = ("control", "arm_1", "arm_2", "arm_3")
METRICS = ("engagement", "retention", "cost", "long_term")


class ThresholdPolicy:
    """Bold arm_3 for units with x0 > 0, arm_1 otherwise (a policy that assigns from features)."""

    arms = ARMS

    def assign_index(self, frame):
        return np.where(frame["x0"].to_numpy() > 0, 3, 1)


class AllTo:
    def __init__(self, k: int) -> None:
        self.k = k

    def assign_index(self, frame):
        return np.full(len(frame), self.k)


class X1Model:
    """A stand-in CATE model for an artifact: arm_2's goal effect is x1, the others' -1."""

    def predict(self, X):
        tau = np.full((len(X), 4, 3), -1.0)
        tau[:, 0, :] = 0.0
        tau[:, 2, 0] = np.asarray(X)[:, 1]
        return tau


@pytest.fixture(scope="module")
def big():
    """200,000 fresh units of the design: the truth the simulator is checked against."""
    return make_synthetic(200_000, random_state=123)


def online_truth(big, policy, gap: float) -> np.ndarray:
    """The module docstring's equation, written out independently; shape (n_metrics,)."""
    features = big.data.features
    W = np.asarray(policy.assign_index(features))
    rows = np.arange(len(W))
    mu = np.concatenate([big.potential_outcomes, big.long_term[:, :, None]], axis=2)
    base = mu[rows, 0, :]
    effect = mu[rows, W, :] - base
    shift = GAP_SHIFT * (W / 3.0) * features["x0"].to_numpy()
    return (base + (1 - gap) * effect + gap * shift[:, None]).mean(axis=0)


def within(result, truth, n_sigma=4.0, truth_se=0.005):
    for j, m in enumerate(METRICS):
        r = result[m]
        assert abs(r["mean"] - truth[j]) < n_sigma * np.hypot(r["sem"], truth_se), (m, r, truth[j])


def test_result_format_matches_the_service_payload():
    sim = OnlineSimulator(design_seed=0, random_state=0)
    out = sim.run({"threshold": ThresholdPolicy(), "all:control": AllTo(0)}, 500)
    assert list(out) == ["threshold", "all:control"]
    for metrics in out.values():
        assert tuple(metrics) == METRICS
        for r in metrics.values():
            assert set(r) == {"mean", "sem", "n"} and r["n"] == 500 and r["sem"] > 0
            assert isinstance(r["mean"], float) and isinstance(r["n"], int)
    json.dumps({"metrics": out["threshold"]})  # plain JSON, as the service receives it
    assert sim.arms == ARMS and sim.metrics == METRICS


def test_gap_zero_matches_the_offline_truth(big):
    sim = OnlineSimulator(design_seed=0, gap=0.0, random_state=1)
    policies = {"threshold": ThresholdPolicy(), "all:arm_2": AllTo(2), "all:control": AllTo(0)}
    out = sim.run(policies, 20_000)
    for name, pol in policies.items():
        W = pol.assign_index(big.data.features)
        truth = np.r_[big.policy_value(W), big.long_term_value(W)]
        within(out[name], truth)
        np.testing.assert_allclose(truth, online_truth(big, pol, 0.0))


@pytest.mark.parametrize("gap", [0.3, 0.8])
def test_gap_changes_online_values_as_documented(big, gap):
    sim = OnlineSimulator(design_seed=0, gap=gap, random_state=2)
    pol = ThresholdPolicy()
    out = sim.run({"threshold": pol}, 20_000)["threshold"]
    truth = online_truth(big, pol, gap)
    within(out, truth)
    offline = online_truth(big, pol, 0.0)
    # the policy sends x0 > 0 units to arm_3: the shift adds gap * 0.3 * E[x0 1(x0 > 0)] and
    # the effects shrink by (1 - gap); check both against the equation's closed form
    W = pol.assign_index(big.data.features)
    x0 = big.data.features["x0"].to_numpy()
    effect = (
        np.r_[big.policy_value(W), big.long_term_value(W)]
        - np.r_[big.policy_value(np.zeros_like(W)), big.long_term_value(np.zeros_like(W))]
    )
    expected_gap = -gap * effect + gap * GAP_SHIFT * np.mean(W / 3.0 * x0)
    np.testing.assert_allclose(truth - offline, expected_gap, atol=1e-10)
    if gap >= 0.8:  # a large gap is visible online: the offline truth is many SEs away
        z = [abs(out[m]["mean"] - offline[j]) / out[m]["sem"] for j, m in enumerate(METRICS)]
        assert max(z) > 6
    # true_values implements the same equation on its own fresh units
    tv = sim.true_values(pol, n_units=100_000)
    assert tuple(tv) == METRICS
    np.testing.assert_allclose([tv[m] for m in METRICS], truth, atol=0.03)


def test_control_is_unchanged_by_the_gap(big):
    a = OnlineSimulator(design_seed=0, gap=0.0, random_state=3).true_values(AllTo(0), 100_000)
    b = OnlineSimulator(design_seed=0, gap=0.9, random_state=3).true_values(AllTo(0), 100_000)
    assert a == b


def test_sem_shrinks_like_one_over_sqrt_n():
    sim = OnlineSimulator(design_seed=0, random_state=4)
    small = sim.run({"p": ThresholdPolicy()}, 4_000)["p"]
    large = sim.run({"p": ThresholdPolicy()}, 16_000)["p"]
    for m in METRICS:
        assert large[m]["sem"] * 2 == pytest.approx(small[m]["sem"], rel=0.1)
    # noise 1 on top of the units' spread: the sem is at least noise / sqrt(n)
    assert min(r["sem"] for r in large.values()) > 1.0 / np.sqrt(16_000)


def test_reproducible_and_fresh_units():
    a = OnlineSimulator(design_seed=0, random_state=5).run({"p": ThresholdPolicy()}, 1_000)
    b = OnlineSimulator(design_seed=0, random_state=5).run({"p": ThresholdPolicy()}, 1_000)
    assert a == b
    sim = OnlineSimulator(design_seed=0, random_state=5)
    first, second = sim.run({"p": AllTo(1)}, 1_000), sim.run({"p": AllTo(1)}, 1_000)
    assert first != second


def test_accepts_a_policy_artifact(tmp_path, big):
    d = make_synthetic(100, random_state=0).data
    pol = LinearUtilityPolicy((1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), d.arms, d.outcomes)
    art = PolicyArtifact.load(
        write_artifact(tmp_path / "p.json", pol, schema=d.schema, model=X1Model())
    )
    sim = OnlineSimulator(design_seed=0, random_state=6)
    out = sim.run({"artifact": art}, 20_000)["artifact"]
    # the artifact sends x1 > 0 units to arm_2, everyone else to control

    class Same:
        def assign_index(self, frame):
            return np.where(frame["x1"].to_numpy() > 0, 2, 0)

    W = Same().assign_index(big.data.features)
    within(out, np.r_[big.policy_value(W), big.long_term_value(W)])


def test_invalid_input():
    with pytest.raises(ConfigurationError, match=r"'gap' must lie in \[0, 1\]; got 1.5"):
        OnlineSimulator(gap=1.5)
    with pytest.raises(ConfigurationError, match="'n_treatments' must be at least 1"):
        OnlineSimulator(n_treatments=0)
    sim = OnlineSimulator(random_state=0)
    with pytest.raises(ConfigurationError, match="policy 'x' must be a PolicyArtifact"):
        sim.run({"x": object()}, 100)
    wrong = ThresholdPolicy()
    wrong.arms = ("control", "b")
    with pytest.raises(InputDataError, match=r"policy 'w' is for arms \['control', 'b'\]"):
        sim.run({"w": wrong}, 100)
    with pytest.raises(InputDataError, match=r"arm indices outside \[0, 3\]"):
        sim.run({"big": AllTo(7)}, 100)
    with pytest.raises(ConfigurationError, match="at least one policy"):
        sim.run({}, 100)
