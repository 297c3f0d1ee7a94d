"""Parameter constraints and column checks shared by every public boundary.

Learners and configuration objects declare their parameters once, scikit-learn style::

    _parameter_constraints = {
        "max_depth": [Interval(int, 0, 20, closed="both")],
        "min_segment_size": [Interval(int, 1, None), Interval(float, 0, 0.5, closed="right")],
        "alpha": [Interval(float, 0, 1, closed="neither"), None],
        "method": [Options(("greedy", "iterative"))],
    }

and :func:`validate_params` turns a violation into one uniform message::

    ConfigurationError: The 'max_depth' parameter must be an int in the range [0, 20].
    Got -1 instead.
"""

from __future__ import annotations

import keyword
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pex_tuner.errors import ConfigurationError, InputDataError

__all__ = [
    "Interval",
    "Options",
    "TypeOf",
    "identifier_names",
    "is_int",
    "is_real",
    "param_error",
    "require_columns",
    "validate_params",
]


def is_int(value: Any) -> bool:
    """True for integers (numpy's included), False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for finite-or-infinite real numbers that are not bools (NaN is not real here)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def param_error(name: str, expected: str, value: Any) -> ConfigurationError:
    """The uniform message: ``The 'name' parameter must be <expected>. Got <value> instead.``"""
    return ConfigurationError(f"The '{name}' parameter must be {expected}. Got {value!r} instead.")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclass(frozen=True)
class Interval:
    """Numbers of one kind (``int`` or ``float``; ``float`` also accepts ints) in a range.

    ``None`` bounds are open ends. ``closed`` says which finite bounds belong to the range.
    """

    kind: type
    left: float | None
    right: float | None
    closed: Literal["left", "right", "both", "neither"] = "left"

    def accepts(self, value: Any) -> bool:
        if self.kind is int:
            if not is_int(value):
                return False
        elif not is_real(value):
            return False
        lo_closed = self.closed in ("left", "both")
        hi_closed = self.closed in ("right", "both")
        if self.left is not None and (value < self.left or (value == self.left and not lo_closed)):
            return False
        return not (
            self.right is not None
            and (value > self.right or (value == self.right and not hi_closed))
        )

    def describe(self) -> str:
        noun = "an int" if self.kind is int else "a float"
        lo_closed = self.closed in ("left", "both")
        hi_closed = self.closed in ("right", "both")
        if self.left is not None and self.right is None:
            return f"{noun} {'>=' if lo_closed else '>'} {_fmt(self.left)}"
        if self.left is None and self.right is not None:
            return f"{noun} {'<=' if hi_closed else '<'} {_fmt(self.right)}"
        if self.left is None and self.right is None:
            return noun
        lo = "[" if lo_closed else "("
        hi = "]" if hi_closed else ")"
        return f"{noun} in the range {lo}{_fmt(self.left)}, {_fmt(self.right)}{hi}"  # type: ignore[arg-type]


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (compared with ``==``; bools never match numbers)."""

    values: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values) or (
            isinstance(value, str) and value in self.values
        )

    def describe(self) -> str:
        return f"one of {list(self.values)}"


@dataclass(frozen=True)
class TypeOf:
    """An instance of one of ``types``, described as ``description`` (e.g. ``"a bool"``)."""

    types: type | tuple[type, ...]
    description: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        return self.description


Constraint = Interval | Options | TypeOf | None


def _accepts(constraint: Constraint, value: Any) -> bool:
    return value is None if constraint is None else constraint.accepts(value)


def _describe(constraint: Constraint) -> str:
    return "None" if constraint is None else constraint.describe()


def validate_params(
    params: Mapping[str, Any], constraints: Mapping[str, Sequence[Constraint]]
) -> None:
    """Raise ConfigurationError for the first parameter (in ``constraints`` order) that fits none
    of its constraints; parameters without constraints are not checked."""
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if not any(_accepts(c, value) for c in allowed):
            raise param_error(name, " or ".join(_describe(c) for c in allowed), value)


def require_columns(
    columns: Iterable[str], needed: Mapping[str, Sequence[str]], where: str
) -> None:
    """Raise InputDataError listing every needed column missing from ``columns`` at once.

    ``needed`` maps a role ("feature", "outcome", ...) to the column names it requires; the
    message groups the missing names by role: ``data has no feature column(s) ['age', 'x3']
    and no outcome column(s) ['spend']; columns present: [...]``.
    """
    present = set(columns)
    parts = []
    for role, names in needed.items():
        missing = [n for n in names if n not in present]
        if missing:
            parts.append(f"no {role} column(s) {missing}")
    if parts:
        shown = sorted(present)
        more = "" if len(shown) <= 30 else f" (and {len(shown) - 30} more)"
        raise InputDataError(
            f"{where} has " + " and ".join(parts) + f"; columns present: {shown[:30]}{more}"
        )


def identifier_names(names: Sequence[str]) -> dict[str, str]:
    """Each name -> a unique Python identifier made from it (non-word characters become
    ``_``; an ``m_`` prefix where it would start with a digit, be empty or be a keyword;
    ``_2``, ``_3`` ... on clashes): the metric names Ax's objective parser accepts."""
    out: dict[str, str] = {}
    for n in names:
        name = re.sub(r"\W", "_", str(n))
        if not name or name[0].isdigit() or keyword.iskeyword(name):
            name = f"m_{name}"
        base, i = name, 2
        while name in out.values():
            name = f"{base}_{i}"
            i += 1
        out[n] = name
    return out
