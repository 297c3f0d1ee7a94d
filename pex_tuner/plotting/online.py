"""Online-phase figures: offline OPE vs online results (calibration), online trials."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.plotting.styles import direction_of

__all__ = ["plot_calibration", "plot_online_trials"]


def plot_calibration(table: pd.DataFrame, *, title: str | None = None) -> Any:
    """Offline OPE estimate vs online result per metric (the PEX paper's Figure 2, right).

    Args:
        table: ``OnlineTuner.calibration()``: columns trial_id, metric, offline, offline_se,
            online, online_sem; ``attrs["association"]`` with the correlations.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = list(dict.fromkeys(table["metric"]))
    assoc = table.attrs.get("association")
    names = []
    for m in metrics:
        label = m
        if assoc is not None and m in set(assoc["metric"]):
            r = assoc.set_index("metric").loc[m, "pearson_r"]
            label += f" (r = {r:.2f})" if np.isfinite(r) else " (r: too few policies)"
        names.append(label)
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=names or ["no data"])
    for i, m in enumerate(metrics, start=1):
        g = table[table["metric"] == m]
        fig.add_trace(
            go.Scatter(
                x=g["offline"],
                y=g["online"],
                mode="markers",
                name=m,
                text=[f"trial {t}" for t in g["trial_id"]],
                error_x={"type": "data", "array": 1.96 * g["offline_se"]},
                error_y={"type": "data", "array": 1.96 * g["online_sem"]},
                showlegend=False,
            ),
            row=1,
            col=i,
        )
        lo = float(min(g["offline"].min(), g["online"].min()))
        hi = float(max(g["offline"].max(), g["online"].max()))
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"dash": "dot", "color": "gray"},
                name="online = offline",
                showlegend=i == 1,
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="offline OPE (95% CI)", row=1, col=i)
        fig.update_yaxes(title_text="online (95% CI)", row=1, col=i)
    fig.update_layout(
        title=title or "Offline OPE vs online results (policies measured both ways)",
        height=380,
        template="plotly_white",
    )
    return fig


def plot_online_trials(
    results: pd.DataFrame,
    x: str,
    y: str,
    *,
    directions: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Any:
    """Online results of every completed trial on two metrics, by source (offline candidate
    or model-generated), with 95% error bars; trials without results (pending) are left out.

    Args:
        results: ``OnlineTuner.results()``.
        x, y: metric names.
        directions: metric -> ``"max"`` / ``"min"``; named metrics' axes say which way is
            better.
    """
    import plotly.graph_objects as go

    done = results[results["status"] == "completed"].dropna(subset=[x, y])
    fig = go.Figure()
    kinds = np.where(done["source"].str.startswith("offline:"), "offline candidate", "generated")
    for kind in ("offline candidate", "generated"):
        g = done[kinds == kind]
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g[y],
                mode="markers",
                name=kind,
                text=[f"trial {t}" for t in g["trial_id"]],
                error_x={"type": "data", "array": 1.96 * g[f"{x}_sem"]},
                error_y={"type": "data", "array": 1.96 * g[f"{y}_sem"]},
                marker={"size": 10, "symbol": "diamond" if kind == "generated" else "circle"},
            )
        )
    fig.update_layout(
        title=title or f"Online results: {y} vs {x}",
        xaxis_title=_axis_title(x, directions),
        yaxis_title=_axis_title(y, directions),
        template="plotly_white",
        height=420,
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _axis_title(metric: str, directions: Mapping[str, str] | None) -> str:
    if not directions or metric not in directions:
        return metric
    better = "higher" if direction_of(metric, directions) == "max" else "lower"
    return f"{metric} ({better} is better)"
