"""Missing feature values end to end: validation, encoding, CATE models, tree learners,
deployment paths, Distill-HTE rules; and Distill-HTE's floor on zero-width intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pex_tuner import ExperimentData
from pex_tuner.effects import EffectPredictions, fit_effects
from pex_tuner.errors import InputDataError, SchemaMismatchError
from pex_tuner.explain import DistillHTE
from pex_tuner.explain.estimates import segment_effect
from pex_tuner.policies import (
    DistillPolicyLearner,
    GreedyTreePolicyLearner,
    GuidanceTreeLearner,
    NoHTEGreedyPolicyLearner,
    TreePolicy,
)
from pex_tuner.policies.export import to_python, to_sql
from pex_tuner.rules import Condition, Segment, conjoin


def _experiment(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two arms; the effect is +1 where x <= 0 and -1 where x > 0. x is missing for 40% of
    the units with x <= 0 (20% overall), so truth favours treating units with x missing;
    ``plat`` (10% missing) does not matter. Returns (frame, true effect (n,))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    tau = np.where(x <= 0, 1.0, -1.0)
    w = rng.integers(0, 2, n)
    y = 0.5 * rng.normal(size=n) + w * tau
    x_obs = np.where((x <= 0) & (rng.random(n) < 0.4), np.nan, x)
    plat = rng.choice(["ios", "web", "android"], n).astype(object)
    plat[rng.random(n) < 0.1] = None
    frame = pd.DataFrame(
        {"x": x_obs, "z": rng.normal(size=n), "plat": plat, "arm": np.where(w, "t", "c"), "y": y}
    )
    return frame, tau


KW = dict(treatment="arm", control="c", outcomes={"y": "max"})


@pytest.fixture(scope="module")
def missing_data():
    frame, tau = _experiment()
    return ExperimentData.from_frame(frame, **KW), frame, tau


# ---------------------------------------------------------------------- data and encoding
def test_from_frame_accepts_missing_features_and_describes_them(missing_data):
    data, frame, _ = missing_data
    n_x, n_plat = int(frame["x"].isna().sum()), int(frame["plat"].isna().sum())
    assert data.missing_counts == {"x": n_x, "z": 0, "plat": n_plat}
    d = data.describe()
    assert d["features"]["n_missing"].to_dict() == {"x": n_x, "z": 0, "plat": n_plat}
    assert d["features"]["kind"].tolist() == ["numeric", "numeric", "categorical"]
    assert d["arms"]["n_units"].sum() == len(frame)
    assert d["outcomes"].loc["y", "mean"] == pytest.approx(frame["y"].mean())
    assert f"missing feature values={n_x + n_plat}" in repr(data)
    # numeric missing -> NaN; a missing category -> NaN in every one-hot column
    assert np.isnan(data.X[:, 0]).sum() == n_x
    plat_cols = data.X[:, 2:]
    assert data.schema.encoded_names[2:] == ("plat=android", "plat=ios", "plat=web")
    assert np.isnan(plat_cols).all(axis=1).sum() == n_plat
    assert not np.isnan(plat_cols).any(axis=1)[frame["plat"].notna().to_numpy()].any()


def test_new_units_with_missing_values_are_encoded_and_errors_stay(missing_data):
    data, _, _ = missing_data
    new = pd.DataFrame({"x": [None, 1.0], "z": [0.0, np.nan], "plat": [None, "web"]})
    X = data.encode(new)
    assert np.isnan(X[0, 0]) and np.isnan(X[1, 1]) and np.isnan(X[0, 2:]).all()
    np.testing.assert_array_equal(X[1, 2:], [0.0, 0.0, 1.0])
    with pytest.raises(SchemaMismatchError, match=r"feature 'plat' has categories \['tv'\]"):
        data.encode(new.assign(plat=["tv", None]))
    with pytest.raises(SchemaMismatchError, match=r"feature 'x' must be numeric"):
        data.encode(new.assign(x=["old", None]))
    with pytest.raises(
        SchemaMismatchError,
        match=r"^features 'x' \(1 infinite\) and 'z' \(2 infinite\) have infinite values; "
        r"missing values \(NaN or None\) are allowed, infinite ones are not$",
    ):
        data.encode(new.assign(x=[np.inf, 1.0], z=[np.inf, -np.inf]))


# ---------------------------------------------------------------------- CATE models
@pytest.mark.parametrize("learner", ["t", "x", "s", "dr"])
def test_cate_learners_take_missing_values(missing_data, learner):
    data, frame, tau = missing_data
    model = fit_effects(data, learner=learner, n_folds=2, random_state=0, progress=False)
    pred = model.predict(frame.drop(columns=["arm", "y"]))
    assert np.isfinite(pred.tau).all()
    # units with x missing have a true effect of +1: the model must see it
    missing = frame["x"].isna().to_numpy()
    assert pred.tau[missing, 1, 0].mean() > 0.5
    assert np.corrcoef(pred.tau[:, 1, 0], tau)[0, 1] > 0.7


def test_base_learner_without_nan_support_names_the_features(missing_data):
    from sklearn.linear_model import Ridge

    data, frame, _ = missing_data
    n_x, n_plat = int(frame["x"].isna().sum()), int(frame["plat"].isna().sum())
    with pytest.raises(InputDataError) as info:
        fit_effects(data, base_learner=Ridge(), n_folds=2, progress=False)
    assert str(info.value) == (
        f"base learner Ridge cannot take missing values, and features 'x' ({n_x} missing), "
        f"'plat' ({n_plat} missing) have them; use a learner that handles NaN (the default "
        "LightGBM, or sklearn's HistGradientBoostingRegressor) or a Pipeline that imputes "
        "them first (SimpleImputer)"
    )


# ---------------------------------------------------------------------- tree learners
def _true_value(policy: TreePolicy, frame: pd.DataFrame, tau: np.ndarray) -> float:
    return float((tau * (policy.assign(frame) == "t")).mean())


def test_greedy_tree_learns_where_missing_values_go(missing_data):
    data, frame, tau = missing_data
    rewards = np.column_stack([np.zeros(len(tau)), tau])  # the true rewards
    learner = GreedyTreePolicyLearner(max_depth=1, min_segment_size=0.05)
    policy = learner.fit_rewards(data.features, rewards, arms=data.arms).policy_
    (segment,) = policy.segments
    (cond,) = segment.conditions
    assert cond.feature == "x" and abs(cond.value) < 0.1  # type: ignore[arg-type]
    missing = frame["x"].isna().to_numpy()
    # truth favours treatment for units with x missing: the learned direction gives it to them
    assert (policy.assign(frame)[missing] == "t").all()
    forced = TreePolicy(
        segments=(Segment((cond.with_missing(not cond.missing),), segment.arm),),
        default_arm=policy.default_arm,
        arms=policy.arms,
        features=policy.features,
        feature_kinds=policy.feature_kinds,
    )
    regret = tau.clip(0).mean() - _true_value(policy, frame, tau)
    forced_regret = tau.clip(0).mean() - _true_value(forced, frame, tau)
    assert regret < 0.01 < 0.15 < forced_regret
    assert "x is missing" in str(cond) or "x is not missing" in str(cond)


@pytest.fixture(scope="module")
def effects(missing_data):
    data, _, tau = missing_data
    t = np.zeros((len(tau), 2, 1))
    t[:, 1, 0] = tau
    return EffectPredictions(tau=t, mu=t.copy(), arms=data.arms, outcomes=data.outcomes)


def _same_on_every_path(policy: TreePolicy, frame: pd.DataFrame) -> None:
    feats = frame[list(policy.features)]
    expected = policy.assign(feats).tolist()
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in feats.itertuples(index=False)]
    namespace: dict = {}
    exec(to_python(policy), namespace)
    names = list(policy.features)
    assert [namespace["assign"](dict(zip(names, r, strict=True))) for r in rows] == expected
    import sqlite3

    con = sqlite3.connect(":memory:")
    cols = ", ".join(f'"{n}"' for n in names)
    con.execute(f"CREATE TABLE units (i INTEGER, {cols})")
    marks = ", ".join("?" * (len(names) + 1))
    con.executemany(f"INSERT INTO units VALUES ({marks})", [(i, *r) for i, r in enumerate(rows)])
    got = [r[0] for r in con.execute(f"SELECT {to_sql(policy)} FROM units ORDER BY i")]
    assert got == expected


def test_every_tree_learner_routes_missing_values_consistently(missing_data, effects):
    data, frame, _tau = missing_data
    greedy = GreedyTreePolicyLearner(max_depth=2).fit(data, effects).policy_
    distill = DistillPolicyLearner(max_depth=2).fit(data, effects)
    nohte = NoHTEGreedyPolicyLearner(max_depth=2).fit(data).policy_
    guide = GuidanceTreeLearner(policies=[greedy, nohte]).fit(data, effects).policy_
    missing = frame["x"].isna().to_numpy()
    for policy in (greedy, distill.policy_, nohte, guide):
        _same_on_every_path(policy, frame)
        assert (policy.assign(frame)[missing] == "t").mean() > 0.9
    # Distill-Policy's TreePolicy is scikit-learn's tree, missing directions included
    predicted = distill.tree_.predict(data.X)
    np.testing.assert_array_equal(distill.policy_.assign_index(frame), predicted)


def test_assign_accepts_missing_values_in_any_feature(missing_data, effects):
    data, _frame, _ = missing_data
    policy = GreedyTreePolicyLearner(max_depth=1).fit(data, effects).policy_
    assert policy.used_features == ("x",)
    new = pd.DataFrame({"x": [1.0, -1.0], "z": [None, np.nan], "plat": [None, "web"]})
    assert policy.assign(new).tolist() == ["c", "t"]


def test_condition_missing_flag_serializes_backward_compatibly():
    old = {"feature": "x", "op": ">", "threshold": 1.0}
    c = Condition.from_dict(old)
    assert c.missing is None and c.missing_ok and c.to_dict() == old
    assert not Condition.from_dict({"feature": "x", "op": "<=", "threshold": 1.0}).missing_ok
    new = Condition("x", "<=", 1.0, True)
    assert new.to_dict() == {"feature": "x", "op": "<=", "threshold": 1.0, "missing": True}
    assert Condition.from_dict(new.to_dict()) == new
    assert str(new) == "x <= 1 or x is missing"
    assert str(Condition("p", "not in", ["a"], False)) == 'p not in {"a"} and p is not missing'
    with pytest.raises(InputDataError, match="has 'missing' 'yes'; expected true, false or null"):
        Condition.from_dict({**old, "missing": "yes"})


def test_conjoin_merges_missing_flags():
    a, b = Condition("x", "<=", 2.0, True), Condition("x", "<=", 1.0, False)
    assert conjoin([a, b]) == (Condition("x", "<=", 1.0, False),)
    assert conjoin([a, Condition("x", "<=", 1.0, True)]) == (Condition("x", "<=", 1.0, True),)
    # no present value satisfies both, missing values do: kept (it reads "x is missing")
    both = conjoin([Condition("x", "<=", 0.0, True), Condition("x", ">", 1.0, True)])
    assert both is not None and len(both) == 2
    assert conjoin([Condition("x", "<=", 0.0, True), Condition("x", ">", 1.0, False)]) is None
    cats = conjoin([Condition("p", "in", ["a"], True), Condition("p", "in", ["b"], True)])
    assert cats is not None and len(cats) == 2


# ---------------------------------------------------------------------- Distill-HTE
def test_distill_hte_rules_say_where_missing_values_go(missing_data, effects):
    data, frame, _ = missing_data
    dh = DistillHTE(max_depth=1, random_state=0).fit(data, predictions=effects)
    rules = dh.segments_["rule"].tolist()
    assert len(rules) == 2 and any("x is missing" in r for r in rules), rules
    segment = dh.predict_segment(frame)["t"].to_numpy()
    conds = dh.conditions_["t"]
    probe = TreePolicy(
        segments=tuple(Segment(c, str(i + 1)) for i, c in enumerate(conds)),
        default_arm="0",
        arms=("0", *(str(i + 1) for i in range(len(conds)))),
        features=data.schema.names,
        feature_kinds=data.schema.kinds,
    )
    np.testing.assert_array_equal(probe.assign(frame).astype(int), segment)
    missing = frame["x"].isna().to_numpy()
    effect = dh.segments_.set_index("segment")["effect[y]"]
    assert effect[segment[missing][0]] > 0.5  # missing units sit in the treat-them segment


def test_constant_outcomes_are_never_significant():
    rng = np.random.default_rng(3)
    n = 400
    y = np.full((n, 1), 0.1)
    p = rng.uniform(0.2, 0.8, n)
    half = n // 2
    effect, lo, hi = segment_effect(y[:half], p[:half], y[half:], p[half:])
    assert abs(effect[0]) < 1e-14 and lo[0] < 0 < hi[0]
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "arm": np.tile(["c", "t"], n // 2), "y": 0.1, "p": p}
    )
    data = ExperimentData.from_frame(frame, **KW, propensity="p")
    t = np.zeros((n, 2, 1))
    t[:, 1, 0] = 0.3  # a constant-effect teacher
    pred = EffectPredictions(tau=t, mu=t.copy(), arms=data.arms, outcomes=data.outcomes)
    seg = DistillHTE(max_depth=2, min_units_per_arm=20, random_state=0).fit(data, pred).segments_
    assert not seg["significant[y]"].any()
    assert (seg["ci_high[y]"] - seg["ci_low[y]"] > 0).all()


def test_zero_width_interval_is_drawn_grey():
    pytest.importorskip("plotly")
    from pex_tuner.plotting.segments import SEGMENT_COLORS, plot_segments

    seg = pd.DataFrame(
        {
            "treatment": ["t", "t"],
            "segment": [1, 2],
            "rule": ["x <= 0", "x > 0"],
            "n_units": [100, 100],
            "effect[y]": [4.4e-16, 1.0],
            "ci_low[y]": [2.6e-16, 0.5],
            "ci_high[y]": [2.6e-16, 1.5],
            "significant[y]": [True, True],
        }
    )
    fig = plot_segments(seg)
    assert list(fig.data[0].marker.color) == [
        SEGMENT_COLORS["not significant"],
        SEGMENT_COLORS["good"],
    ]


def test_policy_artifact_assigns_units_with_missing_values(missing_data, effects, tmp_path):
    from pex_tuner.policies import PolicyArtifact, write_artifact

    data, _, _ = missing_data
    policy = GreedyTreePolicyLearner(max_depth=1).fit(data, effects).policy_
    path = write_artifact(tmp_path / "tree.json", policy, schema=data.schema)
    new = pd.DataFrame({"x": [np.nan, 1.0], "z": [None, np.nan], "plat": [None, "web"]})
    assert PolicyArtifact.load(path).assign(new).tolist() == policy.assign(new).tolist()
    assert PolicyArtifact.load(path).assign(new).tolist() == ["t", "c"]
