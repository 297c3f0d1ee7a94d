"""The pex-tuner command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pex_tuner.cli import main
from pex_tuner.datasets import make_synthetic


def test_demo_runs_all_three_phases(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--n-units",
            "3000",
            "--seed",
            "1",
            "--budget",
            "6",
            "--rounds",
            "2",
            "--out",
            str(out_dir),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "ExperimentData(n_units=3000" in out
    for name in ("all:control", "all:arm_3", "linear: engagement only", "linear: equal weights"):
        assert name in out
    assert "(true " in out and "retention (max)" in out and "cost (min)" in out
    assert "Pareto frontier" in out and "engagement_true_test" in out
    for f in ("frontier.csv", "candidates.json", "report.html", "tuner/tuner.json"):
        assert (out_dir / f).exists(), f
    # online rounds through the service, launch, backtest, all state in one SQLite file
    assert "qLogNParEGO" in out and "Launched trial" in out and "long_term" in out
    for f in ("online_report.html", "launch/launch.json", "pex_tuner_online.db"):
        assert (out_dir / f).exists(), f
    assert f"SQLite database {out_dir / 'pex_tuner_online.db'}" in out
    from pex_tuner.launch import LaunchedPolicy

    launched = LaunchedPolicy.load(out_dir / "launch" / "launch.json")
    assert launched.holdout == 0.05


def test_evaluate_command_on_a_csv(tmp_path, capsys):
    path = tmp_path / "exp.csv"
    make_synthetic(2000, random_state=3).data.to_frame().to_csv(path, index=False)
    code = main(
        [
            "evaluate",
            "--data",
            str(path),
            "--treatment",
            "arm",
            "--control",
            "control",
            "--outcome",
            "engagement:max",
            "--outcome",
            "retention:max",
            "--features",
            "x0",
            "x1",
            "x2",
            "platform",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "engagement (max)" in out and "all:arm_1" in out and "(true" not in out
    # the same report from Python: the workflow the command calls
    from pex_tuner.data import ExperimentData
    from pex_tuner.workflows.ope_report import ope_report

    data = ExperimentData.from_file(
        path,
        treatment="arm",
        control="control",
        outcomes={"engagement": "max", "retention": "max"},
        features=["x0", "x1", "x2", "platform"],
    )
    report = ope_report(data)
    assert set(report.policies) == set(report.table["policy"]) and report.truth is None
    timing = "-learner fitted on train in"
    assert [x for x in report.text().splitlines() if timing not in x] == [
        x for x in out.rstrip("\n").splitlines() if timing not in x
    ]


def test_bad_input_gives_a_clear_error(tmp_path, capsys):
    path = tmp_path / "exp.csv"
    make_synthetic(500, random_state=3).data.to_frame().to_csv(path, index=False)
    code = main(
        [
            "evaluate",
            "--data",
            str(path),
            "--treatment",
            "variant",
            "--control",
            "control",
            "--outcome",
            "engagement:max",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "missing column(s) 'variant' (treatment)" in err


def test_bad_outcome_spec_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "evaluate",
                "--data",
                "x.csv",
                "--treatment",
                "a",
                "--control",
                "c",
                "--outcome",
                "engagement",
            ]
        )
    assert info.value.code == 2
    assert "--outcome expects NAME:max or NAME:min" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "pex_tuner.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "demo" in out and "evaluate" in out
