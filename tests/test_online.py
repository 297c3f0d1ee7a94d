"""The online tuner: candidates from a saved offline tuner, partial and late results,
qLogNParEGO batches, calibration, and its JSON state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pex_tuner.datasets import OnlineSimulator
from pex_tuner.errors import InputDataError, NotFittedError, ResultConflictError
from pex_tuner.tuning import OfflineTuner
from pex_tuner.tuning.online import OnlineTuner, narrow_space, parse_metrics

OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}


def _saved_records(offline_dir):
    return json.loads((offline_dir / "tuner.json").read_text())


def test_first_batch_is_the_offline_hypervolume_subset(offline_dir, synth):
    from pex_tuner.datasets import make_synthetic

    exp = make_synthetic(3000, random_state=5)
    offline = OfflineTuner.load(str(offline_dir), exp.data)
    want = offline.select_online_candidates(3)
    on = OnlineTuner.from_offline(offline_dir, n_candidates=3, objectives=OBJECTIVES)
    assert [t["source"] for t in on.trials.values()] == [f"offline:{p}" for p in want["policy"]]
    assert all(t["status"] == "pending" for t in on.trials.values())
    # offline values come along for calibration
    first = on.trials[0]["offline"]
    assert first["engagement"][0] == pytest.approx(want["engagement"].iloc[0])
    # narrowed space: inside the offline bounds and containing every candidate
    full = offline.space.bounds()
    for name, (lo, hi) in on.bounds.items():
        assert full[name][0] <= lo <= hi <= full[name][1]
        for t in on.trials.values():
            assert lo <= t["parameters"][name] <= hi
    assert "long_term" in on.required_metrics


def test_narrow_space_is_the_widened_bounding_box(offline_dir):
    from pex_tuner.tuning import PolicySpace

    space = PolicySpace.from_dict(_saved_records(offline_dir)["space"])
    full = space.bounds()
    pts = [{k: lo + 0.5 * (hi - lo) for k, (lo, hi) in full.items()}]
    pts.append({k: lo + 0.6 * (hi - lo) for k, (lo, hi) in full.items()})
    box = narrow_space(space, pts, margin=0.1)
    for k, (lo, hi) in full.items():
        assert box[k][0] == pytest.approx(lo + 0.4 * (hi - lo))
        assert box[k][1] == pytest.approx(lo + 0.7 * (hi - lo))
    assert narrow_space(space, [], 0.1) == full


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({}, "'metrics' must be a non-empty object"),
        ({"a": {"sem": 1}}, "metric 'a' is missing 'mean'"),
        ({"a": {"mean": float("nan"), "sem": 1}}, "metric 'a': 'mean' must be a finite number"),
        ({"a": {"mean": 1, "sem": -1}}, "metric 'a': 'sem' must be >= 0; got -1.0"),
        ({"a": {"mean": 1, "sem": 1, "n": 0}}, "metric 'a': 'n' must be a positive integer"),
        ({"a": 3}, "metric 'a' must be an object"),
    ],
)
def test_parse_metrics_errors(metrics, message):
    with pytest.raises(InputDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_metrics(metrics)


def test_online_loop_with_simulator(offline_dir):
    sim = OnlineSimulator(design_seed=0, gap=0.3, random_state=3)
    on = OnlineTuner.from_offline(offline_dir, n_candidates=3, objectives=OBJECTIVES)
    assert on.generation_blocker().startswith("3 generated trials")
    with pytest.raises(NotFittedError, match="cannot generate a batch yet"):
        on.generate()

    def run(ids):
        results = sim.run({str(i): on.assigner(i) for i in ids}, 4000)
        for i in ids:
            on.mark_running(i)
            res = results[str(i)]
            # results arrive in two parts; the trial completes with the second
            first = {k: res[k] for k in ("engagement", "retention")}
            assert on.report(i, first)["status"] == "running"
            rest = {k: v for k, v in res.items() if k not in first}
            assert on.report(i, rest)["status"] == "completed"
        return results

    first = run(list(on.trials))
    # replaying the same part changes nothing; a different value is a conflict
    assert on.report(0, {"cost": first["0"]["cost"]})["status"] == "completed"
    bad = dict(first["0"]["cost"], mean=first["0"]["cost"]["mean"] + 1)
    with pytest.raises(ResultConflictError, match="trial 0 already has a different result"):
        on.report(0, {"cost": bad})
    new = on.generate(2)
    assert new == [3, 4]
    assert on.acquisition_in_use().__name__ == "qLogNParEGO"
    for i in new:  # generated policies stay inside the narrowed space
        for k, (lo, hi) in on.bounds.items():
            assert lo - 1e-9 <= on.trials[i]["parameters"][k] <= hi + 1e-9
    # a trial fails, the other is abandoned and reports late: the model still gets it
    on.mark_running(3)
    on.mark_running(4)
    on.mark_failed(3)
    on.mark_failed(4, abandoned=True)
    assert on.generation_blocker() is None
    late = sim.run({"4": on.assigner(4)}, 2000)["4"]
    assert on.report(4, late)["status"] == "completed"
    assert on.generate(1) == [5]
    assert on.status_counts() == {
        "pending": 1,
        "running": 0,
        "completed": 4,
        "failed": 1,
        "abandoned": 0,
    }
    # the JSON state round-trips and continues
    again = OnlineTuner.from_state(json.loads(json.dumps(on.to_state())))
    assert again.results().drop(columns="source").equals(on.results().drop(columns="source"))
    front = on.pareto()
    assert set(front["trial_id"]) <= {0, 1, 2, 4}
    calib = on.calibration()
    assert set(calib["metric"]) == {"engagement", "retention", "cost"}
    assoc = calib.attrs["association"].set_index("metric")
    assert (assoc["n_policies"] == 3).all()


def test_online_results_track_the_truth(offline_dir):
    """With no offline/online gap the simulator's online means estimate each policy's true
    value, and the online tuner's recorded results are those means."""
    sim = OnlineSimulator(design_seed=0, gap=0.0, random_state=4)
    on = OnlineTuner.from_offline(offline_dir, n_candidates=2, objectives=OBJECTIVES)
    res = sim.run({str(i): on.assigner(i) for i in on.trials}, 20_000)
    for i in on.trials:
        on.mark_running(i)
        on.report(i, res[str(i)])
        truth = sim.true_values(on.assigner(i), 100_000)
        for m in OBJECTIVES:
            rec = on.trials[i]["metrics"][m]
            assert abs(rec["mean"] - truth[m]) < 4.5 * np.hypot(rec["sem"], 0.003)


def test_from_offline_errors(tmp_path, offline_dir):
    with pytest.raises(InputDataError, match=r"is not a saved offline tuner: .tuner\.json."):
        OnlineTuner.from_offline(tmp_path)
    on = OnlineTuner.from_offline(offline_dir, n_candidates=2, objectives=OBJECTIVES)
    with pytest.raises(InputDataError, match="no trial 99 in this run"):
        on.report(99, {"a": {"mean": 1, "sem": 1}})
    with pytest.raises(InputDataError, match=r"parameter .w_1. = 1000\.0 is outside"):
        on.add_trial({k: 1000.0 for k in on.bounds})


def test_online_tuner_from_relative_scaled_offline_tuner(tmp_path):
    from pex_tuner.datasets import make_synthetic

    exp = make_synthetic(3000, random_state=5)
    offline = OfflineTuner(
        exp.data,
        scaling="relative",
        batch_size=4,
        init_trials=4,
        n_folds=2,
        random_state=0,
        progress=False,
    )
    offline.run(8)
    offline.save(str(tmp_path / "tuner"))
    sim = OnlineSimulator(design_seed=0, gap=0.3, random_state=3)
    on = OnlineTuner.from_offline(tmp_path / "tuner", n_candidates=2, objectives=OBJECTIVES)
    assert on.space.scaling == "relative"
    results = sim.run({str(i): on.assigner(i) for i in on.trials}, 3000)
    for i in list(on.trials):
        on.mark_running(i)
        on.report(i, results[str(i)])
    new = on.generate(2)
    # Ax searches the weight magnitudes on a log scale, inside the narrowed (positive) bounds
    params = on.client._experiment.search_space.parameters
    assert params["w_1"].log_scale and on.bounds["w_1"][0] > 0
    for i in new:
        pol = on.policy(i)
        assert pol.weights[2] < 0  # cost is minimized: the magnitude gets the minus sign
        for k, (lo, hi) in on.bounds.items():
            assert lo - 1e-9 <= on.trials[i]["parameters"][k] <= hi + 1e-9
