"""Shared looks of figures and report tables: good / bad colours, p-values, numbers, HTML tables.

Colours say whether a difference is *good*, not its sign: a difference whose 95% interval lies
wholly on the better side of zero for the metric's direction (above zero for a maximized metric,
below zero for a minimized one) is green, wholly on the worse side red, and one whose interval
contains zero grey. So a significant cost reduction is green.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError

__all__ = [
    "BAD",
    "GOOD",
    "NEUTRAL",
    "VERDICT_COLORS",
    "direction_of",
    "format_number",
    "format_p_value",
    "table_html",
    "verdict",
]

GOOD = "#2ca02c"
BAD = "#d62728"
NEUTRAL = "#7f7f7f"
VERDICT_COLORS = {"better": GOOD, "worse": BAD, "not significant": NEUTRAL}
#: smallest p-value written as a number; smaller ones are written ``< 1e-4``
P_FLOOR = 1e-4
_DIRECTIONS = ("max", "min")


def direction_of(metric: str, directions: Mapping[str, str] | None, default: str = "max") -> str:
    """The direction (``"max"`` / ``"min"``) of ``metric`` in ``directions`` (``default`` when
    it is not named there), checked."""
    d = str((directions or {}).get(metric, default))
    if d not in _DIRECTIONS:
        raise InputDataError(f"direction of '{metric}' must be 'max' or 'min'; got {d!r}")
    return d


def verdict(low: float, high: float, direction: str = "max") -> str:
    """``"better"``, ``"worse"`` or ``"not significant"``: where the interval [low, high] of a
    difference (new minus reference) lies for a metric with ``direction`` ``"max"`` / ``"min"``.

    A missing bound (NaN) gives ``"not significant"``.
    """
    if direction not in _DIRECTIONS:
        raise InputDataError(f"direction must be 'max' or 'min'; got {direction!r}")
    if not (_finite(low) and _finite(high)):
        return "not significant"
    if low > 0:
        return "better" if direction == "max" else "worse"
    if high < 0:
        return "worse" if direction == "max" else "better"
    return "not significant"


def format_p_value(p: Any) -> str:
    """A p-value for people: two significant digits (``0.032``, ``0.00051``), ``< 1e-4`` below
    1e-4 (never ``0``), ``—`` when missing."""
    if not _finite(p):
        return "—"
    p = float(p)
    if p < P_FLOOR:
        return "< 1e-4"
    return f"{p:.2g}" if p < 1 else "1"


def format_number(v: Any) -> str:
    """A table cell: integers as they are, other numbers with 4 significant digits, booleans
    as yes / no, missing values as ``—``, anything else as text."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    v = _scalar(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    try:
        if pd.isna(v):
            return "—"
    except (TypeError, ValueError):
        pass
    return str(v)


def _is_p_value_column(name: str) -> bool:
    n = name.lower()
    return n in ("p", "p_value", "pvalue", "p-value") or n.endswith(("_p_value", "_pvalue"))


def table_html(frame: pd.DataFrame, *, index: bool = False) -> str:
    """``frame`` as an HTML table inside a horizontally scrolling container: p-value columns
    through :func:`format_p_value`, other cells through :func:`format_number`; a column named
    ``verdict`` is coloured (green better, red worse, grey not significant)."""
    frame = frame.reset_index() if index else frame
    cols = [str(c) for c in frame.columns]
    formatters: list[Callable[[Any], str]] = [
        format_p_value if _is_p_value_column(c) else format_number for c in cols
    ]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in frame.itertuples(index=False, name=None):
        cells = []
        for c, fmt, v in zip(cols, formatters, row, strict=True):
            text = html.escape(fmt(_scalar(v)))
            style = ""
            if c == "verdict" and str(v) in VERDICT_COLORS:
                style = f" style='color:{VERDICT_COLORS[str(v)]};font-weight:600'"
            cells.append(f"<td{style}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<div class='table-wrap'><table><thead><tr>"
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def _scalar(v: Any) -> Any:
    """numpy scalars as Python ones (so ints print as ints)."""
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
