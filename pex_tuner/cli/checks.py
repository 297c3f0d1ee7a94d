"""Every ``pex-tuner`` option checked before any data is read or model fitted.

Two layers, both exit with status 2:

* **argument types** (:func:`int_at_least`, :func:`fraction`, :func:`segment_size`, ...): one
  option's syntax and range, reported by argparse with the usage line
  (``pex-tuner tune: error: argument --budget: expected an integer >= 1, got '0'``);
* :func:`check_options`: what needs several options at once (an ``--outcome`` given twice with
  different directions, a ``--guardrail`` or ``--weight`` naming no ``--outcome``, a column in
  two roles, one objective with a multi-objective ``--acquisition``, files that do not exist),
  raised as ConfigurationError and printed as ``pex-tuner: error: ...``.

Repeating an option with the same value (``--outcome visit:max --outcome visit:max``) is
accepted and counts once; repeating it with a different value is an error naming both.
:func:`cli_message` rewrites library messages that name Python parameters in CLI syntax
(``acquisition='qLogNEI'`` -> ``--acquisition qLogNEI``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pex_tuner.errors import ConfigurationError

__all__ = [
    "check_options",
    "cli_message",
    "fraction",
    "int_at_least",
    "int_in_range",
    "segment_size",
]

# Python parameter -> the option that sets it, for messages that surface in the CLI
FLAGS = {
    "budget": "--budget",
    "batch_size": "--batch-size",
    "candidates": "--candidates",
    "k": "--candidates",
    "random_state": "--seed",
    "seed": "--seed",
    "n_folds": "--n-folds",
    "max_depth": "--max-depth",
    "min_units_per_arm": "--min-units-per-arm",
    "min_segment_size": "--min-segment-size",
    "validation_size": "--validation-size",
    "learner": "--learner",
    "estimator": "--estimator",
    "acquisition": "--acquisition",
    "scaling": "--scaling",
    "guardrails": "--guardrail",
    "outcome_weights": "--weight",
    "n_units": "--n-units",
    "rounds": "--rounds",
}
MULTI_OBJECTIVE = ("qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI")  # tuning.generation's


# ---------------------------------------------------------------------- argument types
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer in [{low}, {high}], got {text!r}"
            )
        return value

    return parse


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN is no number here


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = _float(text)
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def segment_size(text: str) -> int | float:
    """An argparse type: a share of the units in (0, 0.5] or a count >= 1."""
    value = _float(text)
    if value is not None and 0 < value <= 0.5:
        return value
    if value is not None and value >= 1 and value.is_integer():
        return int(value)
    raise argparse.ArgumentTypeError(
        f"expected a share in (0, 0.5] or a whole count >= 1, got {text!r}"
    )


# ---------------------------------------------------------------------- cross-option checks
def _unique_pairs(
    option: str, pairs: Sequence[tuple[str, Any]] | None, sep: str
) -> list[tuple[str, Any]]:
    """``pairs`` without exact repeats; the same name with two values is an error."""
    seen: dict[str, Any] = {}
    for name, value in pairs or []:
        if name in seen and seen[name] != value:
            what = "directions" if isinstance(value, str) else "values"
            a, b = (v if isinstance(v, str) else f"{v:g}" for v in (seen[name], value))
            raise ConfigurationError(
                f"{option} {name} is given twice with different {what}: "
                f"{option} {name}{sep}{a} and {option} {name}{sep}{b}"
            )
        seen[name] = value
    return list(seen.items())


def _check_file(option: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        what = "is a folder, not a file" if Path(path).is_dir() else "does not exist"
        raise ConfigurationError(f"{option} {path}: the file {what}")


def _check_out(path: str | None, *, folder: bool) -> None:
    if path is None:
        return
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise ConfigurationError(f"--out {path}: exists and is not a folder")
    if not folder and p.is_dir():
        raise ConfigurationError(f"--out {path}: is a folder; name the file to write")


def _check_roles(args: argparse.Namespace) -> None:
    """Outcomes without conflicting repeats, and no column in two roles."""
    args.outcome = _unique_pairs("--outcome", args.outcome, ":")
    outcomes = [name for name, _ in args.outcome]
    roles = {args.treatment: "--treatment"}
    for name in outcomes:
        if name in roles:
            raise ConfigurationError(f"column '{name}' is both {roles[name]} and --outcome")
        roles[name] = "--outcome"
    if args.propensity is not None:
        if args.propensity in roles:
            raise ConfigurationError(
                f"column '{args.propensity}' is both {roles[args.propensity]} and --propensity"
            )
        roles[args.propensity] = "--propensity"
    if args.features:
        args.features = list(dict.fromkeys(args.features))
        clash = [f"'{f}' ({roles[f]})" for f in args.features if f in roles]
        if clash:
            raise ConfigurationError(
                f"--features names column(s) used in another role: {', '.join(clash)}"
            )


def _check_weights(args: argparse.Namespace, unnamed: float) -> None:
    """--weight names declared outcomes, without conflicting repeats, one of them positive
    (outcomes not named get ``unnamed``)."""
    if not args.weight:
        return
    args.weight = _unique_pairs("--weight", args.weight, "=")
    outcomes = [name for name, _ in args.outcome]
    unknown = [name for name, _ in args.weight if name not in outcomes]
    if unknown:
        raise ConfigurationError(
            f"weight(s) for unknown outcome(s) {unknown}; expected names from {outcomes}"
        )
    given = dict(args.weight)
    if not any(given.get(o, unnamed) > 0 for o in outcomes):
        raise ConfigurationError("at least one outcome needs a positive weight")


def _check_tune(args: argparse.Namespace) -> None:
    args.guardrail = _unique_pairs("--guardrail", args.guardrail, "=")
    outcomes = [name for name, _ in args.outcome]
    unknown = [name for name, _ in args.guardrail if name not in outcomes]
    if unknown:
        raise ConfigurationError(
            f"--guardrail names {unknown}, not declared with --outcome; expected names from "
            f"{outcomes}"
        )
    objectives = [o for o in outcomes if o not in dict(args.guardrail)]
    if not objectives:
        raise ConfigurationError(
            "every --outcome is a --guardrail; at least one outcome must be an objective"
        )
    if len(objectives) == 1 and args.acquisition in MULTI_OBJECTIVE:
        raise ConfigurationError(
            f"--acquisition {args.acquisition} needs at least two objectives (outcomes "
            f"without a --guardrail); with the one objective '{objectives[0]}' use "
            "--acquisition qLogNEI"
        )


def check_options(args: argparse.Namespace) -> None:
    """Check the parsed options of any subcommand; raises ConfigurationError in CLI syntax.

    Reads no data: only file existence is checked.
    """
    command = args.command
    if hasattr(args, "outcome"):  # the experiment-file options
        from pex_tuner.cli.scale import check_scale_data, is_scale

        check_scale_data(args) if is_scale(args) else _check_file("--data", args.data)
        _check_roles(args)
    if command == "tune":
        _check_tune(args)
    elif command in ("explain", "learn-policy"):
        _check_weights(args, unnamed=1.0 if command == "explain" else 0.0)
    elif command in ("assign", "export"):
        _check_file("--policy", args.policy)
        if command == "assign":
            from pex_tuner.cli.scale import check_scale_data, is_scale

            check_scale_data(args) if is_scale(args) else _check_file("--data", args.data)
    if command in ("tune", "explain", "demo") or (command == "assign" and is_scale(args)):
        _check_out(args.out, folder=True)
    elif command in ("assign", "learn-policy", "export"):
        _check_out(args.out, folder=False)


def cli_message(text: str) -> str:
    """A library message with its Python parameter names in CLI syntax."""

    def flag(match: re.Match[str], form: str) -> str:
        name = match.group(1)
        return form.format(FLAGS[name], *match.groups()[1:]) if name in FLAGS else match[0]

    text = re.sub(r"The '(\w+)' parameter", lambda m: flag(m, "The {0} option"), text)
    text = re.sub(r"\b(\w+)='([^']*)'", lambda m: flag(m, "{0} {1}"), text)
    text = re.sub(r"'(\w+)' must", lambda m: flag(m, "{0} must"), text)
    text = re.sub(r"(lower|in|increase) (\w+)\b", _flag_after_verb, text)
    return text


def _flag_after_verb(match: re.Match[str]) -> str:
    verb, name = match.groups()
    return f"{verb} {FLAGS[name]}" if name in FLAGS and "_" in name else match[0]


def report_features(frame: Any, data: Any, args: argparse.Namespace) -> None:
    """When --features was not given: print the features the command uses (stdout, one line)
    and a warning per column that looks like an outcome or an identifier (stderr)."""
    import sys

    from pex_tuner.data.leakage import outcome_like_columns

    features = [str(c) for c in data.features.columns]
    print(f"features (every other column; choose them with --features): {', '.join(features)}")
    outcomes = [name for name, _ in args.outcome]
    for suspect in outcome_like_columns(frame, args.treatment, outcomes, features):
        print(
            f"pex-tuner: warning: {suspect.warning()}; pass --features to exclude it",
            file=sys.stderr,
        )
