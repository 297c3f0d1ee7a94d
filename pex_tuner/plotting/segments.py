"""The unrolled segment barplot of Distill-HTE (Wu, Tan, et al., KDD 2022)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pex_tuner.errors import InputDataError

__all__ = ["SEGMENT_COLORS", "plot_segments"]

SEGMENT_COLORS = {
    "good": "#2ca02c",  # green: significant, in the outcome's good direction
    "bad": "#d62728",  # red: significant, in the bad direction
    "not significant": "#9e9e9e",  # gray
}


def _outcomes_of(segments: pd.DataFrame) -> list[str]:
    return [str(c)[len("effect[") : -1] for c in segments.columns if str(c).startswith("effect[")]


def _checked_outcomes(segments: pd.DataFrame, outcome: str | Sequence[str] | None) -> list[str]:
    """The outcomes to draw; InputDataError when ``segments`` is not a segments frame."""
    if not isinstance(segments, pd.DataFrame):
        raise InputDataError(
            f"expected the segments DataFrame of DistillHTE, got {type(segments).__name__}"
        )
    needed = {"treatment", "segment", "rule", "n_units"}
    missing = sorted(needed - set(segments.columns))
    available = _outcomes_of(segments)
    if missing or not available:
        raise InputDataError(
            f"segments lacks column(s) {missing or ['effect[<outcome>]']}; pass the segments_ "
            "frame of a fitted DistillHTE"
        )
    if outcome is None:
        outcomes = available
    else:
        outcomes = [outcome] if isinstance(outcome, str) else [str(o) for o in outcome]
        unknown = [o for o in outcomes if o not in available]
        if unknown:
            raise InputDataError(
                f"unknown outcome(s) {unknown}; the segments have outcomes {available}"
            )
    for o in outcomes:
        cols = [f"ci_low[{o}]", f"ci_high[{o}]", f"significant[{o}]"]
        lacking = [c for c in cols if c not in segments.columns]
        if lacking:
            raise InputDataError(f"segments lacks column(s) {lacking}")
    return outcomes


def _segment_bars(rows: pd.DataFrame, o: str, sign: float) -> Any:
    """One panel's bars: the segments of one treatment, effect on outcome ``o`` with CIs.

    ``sign`` is +1 when larger values of ``o`` are better and -1 when smaller ones are.
    """
    import plotly.graph_objects as go

    effect = rows[f"effect[{o}]"].to_numpy(dtype=float)
    lo = rows[f"ci_low[{o}]"].to_numpy(dtype=float)
    hi = rows[f"ci_high[{o}]"].to_numpy(dtype=float)
    # an interval of zero width is floating-point noise, not evidence (files written
    # before DistillHTE floored the standard error may flag one significant)
    sig = rows[f"significant[{o}]"].astype(bool).to_numpy() & (hi - lo > 0)
    colors = [
        SEGMENT_COLORS["not significant"]
        if not s
        else SEGMENT_COLORS["good" if sign * e > 0 else "bad"]
        for s, e in zip(sig, effect, strict=True)
    ]
    custom = list(
        zip(
            rows["rule"].astype(str),
            lo,
            hi,
            rows["n_units"].astype(int),
            strict=True,
        )
    )
    return go.Bar(
        x=[f"S{s}" for s in rows["segment"]],
        y=effect,
        marker_color=colors,
        error_y=dict(type="data", array=hi - effect, arrayminus=effect - lo),
        customdata=custom,
        hovertemplate=(
            "<b>%{x}</b>: %{customdata[0]}<br>effect %{y:.4g} "
            "[%{customdata[1]:.4g}, %{customdata[2]:.4g}]<br>"
            "%{customdata[3]} units<extra></extra>"
        ),
        showlegend=False,
    )


def plot_segments(
    segments: pd.DataFrame,
    outcome: str | Sequence[str] | None = None,
    *,
    directions: Mapping[str, str] | None = None,
    title: str | None = None,
):
    """Unrolled barplot of segment effects: one bar per segment, with its confidence interval.

    One panel per (outcome, treatment): rows are outcomes, columns are treatment arms. Each bar
    is one segment's estimated effect (treatment minus control) with its interval as an error
    bar; hovering a bar shows the segment's rule, size and interval.

    Colors follow the paper (green for a significant positive effect, red for a significant
    negative one, gray when the interval covers 0), **with the outcome's direction taken into
    account**: green means significantly *good* and red significantly *bad*. For a maximized
    outcome that is exactly the paper's coloring; for a minimized outcome (a cost, a latency)
    a significant *decrease* is green and a significant increase red. A bar whose interval has
    zero width is gray whatever its ``significant`` flag says (floating-point noise). Pass
    ``directions={"cost": "max"}`` to color by sign alone.

    Args:
        segments: the ``segments_`` frame of a fitted :class:`~pex_tuner.explain.DistillHTE`
            (or one read back from ``segments.csv``).
        outcome: one outcome name, several, or ``None`` for every outcome in ``segments``.
        directions: outcome -> ``"max"`` / ``"min"``; default ``segments.attrs["directions"]``
            (set by DistillHTE), and ``"max"`` for outcomes found in neither.
        title: figure title.

    Returns:
        plotly.graph_objects.Figure

    Raises:
        InputDataError: ``segments`` lacks the columns of a segments frame, or ``outcome`` is
            not one of its outcomes.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    outcomes = _checked_outcomes(segments, outcome)
    dirs = dict(segments.attrs.get("directions") or {})
    dirs.update(directions or {})
    control = segments.attrs.get("control")
    treatments = list(dict.fromkeys(segments["treatment"].astype(str)))

    titles = [
        f"{o} ({dirs.get(o, 'max')}): {t}" + (f" vs {control}" if control else "")
        for o in outcomes
        for t in treatments
    ]
    fig = make_subplots(
        rows=len(outcomes),
        cols=len(treatments),
        subplot_titles=titles,
        vertical_spacing=min(0.3 / max(len(outcomes) - 1, 1), 0.12),
        horizontal_spacing=min(0.3 / max(len(treatments) - 1, 1), 0.08),
    )
    for r, o in enumerate(outcomes, start=1):
        sign = -1.0 if dirs.get(o, "max") == "min" else 1.0  # +1: larger is better
        for c, t in enumerate(treatments, start=1):
            rows = segments[segments["treatment"].astype(str) == t]
            fig.add_trace(_segment_bars(rows, o, sign), row=r, col=c)
            fig.add_hline(y=0, line_width=1, line_color="#444", row=r, col=c)
    for name, color in SEGMENT_COLORS.items():  # legend entries only
        label = f"significant, {name}" if name != "not significant" else name
        fig.add_trace(go.Bar(x=[None], y=[None], marker_color=color, name=label))
    fig.update_layout(
        title=title or "Distill-HTE segments: effect vs control with 95% intervals",
        height=max(320, 280 * len(outcomes)),
        barmode="group",
        legend=dict(orientation="h", y=-0.08),
    )
    return fig
