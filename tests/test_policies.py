"""LinearUtilityPolicy: decisions, baselines, shrinkage conversion, JSON round-trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies import LinearUtilityPolicy

ARMS = ("control", "a", "b")
OUTS = ("goal", "cost")


def tau_of(rows):
    """tau for units given as [[(a_goal, a_cost), (b_goal, b_cost)], ...]."""
    t = np.zeros((len(rows), 3, 2))
    t[:, 1:, :] = np.asarray(rows, dtype=float)
    return t


def test_argmax_of_linear_utility():
    pol = LinearUtilityPolicy(
        weights=(1.0, -2.0), biases=(0.0, 0.0, -0.1), arms=ARMS, outcomes=OUTS
    )
    tau = tau_of(
        [
            [(1.0, 0.1), (2.0, 0.2)],  # a: 0.8, b: 1.5 -> b
            [(0.5, 0.5), (0.2, 0.0)],  # a: -0.5, b: 0.1 -> b
            [(-1, 0), (-1, 0)],
        ]
    )  # both negative -> control
    np.testing.assert_array_equal(pol.assign_index_from_effects(tau), [2, 2, 0])
    np.testing.assert_array_equal(pol.assign_from_effects(tau), ["b", "b", "control"])
    np.testing.assert_allclose(pol.utilities(tau)[0], [0.0, 0.8, 1.5])


def test_ties_go_to_control_then_lower_index():
    pol = LinearUtilityPolicy(weights=(1.0, 0.0), biases=(0.0, 0.0, 0.0), arms=ARMS, outcomes=OUTS)
    tau = tau_of([[(0.0, 5.0), (0.0, 1.0)], [(1.0, 0.0), (1.0, 0.0)]])
    np.testing.assert_array_equal(pol.assign_index_from_effects(tau), [0, 1])


def test_assign_all_baselines():
    tau = np.random.default_rng(0).normal(size=(50, 3, 2))
    tau[:, 0] = 0
    for k, arm in enumerate(ARMS):
        pol = LinearUtilityPolicy.assign_all(arm, ARMS, OUTS)
        np.testing.assert_array_equal(pol.assign_index_from_effects(tau), k)
        assert pol.name == f"all:{arm}"
    with pytest.raises(ConfigurationError, match="unknown arm 'z'"):
        LinearUtilityPolicy.assign_all("z", ARMS, OUTS)


def test_minimized_outcomes_enter_with_negative_weight():
    pol = LinearUtilityPolicy.from_preferences([1.0, 2.0], ["max", "min"], ARMS, OUTS)
    assert pol.weights == (1.0, -2.0)
    # an arm that raises the goal by 1 but the cost by 1 loses to control at these preferences
    np.testing.assert_array_equal(pol.assign_index_from_effects(tau_of([[(1, 1), (0, 0)]])), [0])
    with pytest.raises(ConfigurationError, match="must be non-negative"):
        LinearUtilityPolicy.from_preferences([-1.0, 1.0], ["max", "min"], ARMS, OUTS)


finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    w=st.tuples(finite, finite),
    alpha=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    b=st.tuples(finite, finite),
    seed=st.integers(0, 10_000),
)
def test_shrinkage_equals_linear_policy_on_shrunk_effects(w, alpha, b, seed):
    rng = np.random.default_rng(seed)
    tau = rng.normal(size=(40, 3, 2))
    tau[:, 0] = 0
    ate = tau.mean(axis=0)
    pol = LinearUtilityPolicy.from_shrinkage(w, alpha, ate, ARMS, OUTS, biases=(0.0, *b))
    a = np.asarray(alpha)
    shrunk = a * tau + (1 - a) * ate[None]
    direct = np.asarray((0.0, *b)) + shrunk @ np.asarray(w)
    np.testing.assert_allclose(pol.utilities(tau), direct, atol=1e-9)


def test_shrinkage_extremes():
    rng = np.random.default_rng(1)
    tau = rng.normal(size=(100, 3, 2))
    tau[:, 0] = 0
    ate = tau.mean(0)
    none = LinearUtilityPolicy.from_shrinkage((1, 0.5), (0, 0), ate, ARMS, OUTS)
    assert len(set(none.assign_index_from_effects(tau))) == 1  # alpha = 0: one arm for everyone
    full = LinearUtilityPolicy.from_shrinkage((1, 0.5), (1, 1), ate, ARMS, OUTS)
    assert full == LinearUtilityPolicy((1, 0.5), (0, 0, 0), ARMS, OUTS)
    with pytest.raises(ConfigurationError, match=r"'alphas' must lie in \[0, 1\]"):
        LinearUtilityPolicy.from_shrinkage((1, 1), (1.5, 0), ate, ARMS, OUTS)


def test_json_round_trip():
    pol = LinearUtilityPolicy((0.3, -1.25), (0.0, 0.1, -0.2), ARMS, OUTS, name="p1")
    again = LinearUtilityPolicy.from_json(pol.to_json())
    assert again == pol and again.name == "p1"
    assert pol.to_dict()["kind"] == "linear_utility"


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(weights=(1.0,)), r"'weights' must have 2 values"),
        (dict(biases=(0.0, 1.0)), r"'biases' must have 3 values"),
        (dict(biases=(0.5, 0.0, 0.0)), r"the control arm's bias must be 0"),
        (dict(weights=(np.nan, 1.0)), r"'weights' must be finite"),
        (dict(arms=("control",)), r"at least two arms"),
    ],
)
def test_invalid_policies(kwargs, pattern):
    base = dict(weights=(1.0, 1.0), biases=(0.0, 0.0, 0.0), arms=ARMS, outcomes=OUTS)
    with pytest.raises(ConfigurationError, match=pattern):
        LinearUtilityPolicy(**{**base, **kwargs})


def test_bad_documents_and_shapes():
    with pytest.raises(InputDataError, match="not valid JSON"):
        LinearUtilityPolicy.from_json("{")
    with pytest.raises(InputDataError, match="expected a 'linear_utility' policy document"):
        LinearUtilityPolicy.from_json('{"kind": "tree"}')
    with pytest.raises(InputDataError, match="version 99"):
        LinearUtilityPolicy.from_json('{"kind": "linear_utility", "version": 99}')
    pol = LinearUtilityPolicy((1.0, 1.0), (0.0, 0.0, 0.0), ARMS, OUTS)
    with pytest.raises(InputDataError, match=r"this policy expects \(n_units, 3, 2\)"):
        pol.assign_from_effects(np.zeros((4, 2, 2)))
