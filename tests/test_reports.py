"""Figures and reports say what a reader needs: good / bad colours in each metric's direction,
parameters named by outcome and arm, baselines as "assign all to X", readable p-values, no
rows of pending trials, tables that fit the page, and the demo's guardrail and launch rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pex_tuner.errors import InputDataError
from pex_tuner.plotting import plot_policy_values, write_report
from pex_tuner.plotting.online import plot_online_trials
from pex_tuner.plotting.pareto import plot_front_comparison
from pex_tuner.plotting.styles import (
    BAD,
    GOOD,
    NEUTRAL,
    format_number,
    format_p_value,
    table_html,
    verdict,
)
from pex_tuner.workflows.launch_choice import choose_launch
from pex_tuner.workflows.online_demo import OBJECTIVES, _trials_table


# ------------------------------------------------------------------ good / bad, p-values
@pytest.mark.parametrize(
    ("low", "high", "direction", "expected"),
    [
        (0.1, 0.3, "max", "better"),
        (0.1, 0.3, "min", "worse"),
        (-0.3, -0.1, "min", "better"),  # a significant cost reduction is good
        (-0.3, -0.1, "max", "worse"),
        (-0.1, 0.3, "min", "not significant"),
        (float("nan"), 0.3, "max", "not significant"),
    ],
)
def test_verdict_follows_the_direction(low, high, direction, expected):
    assert verdict(low, high, direction) == expected


def test_verdict_rejects_unknown_directions():
    with pytest.raises(InputDataError, match="'max' or 'min'"):
        verdict(0.1, 0.2, "up")


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (0.0, "< 1e-4"),
        (3e-7, "< 1e-4"),
        (0.032, "0.032"),
        (0.0312, "0.031"),
        (0.00051, "0.00051"),
        (0.5, "0.5"),
        (1.0, "1"),
        (float("nan"), "—"),
        (None, "—"),
    ],
)
def test_p_values_are_never_written_as_zero(p, shown):
    assert format_p_value(p) == shown


def test_numbers_and_missing_values_format_sensibly():
    assert format_number(np.int64(5000)) == "5000"
    assert format_number(2.38612345) == "2.386"
    assert format_number(float("nan")) == "—"
    assert format_number(np.bool_(True)) == "yes"
    assert format_number("all:No E-Mail") == "all:No E-Mail"


def test_tables_scroll_inside_the_page_and_format_p_values(tmp_path):
    table = pd.DataFrame(
        {
            "metric": ["cost", "visit"],
            "p_value": [0.0, 0.032],
            "verdict": ["better", "not significant"],
            "x": [1.23456789, float("nan")],
        }
    )
    html = table_html(table)
    assert html.startswith("<div class='table-wrap'>")
    assert "&lt; 1e-4" in html and "0.032" in html and ">0<" not in html
    assert "NaN" not in html and "—" in html
    assert f"color:{GOOD}" in html  # the verdict cell of a cost reduction is green
    path = write_report(tmp_path / "r.html", [], title="t", tables={"Backtest": table})
    page = path.read_text()
    assert ".table-wrap{max-width:100%;overflow-x:auto" in page.replace(",.figure-wrap", "")
    assert "NaN" not in page


# ------------------------------------------------------------------ figures
def _ope_table(direction: str, lift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "policy": ["all:No E-Mail", "mine"],
            "outcome": ["cost", "cost"],
            "direction": [direction, direction],
            "value": [1.0, 1.0 + lift],
            "ci_low": [0.9, 0.9 + lift],
            "ci_high": [1.1, 1.1 + lift],
            "lift": [0.0, lift],
            "lift_se": [0.0, 0.01],
        }
    )


def test_ope_lift_colours_follow_the_outcome_direction():
    fig = plot_policy_values(_ope_table("min", -0.2), lift=True)
    assert list(fig.data[0].marker.color) == [NEUTRAL, GOOD]
    fig = plot_policy_values(_ope_table("max", -0.2), lift=True)
    assert list(fig.data[0].marker.color) == [NEUTRAL, BAD]
    assert fig.layout.yaxis.automargin  # "all:No E-Mail" is not clipped


def test_baseline_labels_are_not_clipped_and_not_biases():
    front = pd.DataFrame(
        {
            "policy": ["trial_1"],
            "kind": ["tuned"],
            "visit": [0.2],
            "visit_se": [0.01],
            "spend": [1.0],
            "spend_se": [0.1],
            "w[spend]": [0.5],
            "b[Mens E-Mail]": [0.1],
        }
    )
    base = pd.DataFrame(
        {
            "policy": ["all:No E-Mail"],
            "kind": ["baseline"],
            "visit": [0.1],
            "visit_se": [0.01],
            "spend": [0.5],
            "spend_se": [0.1],
            "w[spend]": [0.0],
            "b[Mens E-Mail]": [-79.0],
        }
    )
    objs = [("visit", "max"), ("spend", "max")]
    fig = plot_front_comparison({"with biases": front}, objs, baselines=base)
    label = fig.data[-1]
    assert label.text == ("all:No E-Mail",) and label.cliponaxis is False
    assert "assign all to No E-Mail" in label.hovertext[0] and "-79" not in label.hovertext[0]
    assert "w[spend]=0.5" in fig.data[0].text[0]


def test_online_trials_plot_and_table_leave_out_pending_trials():
    res = pd.DataFrame(
        {
            "trial_id": [0, 1, 2],
            "source": ["offline:trial_3", "qLogNParEGO", "qLogNParEGO"],
            "status": ["completed", "completed", "pending"],
            "w_1": [0.5, 0.7, 0.9],
            "b_2": [0.1, -0.2, 0.3],
            **{m: [1.0, 1.1, np.nan] for m in OBJECTIVES},
            **{f"{m}_sem": [0.01, 0.02, np.nan] for m in OBJECTIVES},
        }
    )
    fig = plot_online_trials(res, "engagement", "long_term", directions=OBJECTIVES)
    assert sum(len(t.x) for t in fig.data) == 2
    assert fig.layout.xaxis.title.text == "engagement (higher is better)"
    choice = choose_launch(res, res.iloc[:2], OBJECTIVES)
    table = _trials_table(res, {"w_1": "w[retention]", "b_2": "b[arm_2]"}, choice)
    assert list(table["trial_id"]) == [0, 1]
    assert not table.isna().any().any()
    assert {"w[retention]", "b[arm_2]"} <= set(table.columns) and "w_1" not in table.columns
    assert "NaN" not in table_html(table)


# ------------------------------------------------------------------ the launch rule
def _online_results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": [0, 1, 2, 3],
            "status": ["completed"] * 4,
            "engagement": [2.2, 2.0, 2.1, 2.5],
            "retention": [0.97, 0.99, 0.98, 0.80],
            "cost": [1.10, 1.00, 1.05, 1.20],
            "long_term": [1.00, 1.05, 1.20, 1.30],
        }
    )


def test_launch_rule_best_long_term_within_the_guardrail():
    res = _online_results()
    constraints = {"retention": (">=", 0.965)}
    pareto = res[res["retention"] >= 0.965]  # trial 3 breaks the guardrail
    choice = choose_launch(res, pareto, OBJECTIVES, constraints, tolerances={"retention": 0.005})
    assert choice.trial_id == 2 and choice.eligible == (0, 1, 2)
    line = choice.reason
    assert "\n" not in line and line.startswith("Launching trial 2: best long_term")
    assert "3 online Pareto policies with retention >= 0.965 (at most 0.5% below control)" in line
    # what it trades: engagement vs the best (trial 0), cost vs the lowest (trial 1)
    assert "engagement -4.5% vs the best (trial 0)" in line
    assert "cost +5.0% vs the lowest (trial 1)" in line


def test_launch_rule_says_when_nothing_meets_the_guardrail():
    res = _online_results()
    choice = choose_launch(res, res.iloc[:0], OBJECTIVES, {"retention": (">=", 1.5)})
    assert choice.trial_id == 1  # the highest retention
    assert "no online policy met the guardrail (retention >= 1.5)" in choice.reason


# ------------------------------------------------------------------ the demo's guardrail
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from pex_tuner.workflows.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run = run_demo(
        n_units=2000, seed=0, budget=4, batch_size=4, candidates=2, offline_only=True, out=out
    )
    return run, out


def test_demo_applies_the_readme_guardrail(demo_run):
    from pex_tuner.workflows.demo import DEMO_GUARDRAILS

    run, out = demo_run
    assert DEMO_GUARDRAILS == {"retention": 0.005}  # README: "at most 0.5% worse than control"
    assert run.tuner.config["guardrails"] == DEMO_GUARDRAILS
    control = float(run.tuner.baseline_eval.value[0, run.tuner.data.outcomes.index("retention")])
    bound = run.tuner.guardrail_bounds["retention"]
    assert bound == pytest.approx(control * (1 - 0.005))
    front = pd.read_csv(out / "frontier.csv")
    assert len(front) >= 1 and (front["retention"] >= bound).all()
    doc = json.loads((out / "candidates.json").read_text())
    assert doc["guardrails"]["retention"] == pytest.approx(bound)
    assert all(c["retention"] >= bound for c in doc["candidates"])


def test_demo_outputs_name_parameters_by_outcome_and_arm(demo_run):
    _, out = demo_run
    front = pd.read_csv(out / "frontier.csv")
    names = ["w[retention]", "w[cost]", "b[arm_1]", "b[arm_2]", "b[arm_3]"]
    assert set(names) <= set(front.columns)
    assert not {"w_1", "w_2", "b_1", "b_2", "b_3"} & set(front.columns)
    base = front[front["kind"] == "baseline"]
    for _, row in base.iterrows():  # "assign all to X", never biases of +-79
        assert row["description"] == f"assign all to {row['policy_id'][len('all:') :]}"
        assert row[names].isna().all()
    for c in json.loads((out / "candidates.json").read_text())["candidates"]:
        assert c["parameters"] is None or set(c["parameters"]) <= set(names)
    page = (out / "report.html").read_text()
    assert "w[retention]" in page and "NaN" not in page.split("<h2>", 1)[1]
    assert "Guardrails: retention &gt;= " in page
    assert not any(math.isnan(v) for v in front[["engagement", "retention", "cost"]].stack())
