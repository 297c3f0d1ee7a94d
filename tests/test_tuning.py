"""Offline tuning: policy space, the Ax loop with qLogNParEGO, frontier, candidates, storage."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from pex_tuner.datasets import make_synthetic
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies import LinearUtilityPolicy
from pex_tuner.tuning import OfflineTuner, PolicySpace, hypervolume, select_subset
from pex_tuner.tuning.frontier import pareto_mask, to_max_space

LEGACY = {
    "design_size": 0,
    "learner": "t",
    "split": "validation",
    "frontier_estimate": "observed",
    "candidate_estimate": "observed",
}


def _small_tuner(exp, tuner, **kwargs):
    """A quick OfflineTuner (batches of 2) sharing the module tuner's CATE model."""
    options = {**LEGACY, **kwargs}
    return OfflineTuner(
        exp.data, batch_size=2, effects=tuner.effects, n_folds=2, progress=False, **options
    )


@pytest.fixture(scope="module")
def exp():
    return make_synthetic(3000, random_state=2)


@pytest.fixture(scope="module")
def tuner(exp):
    """The Sobol-initialized path (``design_size=0``, the defaults before the dense design)
    with a T-learner on the validation split; tests_tuning_design.py covers the defaults."""
    t = OfflineTuner(
        exp.data,
        batch_size=4,
        init_trials=6,
        n_folds=2,
        random_state=0,
        progress=False,
        **LEGACY,
    )
    t.run(14)
    return t


def test_space_normalization_and_ranges(fitted):
    _, pred = fitted
    dirs = ("max", "max", "min")
    space = PolicySpace.from_predictions(pred, dirs)
    # J + K - 2 free parameters: 2 weights and 3 biases
    assert space.parameter_names == ["w_1", "w_2", "b_1", "b_2", "b_3"]
    b = space.bounds()
    assert b["w_1"][0] == 0 and b["w_1"][1] > 0  # max outcome: positive weight
    assert b["w_2"][1] == 0 and b["w_2"][0] < 0  # min outcome: negative weight
    s = pred.tau[:, 1:].std(axis=(0, 1))
    assert b["w_1"][1] == pytest.approx(4 * s[0] / s[1])
    pol = space.to_policy({"w_1": 0.5, "w_2": -0.2, "b_1": 0.1, "b_2": 0.0, "b_3": -0.3})
    assert pol.weights == (1.0, 0.5, -0.2) and pol.biases == (0.0, 0.1, 0.0, -0.3)
    plain = PolicySpace.from_predictions(pred, dirs, use_biases=False)
    assert plain.parameter_names == ["w_1", "w_2"]
    shrink = PolicySpace.from_predictions(pred, dirs, parameterization="shrinkage")
    assert shrink.parameter_names[-3:] == ["alpha_0", "alpha_1", "alpha_2"]
    p = {
        "w_1": 1.0,
        "w_2": -1.0,
        "b_1": 0,
        "b_2": 0,
        "b_3": 0,
        "alpha_0": 1,
        "alpha_1": 1,
        "alpha_2": 1,
    }
    assert shrink.to_policy(p).weights == (1.0, 1.0, -1.0)
    assert PolicySpace.from_dict(space.to_dict()) == space
    with pytest.raises(ConfigurationError, match=r"The 'parameterization' parameter"):
        PolicySpace.from_predictions(pred, dirs, parameterization="spline")


def test_acquisition_in_use_is_qlognparego(tuner):
    from botorch.acquisition.multi_objective.parego import qLogNParEGO

    assert tuner.acquisition_in_use is qLogNParEGO
    nodes = [r["node"] for r in tuner.records if r["kind"] == "tuned"]
    assert nodes[:6] == ["Sobol"] * 6 and set(nodes[6:]) == {"BoTorch"}
    assert tuner.n_evaluations == 14


def test_baselines_are_attached_and_evaluated_by_the_same_metric(tuner):
    ev = tuner.evaluations()
    base = ev[ev["kind"] == "baseline"].set_index("policy")
    assert list(base.index) == [f"all:{a}" for a in tuner.data.arms]
    for _k, a in enumerate(tuner.data.arms):
        assert base.loc[f"all:{a}", f"share[{a}]"] == 1.0
    # baselines are real Ax arms with the same numbers
    exp_data = tuner.client._experiment.lookup_data().df
    row = exp_data[
        (exp_data["arm_name"] == "all:control") & (exp_data["metric_name"] == "engagement")
    ]
    assert row["mean"].iloc[0] == pytest.approx(base.loc["all:control", "engagement"])
    np.testing.assert_allclose(
        tuner.reference_point, to_max_space(tuner.baseline_eval.value[0], ("max", "max", "min"))
    )


def test_frontier_is_non_dominated_with_standard_errors(tuner):
    front = tuner.get_pareto_frontier()
    ev = tuner.evaluations()
    objs = ["engagement", "retention", "cost"]
    Y = to_max_space(ev[objs].to_numpy(), ("max", "max", "min"))
    F = to_max_space(front[objs].to_numpy(), ("max", "max", "min"))
    for f in F:  # nothing evaluated dominates a frontier point
        assert not ((f <= Y).all(axis=1) & (f < Y).any(axis=1)).any()
    assert len(front) == int(pareto_mask(Y).sum())
    assert (front[[f"{o}_se" for o in objs]] > 0).all().all()
    assert {"w_1", "b_1", "share[control]"} <= set(front.columns)
    pred = tuner.get_pareto_frontier(use_model_predictions=True)
    assert len(pred) >= 1 and (pred["engagement_se"] > 0).all()


def test_candidates_maximize_hypervolume(tuner):
    ev = tuner.evaluations()
    ev = ev[ev["kind"] != "baseline"]
    dirs = ("max", "max", "min")
    Y = to_max_space(ev[["engagement", "retention", "cost"]].to_numpy(), dirs)
    Y = Y[pareto_mask(Y)]
    k = min(2, len(Y))
    for reference in ("control", "nadir"):
        cand = tuner.select_online_candidates(2, reference_point=reference)
        ref = (
            tuner.reference_point
            if cand["reference"].iloc[0] == "control"
            else (Y.min(axis=0) - 1e-9 * (1 + np.abs(Y.min(axis=0))))
        )
        best = max(hypervolume(Y[list(s)], ref) for s in itertools.combinations(range(len(Y)), k))
        assert cand["subset_hypervolume"].iloc[0] == pytest.approx(best)
        assert best > 0 and len(cand) == k
    with pytest.raises(ConfigurationError, match=r"'reference_point' must be 'control'"):
        tuner.select_online_candidates(2, reference_point="origin")


def test_select_subset_exact_and_greedy():
    rng = np.random.default_rng(0)
    Y = rng.uniform(size=(12, 2))
    Y = Y[pareto_mask(Y)] if pareto_mask(Y).sum() >= 3 else Y
    ref = np.zeros(2)
    idx = select_subset(Y, ref, 3)
    best = max(hypervolume(Y[list(s)], ref) for s in itertools.combinations(range(len(Y)), 3))
    assert hypervolume(Y[idx], ref) == pytest.approx(best)
    big = rng.uniform(size=(60, 3))
    g = select_subset(big, np.zeros(3), 5)  # greedy path (C(60, 5) subsets is too many)
    assert len(set(g.tolist())) == 5
    # hypervolume of a known set: two boxes of area 1 overlapping in 0.25
    assert hypervolume(np.array([[1.0, 0.5], [0.5, 1.0]]), np.zeros(2)) == pytest.approx(0.75)


def test_hypervolume_trace_is_monotone(tuner):
    tr = tuner.hypervolume_trace()
    assert len(tr) == tuner.n_evaluations
    assert (np.diff(tr["hypervolume"]) >= -1e-12).all()


def test_save_load_directory_continues(tuner, exp, tmp_path):
    tuner.save(str(tmp_path / "t"))
    again = OfflineTuner.load(str(tmp_path / "t"), exp.data)
    assert again.n_evaluations == tuner.n_evaluations
    assert again.space == tuner.space
    again.run(2)
    assert again.n_evaluations == tuner.n_evaluations + 2
    from botorch.acquisition.multi_objective.parego import qLogNParEGO

    assert again.acquisition_in_use is qLogNParEGO
    other = make_synthetic(3000, random_state=3)
    with pytest.raises(InputDataError, match="fingerprint mismatch"):
        OfflineTuner.load(str(tmp_path / "t"), other.data)
    with pytest.raises(InputDataError, match="is not a saved tuner"):
        OfflineTuner.load(str(tmp_path / "nothing"), exp.data)


def test_save_load_sqlite(tuner, exp, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuners.db'}"
    tuner.save_to_db(url)
    again = OfflineTuner.load_from_db(exp.data, url)
    assert again.n_evaluations == tuner.n_evaluations
    again.run(1)
    assert again.n_evaluations == tuner.n_evaluations + 1
    with pytest.raises(InputDataError, match="no tuner named 'other'"):
        OfflineTuner.load_from_db(exp.data, url, name="other")


def _postgres_url() -> str | None:
    url = os.environ.get(
        "PEX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return url
    except Exception:  # any failure means "no server here"
        return None


def test_save_load_postgresql(tuner, exp):
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server reachable at 127.0.0.1:5432 (database test)")
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a clean slate for our table
        conn.execute(sa.text("DROP TABLE IF EXISTS pex_tuner_state"))
    engine.dispose()
    tuner.save_to_db(url)
    again = OfflineTuner.load_from_db(exp.data, url)
    assert again.n_evaluations == tuner.n_evaluations
    assert [r["policy"] for r in again.records] == [r["policy"] for r in tuner.records]
    again.run(1)
    assert again.n_evaluations == tuner.n_evaluations + 1


def test_guardrails_become_constraints(exp):
    t = OfflineTuner(
        exp.data,
        guardrails={"retention": 0.01},
        batch_size=3,
        init_trials=3,
        n_folds=2,
        progress=False,
        **LEGACY,
    )
    assert t.config["objectives"] == ["engagement", "cost"]
    control = t.baseline_eval.value[0, 1]
    assert t.guardrail_bounds["retention"] == pytest.approx(control - 0.01 * abs(control))
    t.run(3)
    oc = t.client._experiment.optimization_config.outcome_constraints
    assert len(oc) == 1 and oc[0].bound == pytest.approx(t.guardrail_bounds["retention"])
    ev = t.evaluations()
    assert (ev["feasible"] == (ev["retention"] >= t.guardrail_bounds["retention"])).all()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(guardrails={"revenue": 0.1}), r"guardrail 'revenue' is not an outcome"),
        (dict(guardrails={"retention": 5}), r"tolerance must be a fraction in \[0, 1\)"),
        (dict(objectives=["engagement"]), r"needs at least two objectives"),
        (dict(acquisition="random"), r"The 'acquisition' parameter must be one of"),
        (dict(scaling="log"), r"The 'scaling' parameter must be one of \['relative', 'absolute'\]"),
        (
            dict(objectives=["retention"], guardrails={"retention": 0.1}),
            r"cannot be both an objective and a guardrail",
        ),
        (dict(estimator="drr"), r"The 'estimator' parameter must be one of"),
        (dict(parameterization="spline"), r"The 'parameterization' parameter must be one of"),
        (dict(learner="q"), r"The 'learner' parameter must be one of"),
        (dict(weight_scale=0), r"The 'weight_scale' parameter must be a float > 0"),
        (dict(split="train"), r"The 'split' parameter must be one of"),
        (dict(batch_size=0), r"The 'batch_size' parameter must be an int >= 1"),
        (dict(design_size=-1), r"The 'design_size' parameter must be an int >= 0"),
        (dict(model_points=0), r"The 'model_points' parameter must be an int >= 1"),
        (
            dict(frontier_estimate="gp"),
            r"The 'frontier_estimate' parameter must be one of \['observed', 'model'\]",
        ),
        (
            dict(candidate_estimate="posterior"),
            r"The 'candidate_estimate' parameter must be one of \['observed', 'model'\]",
        ),
        (dict(learner="best"), r"must be one of \['auto', 't', 'x', 's', 'dr'\]"),
    ],
)
def test_invalid_tuner_configuration(exp, kwargs, pattern):
    with pytest.raises(ConfigurationError, match=pattern):
        OfflineTuner(exp.data, n_folds=2, progress=False, **kwargs)


def test_configuration_is_checked_before_fitting(exp, monkeypatch):
    """Every option is checked before the CATE model is fitted: a bad one fails at once."""
    from pex_tuner.effects import CateModel

    def no_fit(*args, **kwargs):
        raise AssertionError("the CATE model was fitted before the options were checked")

    monkeypatch.setattr(CateModel, "fit", no_fit)
    for kwargs in (dict(estimator="drr"), dict(bias_scale=-1.0), dict(init_trials=0)):
        with pytest.raises(ConfigurationError):
            OfflineTuner(exp.data, progress=False, **kwargs)


def test_config_round_trips_and_reads_older_saves(tuner):
    from pex_tuner.tuning import TunerConfig

    cfg = tuner.config
    assert TunerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg["objectives"] == list(cfg.objectives) and cfg["init_trials"] == 6
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("scaling", "bias_scale")}
    restored = TunerConfig.from_dict(old)
    assert restored.scaling == "absolute" and restored.bias_scale == 0.25


def test_qlognehvi_option_and_no_bias(exp, tuner):
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )

    t = _small_tuner(exp, tuner, acquisition="qLogNEHVI", use_biases=False, init_trials=3)
    t.run(4)
    assert t.acquisition_in_use is qLogNoisyExpectedHypervolumeImprovement
    assert t.space.parameter_names == ["w_1", "w_2"]
    # without biases the baselines cannot be parameters: kept as reference arms only
    assert "all:control" not in set(t.client._experiment.arms_by_name)
    assert "all:control" in set(t.evaluations()["policy"])


def test_attached_policy_is_an_alternative_arm(exp, tuner):
    d = exp.data
    pol = LinearUtilityPolicy((1.0, 2.0, -1.0), (0, 0, 0, 0), d.arms, d.outcomes)
    tuner.attach_policy("hand-tuned", pol)
    ev = tuner.evaluations().set_index("policy")
    assert ev.loc["hand-tuned", "kind"] == "attached"
    direct = tuner.metric.evaluate([pol], names=["x"])
    assert ev.loc["hand-tuned", "engagement"] == pytest.approx(direct.value[0, 0])
    with pytest.raises(ConfigurationError, match="already exists"):
        tuner.attach_policy("hand-tuned", pol)


def test_train_validation_split_scores_more_units_out_of_fold(exp, tuner):
    t = _small_tuner(exp, tuner, split="train+validation", init_trials=3)
    n_train, n_val = (len(tuner.split_indices[s]) for s in ("train", "validation"))
    assert t.metric.data.n_units == n_train + n_val
    assert t.metric.predictions.out_of_fold
    # the policy class is the validation split's, whatever the evaluation split
    assert t.space == tuner.space
    # its standard errors shrink with the extra units
    se_plain = tuner.baseline_eval.se[0]
    se_more = t.baseline_eval.se[0]
    assert (se_more < se_plain).all()
    # a model that did not fit this train split has no out-of-fold predictions there
    from pex_tuner.effects import CateModel

    other = CateModel(n_folds=2, random_state=5, progress=False).fit(
        exp.data.subset(tuner.split_indices["validation"])
    )
    with pytest.raises(ConfigurationError, match="needs out-of-fold predictions"):
        OfflineTuner(exp.data, split="train+validation", effects=other, progress=False)


def test_hypervolume_scalarized_parego_option(exp, tuner, tmp_path):
    from botorch.acquisition.multi_objective.parego import qLogNParEGO

    t = _small_tuner(exp, tuner, acquisition="qLogNParEGO-HV", init_trials=4)
    t.run(6)
    acqf = t.acquisition_in_use
    assert acqf is not qLogNParEGO and issubclass(acqf, qLogNParEGO)
    # assign-all-control is given to Ax as the objective thresholds (the reference point)
    thresholds = t.client._experiment.optimization_config.objective_thresholds
    assert len(thresholds) == 3
    t.save(str(tmp_path / "hv"))
    again = OfflineTuner.load(str(tmp_path / "hv"), exp.data)
    again.run(2)
    assert again.acquisition_in_use is acqf


def test_relative_scaling_space(fitted):
    _, pred = fitted
    dirs = ("max", "max", "min")
    space = PolicySpace.from_predictions(pred, dirs, scaling="relative")
    absolute = PolicySpace.from_predictions(pred, dirs)
    assert space.parameter_names == absolute.parameter_names
    b = space.bounds()
    s = pred.tau[:, 1:].std(axis=(0, 1))
    # weight magnitudes on a log scale, from 1% of the largest |w_j| to it
    assert space.log_scaled == ("w_1", "w_2")
    assert b["w_1"] == pytest.approx((0.04 * s[0] / s[1], 4 * s[0] / s[1]))
    assert b["w_2"][0] > 0  # a magnitude: the sign comes from the direction
    assert b["b_1"] == (-1.0, 1.0)
    # biases are in units of the RMS weighted effect S(w) = sqrt(w' M w)
    params = {"w_1": 0.5, "w_2": 0.2, "b_1": 0.5, "b_2": 0.0, "b_3": -1.0}
    pol = space.to_policy(params)
    w = np.array(pol.weights)
    assert tuple(w) == (1.0, 0.5, -0.2)
    tau = pred.tau[:, 1:, :]
    rms = np.sqrt(np.mean((tau @ w) ** 2))
    assert space.bias_unit(w) == pytest.approx(rms)
    assert pol.biases == pytest.approx((0.0, 0.5 * rms, 0.0, -rms))
    # the unit cube maps uniformly in the searched coordinates (log for the weights)
    p = space.from_unit(np.array([[0.5, 0.0, 0.5, 0.0, 1.0]]))[0]
    assert p["w_1"] == pytest.approx(np.sqrt(b["w_1"][0] * b["w_1"][1]))
    assert p["w_2"] == pytest.approx(b["w_2"][0])
    assert (p["b_1"], p["b_2"], p["b_3"]) == pytest.approx((0.0, -1.0, 1.0))
    with pytest.raises(ConfigurationError, match=r"'u' must have shape \(n, 5\)"):
        space.from_unit(np.zeros((2, 3)))
    assert PolicySpace.from_dict(space.to_dict()) == space
    # a space saved before scalings existed loads as absolute
    old = absolute.to_dict()
    del old["scaling"], old["effect_moment"]
    assert PolicySpace.from_dict(old).scaling == "absolute"
    with pytest.raises(ConfigurationError, match="The 'scaling' parameter must be one of"):
        PolicySpace.from_predictions(pred, dirs, scaling="log")


def test_relative_scaling_tuner_searches_log_weights(exp, tuner, tmp_path):
    from ax.core.parameter import ParameterType

    t = _small_tuner(exp, tuner, scaling="relative", init_trials=4)
    t.run(6)
    params = t.client._experiment.search_space.parameters
    assert params["w_1"].log_scale and not params["b_1"].log_scale
    assert params["w_1"].parameter_type == ParameterType.FLOAT
    # the assign-all baselines still send every unit to their arm
    ev = t.evaluations().set_index("policy")
    for arm in exp.data.arms:
        assert f"all:{arm}" in t.client._experiment.arms_by_name
        assert ev.loc[f"all:{arm}", f"share[{arm}]"] == 1.0
    # tuned policies lie in the space; the reloaded tuner keeps the scaling and continues
    tuned = ev[ev["kind"] == "tuned"]
    lo, hi = t.space.bounds()["w_1"]
    assert ((tuned["w_1"] >= lo - 1e-12) & (tuned["w_1"] <= hi + 1e-12)).all()
    t.save(str(tmp_path / "rel"))
    again = OfflineTuner.load(str(tmp_path / "rel"), exp.data)
    assert again.space == t.space and again.space.scaling == "relative"
    again.run(2)
    assert again.n_evaluations == 8


def test_hypervolume_scalarization_directions_and_scale():
    import torch

    from pex_tuner.tuning.acquisition import next_direction, qLogNParEGOHV

    # directions are unit vectors in the positive orthant and spread over it
    lams = torch.stack([next_direction(3) for _ in range(256)])
    lams = lams / lams.norm(dim=-1, keepdim=True)
    assert bool((lams >= 0).all())
    share = (lams.argmax(dim=-1)[:, None] == torch.arange(3)).float().mean(dim=0)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.06)

    # the scale is the extent of the region that dominates the reference point: an
    # observation far below the reference on one objective does not stretch another
    from botorch.models import SingleTaskGP

    X = torch.tensor([[0.1], [0.5], [0.9]], dtype=torch.double)
    Y = torch.tensor([[1.0, 1.0], [2.0, 2.0], [10.0, -5.0]], dtype=torch.double)
    model = SingleTaskGP(X, Y, train_Yvar=torch.full_like(Y, 1e-6))
    acqf = qLogNParEGOHV(
        model=model,
        X_baseline=X,
        ref_point=torch.zeros(2, dtype=torch.double),
        scalarization_weights=torch.tensor([1.0, 1.0], dtype=torch.double),
    )
    z = acqf.chebyshev_scalarization(torch.tensor([[2.0, 2.0]], dtype=torch.double))
    lam = 1 / np.sqrt(2)
    # Z = (y - ref) / scale with scale = (2, 2) (the best dominating point), not (10, 2)
    assert float(z[0]) == pytest.approx(1.0 / lam + 0.05 * 2.0, rel=1e-4)


def test_parameters_are_shown_by_outcome_and_arm(tuner, exp):
    """Outputs name parameters ``w[<outcome>]`` / ``b[<arm>]`` (Ax keeps ``w_1`` / ``b_2``) and
    show assign-all baselines as "assign all to X", without their out-of-design biases."""
    import json

    from pex_tuner.tuning.display import display_table
    from pex_tuner.workflows.offline import candidates_document, frontier_table

    space = tuner.space
    assert space.display_names() == {
        "w_1": "w[retention]",
        "w_2": "w[cost]",
        "b_1": "b[arm_1]",
        "b_2": "b[arm_2]",
        "b_3": "b[arm_3]",
    }
    assert space.parameter_names == ["w_1", "w_2", "b_1", "b_2", "b_3"]  # Ax's names stay
    ev = tuner.evaluations()
    names = list(space.display_names().values())
    shown = display_table(ev, space)
    assert set(names) <= set(shown.columns) and "w_1" not in shown.columns
    base = shown[shown["kind"] == "baseline"]
    assert list(base["description"]) == [f"assign all to {a}" for a in exp.data.arms]
    assert base[names].isna().all().all()  # not biases of +-79
    assert (ev.loc[ev["kind"] == "baseline", "b_1"].abs() > space.bias_bound).all()
    tuned = shown[shown["kind"] == "tuned"]
    assert (tuned["description"] == "linear utility (tuned)").all()
    assert tuned[names].notna().all().all()

    table = frontier_table(tuner, ev, {n: f"policies/{n}.json" for n in ev["policy"]})
    assert list(table.columns[:4]) == ["policy_id", "policy", "kind", "description"]
    assert table.columns[4:9].tolist() == names
    cand = tuner.select_online_candidates(2, include_baselines=True)
    doc = candidates_document(tuner, cand, {n: f"policies/{n}.json" for n in cand["policy"]})
    json.dumps(doc, allow_nan=False)  # valid JSON: no NaN parameters
    for c in doc["candidates"]:
        if c["policy_id"].startswith("all:"):
            assert c["parameters"] is None and c["description"].startswith("assign all to ")
        else:
            assert list(c["parameters"]) == names
