"""Plot of a launch backtest: policy minus holdout per metric, with 95% intervals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.plotting.styles import VERDICT_COLORS, direction_of, format_p_value, verdict

__all__ = ["plot_backtest"]

_LEGEND = (
    "green: significantly better, red: significantly worse, grey: not significant (95% CI, "
    "in the metric's direction)"
)


def plot_backtest(
    table: pd.DataFrame,
    *,
    relative: bool = False,
    directions: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Any:
    """Dot-and-whisker plot of the policy-vs-holdout difference, one panel per metric.

    Each point is coloured by whether the difference is good for its metric: green when the
    95% interval lies wholly on the better side of zero (above it for a maximized metric, below
    it for a minimized one: a significant cost reduction is green), red when wholly on the
    worse side, grey otherwise.

    Args:
        table: the frame from ``pex_tuner.launch.backtest``.
        relative: plot the relative lift (difference / holdout mean) instead of the difference.
        directions: metric -> ``"max"`` / ``"min"``. A ``direction`` column of ``table`` (as
            ``backtest(..., directions=...)`` writes) takes precedence; metrics named in
            neither are taken as maximized (``"max"``).
        title: figure title.

    Returns:
        plotly.graph_objects.Figure, with a dotted zero line in every panel.
    """
    from plotly.subplots import make_subplots

    cols = (
        ("relative_lift", "relative_ci_low", "relative_ci_high")
        if relative
        else ("difference", "ci_low", "ci_high")
    )
    needed = {"metric", "n_policy", "n_holdout", *cols}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise InputDataError(f"table lacks column(s) {missing}; pass the frame from backtest()")
    if table.empty:
        raise InputDataError("table has no rows; pass the frame from backtest()")
    dirs = _directions(table, directions)
    titles = [f"{m} ({'higher' if d == 'max' else 'lower'} is better)" for m, d in dirs]
    fig = make_subplots(rows=1, cols=len(dirs), subplot_titles=titles)
    for c, ((_, row), (metric, d)) in enumerate(zip(table.iterrows(), dirs, strict=True), start=1):
        fig.add_trace(_trace(row, metric, d, cols), row=1, col=c)
        fig.add_hline(y=0.0, line_dash="dot", line_color="gray", row=1, col=c)
        fig.update_yaxes(automargin=True, row=1, col=c)
        if relative:
            fig.update_yaxes(tickformat=".1%", row=1, col=c)
    fig.add_annotation(
        text=_LEGEND, showarrow=False, xref="paper", yref="paper", x=0, y=-0.12, xanchor="left"
    )
    fig.update_layout(
        title=title
        or (
            "Launch backtest: relative lift of the policy over the holdout (95% CI)"
            if relative
            else "Launch backtest: policy minus holdout (95% CI)"
        ),
        template="plotly_white",
        height=440,
        width=max(560, 250 * len(dirs)),
        margin=dict(b=80),
    )
    return fig


def _trace(row: pd.Series, metric: str, direction: str, cols: tuple[str, str, str]) -> Any:
    """One metric's point with its interval, coloured by its verdict in ``direction``."""
    import plotly.graph_objects as go

    est, lo, hi = cols
    v = verdict(row[lo], row[hi], direction)
    p = f", p {format_p_value(row['p_value'])}" if "p_value" in row else ""
    return go.Scatter(
        x=["policy - holdout"],
        y=[row[est]],
        mode="markers",
        marker=dict(color=VERDICT_COLORS[v], size=11),
        error_y=dict(
            type="data",
            array=[row[hi] - row[est]],
            arrayminus=[row[est] - row[lo]],
            color=VERDICT_COLORS[v],
        ),
        name=metric,
        showlegend=False,
        hovertemplate=(
            f"{metric}: %{{y:.4g}} [{row[lo]:.4g}, {row[hi]:.4g}]{p}<br>{v}<br>"
            f"n policy={int(row['n_policy'])}, n holdout={int(row['n_holdout'])}"
            "<extra></extra>"
        ),
    )


def _directions(table: pd.DataFrame, directions: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """(metric, direction) per row: the table's ``direction`` column, else ``directions``,
    else ``"max"``."""
    out = []
    for _, row in table.iterrows():
        metric = str(row["metric"])
        given = {metric: row["direction"]} if "direction" in table.columns else directions
        out.append((metric, direction_of(metric, given)))
    return out
