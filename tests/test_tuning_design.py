"""The dense design in the Ax experiment, the denoised frontier and its honest report, seeded
repeatability, the learner chosen by the data, and near-assign-all candidates."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.datasets import make_synthetic
from pex_tuner.ope import PolicyEvaluation
from pex_tuner.tuning import EvaluationLog, OfflineTuner
from pex_tuner.tuning.acquisition import next_direction, reset_directions
from pex_tuner.tuning.design import near_frontier
from pex_tuner.tuning.frontier import pareto_mask

SMALL = {"design_size": 128, "model_points": 16, "batch_size": 4, "n_folds": 2}


@pytest.fixture(scope="module")
def exp():
    return make_synthetic(3000, random_state=4)


@pytest.fixture(scope="module")
def tuned(exp):
    t = OfflineTuner(exp.data, learner="t", random_state=1, progress=False, **SMALL)
    t.run(4)
    return t


def _refined(t: OfflineTuner) -> list[dict]:
    return [r["parameters"] for r in t.records if r["kind"] == "tuned" and r["node"] != "design"]


def test_dense_design_is_recorded_and_its_nearest_frontier_part_is_in_ax(tuned):
    design = [r for r in tuned.records if r["node"] == "design"]
    assert len(design) == 128 and tuned.n_evaluations == 132
    in_ax = [r for r in design if r["trial_index"] is not None]
    assert len(in_ax) == 16
    # the attached ones are the layers nearest the observed frontier
    frame = tuned.log.frame_of(design)
    Y = tuned.log.objective_matrix(frame)
    ok = frame["feasible"].to_numpy(dtype=bool)
    expected = {design[i]["policy"] for i in near_frontier(Y, ok, 16)}
    assert {r["policy"] for r in in_ax} == expected
    front = {design[i]["policy"] for i in np.flatnonzero(ok)[pareto_mask(Y[ok])]}
    # three objectives: the frontier alone has more than 16 policies, thinned evenly
    assert len(front) > 16 and expected <= front
    # Ax holds them as completed trials with the same observations
    client = tuned.client
    names = tuned.metric.metric_names
    data = client._experiment.lookup_data().df
    for r in in_ax:
        trial = client._experiment.trials[r["trial_index"]]
        assert trial.arm.name == r["policy"] and trial.status.is_completed
        rows = data[data["trial_index"] == r["trial_index"]]
        for o in tuned.data.outcomes:
            got = rows.loc[rows["metric_name"] == names[o], "mean"].item()
            assert got == pytest.approx(r[o])
    # baselines + attached design + refined, nothing else
    n_base = len(tuned.baselines)
    assert ax_bridge.n_trials(client) == n_base + 16 + 4
    assert [r["node"] for r in tuned.records if r["node"] not in ("design", None)] == [
        "BoTorch"
    ] * 4


def test_design_alone_needs_no_ax_and_is_seeded(exp, tuned):
    other = OfflineTuner(
        exp.data, effects=tuned.effects, learner="t", random_state=1, progress=False, **SMALL
    )
    other.evaluate_design()
    assert other._client is None
    mine = [r for r in tuned.records if r["node"] == "design"]
    theirs = [r for r in other.records if r["node"] == "design"]
    assert [r["parameters"] for r in mine] == [r["parameters"] for r in theirs]
    assert [r["engagement"] for r in mine] == [r["engagement"] for r in theirs]
    front = other.get_pareto_frontier(use_model_predictions=False)
    assert set(front["kind"]) <= {"tuned", "baseline"}


def test_same_seed_same_trials_frontier_and_candidates(exp, tuned):
    again = OfflineTuner(
        exp.data, effects=tuned.effects, learner="t", random_state=1, progress=False, **SMALL
    )
    again.run(4)
    assert _refined(again) == _refined(tuned)
    timing = ["batch_seconds"]  # the only thing allowed to differ: wall time
    a, b = again.get_pareto_frontier(), tuned.get_pareto_frontier()
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    a, b = again.select_online_candidates(3), tuned.select_online_candidates(3)
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    other = OfflineTuner(exp.data, learner="t", random_state=2, progress=False, **SMALL)
    other.run(4)
    assert _refined(other) != _refined(tuned)


def test_scalarization_directions_repeat_under_a_seed():
    reset_directions(7, 0)
    first = [next_direction(3) for _ in range(4)]
    reset_directions(7, 2)
    later = [next_direction(3) for _ in range(2)]
    assert all(np.allclose(x, y) for x, y in zip(first[2:], later, strict=True))
    reset_directions(8, 0)
    assert not np.allclose(next_direction(3), first[0])


def test_model_frontier_is_the_posterior_mean_of_the_policies_in_ax(tuned):
    model = tuned.get_pareto_frontier(use_model_predictions=True)
    observed = tuned.get_pareto_frontier(use_model_predictions=False)
    tuned_rows = model[model["kind"] == "tuned"]
    assert tuned_rows["trial_index"].notna().all()  # only policies the GP was fitted on
    rec = {r["policy"]: r for r in tuned.records}
    diffs = [
        abs(row["engagement"] - rec[row["policy"]]["engagement"])
        for _, row in tuned_rows.iterrows()
    ]
    assert max(diffs) > 0  # the posterior mean, not the observation
    assert len(observed) >= 1


def test_frontier_report_puts_test_estimates_beside_the_selection(tuned):
    report = tuned.frontier_report()
    front = tuned.get_pareto_frontier()
    assert list(report["policy"]) == list(front["policy"])
    names = list(report["policy"])
    test = tuned.test_metric.evaluate([tuned.policy(n) for n in names], names=names)
    assert np.allclose(report["retention[test]"], test.value[:, 1])
    half = report["engagement[test]_high"] - report["engagement[test]"]
    assert np.allclose(half, 1.959964 * test.se[:, 0], rtol=1e-5)
    assert (report["engagement_low"] <= report["engagement"]).all()
    assert tuned.test_metric.data.n_units == len(tuned.split_indices["test"])


def _log_with(shares: list[list[float]], values: list[list[float]]) -> EvaluationLog:
    arms, outs = ("control", "a", "b"), ("goal", "cost")
    log = EvaluationLog(
        arms=arms,
        outcomes=outs,
        directions=("max", "min"),
        objectives=outs,
        guardrails={},
        control=np.array([0.0, 0.0]),
    )
    P = len(values)
    ev = PolicyEvaluation(
        policies=tuple(f"p{i}" for i in range(P)),
        arms=arms,
        outcomes=outs,
        directions=("max", "min"),
        estimator="dr",
        n_units=100,
        value=np.asarray(values, dtype=float),
        se=np.full((P, 2), 0.01),
        lift=np.asarray(values, dtype=float),
        lift_se=np.full((P, 2), 0.01),
        shares=np.asarray(shares, dtype=float),
    )
    for i in range(len(values)):
        log.record(i, f"p{i}", "tuned", {"w_1": float(i)}, ev, i, "design")
    return log


def test_near_assign_all_candidates_are_labelled_as_that_baseline():
    log = _log_with(
        shares=[[0.0, 0.995, 0.005], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6], [0.0, 0.0, 1.0]],
        values=[[3.0, -1.0], [1.0, -1.0], [2.0, -0.5], [2.5, -2.0]],
    )
    labels = log.same_as(log.frame())
    assert list(labels) == ["all:a", None, None, "all:b"]
    with pytest.warns(UserWarning, match=r"asked for 3 online candidates, got 2"):
        cand = log.select_candidates(3)
    assert set(cand["policy"]) == {"p1", "p2"}
    assert "2 feasible policies sent >= 99% of units to one arm" in cand.attrs["note"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(log.select_candidates(2)) == 2  # enough: no note, no warning


def test_learner_auto_keeps_its_table_and_saves_it(exp, tmp_path):
    t = OfflineTuner(exp.data, learner="auto", random_state=0, progress=False, **SMALL)
    sel = t.learner_selection
    assert sel is not None and t.effects.learner == sel.learner
    assert set(sel.scores["learner"]) == {"t", "x", "dr", "s"}
    assert sel.scores["learner"].iloc[0] == sel.learner
    t.evaluate_design()
    t.save(str(tmp_path / "auto"))
    back = OfflineTuner.load(str(tmp_path / "auto"), exp.data)
    assert back.learner_selection.learner == sel.learner
    pd.testing.assert_frame_equal(back.learner_selection.scores, sel.scores, check_dtype=False)
    assert len([r for r in back.records if r["node"] == "design"]) == 128


@pytest.mark.parametrize("m", [2, 3])
def test_sweep_hypervolume_equals_botorch(m):
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    from pex_tuner.tuning import hypervolume

    rng = np.random.default_rng(m)
    Y = rng.standard_normal((150, m))
    Y[:10] = Y[10:20]  # duplicates
    ref = np.full(m, -0.3)
    above = Y[(ref < Y).all(axis=1)]
    expected = Hypervolume(torch.as_tensor(ref)).compute(torch.as_tensor(above[pareto_mask(above)]))
    assert hypervolume(Y, ref) == pytest.approx(float(expected), rel=1e-12)
    assert hypervolume(Y[:0], ref) == 0.0
    assert hypervolume(Y - 10.0, ref) == 0.0  # nothing dominates the reference
