"""Pareto-front, front-comparison and hypervolume plots, and the offline HTML report."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.files import atomic_write_text

__all__ = ["plot_front_comparison", "plot_hypervolume", "plot_pareto_front", "write_report"]

Z95 = 1.959964


def _objectives(tuner_or_objectives: Any) -> list[tuple[str, str]]:
    if hasattr(tuner_or_objectives, "config"):
        t = tuner_or_objectives
        return [(o, t.data.directions[t.data.outcomes.index(o)]) for o in t.config["objectives"]]
    return [(str(o), str(d)) for o, d in tuner_or_objectives]


def _pairs(objs: list[tuple[str, str]]) -> list[tuple[int, int]]:
    if len(objs) < 2:
        raise InputDataError("a Pareto plot needs at least two objectives")
    return list(combinations(range(len(objs)), 2))


def _label(o: tuple[str, str]) -> str:
    return f"{o[0]} ({'higher' if o[1] == 'max' else 'lower'} is better)"


def _finish(fig: Any, objs: list[tuple[str, str]], pairs: list[tuple[int, int]], title: str):
    for c, (a, b) in enumerate(pairs, start=1):
        fig.update_xaxes(title_text=_label(objs[a]), row=1, col=c)
        fig.update_yaxes(title_text=_label(objs[b]), row=1, col=c)
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=460,
        width=max(520, 470 * len(pairs)),
        legend=dict(orientation="h", y=-0.2),
    )
    return fig


def plot_pareto_front(
    evaluations: pd.DataFrame,
    objectives: Any,
    *,
    frontier: Sequence[str] | None = None,
    candidates: Sequence[str] | None = None,
    title: str = "Offline Pareto front (95% error bars)",
):
    """Scatter of evaluated policies with 95% error bars, one panel per pair of objectives.

    Args:
        evaluations: ``OfflineTuner.evaluations()`` (columns policy, kind, <outcome>,
            <outcome>_se).
        objectives: the tuner, or a list of (outcome, direction).
        frontier: policy names on the Pareto front (drawn in blue; others gray).
        candidates: policy names selected for online tests (red stars).

    Returns:
        plotly Figure.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objs = _objectives(objectives)
    pairs = _pairs(objs)
    frontier = set(frontier or [])
    candidates = set(candidates or [])
    ev = evaluations
    groups = [
        (
            "evaluated",
            ev[(ev["kind"] == "tuned") & ~ev["policy"].isin(frontier)],
            dict(color="#b0b0b0", size=6),
        ),
        (
            "Pareto front",
            ev[ev["kind"].isin(["tuned", "attached"]) & ev["policy"].isin(frontier)],
            dict(color="#1f77b4", size=9),
        ),
        (
            "alternative arms",
            ev[ev["kind"] == "attached"],
            dict(color="#2ca02c", size=11, symbol="diamond"),
        ),
        (
            "baselines (assign all)",
            ev[ev["kind"] == "baseline"],
            dict(color="black", size=12, symbol="x"),
        ),
        (
            "online candidates",
            ev[ev["policy"].isin(candidates)],
            dict(color="#d62728", size=16, symbol="star", line=dict(color="black", width=1)),
        ),
    ]
    fig = make_subplots(
        rows=1,
        cols=len(pairs),
        subplot_titles=[f"{objs[a][0]} vs {objs[b][0]}" for a, b in pairs],
    )
    for c, (a, b) in enumerate(pairs, start=1):
        xa, yb = objs[a][0], objs[b][0]
        for label, rows, marker in groups:
            if rows.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=rows[xa],
                    y=rows[yb],
                    mode="markers",
                    name=label,
                    legendgroup=label,
                    showlegend=c == 1,
                    marker=marker,
                    text=rows["policy"],
                    error_x=dict(type="data", array=Z95 * rows[f"{xa}_se"], thickness=1, width=0),
                    error_y=dict(type="data", array=Z95 * rows[f"{yb}_se"], thickness=1, width=0),
                    hovertemplate=f"%{{text}}<br>{xa}=%{{x:.4g}}<br>{yb}=%{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=c,
            )
    return _finish(fig, objs, pairs, title)


def plot_front_comparison(
    fronts: Mapping[str, pd.DataFrame],
    objectives: Any,
    *,
    baselines: pd.DataFrame | None = None,
    title: str = "Pareto fronts compared",
):
    """Overlay several Pareto fronts (e.g. with and without biases, the PEX paper's Fig. 2).

    Args:
        fronts: label -> frontier DataFrame (``OfflineTuner.get_pareto_frontier()``).
        objectives: the tuner, or a list of (outcome, direction).
        baselines: optional rows of baseline policies to mark.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objs = _objectives(objectives)
    pairs = _pairs(objs)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    fig = make_subplots(
        rows=1, cols=len(pairs), subplot_titles=[f"{objs[a][0]} vs {objs[b][0]}" for a, b in pairs]
    )
    for c, (a, b) in enumerate(pairs, start=1):
        xa, yb = objs[a][0], objs[b][0]
        for i, (label, front) in enumerate(fronts.items()):
            f = front[front["kind"] != "baseline"].sort_values(xa)
            fig.add_trace(
                go.Scatter(
                    x=f[xa],
                    y=f[yb],
                    mode="markers",
                    name=label,
                    legendgroup=label,
                    showlegend=c == 1,
                    marker=dict(color=palette[i % len(palette)], size=8),
                    error_x=dict(type="data", array=Z95 * f[f"{xa}_se"], thickness=1, width=0),
                    error_y=dict(type="data", array=Z95 * f[f"{yb}_se"], thickness=1, width=0),
                    text=f["policy"],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=c,
            )
        if baselines is not None and not baselines.empty:
            fig.add_trace(
                go.Scatter(
                    x=baselines[xa],
                    y=baselines[yb],
                    mode="markers+text",
                    text=baselines["policy"],
                    textposition="top center",
                    name="baselines",
                    legendgroup="baselines",
                    showlegend=c == 1,
                    marker=dict(color="black", symbol="x", size=11),
                ),
                row=1,
                col=c,
            )
    return _finish(fig, objs, pairs, title)


def plot_hypervolume(traces: Mapping[str, pd.DataFrame], *, title: str | None = None):
    """Hypervolume (vs assign-all-control) against the number of evaluations.

    Args:
        traces: label -> DataFrame with columns evaluations, hypervolume
            (``OfflineTuner.hypervolume_trace()``).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, tr in traces.items():
        fig.add_trace(
            go.Scatter(x=tr["evaluations"], y=tr["hypervolume"], mode="lines+markers", name=label)
        )
    fig.update_layout(
        title=title or "Observed hypervolume vs evaluations (reference: assign all to control)",
        xaxis_title="evaluations",
        yaxis_title="hypervolume",
        template="plotly_white",
        height=400,
    )
    return fig


def write_report(
    path: str | Path,
    figures: Sequence[Any],
    *,
    title: str,
    sections: Sequence[str] = (),
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Write a self-contained HTML report (plotly.js inlined once: viewable offline).

    Args:
        path: output file.
        figures: plotly figures, in order.
        title: page title.
        sections: paragraphs of text (plain text, escaped) shown above the figures.
        tables: heading -> DataFrame shown below the figures.
    """
    path = Path(path)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(s)}</p>" for s in sections]
    for i, fig in enumerate(figures):
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False))
    for heading, table in (tables or {}).items():
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))
