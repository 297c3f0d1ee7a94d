"""Plot of a launch backtest: policy minus holdout per metric, with 95% intervals."""

from __future__ import annotations

import pandas as pd

from pex_tuner.errors import InputDataError

__all__ = ["plot_backtest"]


def plot_backtest(table: pd.DataFrame, *, relative: bool = False, title: str | None = None):
    """Dot-and-whisker plot of the policy-vs-holdout difference, one panel per metric.

    Args:
        table: the frame from ``pex_tuner.launch.backtest``.
        relative: plot the relative lift (difference / holdout mean) instead of the difference.
        title: figure title.

    Returns:
        plotly.graph_objects.Figure, with a dotted zero line in every panel.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = (
        ("relative_lift", "relative_ci_low", "relative_ci_high")
        if relative
        else (
            "difference",
            "ci_low",
            "ci_high",
        )
    )
    needed = {"metric", "n_policy", "n_holdout", *cols}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise InputDataError(f"table lacks column(s) {missing}; pass the frame from backtest()")
    if table.empty:
        raise InputDataError("table has no rows; pass the frame from backtest()")
    est, lo, hi = cols
    metrics = [str(m) for m in table["metric"]]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for c, (_, row) in enumerate(table.iterrows(), start=1):
        positive = row[lo] > 0
        negative = row[hi] < 0
        color = "#2ca02c" if positive else "#d62728" if negative else "#1f77b4"
        fig.add_trace(
            go.Scatter(
                x=["policy - holdout"],
                y=[row[est]],
                mode="markers",
                marker=dict(color=color, size=11),
                error_y=dict(
                    type="data", array=[row[hi] - row[est]], arrayminus=[row[est] - row[lo]]
                ),
                name=str(row["metric"]),
                showlegend=False,
                hovertemplate=(
                    f"{row['metric']}: %{{y:.4g}} [{row[lo]:.4g}, {row[hi]:.4g}]<br>"
                    f"n policy={int(row['n_policy'])}, n holdout={int(row['n_holdout'])}"
                    "<extra></extra>"
                ),
            ),
            row=1,
            col=c,
        )
        fig.add_hline(y=0.0, line_dash="dot", line_color="gray", row=1, col=c)
        if relative:
            fig.update_yaxes(tickformat=".1%", row=1, col=c)
    fig.update_layout(
        title=title
        or (
            "Launch backtest: relative lift of the policy over the holdout (95% CI)"
            if relative
            else "Launch backtest: policy minus holdout (95% CI)"
        ),
        template="plotly_white",
        height=420,
        width=max(420, 230 * len(metrics)),
    )
    return fig
