"""Policy artifacts, `pex-tuner assign` and `pex-tuner tune`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pex_tuner.cli import main
from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import fit_effects
from pex_tuner.errors import InputDataError
from pex_tuner.policies import LinearUtilityPolicy, PolicyArtifact, write_artifact


@pytest.fixture(scope="module")
def small():
    exp = make_synthetic(2000, random_state=4)
    model = fit_effects(exp.data, n_folds=2, random_state=0)
    d = exp.data
    pol = LinearUtilityPolicy(
        (1.0, 1.5, -0.5), (0.0, 0.05, -0.02, 0.0), d.arms, d.outcomes, name="p1"
    )
    return exp, model, pol


def test_artifact_round_trip_assigns_like_the_policy(small, tmp_path):
    exp, model, pol = small
    path = write_artifact(
        tmp_path / "p1.json", pol, schema=exp.data.schema, model=model, parameters={"w_1": 1.5}
    )
    art = PolicyArtifact.load(path)
    assert art.policy == pol and art.name == "p1"
    doc = json.loads(path.read_text())
    assert doc["kind"] == "linear_utility" and doc["model"]["file"] == "effects.joblib"
    units = exp.data.features.iloc[:300]
    expected = pol.assign_from_effects(model.predict(units))
    np.testing.assert_array_equal(art.assign(units), expected)


def test_artifact_errors(small, tmp_path):
    exp, model, pol = small
    path = write_artifact(tmp_path / "p.json", pol, schema=exp.data.schema, model=model)
    art = PolicyArtifact.load(path)
    units = exp.data.features.iloc[:5].copy()
    with pytest.raises(InputDataError, match=r"missing feature column\(s\) \['x1'\]"):
        art.assign(units.drop(columns="x1"))
    bad = units.assign(platform=["android", "ios", "tv", "web", "web"])
    with pytest.raises(InputDataError, match=r"feature 'platform' has categories \['tv'\]"):
        art.assign(bad)
    with pytest.raises(InputDataError, match=r"feature 'x0' must be numeric"):
        art.assign(units.assign(x0=["a", "b", "c", "d", "e"]))
    (tmp_path / "effects.joblib").write_bytes(b"tampered")
    with pytest.raises(InputDataError, match="SHA-256 differs"):
        art.assign(units)
    (tmp_path / "junk.json").write_text('{"format": "other"}')
    with pytest.raises(InputDataError, match="is not a pex-tuner policy artifact"):
        PolicyArtifact.load(tmp_path / "junk.json")


def test_cli_assign_keeps_rows_and_order(small, tmp_path, capsys):
    exp, model, pol = small
    path = write_artifact(tmp_path / "pol" / "p1.json", pol, schema=exp.data.schema, model=model)
    units = exp.data.features.iloc[:200].sample(frac=1.0, random_state=0)
    units.to_csv(tmp_path / "units.csv", index=False)
    out = tmp_path / "assigned.csv"
    assert (
        main(
            [
                "assign",
                "--policy",
                str(path),
                "--data",
                str(tmp_path / "units.csv"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    got = pd.read_csv(out)
    assert len(got) == 200 and list(got.columns[:-1]) == list(units.columns)
    np.testing.assert_allclose(got["x0"], units["x0"])
    expected = pol.assign_from_effects(model.predict(units))
    np.testing.assert_array_equal(got["arm"].to_numpy(), expected)
    # a bad units file: clear error, exit code 2, no output written
    units.drop(columns="platform").to_csv(tmp_path / "bad.csv", index=False)
    out2 = tmp_path / "never.csv"
    assert (
        main(
            [
                "assign",
                "--policy",
                str(path),
                "--data",
                str(tmp_path / "bad.csv"),
                "--out",
                str(out2),
            ]
        )
        == 2
    )
    assert "missing feature column(s) ['platform']" in capsys.readouterr().err
    assert not out2.exists()


def test_cli_tune_writes_frontier_candidates_report_and_tuner(tmp_path, capsys):
    exp = make_synthetic(2500, random_state=5)
    csv = tmp_path / "exp.csv"
    exp.data.to_frame().drop(columns=["propensity"]).to_csv(csv, index=False)
    out = tmp_path / "run"
    code = main(
        [
            "tune",
            "--data",
            str(csv),
            "--treatment",
            "arm",
            "--control",
            "control",
            "--outcome",
            "engagement:max",
            "--outcome",
            "retention:max",
            "--outcome",
            "cost:min",
            "--features",
            "x0",
            "x1",
            "x2",
            "x3",
            "x4",
            "platform",
            "--budget",
            "3",
            "--batch-size",
            "3",
            "--design-size",
            "128",
            "--candidates",
            "2",
            "--no-compare",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    # learner="auto" by default: the table is printed, kept in the report and the saved tuner
    assert "CATE learner selection on" in printed and "chosen: " in printed
    for name in ("T-learner", "X-learner", "DR-learner", "S-learner"):
        assert name in printed
    state = json.loads((out / "tuner" / "tuner.json").read_text())
    assert state["learner_selection"]["learner"] in {"t", "x", "dr", "s"}
    assert sum(r["node"] == "design" for r in state["records"]) == 128
    front = pd.read_csv(out / "frontier.csv")
    shown = {"policy", "policy_id", "engagement", "engagement_se", "w[retention]", "b[arm_1]"}
    assert shown <= set(front.columns)
    # honest estimates on the untouched test split beside the selection estimate
    assert {"engagement_test", "engagement_test_se"} <= set(front.columns)
    for rel in front["policy"]:
        assert (out / rel).exists()
    cand = json.loads((out / "candidates.json").read_text())
    assert 1 <= len(cand["candidates"]) <= 2
    for c in cand["candidates"]:
        assert (out / c["artifact"]).exists()
    report = (out / "report.html").read_text()
    assert "plotly" in report and "Pareto" in report
    assert "CATE learner chosen by the data" in report and "on test ± 95%" in report
    assert (out / "tuner" / "ax_client.json").exists()
    # an artifact from the frontier assigns new units from the command line
    units = tmp_path / "units.csv"
    exp.data.features.iloc[:50].to_csv(units, index=False)
    first = out / front["policy"].iloc[0]
    assert (
        main(
            [
                "assign",
                "--policy",
                str(first),
                "--data",
                str(units),
                "--out",
                str(tmp_path / "a.csv"),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(tmp_path / "a.csv")) == 50
    assert Path(out / "policies" / "effects.joblib").exists()


def test_cli_tune_relative_scaling_and_hypervolume_parego(tmp_path):
    exp = make_synthetic(2000, random_state=6)
    csv = tmp_path / "exp.csv"
    exp.data.to_frame().drop(columns=["propensity"]).to_csv(csv, index=False)
    out = tmp_path / "run"
    args = ["tune", "--data", str(csv), "--treatment", "arm", "--control", "control"]
    args += ["--outcome", "engagement:max", "--outcome", "retention:max", "--outcome", "cost:min"]
    args += ["--budget", "5", "--batch-size", "5", "--candidates", "2", "--no-compare"]
    args += ["--acquisition", "qLogNParEGO-HV", "--scaling", "relative", "--out", str(out)]
    args += ["--learner", "t", "--design-size", "64"]
    assert main(args) == 0
    state = json.loads((out / "tuner" / "tuner.json").read_text())
    assert state["config"]["acquisition"] == "qLogNParEGO-HV"
    assert state["space"]["scaling"] == "relative"
    # the parameter w[cost] (w_2 inside the tuner) is cost's weight magnitude; the artifact
    # carries the actual, negative weight (cost is minimized)
    ev = pd.read_csv(out / "frontier.csv")
    tuned = ev[ev["kind"] == "tuned"]  # design_<i> and trial_<i> policies
    assert len(tuned) >= 1
    row = tuned.iloc[0]
    doc = json.loads((out / row["policy"]).read_text())
    assert row["w[cost]"] > 0 and doc["policy"]["weights"][2] == pytest.approx(-row["w[cost]"])
