"""Built-in experiments: shapes, documented equations, and ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from pex_tuner.datasets import (
    knn_potential_outcomes,
    load_hillstrom,
    load_ihdp,
    make_covid,
    make_synthetic,
    make_synthetic_a,
)
from pex_tuner.errors import ConfigurationError


def test_synthetic_shapes_and_observed_outcomes():
    exp = make_synthetic(3000, n_treatments=2, n_outcomes=4, random_state=5)
    d = exp.data
    assert d.arms == ("control", "arm_1", "arm_2")
    assert d.outcomes == ("engagement", "retention", "cost", "metric_4")
    assert d.directions == ("max", "max", "min", "max")
    assert exp.potential_outcomes.shape == (3000, 3, 4)
    assert exp.long_term is not None and exp.long_term.shape == (3000, 3)
    np.testing.assert_allclose(exp.true_effects[:, 0, :], 0.0)
    # observed outcome = true mean of the received arm + noise with sd 1
    resid = d.Y - exp.potential_outcomes[np.arange(3000), d.treatment]
    assert abs(resid.mean()) < 0.05 and abs(resid.std() - 1.0) < 0.05
    assert d.propensity_source == "logged"
    np.testing.assert_allclose(d.propensity, 1 / 3)


def test_synthetic_outcomes_compete():
    exp = make_synthetic(20000, random_state=0)
    tau = exp.true_effects
    best_goal_arm = int(np.argmax(tau[:, :, 0].mean(axis=0)))
    assert best_goal_arm != 0
    # the arm that wins the goal on average hurts the guardrail for part of the population...
    hurt = tau[:, best_goal_arm, 1] < 0
    assert 0.1 < hurt.mean() < 0.9
    # ...and the units it helps most on the goal are those it hurts on the guardrail
    assert np.corrcoef(tau[:, best_goal_arm, 0], tau[:, best_goal_arm, 1])[0, 1] < -0.5
    # so a personalized assignment beats every single arm on a goal+guardrail utility
    w = np.array([1.0, 1.0, 0.0])
    oracle = exp.policy_value(exp.oracle_assignment(w)) @ w
    best_single = max(exp.policy_value(np.full(20000, k)) @ w for k in range(4))
    assert oracle > best_single + 0.02


def test_synthetic_heterogeneity_knob_and_seeds():
    flat = make_synthetic(2000, heterogeneity=0.0, random_state=1)
    sd = flat.true_effects[:, 1:, :2].std(axis=0)
    np.testing.assert_allclose(sd, 0.0, atol=1e-12)
    a = make_synthetic(500, random_state=2)
    b = make_synthetic(500, random_state=2)
    np.testing.assert_array_equal(a.data.Y, b.data.Y)
    c = make_synthetic(500, random_state=3)
    assert not np.allclose(a.data.Y, c.data.Y)
    with pytest.raises(ConfigurationError, match="'noise' must be > 0"):
        make_synthetic(100, noise=0)
    with pytest.raises(ConfigurationError, match="'arm_probabilities' must be 4 positive"):
        make_synthetic(100, arm_probabilities=[0.5, 0.5])


def test_truth_helpers():
    exp = make_synthetic(1000, random_state=4)
    labels = np.full(1000, "arm_2", dtype=object)
    np.testing.assert_allclose(exp.policy_value(labels), exp.potential_outcomes[:, 2].mean(0))
    parts = exp.split(random_state=0)
    assert sum(p.data.n_units for p in parts.values()) == 1000
    assert exp.regret(exp.oracle_assignment([1, 0, 0]), [1, 0, 0]) == pytest.approx(0.0)
    _data, po = exp  # unpacks
    assert po is exp.potential_outcomes


def test_synthetic_a_matches_equations():
    exp = make_synthetic_a(2000, random_state=0)
    x1 = exp.data.features["x1"].to_numpy()
    np.testing.assert_allclose(exp.true_effects[:, 1, 0], x1 / 2)
    resid = exp.data.Y[:, 0] - exp.potential_outcomes[np.arange(2000), exp.data.treatment, 0]
    assert resid.std() == pytest.approx(0.01, rel=0.1)
    assert abs(exp.data.treatment.mean() - 0.5) < 0.05


def test_covid_matches_equations():
    exp = make_covid(random_state=0)
    assert exp.data.n_units == 1300 and len(exp.data.feature_names) == 10
    z = exp.data.features["days_since_onset"].to_numpy()
    tau = exp.true_effects[:, 1, 0]
    assert (tau < 0).all() and tau.min() > -5 and tau.max() < -1
    # the effect is a monotone function of days since onset only
    order = np.argsort(z)
    assert (np.diff(tau[order]) >= -1e-12).all()
    X = exp.data.X
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(X.std(axis=0, ddof=1), 1.0, atol=1e-9)


def test_ihdp_matches_econml():
    from econml.data.dgps import ihdp_surface_A, ihdp_surface_B

    for surface, fn in (("A", ihdp_surface_A), ("B", ihdp_surface_B)):
        exp = load_ihdp(surface, random_state=7)
        Y, _T, _X, te = fn(random_state=7)
        np.testing.assert_allclose(exp.data.Y[:, 0], Y)
        np.testing.assert_allclose(exp.true_effects[:, 1, 0], te)
        assert exp.data.n_units == 747
        assert exp.data.arm_counts == {"control": 608, "treated": 139}


def test_hillstrom_loads_with_knn_truth():
    exp = load_hillstrom()
    d = exp.data
    assert d.n_units == 64000
    assert d.arms == ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
    assert d.arm_counts == {"No E-Mail": 21306, "Mens E-Mail": 21307, "Womens E-Mail": 21387}
    means = {a: d.Y[d.treatment == k].mean(axis=0) for k, a in enumerate(d.arms)}
    np.testing.assert_allclose(means["Mens E-Mail"], [0.1828, 0.01253, 1.4226], atol=5e-4)
    rows = np.arange(d.n_units)
    np.testing.assert_array_equal(exp.potential_outcomes[rows, d.treatment], d.Y)


def test_knn_imputation_matches_brute_force(synth):
    sub = synth.data.subset(np.arange(300))
    po = knn_potential_outcomes(sub, n_neighbors=5)
    Xs = (sub.X - sub.X.mean(0)) / np.where(sub.X.std(0) > 0, sub.X.std(0), 1)
    for i in (0, 17, 123):
        for k in range(sub.n_arms):
            if sub.treatment[i] == k:
                np.testing.assert_allclose(po[i, k], sub.Y[i])
                continue
            members = np.flatnonzero(sub.treatment == k)
            dist = np.linalg.norm(Xs[members] - Xs[i], axis=1)
            nearest = members[np.argsort(dist)[:5]]
            np.testing.assert_allclose(po[i, k], sub.Y[nearest].mean(axis=0))
