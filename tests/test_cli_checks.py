"""Every option checked before any data is read or model fitted (CLI and Python).

A fixture makes reading the data and fitting the CATE model fail loudly, so each bad option
below is proven to be caught first; the whole file runs in seconds.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

import pex_tuner.files
from pex_tuner.cli import _load_data, build_parser, main
from pex_tuner.cli.checks import check_options, cli_message
from pex_tuner.datasets import make_synthetic
from pex_tuner.effects import CateModel
from pex_tuner.errors import ConfigurationError
from pex_tuner.tuning import OfflineTuner


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "exp.csv"
    make_synthetic(300, random_state=3).data.to_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Reading a table or fitting a CATE model fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the option should have been rejected before this")

    monkeypatch.setattr(pex_tuner.files, "read_table", forbidden)
    monkeypatch.setattr(CateModel, "fit", forbidden)


def _experiment(csv, *outcomes: str) -> list[str]:
    args = ["--data", str(csv), "--treatment", "arm", "--control", "control"]
    for o in outcomes or ("engagement:max", "retention:max", "cost:min"):
        args += ["--outcome", o]
    return args


def _usage_error(argv: list[str], capsys) -> str:
    """The argparse error line of a rejected command (exit status 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _error(argv: list[str], capsys) -> str:
    """The ``pex-tuner: error:`` line of a rejected command (exit status 2)."""
    assert main(argv) == 2
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("command", "option", "value", "expected"),
    [
        ("tune", "--budget", "0", "expected an integer >= 1, got '0'"),
        ("tune", "--candidates", "0", "expected an integer >= 1, got '0'"),
        ("tune", "--batch-size", "0", "expected an integer >= 1, got '0'"),
        ("tune", "--seed", "-1", "expected an integer >= 0, got '-1'"),
        ("explain", "--n-folds", "1", "expected an integer >= 2, got '1'"),
        ("explain", "--max-depth", "0", "expected an integer >= 1, got '0'"),
        ("explain", "--min-units-per-arm", "0", "expected an integer >= 1, got '0'"),
        ("learn-policy", "--max-depth", "21", "expected an integer in [0, 20], got '21'"),
        (
            "learn-policy",
            "--min-segment-size",
            "0.7",
            "expected a share in (0, 0.5] or a whole count >= 1, got '0.7'",
        ),
        ("learn-policy", "--validation-size", "1", "expected a number in (0, 1), got '1'"),
        ("evaluate", "--seed", "x", "expected an integer >= 0, got 'x'"),
    ],
)
def test_ranges_are_usage_errors(csv, no_work, capsys, tmp_path, command, option, value, expected):
    argv = [command, *_experiment(csv), option, value]
    argv += {"learn-policy": ["--method", "distill"]}.get(command, [])
    argv += [] if command == "evaluate" else ["--out", str(tmp_path / "out")]
    assert _usage_error(argv, capsys) == (
        f"pex-tuner {command}: error: argument {option}: {expected}"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo", "--n-units", "100"], "argument --n-units: expected an integer >= 500, got '100'"),
        (["demo", "--rounds", "0"], "argument --rounds: expected an integer >= 1, got '0'"),
        (["serve", "--port", "70000"], "argument --port: expected an integer in [0, 65535], got "),
        (["serve", "--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
    ],
)
def test_demo_and_serve_ranges(capsys, argv, expected):
    assert expected in _usage_error(argv, capsys)


def test_conflicting_outcome_directions_are_rejected(csv, no_work, capsys, tmp_path):
    argv = ["tune", *_experiment(csv, "engagement:max", "cost:min", "engagement:min")]
    assert _error([*argv, "--out", str(tmp_path)], capsys) == (
        "pex-tuner: error: --outcome engagement is given twice with different directions: "
        "--outcome engagement:max and --outcome engagement:min"
    )


def test_exact_repeats_are_accepted_once(csv):
    args = build_parser().parse_args(
        [
            "explain",
            *_experiment(csv, "engagement:max", "cost:min", "engagement:max"),
            "--features", "x0", "x1", "x0",
            "--weight", "cost=2", "--weight", "cost=2",
            "--out", "o",
        ]
    )  # fmt: skip
    check_options(args)
    assert args.outcome == [("engagement", "max"), ("cost", "min")]
    assert args.features == ["x0", "x1"] and args.weight == [("cost", 2.0)]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--guardrail", "clicks=0.01"],
            "--guardrail names ['clicks'], not declared with --outcome; expected names from "
            "['engagement', 'retention', 'cost']",
        ),
        (
            ["--guardrail", "retention=0.01", "--guardrail", "retention=2%"],
            "--guardrail retention is given twice with different values: --guardrail "
            "retention=0.01 and --guardrail retention=0.02",
        ),
        (
            ["--guardrail", "retention=0", "--guardrail", "cost=0"],
            "--acquisition qLogNParEGO needs at least two objectives (outcomes without a "
            "--guardrail); with the one objective 'engagement' use --acquisition qLogNEI",
        ),
        (
            ["--guardrail", "retention=0", "--guardrail", "cost=0", "--guardrail", "engagement=0"],
            "every --outcome is a --guardrail; at least one outcome must be an objective",
        ),
        (
            ["--features", "x0", "cost", "arm"],
            "--features names column(s) used in another role: 'cost' (--outcome), 'arm' "
            "(--treatment)",
        ),
        (["--propensity", "retention"], "column 'retention' is both --outcome and --propensity"),
    ],
)
def test_tune_cross_option_errors(csv, no_work, capsys, tmp_path, extra, expected):
    argv = ["tune", *_experiment(csv), *extra, "--out", str(tmp_path / "o")]
    assert _error(argv, capsys) == f"pex-tuner: error: {expected}"


def test_one_objective_with_qlognei_passes_the_checks(csv):
    args = build_parser().parse_args(
        [
            "tune",
            *_experiment(csv, "engagement:max", "cost:min"),
            *["--guardrail", "cost=0", "--acquisition", "qLogNEI", "--out", "o"],
        ]
    )
    check_options(args)
    assert args.guardrail == [("cost", 0.0)]


@pytest.mark.parametrize(
    ("command", "extra", "expected"),
    [
        (
            "explain",
            ["--weight", "clicks=1"],
            "weight(s) for unknown outcome(s) ['clicks']; expected names from "
            "['engagement', 'retention', 'cost']",
        ),
        (
            "learn-policy",
            ["--weight", "cost=1", "--weight", "cost=3"],
            "--weight cost is given twice with different values: --weight cost=1 and "
            "--weight cost=3",
        ),
        ("learn-policy", ["--weight", "cost=0"], "at least one outcome needs a positive weight"),
    ],
)
def test_weight_errors(csv, no_work, capsys, tmp_path, command, extra, expected):
    argv = [command, *_experiment(csv), *extra, "--out", str(tmp_path / "p.json")]
    argv += ["--method", "greedy-tree"] if command == "learn-policy" else []
    if command == "explain":
        argv[-1] = str(tmp_path / "folder")
    assert _error(argv, capsys) == f"pex-tuner: error: {expected}"


def test_files_are_checked_first(no_work, capsys, tmp_path):
    missing = str(tmp_path / "nope.csv")
    argv = ["evaluate", "--data", missing, "--treatment", "a", "--control", "c"]
    assert _error([*argv, "--outcome", "y:max"], capsys) == (
        f"pex-tuner: error: --data {missing}: the file does not exist"
    )
    argv = ["export", "--policy", str(tmp_path), "--format", "sql"]
    assert _error(argv, capsys) == (
        f"pex-tuner: error: --policy {tmp_path}: the file is a folder, not a file"
    )
    argv = ["assign", "--policy", missing, "--data", missing, "--out", "a.csv"]
    assert _error(argv, capsys) == f"pex-tuner: error: --policy {missing}: the file does not exist"


def test_a_bad_option_fails_fast_from_the_console_script(csv, tmp_path):
    """The issue's case: ``--budget 0`` failed after the CATE fit (14 s)."""
    import subprocess
    import sys
    import time

    t0 = time.perf_counter()
    command = [sys.executable, "-m", "pex_tuner.cli", "tune", *_experiment(csv)]
    done = subprocess.run(
        [*command, "--budget", "0", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and time.perf_counter() - t0 < 20  # interpreter start only
    assert "argument --budget: expected an integer >= 1, got '0'" in done.stderr
    assert not (tmp_path / "o").exists()


def test_library_messages_are_translated_to_cli_syntax():
    assert cli_message(
        "acquisition 'qLogNParEGO' needs at least two objectives; with one objective use "
        "acquisition='qLogNEI'"
    ) == (
        "acquisition 'qLogNParEGO' needs at least two objectives; with one objective use "
        "--acquisition qLogNEI"
    )
    assert cli_message("The 'min_units_per_arm' parameter must be an integer >= 1. Got 0") == (
        "The --min-units-per-arm option must be an integer >= 1. Got 0"
    )
    assert cli_message("at least min_units_per_arm=50 of each (lower min_units_per_arm or") == (
        "at least min_units_per_arm=50 of each (lower --min-units-per-arm or"
    )
    assert cli_message("unknown outcome(s) ['x'] in outcome_weights; ...") == (
        "unknown outcome(s) ['x'] in --weight; ..."
    )
    assert (
        cli_message("'validation_size' must be in (0, 1)") == "--validation-size must be in (0, 1)"
    )
    assert cli_message("The 'alpha' parameter") == "The 'alpha' parameter"  # not an option


def test_inferred_features_are_listed_with_warnings(csv, capsys, tmp_path):
    frame = make_synthetic(600, random_state=4).data.to_frame()
    arm_a = (frame["arm"] == "arm_1").to_numpy()
    frame["engagement_7d"] = frame["engagement"] + np.random.default_rng(0).normal(size=600)
    frame["spend"] = 5.0 * arm_a + np.random.default_rng(1).normal(size=600)
    path = tmp_path / "leaky.csv"
    frame.drop(columns=["unit_id"]).to_csv(path, index=False)
    args = build_parser().parse_args(
        [
            *["evaluate", "--data", str(path), "--treatment", "arm", "--control", "control"],
            *["--outcome", "engagement:max", "--outcome", "cost:min", "--propensity", "propensity"],
        ]
    )
    check_options(args)
    data = _load_data(args)
    out, err = capsys.readouterr()
    assert out == (
        "features (every other column; choose them with --features): x0, x1, x2, x3, x4, "
        "platform, retention, engagement_7d, spend\n"
    )
    assert list(data.features.columns) == out.split(": ")[1].strip().split(", ")
    lines = err.strip().splitlines()
    assert lines[:2] == [
        "pex-tuner: warning: column 'retention' looks like an outcome (its name is a common "
        "outcome name); pass --features to exclude it",
        "pex-tuner: warning: column 'engagement_7d' looks like an outcome (its name matches the "
        "outcome 'engagement'); pass --features to exclude it",
    ]
    assert re.fullmatch(
        r"pex-tuner: warning: column 'spend' looks like an outcome \(per-arm means differ, "
        r"p = \de-\d+\); pass --features to exclude it",
        lines[2],
    ), lines[2]
    assert len(lines) == 3
    args.features = ["x0", "x1"]  # named features: no list, no warning
    _load_data(args)
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------------- Python entry points
@pytest.fixture(scope="module")
def small():
    return make_synthetic(300, random_state=5).data


def test_tuner_counts_fail_at_once():
    """run(0) and select_online_candidates(0) raise before touching the tuner's state."""
    message = "The 'budget' parameter must be an int >= 1. Got 0 instead."
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        OfflineTuner.run(SimpleNamespace(), 0)
    with pytest.raises(ConfigurationError, match=re.escape("The 'k' parameter must be an int")):
        OfflineTuner.select_online_candidates(SimpleNamespace(), 0)


def test_write_artifacts_checks_every_name_before_writing(tmp_path):
    def policy(name):
        if name != "trial_0":
            raise ConfigurationError(f"no evaluated policy named '{name}'")

    fake = SimpleNamespace(records=[{"policy": "trial_0"}], policy=policy)
    with pytest.raises(ConfigurationError) as info:
        OfflineTuner.write_artifacts(fake, str(tmp_path / "arts"), names=["trial_0", "x", "y"])
    assert str(info.value) == (
        "no evaluated policy named ['x', 'y']; nothing was written (evaluated policies: "
        "tuner.evaluations()['policy'])"
    )
    with pytest.raises(ConfigurationError, match="a sequence of policy names, not one str"):
        OfflineTuner.write_artifacts(fake, str(tmp_path / "arts"), names="trial_0")
    assert not (tmp_path / "arts").exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda d, p: __import__(
                "pex_tuner.workflows.offline"
            ).workflows.offline.run_offline_tuning(
                d, out=p, budget=0, batch_size=4, candidates=2, seed=0
            ),
            "The 'budget' parameter must be an int >= 1. Got 0 instead.",
        ),
        (
            lambda d, p: __import__(
                "pex_tuner.workflows.offline"
            ).workflows.offline.run_offline_tuning(
                d, out=p, budget=4, batch_size=4, candidates=0, seed=0
            ),
            "The 'candidates' parameter must be an int >= 1. Got 0 instead.",
        ),
        (
            lambda d, p: __import__(
                "pex_tuner.workflows.ope_report"
            ).workflows.ope_report.ope_report(d, estimator="ipw"),
            "The 'estimator' parameter must be one of ['dr', 'ips', 'snips', 'dm']. Got 'ipw' "
            "instead.",
        ),
        (
            lambda d, p: __import__(
                "pex_tuner.workflows.segments"
            ).workflows.segments.explain_segments(d, out=p, n_folds=1),
            "The 'n_folds' parameter must be an int >= 2. Got 1 instead.",
        ),
        (
            lambda d, p: __import__(
                "pex_tuner.workflows.learn_policy"
            ).workflows.learn_policy.learn_policy(
                d, "guide-ope", outcome_weights=[1, 1, -1], max_depth=50
            ),
            "The 'max_depth' parameter must be an int in the range [0, 20]. Got 50 instead.",
        ),
        (
            lambda d, p: __import__(
                "pex_tuner.workflows.learn_policy"
            ).workflows.learn_policy.learn_policy(
                d, "greedy-tree", outcome_weights=[1, 1, -1], learner="q"
            ),
            "The 'learner' parameter must be one of",
        ),
    ],
)
def test_workflows_check_options_before_fitting(small, no_work, tmp_path, call, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        call(small, tmp_path / "out")
    assert not (tmp_path / "out").exists()
