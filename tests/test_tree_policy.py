"""TreePolicy, its exports (JSON, SQL, Python) and the GreedyTreePolicyLearner."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from pex_tuner.cli import main
from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies import (
    Condition,
    GreedyTreePolicyLearner,
    LinearUtilityPolicy,
    PolicyArtifact,
    Segment,
    TreePolicy,
    export_policy,
    load_policy_document,
    policy_rewards,
    write_artifact,
)
from pex_tuner.policies.export import to_python, to_sql
from pex_tuner.schema import FeatureSchema

ODD = 'my "col"'


@pytest.fixture(scope="module")
def hand() -> TreePolicy:
    """A hand-written policy with awkward names, both kinds of features and all four ops."""
    return TreePolicy(
        segments=(
            Segment(
                (Condition("x0", "<=", 0.5), Condition("platform", "in", ["web", "ios"])), "arm_1"
            ),
            Segment((Condition("x1", ">", -0.25),), "arm_2"),
            Segment(
                (Condition("platform", "not in", ["it's"]), Condition(ODD, "<=", 0.1)), "arm'3"
            ),
        ),
        default_arm="control",
        arms=("control", "arm_1", "arm_2", "arm'3"),
        features=("x0", "x1", ODD, "platform"),
        feature_kinds=("numeric", "numeric", "numeric", "categorical"),
        name="hand",
    )


def _edge_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Random units plus units exactly at, and one ulp around, every threshold."""
    rng = np.random.default_rng(seed)
    cats = np.array(["ios", "web", "android", "it's"], dtype=object)
    frame = pd.DataFrame(
        {
            "x0": rng.uniform(0, 1, n),
            "x1": rng.normal(0, 0.5, n),
            ODD: rng.uniform(-0.5, 0.5, n),
            "platform": cats[rng.integers(0, 4, n)],
        }
    )
    for col, t in (("x0", 0.5), ("x1", -0.25), (ODD, 0.1)):
        for v in (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)):
            frame.loc[frame.index[rng.integers(0, n, 8)], col] = v
    return frame


def _sqlite_assign(sql: str, frame: pd.DataFrame) -> np.ndarray:
    con = sqlite3.connect(":memory:")
    try:
        frame.to_sql("units", con, index=False)
        rows = con.execute(f"SELECT {sql} AS arm FROM units ORDER BY rowid").fetchall()
    finally:
        con.close()
    return np.array([r[0] for r in rows], dtype=object)


def _python_assign(source: str, frame: pd.DataFrame) -> np.ndarray:
    namespace: dict = {"__builtins__": {"float": float, "str": str, "isinstance": isinstance}}
    exec(source, namespace)
    fn = namespace["assign"]
    return np.array([fn(row) for row in frame.to_dict("records")], dtype=object)


# ---------------------------------------------------------------------- TreePolicy
def test_hand_policy_assigns_describes_and_round_trips(hand, tmp_path):
    frame = pd.DataFrame(
        {
            "x0": [0.5, 0.5, 0.7, 0.7, 0.7, 0.9],
            "x1": [0.0, 0.0, -0.25, -0.2, -1.0, -1.0],
            ODD: [0.0, 0.0, 0.0, 0.0, 0.1, 0.2],
            "platform": ["ios", "android", "web", "web", "android", "android"],
        }
    )
    got = hand.assign(frame).tolist()
    assert got == ["arm_1", "arm_2", "arm'3", "arm_2", "arm'3", "control"]
    assert hand.n_segments == 3 and hand.depth == 2
    assert hand.used_features == ("x0", "x1", ODD, "platform")
    assert hand.describe() == (
        'if x0 <= 0.5 and platform in {"ios", "web"}: arm_1\n'
        "elif x1 > -0.25: arm_2\n"
        'elif platform not in {"it\'s"} and my "col" <= 0.1: arm\'3\n'
        "else: control"
    )
    again = TreePolicy.from_json(hand.to_json())
    assert again == hand and again.name == "hand"
    assert load_policy_document(json.loads(hand.to_json())) == hand
    schema = FeatureSchema(
        names=("x0", "x1", ODD, "platform"),
        kinds=("numeric",) * 3 + ("categorical",),
        categories=(("platform", ("android", "ios", "it's", "web")),),
    )
    path = write_artifact(tmp_path / "hand.json", hand, schema=schema)
    art = PolicyArtifact.load(path)
    assert art.policy == hand and art.document["kind"] == "tree" and art.name == "hand"
    np.testing.assert_array_equal(art.assign(frame), got)


def test_missing_values_take_the_greater_branch_everywhere(hand):
    frame = pd.DataFrame(
        {
            "x0": [np.nan, 0.2, 0.2, 0.9],
            "x1": [-1.0, np.nan, -1.0, -1.0],
            ODD: [0.0, 0.0, np.nan, 0.0],
            "platform": ["ios", None, "web", None],
        }
    )
    # x0 NaN fails 'x0 <= 0.5'; x1 NaN passes 'x1 > -0.25'; ODD NaN fails '<= 0.1';
    # a missing platform is in no set, so 'not in' holds
    expected = ["arm'3", "arm_2", "arm_1", "arm'3"]
    assert hand.assign(frame).tolist() == expected
    assert _sqlite_assign(to_sql(hand), frame).tolist() == expected
    assert _python_assign(to_python(hand), frame).tolist() == expected


def test_sql_and_python_exports_match_assign_at_exact_thresholds(hand):
    frame = _edge_frame()
    expected = hand.assign(frame)
    assert len(set(expected)) == 4
    np.testing.assert_array_equal(_sqlite_assign(to_sql(hand), frame), expected)
    np.testing.assert_array_equal(_python_assign(to_python(hand), frame), expected)
    sql = to_sql(hand)
    assert sql.splitlines()[1] == (
        """  WHEN ("x0" <= 0.5 AND "platform" IN ('ios', 'web')) THEN 'arm_1'"""
    )
    assert """("platform" NOT IN ('it''s') OR "platform" IS NULL)""" in sql
    assert '"my ""col""" <= 0.1' in sql and sql.endswith("ELSE 'control'\nEND")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["segments"][1]["conditions"][0].update(feature="x9"),
            "invalid tree policy document: segment 2 has a condition on unknown feature 'x9'; "
            "the policy's features are ['x0', 'x1', 'my \"col\"', 'platform']",
        ),
        (
            lambda d: d["segments"][0].update(arm="nope"),
            "invalid tree policy document: segment 1 assigns unknown arm 'nope'; expected one of "
            "['control', 'arm_1', 'arm_2', \"arm'3\"]",
        ),
        (
            lambda d: d["segments"][1]["conditions"][0].update(op="in", categories=["a"]),
            "invalid tree policy document: segment 2 tests numeric feature 'x1' with 'in'; use "
            "one of ['<=', '>']",
        ),
        (
            lambda d: d["segments"][1]["conditions"][0].update(op="<"),
            "invalid tree policy document: condition on 'x1' has op '<'; expected one of "
            "['<=', '>', 'in', 'not in']",
        ),
        (
            lambda d: d["segments"][1]["conditions"][0].pop("threshold"),
            "condition {'feature': 'x1', 'op': '>'} with op '>' lacks 'threshold'",
        ),
        (
            lambda d: d["segments"][1]["conditions"][0].update(threshold=float("nan")),
            "invalid tree policy document: condition on 'x1' has threshold nan; thresholds "
            "must be finite",
        ),
        (
            lambda d: d.update(default_arm="other"),
            "invalid tree policy document: default arm 'other' is not one of the arms",
        ),
        (lambda d: d.pop("segments"), "tree policy document lacks field(s) ['segments']"),
        (lambda d: d.update(version=2), "policy document has version 2; this pex-tuner reads"),
    ],
)
def test_bad_policy_documents_give_clear_errors(hand, mutate, message):
    doc = json.loads(hand.to_json())
    mutate(doc)
    with pytest.raises(InputDataError) as info:
        TreePolicy.from_dict(doc)
    assert str(info.value).startswith(message)


def test_assign_index_errors(hand):
    frame = _edge_frame(10)
    with pytest.raises(
        InputDataError,
        match=r"feature column 'x1' is missing; this tree policy tests features "
        r"\['x0', 'x1', 'my \"col\"', 'platform'\]",
    ):
        hand.assign_index(frame.drop(columns="x1"))
    with pytest.raises(InputDataError, match="feature 'x0' must be numeric"):
        hand.assign_index(frame.assign(x0="a"))
    with pytest.raises(ConfigurationError, match="segment needs at least one Condition"):
        Segment((), "arm_1")


# ---------------------------------------------------------------------- learner
def _planted(n: int, seed: int, noise: float = 0.3):
    """x0 <= 0.3 -> arm_1; x0 > 0.3 and platform web -> arm_2; else control."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x0": rng.uniform(0, 1, n),
            "x1": rng.normal(0, 1, n),
            "platform": rng.choice(["android", "ios", "web"], n),
        }
    )
    low, web = frame["x0"].to_numpy() <= 0.3, (frame["platform"] == "web").to_numpy()
    rewards = np.zeros((n, 3))
    rewards[:, 1] = np.where(low, 1.0, -1.0) + rng.normal(0, noise, n)
    rewards[:, 2] = np.where(~low & web, 1.0, -0.5) + rng.normal(0, noise, n)
    truth = np.where(low, 1, np.where(web, 2, 0))
    return frame, rewards, truth


def test_greedy_learner_recovers_a_planted_two_segment_rule():
    frame, rewards, truth = _planted(6000, seed=1)
    learner = GreedyTreePolicyLearner(max_depth=2, min_segment_size=0.05, random_state=0)
    policy = learner.fit_rewards(frame, rewards).policy_
    assert policy.default_arm == "control" and policy.n_segments == 2
    first, second = policy.segments
    assert first.arm == "arm_1" and second.arm == "arm_2"
    (c0,) = first.conditions
    assert (c0.feature, c0.op) == ("x0", "<=")
    assert abs(c0.value - 0.3) <= 1 / 32  # within one quantile bin of the planted threshold
    assert [(c.feature, c.op, c.value) for c in second.conditions] == [
        ("x0", ">", c0.value),
        ("platform", "in", ("web",)),
    ]
    assert (learner.predict(frame) == np.asarray(policy.arms)[truth]).mean() > 0.97
    best = rewards[np.arange(len(truth)), truth].sum()
    assert learner.reward_ >= 0.95 * best  # the planted 0.3 falls inside a bin
    np.testing.assert_allclose(
        learner.reward_, rewards[np.arange(len(truth)), policy.assign_index(frame)].sum()
    )
    # effects + outcome weights give the same tree as the weighted rewards
    tau = np.stack([rewards, 2 * rewards], axis=2) / 3.0
    pred = EffectPredictions(tau=tau, mu=tau, arms=("c", "a", "b"), outcomes=("y", "z"))
    again = GreedyTreePolicyLearner(max_depth=2, outcome_weights=[1.0, 1.0])
    again.fit_rewards(frame, pred)
    assert again.policy_.arms == ("c", "a", "b") and again.policy_.outcomes == ("y", "z")
    np.testing.assert_allclose(policy_rewards(pred, [1.0, 1.0]), rewards)
    np.testing.assert_array_equal(
        again.policy_.assign_index(frame), learner.policy_.assign_index(frame)
    )


def test_min_segment_size_is_respected():
    rng = np.random.default_rng(3)
    n = 4000
    X = rng.uniform(0, 1, (n, 2))
    rewards = np.zeros((n, 2))
    rewards[:, 1] = np.where(X[:, 0] > 0.97, 5.0, -0.1)  # a 3% pocket that loves arm_1
    small = GreedyTreePolicyLearner(max_depth=2, min_segment_size=50, n_bins=64)
    small.fit_rewards(X, rewards)
    assert small.policy_.n_segments == 1 and small.policy_.segments[0].arm == "arm_1"
    for size in (200, 0.05):
        learner = GreedyTreePolicyLearner(max_depth=3, min_segment_size=size, n_bins=64)
        arms = learner.fit_rewards(X, rewards).predict(X)
        assert (arms == "arm_1").sum() >= 200 or (arms == "arm_1").sum() == 0
        frame = pd.DataFrame(X, columns=["x0", "x1"])
        for seg in learner.policy_.segments:
            mask = np.ones(n, dtype=bool)
            for c in seg.conditions:
                col = frame[c.feature].to_numpy()
                mask &= col <= c.value if c.op == "<=" else col > c.value
            assert mask.sum() >= 200


def test_greedy_learner_matches_econml_policy_tree():
    from econml.policy import PolicyTree

    rng = np.random.default_rng(7)
    n = 1500
    X = np.column_stack([rng.uniform(0, 1, n), rng.normal(0, 1, n), rng.integers(0, 2, n)])
    rewards = np.zeros((n, 3))
    rewards[:, 1] = X[:, 0] - 0.4 + 0.3 * X[:, 2] + rng.normal(0, 0.3, n)
    rewards[:, 2] = 0.5 * X[:, 1] - 0.2 + rng.normal(0, 0.3, n)
    tree = PolicyTree(
        max_depth=2,
        min_samples_leaf=20,
        min_samples_split=40,
        min_balancedness_tol=0.5,
        honest=False,
        random_state=0,
    ).fit(X, rewards)
    theirs = rewards[np.arange(n), tree.predict(X)].sum()
    exact = GreedyTreePolicyLearner(max_depth=2, min_segment_size=20, n_bins=n)
    exact.fit_rewards(X, rewards)
    binned = GreedyTreePolicyLearner(max_depth=2, min_segment_size=20).fit_rewards(X, rewards)
    assert exact.reward_ >= theirs - 1e-9
    assert binned.reward_ >= 0.97 * theirs


@pytest.mark.parametrize(
    ("kwargs", "X", "rewards", "error", "message"),
    [
        (
            {},
            np.zeros((100, 2)),
            np.zeros((99, 3)),
            InputDataError,
            "rewards must have shape (n_units, n_arms) = (100, K) with K >= 2 arms; got shape "
            "(99, 3)",
        ),
        (
            {},
            np.zeros((100, 2)),
            np.zeros(100),
            InputDataError,
            "rewards must have shape (n_units, n_arms) = (100, K) with K >= 2 arms; got shape "
            "(100,)",
        ),
        (
            {},
            np.zeros((100, 2)),
            np.zeros((100, 3, 2)),
            ConfigurationError,
            "'outcome_weights' is needed to combine 2 outcomes into one reward",
        ),
        (
            {"outcome_weights": [1.0]},
            np.zeros((100, 2)),
            np.zeros((100, 3)),
            ConfigurationError,
            "'outcome_weights' combines effects of shape (n_units, n_arms, n_outcomes); rewards "
            "of shape (100, 3) are already one reward per arm",
        ),
        (
            {"max_depth": -1},
            np.zeros((100, 2)),
            np.zeros((100, 3)),
            ConfigurationError,
            "The 'max_depth' parameter must be an int in the range [0, 20]. Got -1 instead.",
        ),
        (
            {"min_segment_size": 0.9},
            np.zeros((100, 2)),
            np.zeros((100, 3)),
            ConfigurationError,
            "The 'min_segment_size' parameter must be an int >= 1 or a float in the range "
            "(0, 0.5]. Got 0.9 instead.",
        ),
        (
            {},
            np.full((100, 2), np.inf),
            np.zeros((100, 3)),
            InputDataError,
            "X has 200 infinite value(s); missing values (NaN) are allowed, infinite ones are not",
        ),
    ],
)
def test_learner_bad_inputs(kwargs, X, rewards, error, message):
    with pytest.raises(error) as info:
        GreedyTreePolicyLearner(**kwargs).fit_rewards(X, rewards)
    assert str(info.value) == message


def test_learner_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GreedyTreePolicyLearner().predict(np.zeros((3, 2)))


# ---------------------------------------------------------------------- CLI end to end
def test_exported_sql_and_python_match_cli_assign(tmp_path, capsys):
    exp = make_synthetic(3000, random_state=2)
    data = exp.data
    weights = np.array([1.0, 2.0, -0.5])
    rewards = policy_rewards(exp.true_effects, weights)
    train = np.arange(2000)
    learner = GreedyTreePolicyLearner(max_depth=3, min_segment_size=0.05, random_state=0)
    learner.fit_rewards(
        data.features.iloc[train], rewards[train], arms=data.arms, schema=data.schema
    )
    policy = learner.policy_
    assert policy.n_segments >= 2
    path = write_artifact(tmp_path / "pol" / "tree.json", policy, schema=data.schema)

    units = data.features.iloc[2000:].reset_index(drop=True)
    edge = []  # units exactly at, and one ulp around, every threshold; every category
    for seg in policy.segments:
        for c in seg.conditions:
            if isinstance(c.value, float):
                for v in (c.value, np.nextafter(c.value, -np.inf), np.nextafter(c.value, np.inf)):
                    edge.append(units.iloc[len(edge) % 50].copy())
                    edge[-1][c.feature] = v
    for cat in data.schema.category_map["platform"]:
        edge.append(units.iloc[len(edge) % 50].copy())
        edge[-1]["platform"] = cat
    units = pd.concat([units, pd.DataFrame(edge)], ignore_index=True)
    units.to_parquet(tmp_path / "units.parquet", index=False)
    out = tmp_path / "assigned.csv"
    argv = ["assign", "--policy", str(path), "--data", str(tmp_path / "units.parquet")]
    assert main([*argv, "--out", str(out)]) == 0
    cli_arms = pd.read_csv(out)["arm"].to_numpy(dtype=object)
    assert len(set(cli_arms)) >= 2
    capsys.readouterr()

    assert main(["export", "--policy", str(path), "--format", "sql"]) == 0
    sql = capsys.readouterr().out
    np.testing.assert_array_equal(_sqlite_assign(sql, units), cli_arms)
    assert main(["export", "--policy", str(path), "--format", "python"]) == 0
    source = capsys.readouterr().out
    assert "import" not in source
    np.testing.assert_array_equal(_python_assign(source, units), cli_arms)
    target = tmp_path / "policy.json"
    assert main(["export", "--policy", str(path), "--format", "json", "--out", str(target)]) == 0
    assert TreePolicy.from_json(target.read_text()) == policy
    assert export_policy(policy, "json") == target.read_text().rstrip("\n")


def test_cli_export_of_a_linear_policy_is_a_clear_error(tmp_path, capsys):
    exp = make_synthetic(200, random_state=0)
    d = exp.data
    pol = LinearUtilityPolicy((1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), d.arms, d.outcomes)
    path = write_artifact(tmp_path / "lin.json", pol, schema=d.schema, model=object())
    assert main(["export", "--policy", str(path), "--format", "sql"]) == 2
    assert "the sql export needs a tree policy; got a 'linear_utility' policy" in (
        capsys.readouterr().err
    )
    assert main(["export", "--policy", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "linear_utility"
