"""Argument types of the ``pex-tuner`` command: each parses one option value or raises
argparse's ``ArgumentTypeError`` with the expected form (argparse turns it into a usage error).
"""

from __future__ import annotations

import argparse
import math

__all__ = ["parse_guardrail", "parse_outcome", "parse_preference", "parse_weight"]


def parse_outcome(text: str) -> tuple[str, str]:
    name, sep, direction = text.rpartition(":")
    if not sep or not name or direction not in ("max", "min"):
        raise argparse.ArgumentTypeError(f"--outcome expects NAME:max or NAME:min, got {text!r}")
    return name, direction


def parse_guardrail(text: str) -> tuple[str, float]:
    name, sep, tol = text.rpartition("=")
    try:
        value = float(tol.rstrip("%")) / (100.0 if tol.endswith("%") else 1.0)
    except ValueError:
        value = float("nan")
    if not sep or not name or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"--guardrail expects NAME=TOLERANCE with a fraction in [0, 1) or a percentage "
            f"(retention=0.005 or retention=0.5%), got {text!r}"
        )
    return name, value


def split_weight(text: str) -> tuple[str, float] | None:
    """``NAME=NUMBER`` with a finite number >= 0 as (name, number); None when malformed."""
    name, sep, value = text.rpartition("=")
    try:
        weight = float(value)
    except ValueError:
        return None
    if not sep or not name or not math.isfinite(weight) or weight < 0:
        return None
    return name, weight


def parse_weight(text: str) -> tuple[str, float]:
    pair = split_weight(text)
    if pair is None:
        raise argparse.ArgumentTypeError(
            f"--weight expects NAME=C with a number C >= 0 (engagement=2), got {text!r}"
        )
    return pair


def parse_preference(text: str) -> tuple[str, float]:
    pair = split_weight(text)
    if pair is None:
        raise argparse.ArgumentTypeError(
            f"--weight expects NAME=W with a number W >= 0 (its sign comes from the outcome's "
            f"direction), got {text!r}"
        )
    return pair
