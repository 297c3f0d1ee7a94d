"""Distill-HTE (pex_tuner.explain): honesty, pruning, coverage against ground truth, rules,
the segment barplot and the ``explain`` command."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from pex_tuner.data import ExperimentData
from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import CateModel, EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.explain import DistillHTE, explain, segment_effect


def _oracle(exp) -> EffectPredictions:
    d = exp.data
    return EffectPredictions(
        tau=exp.true_effects, mu=exp.potential_outcomes, arms=d.arms, outcomes=d.outcomes
    )


@pytest.fixture(scope="module")
def exp():
    return make_synthetic(6000, random_state=3)


@pytest.fixture(scope="module")
def fitted(exp):
    return DistillHTE(random_state=0).fit(exp.data, predictions=_oracle(exp))


def _holds(frame: pd.DataFrame, conditions) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    for c in conditions:
        col = frame[c.feature]
        if c.op == "<=":
            mask &= col.to_numpy() <= c.value
        elif c.op == ">":
            mask &= col.to_numpy() > c.value
        else:
            inside = col.astype(str).isin(c.value).to_numpy()
            mask &= inside if c.op == "in" else ~inside
    return mask


# ---------------------------------------------------------------------- the segments frame
def test_segments_frame(exp, fitted):
    seg = fitted.segments_
    outs = exp.data.outcomes
    assert list(seg.columns) == [
        "treatment",
        "segment",
        "rule",
        "n_units",
        "n_treated",
        "n_control",
        "share",
        *[f"{k}[{o}]" for o in outs for k in ("effect", "ci_low", "ci_high", "significant")],
    ]
    assert list(dict.fromkeys(seg["treatment"])) == list(exp.data.arms[1:])
    n_est = len(fitted.estimation_indices_)
    for _, g in seg.groupby("treatment"):
        assert g["segment"].tolist() == list(range(1, len(g) + 1))
        assert g["n_units"].sum() == n_est
        assert g["share"].sum() == pytest.approx(1.0)
        assert 1 <= len(g) <= 2**fitted.max_depth
    for o in outs:
        excl = (seg[f"ci_low[{o}]"] > 0) | (seg[f"ci_high[{o}]"] < 0)
        assert (seg[f"significant[{o}]"] == excl).all()
        assert (seg[f"ci_low[{o}]"] <= seg[f"effect[{o}]"]).all()
        assert (seg[f"effect[{o}]"] <= seg[f"ci_high[{o}]"]).all()
    assert seg.attrs["directions"] == {"engagement": "max", "retention": "max", "cost": "min"}
    assert seg.attrs["control"] == "control"


def test_estimates_match_difference_in_means(exp, fitted):
    d = exp.data
    est = fitted.estimation_indices_
    ids = fitted.predict_segment(d.features.iloc[est])
    arm_of, Y = d.treatment[est], d.Y[est]
    seg = fitted.segments_
    for k, arm in enumerate(d.arms[1:], start=1):
        for r in seg[seg["treatment"] == arm].to_dict("records"):
            inside = ids[arm].to_numpy() == r["segment"]
            tr, ct = inside & (arm_of == k), inside & (arm_of == 0)
            assert (r["n_units"], r["n_treated"], r["n_control"]) == (
                inside.sum(),
                tr.sum(),
                ct.sum(),
            )
            diff = Y[tr].mean(axis=0) - Y[ct].mean(axis=0)
            got = [r[f"effect[{o}]"] for o in d.outcomes]
            np.testing.assert_allclose(got, diff, rtol=1e-10)
            se = np.sqrt(
                Y[tr].var(axis=0, ddof=1) / tr.sum() + Y[ct].var(axis=0, ddof=1) / ct.sum()
            )
            half = np.array([r[f"ci_high[{o}]"] for o in d.outcomes]) - diff
            np.testing.assert_allclose(half / se, 1.96, atol=0.05)  # t ~ normal at these sizes


def test_rules_match_segment_membership(exp, fitted):
    frame = exp.data.features
    ids = fitted.predict_segment(frame)
    seg = fitted.segments_
    for arm, conds in fitted.conditions_.items():
        rules = seg.loc[seg["treatment"] == arm, "rule"].tolist()
        for s, c in enumerate(conds, start=1):
            assert rules[s - 1] == (" and ".join(str(x) for x in c) or "all units")
            np.testing.assert_array_equal(_holds(frame, c), ids[arm].to_numpy() == s)


def test_categorical_rules_use_the_schema():
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame(
        {
            "x0": rng.standard_normal(n),
            "platform": rng.choice(["android", "ios", "web"], n),
            "arm": rng.choice(["control", "new"], n),
        }
    )
    lift = np.where(frame["platform"] == "ios", 1.0, 0.0)
    frame["y"] = rng.standard_normal(n) + lift * (frame["arm"] == "new")
    data = ExperimentData.from_frame(
        frame, treatment="arm", control="control", outcomes={"y": "max"}
    )
    tau = np.zeros((n, 2, 1))
    tau[:, 1, 0] = lift
    pred = EffectPredictions(tau=tau, mu=tau, arms=data.arms, outcomes=data.outcomes)
    dh = DistillHTE(max_depth=1, random_state=0).fit(data, predictions=pred)
    assert dh.segments_["rule"].tolist() == ['platform not in {"ios"}', 'platform in {"ios"}']
    sig = dh.segments_["significant[y]"].tolist()
    effects = dh.segments_["effect[y]"].to_numpy()
    assert sig[1] and effects[1] > 0.7 and abs(effects[0]) < 0.2


# ---------------------------------------------------------------------- honesty
def test_halves_are_disjoint_and_stratified(exp, fitted):
    s, e = fitted.structure_indices_, fitted.estimation_indices_
    assert np.intersect1d(s, e).size == 0
    np.testing.assert_array_equal(np.union1d(s, e), np.arange(exp.data.n_units))
    counts_s = np.bincount(exp.data.treatment[s])
    counts_e = np.bincount(exp.data.treatment[e])
    assert np.abs(counts_s - counts_e).max() <= 1


def test_structure_ignores_estimation_outcomes(exp):
    """The CATE model and the tree see only the structure half: changing the estimation half's
    outcomes changes the estimates but not one split."""

    def fit(data):
        model = CateModel(base_learner=LinearRegression(), n_folds=2, random_state=0)
        return DistillHTE(max_depth=2, random_state=0).fit(data, model=model)

    d = exp.data
    a = fit(d)
    assert a.model_.oof_predictions_.n_units == len(a.structure_indices_)
    frame = d.to_frame()
    est = a.estimation_indices_
    frame.loc[est, "engagement"] = frame.loc[est, "engagement"] + np.random.default_rng(1).normal(
        0, 5, len(est)
    )
    d2 = ExperimentData.from_frame(
        frame,
        treatment="arm",
        control="control",
        outcomes=dict(zip(d.outcomes, d.directions, strict=True)),
        features=list(d.feature_names),
        propensity="propensity",
    )
    b = fit(d2)
    np.testing.assert_array_equal(a.estimation_indices_, b.estimation_indices_)
    assert a.segments_["rule"].tolist() == b.segments_["rule"].tolist()
    assert not np.allclose(a.segments_["effect[engagement]"], b.segments_["effect[engagement]"])
    np.testing.assert_allclose(a.segments_["effect[retention]"], b.segments_["effect[retention]"])


def test_not_honest_uses_every_unit(exp):
    dh = DistillHTE(max_depth=2, honest=False, random_state=0).fit(
        exp.data, predictions=_oracle(exp)
    )
    np.testing.assert_array_equal(dh.structure_indices_, np.arange(exp.data.n_units))
    np.testing.assert_array_equal(dh.estimation_indices_, dh.structure_indices_)
    assert dh.segments_.groupby("treatment")["n_units"].sum().eq(exp.data.n_units).all()


# ---------------------------------------------------------------------- pruning
@pytest.mark.parametrize("m", [1, 60, 150])
def test_pruning_keeps_min_units_per_arm(exp, m):
    dh = DistillHTE(max_depth=4, min_samples_leaf=20, min_units_per_arm=m, random_state=2).fit(
        exp.data, predictions=_oracle(exp)
    )
    seg = dh.segments_
    assert (seg["n_treated"] >= m).all() and (seg["n_control"] >= m).all()
    if m == 1:  # nothing to prune: every leaf of the grown tree is a segment
        for arm, tree in dh.trees_.items():
            assert (seg["treatment"] == arm).sum() == tree.get_n_leaves()
    if m == 150:  # something was pruned
        assert any(
            (seg["treatment"] == arm).sum() < tree.get_n_leaves() for arm, tree in dh.trees_.items()
        )


# ---------------------------------------------------------------------- ground truth
def test_intervals_cover_true_segment_effects():
    """Over segments, arms, outcomes and three samples, the 95% intervals cover the true average
    effect of the segment's estimation units at about the nominal rate."""
    covered = []
    for seed in range(3):
        exp = make_synthetic(6000, random_state=100 + seed)
        d = exp.data
        dh = DistillHTE(random_state=seed).fit(d, predictions=_oracle(exp))
        est = dh.estimation_indices_
        ids = dh.predict_segment(d.X[est])
        true = exp.true_effects[est]
        for k, arm in enumerate(d.arms[1:], start=1):
            for r in dh.segments_[dh.segments_["treatment"] == arm].to_dict("records"):
                target = true[ids[arm].to_numpy() == r["segment"], k, :].mean(axis=0)
                for j, o in enumerate(d.outcomes):
                    covered.append(r[f"ci_low[{o}]"] <= target[j] <= r[f"ci_high[{o}]"])
    rate = float(np.mean(covered))
    assert len(covered) >= 100
    assert 0.88 <= rate <= 0.995, rate


def test_predict_effects_is_piecewise_constant_and_beats_the_ate(exp, fitted):
    d = exp.data
    tau = fitted.predict_effects(d)
    assert tau.shape == (d.n_units, d.n_arms, d.n_outcomes)
    assert (tau[:, 0, :] == 0).all()
    ids = fitted.predict_segment(d)
    seg = fitted.segments_
    for k, arm in enumerate(d.arms[1:], start=1):
        rows = seg[seg["treatment"] == arm].set_index("segment")
        expected = rows.loc[ids[arm].to_numpy(), [f"effect[{o}]" for o in d.outcomes]]
        np.testing.assert_array_equal(tau[:, k, :], expected.to_numpy())
    true = exp.true_effects[:, 1:, :]
    pehe = np.sqrt(((tau[:, 1:, :] - true) ** 2).mean(axis=0))
    pehe_ate = np.sqrt(((true.mean(axis=0) - true) ** 2).mean(axis=0))
    assert (pehe[:, 0] < pehe_ate[:, 0]).all()  # engagement is strongly heterogeneous
    np.testing.assert_array_equal(fitted.predict_effects(d.X), tau)


def test_outcome_weights_steer_the_tree(exp):
    pred = _oracle(exp)

    def rules(w):
        dh = DistillHTE(max_depth=2, outcome_weights=w, random_state=0).fit(exp.data, pred)
        return dh.segments_["rule"].tolist()

    only_goal = rules({"engagement": 1.0, "retention": 0.0, "cost": 0.0})
    assert only_goal == rules([5.0, 0.0, 0.0])  # only the ratios of the weights matter
    assert only_goal != rules({"engagement": 0.0, "cost": 0.0})  # retention keeps weight 1


def test_segment_effect_weights_cancel_under_constant_propensity(rng):
    yt, yc = rng.normal(1, 1, (50, 2)), rng.normal(0, 2, (70, 2))
    a = segment_effect(yt, np.full(50, 0.25), yc, np.full(70, 0.25))
    b = segment_effect(yt, np.full(50, 0.5), yc, np.full(70, 0.5))
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a[0], yt.mean(axis=0) - yc.mean(axis=0))


def test_default_cate_model_and_explain_helper(exp):
    small = exp.subset(np.arange(2000)).data
    dh = explain(
        small,
        model=CateModel(base_learner=LinearRegression(), n_folds=2),
        max_depth=1,
        random_state=0,
    )
    assert isinstance(dh.model_, CateModel) and len(dh.segments_) >= 3
    import pex_tuner

    assert pex_tuner.DistillHTE is DistillHTE


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        (
            {"outcome_weights": {"revenue": 1.0}},
            ConfigurationError,
            "unknown outcome(s) ['revenue'] in outcome_weights; expected names from "
            "['engagement', 'retention', 'cost']",
        ),
        (
            {"outcome_weights": [1.0, 2.0]},
            ConfigurationError,
            "outcome_weights has 2 value(s); expected one per outcome",
        ),
        (
            {"outcome_weights": {"engagement": -1.0}},
            ConfigurationError,
            "outcome_weights must be finite and >= 0 with at least one > 0",
        ),
        (
            {"outcome_weights": [0, 0, 0]},
            ConfigurationError,
            "outcome_weights must be finite and >= 0 with at least one > 0",
        ),
        (
            {"min_units_per_arm": 0},
            ConfigurationError,
            "The 'min_units_per_arm' parameter must be an integer >= 1. Got 0 instead.",
        ),
        (
            {"max_depth": 0},
            ConfigurationError,
            "The 'max_depth' parameter must be an integer >= 1. Got 0 instead.",
        ),
        (
            {"min_samples_leaf": 1.5},
            ConfigurationError,
            "The 'min_samples_leaf' parameter must be None, an integer >= 1 or a float in "
            "(0, 1). Got 1.5 instead.",
        ),
        (
            {"confidence": 1.0},
            ConfigurationError,
            "The 'confidence' parameter must be a float in (0, 1). Got 1.0 instead.",
        ),
        (
            {"min_units_per_arm": 2000},
            InputDataError,
            "every segment needs at least min_units_per_arm=2000 of each",
        ),
    ],
)
def test_bad_parameters(exp, params, error, message):
    with pytest.raises(error, match=re.escape(message)):
        DistillHTE(**params).fit(exp.data, predictions=_oracle(exp))


def test_bad_inputs(exp, fitted):
    pred = _oracle(exp)
    with pytest.raises(InputDataError, match=re.escape("fit expects an ExperimentData")):
        DistillHTE().fit(exp.data.to_frame(), predictions=pred)
    with pytest.raises(InputDataError, match=re.escape("predictions cover 10 units; expected")):
        DistillHTE().fit(exp.data, predictions=pred.subset(np.arange(10)))
    with pytest.raises(ConfigurationError, match="not both"):
        DistillHTE().fit(exp.data, predictions=pred, model=CateModel())
    with pytest.raises(ConfigurationError, match="'model' must be a CateModel"):
        DistillHTE().fit(exp.data, model=LinearRegression())
    with pytest.raises(NotFittedError, match="not fitted yet"):
        DistillHTE().predict_effects(exp.data)
    with pytest.raises(InputDataError, match=re.escape("feature matrix has shape (3, 2)")):
        fitted.predict_segment(np.zeros((3, 2)))


# ---------------------------------------------------------------------- plot and CLI
def test_plot_segments_colors_by_direction():
    from pex_tuner.plotting import plot_segments
    from pex_tuner.plotting.segments import SEGMENT_COLORS

    seg = pd.DataFrame(
        {
            "treatment": ["b", "b", "b"],
            "segment": [1, 2, 3],
            "rule": ["x <= 0", "x > 0 and x <= 1", "x > 1"],
            "n_units": [10, 20, 30],
            "effect[cost]": [-1.0, 1.0, 0.1],
            "ci_low[cost]": [-1.5, 0.5, -0.2],
            "ci_high[cost]": [-0.5, 1.5, 0.4],
            "significant[cost]": [True, True, False],
        }
    )
    seg.attrs["directions"] = {"cost": "min"}
    fig = plot_segments(seg)
    bars = [t for t in fig.data if t.customdata is not None]
    assert len(bars) == 1
    assert list(bars[0].marker.color) == [
        SEGMENT_COLORS["good"],
        SEGMENT_COLORS["bad"],
        SEGMENT_COLORS["not significant"],
    ]
    assert bars[0].customdata[1][0] == "x > 0 and x <= 1"
    by_sign = plot_segments(seg, "cost", directions={"cost": "max"})
    assert list(next(t for t in by_sign.data if t.customdata is not None).marker.color)[:2] == [
        SEGMENT_COLORS["bad"],
        SEGMENT_COLORS["good"],
    ]
    with pytest.raises(InputDataError, match=re.escape("unknown outcome(s) ['gmv']")):
        plot_segments(seg, "gmv")


def test_plot_segments_one_panel_per_outcome_and_treatment(fitted):
    from pex_tuner.plotting import plot_segments

    fig = plot_segments(fitted.segments_)
    bars = [t for t in fig.data if t.customdata is not None]
    assert len(bars) == len(fitted.outcomes_) * len(fitted.treatments_)
    assert len(plot_segments(fitted.segments_, "retention").layout.annotations) == 3


def test_cli_explain(tmp_path, capsys):
    from pex_tuner.cli import main

    exp = make_synthetic(3000, n_treatments=1, random_state=7)
    frame = exp.data.to_frame()
    path = tmp_path / "exp.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    feats = list(exp.data.feature_names)
    rc = main(
        [
            "explain",
            "--data",
            str(path),
            "--treatment",
            "arm",
            "--control",
            "control",
            "--outcome",
            "engagement:max",
            "--outcome",
            "cost:min",
            "--features",
            *feats,
            "--propensity",
            "propensity",
            "--max-depth",
            "2",
            "--n-folds",
            "2",
            "--weight",
            "cost=0.5",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    seg = pd.read_csv(out / "segments.csv")
    assert set(seg["treatment"]) == {"arm_1"} and 1 <= len(seg) <= 4
    assert {"rule", "effect[engagement]", "ci_low[cost]", "significant[cost]"} <= set(seg.columns)
    html = (out / "segments.html").read_text()
    assert "Distill-HTE" in html and seg["rule"].iloc[0].split(" ")[0] in html
    assert "wrote" in capsys.readouterr().out
    rc = main(
        [
            "explain",
            "--data",
            str(path),
            "--treatment",
            "arm",
            "--control",
            "control",
            "--outcome",
            "engagement:max",
            "--features",
            *feats,
            "--min-units-per-arm",
            "5000",
            "--out",
            str(out),
        ]
    )
    assert rc == 2
    assert "min_units_per_arm=5000" in capsys.readouterr().err
