"""Interpretable policy learners: GreedyTreeSearch-HTE, Distill-Policy, No-HTE Greedy and
Iterative, the reject option, guidance trees, distillation of linear policies, the CLI and the
tuner's attached arms, checked against the synthetic experiment's true potential outcomes."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

from pex_tuner.cli import main
from pex_tuner.datasets import make_synthetic
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies import (
    DistillPolicyLearner,
    GreedyTreePolicyLearner,
    GuidanceTreeLearner,
    LinearUtilityPolicy,
    NoHTEGreedyPolicyLearner,
    NoHTEIterativePolicyLearner,
    PolicyArtifact,
    TreePolicy,
    combine_policies,
    policy_rewards,
    tree_policy_from_sklearn,
)
from pex_tuner.rules import Condition, Segment, conjoin
from pex_tuner.workflows.distill import distill_linear_policy
from pex_tuner.workflows.learn_policy import METHODS, learn_policy

W = np.array([1.0, 0.2, -0.2])  # engagement, retention, cost (minimized: negative weight)


@pytest.fixture(scope="module")
def experiment():
    truth = make_synthetic(4000, random_state=2)
    parts = truth.split(test_size=0.4, validation_size=0.0, random_state=0)
    return parts["train"], parts["test"]


@pytest.fixture(scope="module")
def learned(experiment):
    train, _ = experiment
    first = learn_policy(train.data, "greedy-tree", outcome_weights=W, n_folds=2)
    out = {"greedy-tree": first}
    for method in METHODS[1:]:
        out[method] = learn_policy(train.data, method, outcome_weights=W, effects=first.model)
    return out


def _regret(test, policy: TreePolicy) -> float:
    return test.regret(policy.assign_data(test.data), W)


@pytest.mark.parametrize("method", METHODS)
def test_every_learner_beats_assign_all_control(experiment, learned, method):
    _, test = experiment
    result = learned[method]
    control = test.regret(np.zeros(test.data.n_units, dtype=int), W)
    assert result.policy.name == method and result.policy.arms == test.data.arms
    assert _regret(test, result.policy) < 0.75 * control
    assert result.evaluation.policies[:2] == (method, "all:control")
    assert "validation" in result.summary()


def test_hte_learners_personalize_and_beat_the_best_single_arm(experiment, learned):
    _, test = experiment
    best_single = min(test.regret(np.full(test.data.n_units, k), W) for k in range(4))
    for method in ("greedy-tree", "distill", "guide-ope"):
        assert learned[method].policy.n_segments >= 1
        assert _regret(test, learned[method].policy) < best_single


def test_guidance_trees_are_at_least_as_good_as_the_worse_input(experiment, learned):
    _, test = experiment
    inputs = [_regret(test, learned[m].policy) for m in ("greedy-tree", "no-hte-greedy")]
    for method in ("guide-ope", "guide-explore-exploit"):
        assert _regret(test, learned[method].policy) <= max(inputs) + 1e-12


def test_no_hte_learners_find_strong_heterogeneity_from_raw_data():
    truth = make_synthetic(6000, random_state=1)
    parts = truth.split(test_size=0.4, validation_size=0.0, random_state=0)
    train, test = parts["train"], parts["test"]
    best_single = min(test.regret(np.full(test.data.n_units, k), W) for k in range(4))
    for cls in (NoHTEGreedyPolicyLearner, NoHTEIterativePolicyLearner):
        learner = cls(max_depth=2, outcome_weights=W, random_state=0).fit(train.data)
        assert learner.policy_.n_segments >= 1, cls.__name__
        assert _regret(test, learner.policy_) < 0.75 * best_single
        assert learner.reward_ > 0
    # iterative: segments follow the order found, and the tree assigns as the procedure did
    assert len(learner.segment_gains_) == learner.policy_.n_segments


@pytest.mark.parametrize("cls", [NoHTEGreedyPolicyLearner, NoHTEIterativePolicyLearner])
def test_reject_option_assigns_the_best_ate_arm_when_no_split_helps(cls):
    truth = make_synthetic(3600, heterogeneity=0.0, random_state=1)  # constant effects
    learner = cls(max_depth=2, outcome_weights=W).fit(truth.data)
    best = int(np.argmax((truth.true_effects.mean(axis=0)) @ W))
    assert learner.policy_.n_segments == 0
    assert learner.policy_.default_arm == truth.data.arms[best]
    # without the significance test the same data do grow (noise) segments
    loose = cls(max_depth=2, outcome_weights=W, alpha=None).fit(truth.data)
    assert loose.policy_.n_segments >= 1


def test_no_hte_learner_inputs_are_validated(experiment):
    train, _ = experiment
    with pytest.raises(ConfigurationError, match="'outcome_weights' is needed to combine 3"):
        NoHTEGreedyPolicyLearner().fit(train.data)
    with pytest.raises(InputDataError, match="fit expects an ExperimentData"):
        NoHTEGreedyPolicyLearner(outcome_weights=W).fit(train.data.features)
    with pytest.raises(ConfigurationError, match="The 'alpha' parameter must be a float"):
        NoHTEGreedyPolicyLearner(outcome_weights=W, alpha=2.0).fit(train.data)
    with pytest.raises(ConfigurationError, match="The 'method' parameter must be one of"):
        learn_policy(train.data, "cart", outcome_weights=W)


def test_every_learner_follows_one_contract(experiment, learned):
    train, test = experiment
    data = train.data
    pred = learned["greedy-tree"].model.predict(data)
    inputs = (learned["greedy-tree"].policy, learned["no-hte-greedy"].policy)
    learners = [
        GreedyTreePolicyLearner(outcome_weights=W),
        DistillPolicyLearner(max_depth=2, outcome_weights=W),
        NoHTEGreedyPolicyLearner(outcome_weights=W),
        NoHTEIterativePolicyLearner(outcome_weights=W, max_segments=2),
        GuidanceTreeLearner(policies=inputs, outcome_weights=W),
    ]
    labels = np.asarray(data.arms, dtype=object)
    for learner in learners:
        params = learner.get_params()
        assert list(params) == list(inspect.signature(type(learner)).parameters)
        assert all(f"{name}=" in repr(learner) for name in params)
        with pytest.raises(NotFittedError, match="not fitted yet"):
            learner.predict(test.data)
        assert learner.fit(data, pred) is learner
        arms = learner.predict(test.data)
        assert arms.shape == (test.data.n_units,) and set(arms) <= set(data.arms)
        np.testing.assert_array_equal(arms, learner.predict(test.data.features))
        np.testing.assert_array_equal(arms, labels[learner.policy_.assign_data(test.data)])
        name = "max_depth" if "max_depth" in params else "min_segment_size"
        assert learner.set_params(**{name: -1}) is learner
        with pytest.raises(ConfigurationError, match=f"The '{name}' parameter must be"):
            learner.fit(data, pred)
    with pytest.raises(ConfigurationError, match="invalid parameter 'depth'"):
        GreedyTreePolicyLearner().set_params(depth=2)
    with pytest.raises(ConfigurationError, match="learns from CATE predictions"):
        GreedyTreePolicyLearner(outcome_weights=W).fit(data)


def test_distill_converts_sklearn_trees_exactly_with_categories():
    from sklearn.tree import DecisionTreeClassifier

    data = make_synthetic(3000, random_state=4).data
    rng = np.random.default_rng(0)
    y = np.where(
        data.features["platform"] == "ios",
        2,
        (data.features["x0"] > 0.3).astype(int) + (rng.uniform(size=data.n_units) < 0.05),
    ).clip(0, 3)
    X = data.schema.encode(data.features)
    clf = DecisionTreeClassifier(max_depth=4, min_samples_leaf=20, random_state=0).fit(X, y)
    policy = tree_policy_from_sklearn(clf, data.schema, data.arms)
    np.testing.assert_array_equal(policy.assign_index(data.features), clf.predict(X))
    ops = {(c.feature, c.op) for s in policy.segments for c in s.conditions}
    assert ("platform", "in") in ops or ("platform", "not in") in ops
    learner = DistillPolicyLearner(max_depth=2, min_segment_size=0.05).fit_assignments(
        data.features, y, schema=data.schema, arms=data.arms
    )
    assert learner.train_agreement_ > 0.9 and learner.policy_.depth <= 2


def test_distill_linear_policy_reports_agreement_and_ope(experiment, learned):
    train, test = experiment
    model = learned["greedy-tree"].model
    linear = LinearUtilityPolicy.from_preferences(
        [1.0, 0.2, 0.2], train.data.directions, train.data.arms, train.data.outcomes, name="tuned"
    )
    report = distill_linear_policy(linear, model, train.data, max_depth=3)
    assert 0.5 < report.agreement <= 1.0 and report.train_agreement > 0.5  # 4 arms: chance 0.25
    assert report.evaluation.policies == ("tuned", "tuned (tree)")
    assert report.value.shape == (2, 3) and report.n_fit + report.n_holdout == train.data.n_units
    assert report.tree.name == "tuned (tree)" and "agreement" in report.summary()
    assert set(report.to_frame()["policy"]) == {"tuned", "tuned (tree)"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.agreement = 1.0  # type: ignore[misc]
    # the tree is close to the linear policy in true value too
    pred = model.predict(test.data)
    gap = test.regret(report.tree.assign_data(test.data), W) - test.regret(
        linear.assign_index_from_effects(pred), W
    )
    assert gap < 0.05
    with pytest.raises(ConfigurationError, match="expects a LinearUtilityPolicy"):
        distill_linear_policy(report.tree, model, train.data)  # type: ignore[arg-type]


def test_conjoin_and_combine_policies():
    assert conjoin([Condition("x", "<=", 1.0), Condition("x", ">", 1.0)]) is None
    assert conjoin([Condition("x", "<=", 2.0), Condition("x", "<=", 1.0)]) == (
        Condition("x", "<=", 1.0),
    )
    assert conjoin([Condition("p", "in", ["a", "b"]), Condition("p", "not in", ["a"])]) == (
        Condition("p", "in", ["b"]),
    )
    assert conjoin([Condition("p", "in", ["a"]), Condition("p", "not in", ["a"])]) is None
    common = {
        "arms": ("c", "t"),
        "features": ("x", "p"),
        "feature_kinds": ("numeric", "categorical"),
    }
    a = TreePolicy(
        segments=(Segment((Condition("x", "<=", 0.0),), "t"),), default_arm="c", **common
    )
    b = TreePolicy(
        segments=(Segment((Condition("p", "in", ["a"]),), "c"),), default_arm="t", **common
    )
    split = Condition("p", "in", ["b"])
    both = combine_policies(split, a, b)
    frame = pd.DataFrame({"x": [-1.0, 1.0, -1.0, 1.0, 0.5], "p": ["a", "a", "b", "b", "c"]})
    inside = frame["p"].eq("b").to_numpy()
    expected = np.where(inside, a.assign_index(frame), b.assign_index(frame))
    np.testing.assert_array_equal(both.assign_index(frame), expected)
    assert TreePolicy.from_json(both.to_json()) == both


def test_assign_data_maps_arms_to_the_experiment_order(experiment):
    train, _ = experiment
    data = train.data
    reordered = TreePolicy(
        segments=(Segment((Condition("x0", "<=", 0.0),), data.arms[2]),),
        default_arm=data.arms[1],
        arms=tuple(reversed(data.arms)),
        features=data.schema.names,
        feature_kinds=data.schema.kinds,
    )
    idx = reordered.assign_data(data)
    expected = np.where(data.features["x0"] <= 0.0, 2, 1)
    np.testing.assert_array_equal(idx, expected)
    with pytest.raises(InputDataError, match="assign_data expects an ExperimentData"):
        reordered.assign_data(data.features)


def test_tuner_attaches_a_learned_tree_as_an_alternative_arm():
    from pex_tuner.tuning import OfflineTuner

    truth = make_synthetic(3000)
    tuner = OfflineTuner(
        truth.data,
        batch_size=4,
        init_trials=6,
        n_folds=2,
        progress=False,
        learner="t",
        design_size=0,
        frontier_estimate="observed",
        candidate_estimate="observed",
    )
    tuner.run(8)
    train = truth.data.subset(tuner.split_indices["train"])
    # a strong tree: learned from the true effects (utility engagement + retention - cost)
    rewards = policy_rewards(truth.true_effects[tuner.split_indices["train"]], [1.0, 1.0, -1.0])
    tree = (
        GreedyTreePolicyLearner(max_depth=3, min_segment_size=0.05)
        .fit_rewards(train.features, rewards, arms=train.arms, schema=train.schema)
        .policy_
    )
    tuner.attach_policy("tree", tree)
    ev = tuner.evaluations()
    row = ev[ev["policy"] == "tree"]
    assert list(row["kind"]) == ["attached"]
    assert np.isfinite(row[list(truth.data.outcomes)].to_numpy()).all()
    assert tuner.policy("tree") is tree
    # on the Pareto frontier next to tuned policies, and chosen by the subset selection
    front = tuner.get_pareto_frontier()
    assert "tree" in set(front["policy"])
    # eligible for the subset selection: with k at least the frontier of the eligible
    # (non-baseline) policies it is always chosen, and with a smaller k it competes on
    # hypervolume like any tuned policy. (k = the non-baseline rows of the frontier above was
    # flaky: without the baselines more policies can be non-dominated.)
    eligible = ev[ev["kind"] != "baseline"]
    cand = tuner.select_online_candidates(len(eligible))
    assert "tree" in set(cand["policy"]) and set(cand["kind"]) <= {"tuned", "attached"}


def test_cli_learn_policy_writes_artifacts_that_assign_accepts(tmp_path, capsys):
    data = make_synthetic(2000, random_state=3).data
    csv = tmp_path / "exp.csv"
    data.to_frame().to_csv(csv, index=False)
    units = tmp_path / "units.csv"
    data.features.head(50).to_csv(units, index=False)
    base = [
        "--data", str(csv), "--treatment", "arm", "--control", "control",
        "--outcome", "engagement:max", "--outcome", "retention:max", "--outcome", "cost:min",
        "--features", "x0", "x1", "x2", "x3", "x4", "platform", "--propensity", "propensity",
    ]  # fmt: skip
    for method in METHODS:
        out = tmp_path / f"{method}.json"
        rc = main(
            ["learn-policy", "--method", method, *base, "--weight", "engagement=1",
             "--weight", "cost=0.2", "--max-depth", "2", "--n-folds", "2", "--out", str(out)]
        )  # fmt: skip
        assert rc == 0, method
        assert "outcome weights (signed, raw scale): engagement=+1, retention=+0, cost=-0.2" in (
            capsys.readouterr().out
        )
        artifact = PolicyArtifact.load(out)
        assert isinstance(artifact.policy, TreePolicy) and artifact.name == method
        assigned = tmp_path / f"{method}.csv"
        assert (
            main(["assign", "--policy", str(out), "--data", str(units), "--out", str(assigned)])
            == 0
        )
        frame = pd.read_csv(assigned)
        assert len(frame) == 50 and set(frame["arm"]) <= set(data.arms)
        np.testing.assert_array_equal(
            frame["arm"].to_numpy(), artifact.policy.assign(data.features.head(50))
        )


def test_cli_learn_policy_errors(tmp_path, capsys):
    data = make_synthetic(500, random_state=3).data
    csv = tmp_path / "exp.csv"
    data.to_frame().to_csv(csv, index=False)
    base = [
        "learn-policy", "--data", str(csv), "--treatment", "arm", "--control", "control",
        "--outcome", "engagement:max", "--outcome", "retention:max", "--outcome", "cost:min",
        "--propensity", "propensity", "--out", str(tmp_path / "p.json"),
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main([*base, "--method", "cart"])
    assert exc.value.code == 2
    assert (
        "pex-tuner learn-policy: error: argument --method: invalid choice: 'cart' (choose from "
        "'greedy-tree', 'distill', 'no-hte-greedy', 'no-hte-iterative', 'guide-ope', "
        "'guide-explore-exploit')"
    ) in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*base, "--method", "no-hte-greedy", "--weight", "cost=-1"])
    assert exc.value.code == 2
    assert (
        "pex-tuner learn-policy: error: argument --weight: --weight expects NAME=W with a "
        "number W >= 0 (its sign comes from the outcome's direction), got 'cost=-1'"
    ) in capsys.readouterr().err
    assert main([*base, "--method", "no-hte-greedy", "--weight", "clicks=1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "pex-tuner: error: weight(s) for unknown outcome(s) ['clicks']; expected names from "
        "['engagement', 'retention', 'cost']"
    )
