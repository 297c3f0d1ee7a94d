"""Plots of OPE results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.plotting.styles import NEUTRAL, VERDICT_COLORS, verdict

__all__ = ["plot_policy_values"]


def plot_policy_values(
    table: pd.DataFrame,
    *,
    truth: Mapping[str, np.ndarray] | None = None,
    lift: bool = False,
    title: str | None = None,
) -> Any:
    """Dot-and-whisker plot of policy values (or lifts) with 95% intervals, one panel per outcome.

    Args:
        table: the tidy frame from ``pex_tuner.evaluate`` (or ``PolicyEvaluation.to_frame``).
        truth: optional policy name -> true values per outcome (simulated experiments), drawn
            as open diamonds.
        lift: plot the lift vs assign-all-control instead of the value, each point green
            when significantly better in the outcome's direction (the table's ``direction``
            column; "max" without it), red when significantly worse, grey otherwise.
        title: figure title.

    Returns:
        plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    needed = {"policy", "outcome", "value", "ci_low", "ci_high", "lift", "lift_se"}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise InputDataError(f"table lacks column(s) {missing}; pass the frame from evaluate()")
    outcomes = list(dict.fromkeys(table["outcome"]))
    policies = list(dict.fromkeys(table["policy"]))
    fig = make_subplots(rows=1, cols=len(outcomes), subplot_titles=outcomes, shared_yaxes=True)
    for c, outcome in enumerate(outcomes, start=1):
        rows = table[table["outcome"] == outcome].set_index("policy").loc[policies]
        x, err, colors = _points(rows, policies, lift)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=policies,
                mode="markers",
                error_x=err,
                marker=dict(color=colors, size=9),
                name="estimate",
                showlegend=c == 1,
                hovertemplate="%{y}: %{x:.4f}<extra></extra>",
            ),
            row=1,
            col=c,
        )
        if truth is not None and not lift:
            j = outcomes.index(outcome)
            fig.add_trace(
                go.Scatter(
                    x=[truth[p][j] for p in policies],
                    y=policies,
                    mode="markers",
                    marker=dict(symbol="diamond-open", color="#d62728", size=10),
                    name="true value",
                    showlegend=c == 1,
                ),
                row=1,
                col=c,
            )
        if lift:
            fig.add_vline(x=0.0, line_dash="dot", line_color="gray", row=1, col=c)
    fig.update_yaxes(automargin=True)  # long policy names ("all:No E-Mail") stay whole
    fig.update_layout(
        title=title or ("Lift vs assign-all-control (95% CI)" if lift else "Policy value (95% CI)"),
        height=120 + 32 * len(policies),
        template="plotly_white",
        legend=dict(orientation="h", y=-0.15),
    )
    return fig


def _points(rows: pd.DataFrame, policies: list[str], lift: bool) -> tuple[Any, dict, list[str]]:
    """x values, error bars and marker colours of one outcome's panel. Lifts are coloured
    good / bad in the outcome's direction (a significant cost reduction is green); values
    grey for baselines, blue otherwise."""
    if lift:
        x = rows["lift"]
        half = 1.959964 * rows["lift_se"]
        d = str(rows["direction"].iloc[0]) if "direction" in rows else "max"
        colors = [VERDICT_COLORS[verdict(v - h, v + h, d)] for v, h in zip(x, half, strict=True)]
        return x, dict(type="data", array=half, arrayminus=half), colors
    x = rows["value"]
    err = dict(type="data", array=rows["ci_high"] - x, arrayminus=x - rows["ci_low"])
    return x, err, [NEUTRAL if p.startswith("all:") else "#1f77b4" for p in policies]
