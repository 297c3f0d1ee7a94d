"""Pareto-front, front-comparison and hypervolume plots, and the offline HTML report."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd

from pex_tuner.errors import InputDataError
from pex_tuner.files import atomic_write_text
from pex_tuner.plotting.styles import table_html

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


def _finish(fig: Any, objs: list[tuple[str, str]], pairs: list[tuple[int, int]], title: str) -> Any:
    for c, (a, b) in enumerate(pairs, start=1):
        fig.update_xaxes(title_text=_label(objs[a]), automargin=True, row=1, col=c)
        fig.update_yaxes(title_text=_label(objs[b]), automargin=True, row=1, col=c)
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=500,
        width=max(560, 470 * len(pairs)),
        margin=dict(l=70, r=70, t=90, b=110),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
    )
    return fig


_PARAMETER = re.compile(r"^(w|b|alpha)\[.+\]$")


def _display_frame(frame: pd.DataFrame, objectives: Any) -> pd.DataFrame:
    """``frame`` with the tuner's parameter columns named by outcome and arm (``w[cost]``,
    ``b[arm_2]``) when ``objectives`` is a tuner whose space names them."""
    space = getattr(objectives, "space", None)
    names = getattr(space, "display_names", None)
    if not callable(names):
        return frame
    mapping = {k: v for k, v in names().items() if k in frame.columns}
    return frame.rename(columns=mapping) if mapping else frame


def _hover_text(rows: pd.DataFrame) -> list[str]:
    """Per row: the policy name, what it is (``description``: e.g. "assign all to arm_2")
    and its parameters (columns named like ``w[cost]`` / ``b[arm_2]``), for hovers.
    Assign-all baselines show no parameters (theirs are huge out-of-design biases)."""
    params = [c for c in rows.columns if _PARAMETER.match(str(c))]
    out = []
    for r in rows.to_dict("records"):
        lines = [html.escape(str(r["policy"]))]
        kind = r.get("kind")
        desc = r.get("description")
        if not isinstance(desc, str) and kind == "baseline" and str(r["policy"]).startswith("all:"):
            desc = f"assign all to {str(r['policy'])[4:]}"
        if isinstance(desc, str) and desc:
            lines.append(html.escape(desc))
        if kind != "baseline":
            vals = [(p, r[p]) for p in params if pd.notna(r[p])]
            for i in range(0, len(vals), 3):
                lines.append(", ".join(f"{html.escape(p)}={v:.3g}" for p, v in vals[i : i + 3]))
        out.append("<br>".join(lines))
    return out


def plot_pareto_front(
    evaluations: pd.DataFrame,
    objectives: Any,
    *,
    frontier: Sequence[str] | None = None,
    candidates: Sequence[str] | None = None,
    title: str = "Offline Pareto front (95% error bars)",
) -> Any:
    """Scatter of evaluated policies with 95% error bars, one panel per pair of objectives.

    Args:
        evaluations: ``OfflineTuner.evaluations()`` (columns policy, kind, <outcome>,
            <outcome>_se; parameter columns and ``description`` go into the hover).
        objectives: the tuner (its parameters are then named by outcome and arm in the
            hover: ``w[cost]``, ``b[arm_2]``), or a list of (outcome, direction).
        frontier: policy names on the Pareto front (drawn in blue; others gray).
        candidates: policy names selected for online tests (orange stars; green and red are
            kept for "better" and "worse" in every figure).

    Returns:
        plotly Figure.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objs = _objectives(objectives)
    pairs = _pairs(objs)
    groups = _groups(_display_frame(evaluations, objectives), frontier, candidates)
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
                    text=_hover_text(rows),
                    error_x=dict(type="data", array=Z95 * rows[f"{xa}_se"], thickness=1, width=0),
                    error_y=dict(type="data", array=Z95 * rows[f"{yb}_se"], thickness=1, width=0),
                    hovertemplate=f"%{{text}}<br>{xa}=%{{x:.4g}}<br>{yb}=%{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=c,
            )
    return _finish(fig, objs, pairs, title)


def _groups(
    ev: pd.DataFrame, frontier: Sequence[str] | None, candidates: Sequence[str] | None
) -> list[tuple[str, pd.DataFrame, dict[str, Any]]]:
    """(legend label, rows, marker) of each kind of point in a Pareto plot."""
    frontier = set(frontier or [])
    candidates = set(candidates or [])
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
            dict(color="#9467bd", size=11, symbol="diamond"),
        ),
        (
            "baselines (assign all)",
            ev[ev["kind"] == "baseline"],
            dict(color="black", size=12, symbol="x"),
        ),
        (
            "online candidates",
            ev[ev["policy"].isin(candidates)],
            dict(color="#ff7f0e", size=16, symbol="star", line=dict(color="black", width=1)),
        ),
    ]
    return groups


def plot_front_comparison(
    fronts: Mapping[str, pd.DataFrame],
    objectives: Any,
    *,
    baselines: pd.DataFrame | None = None,
    title: str = "Pareto fronts compared",
) -> Any:
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
    # no green or red: those say "better" / "worse" in every other figure
    palette = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
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
                    text=_hover_text(_display_frame(f, objectives)),
                    hovertemplate=f"%{{text}}<br>{xa}=%{{x:.4g}}<br>{yb}=%{{y:.4g}}<extra></extra>",
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
                    text=[str(p) for p in baselines["policy"]],
                    textposition="top center",
                    cliponaxis=False,  # labels near the edge ("all:No E-Mail") stay whole
                    hovertext=_hover_text(baselines),
                    hovertemplate=f"%{{hovertext}}<br>{xa}=%{{x:.4g}}<br>{yb}=%{{y:.4g}}"
                    "<extra></extra>",
                    name="baselines (assign all)",
                    legendgroup="baselines",
                    showlegend=c == 1,
                    marker=dict(color="black", symbol="x", size=11),
                ),
                row=1,
                col=c,
            )
    return _finish(fig, objs, pairs, title)


def plot_hypervolume(traces: Mapping[str, pd.DataFrame], *, title: str | None = None) -> Any:
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

    The page fits its window: figures and wide tables scroll horizontally inside their own
    boxes. Table cells go through :func:`~pex_tuner.plotting.styles.table_html`: numbers with
    4 significant digits, p-value columns as ``< 1e-4`` / ``0.032``, missing values as ``—``.

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
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(s)}</p>" for s in sections]
    for i, fig in enumerate(figures):
        plot = fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False)
        parts.append(f"<div class='figure-wrap'>{plot}</div>")
    for heading, table in (tables or {}).items():
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(table_html(table))
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 1em;max-width:1500px}"
    "p{max-width:110ch;line-height:1.45}"
    ".figure-wrap,.table-wrap{max-width:100%;overflow-x:auto;margin-bottom:1.5em}"
    "table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}"
    "th{background:#f4f4f4;position:sticky;top:0}"
    "td:first-child,th:first-child{text-align:left}"
)
