"""Tables of tuned policies as people read them: parameters named by outcome and arm
(``w[retention]``, ``b[arm_2]``) and assign-all baselines shown as "assign all to X".

Inside the tuner, parameters keep their index names (``w_1``, ``b_2``: what Ax and saved tuners
use) and the assign-all baselines carry out-of-design biases (tens of times the design range)
that send every unit to one arm. Neither means anything to a reader, so every output
(frontier.csv, candidates.json, reports, plot hovers) goes through :func:`display_table` or
:func:`display_parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from pex_tuner.tuning.space import PolicySpace

__all__ = ["describe_policy", "display_parameters", "display_table", "parameter_columns"]

ASSIGN_ALL_PREFIX = "all:"


def describe_policy(name: str, kind: str) -> str:
    """What a policy is, in words: ``"assign all to <arm>"`` for a baseline ``all:<arm>``,
    ``"linear utility (tuned)"`` for a tuned policy, ``"attached policy"`` otherwise."""
    if kind == "baseline" and name.startswith(ASSIGN_ALL_PREFIX):
        return f"assign all to {name[len(ASSIGN_ALL_PREFIX) :]}"
    if kind == "tuned":
        return "linear utility (tuned)"
    return "attached policy"


def display_parameters(
    space: PolicySpace, parameters: Mapping[str, float] | None, kind: str = "tuned"
) -> dict[str, float] | None:
    """``parameters`` keyed by display name (``w[retention]``), missing values dropped; None
    for a baseline or a policy without parameters (an assign-all baseline's biases only say
    "everyone to one arm")."""
    if parameters is None or kind == "baseline":
        return None
    names = space.display_names()
    out = {names.get(k, k): float(v) for k, v in parameters.items() if not pd.isna(v)}
    return out or None


def display_table(frame: pd.DataFrame, space: PolicySpace) -> pd.DataFrame:
    """``frame`` (rows of ``OfflineTuner.evaluations()`` / ``get_pareto_frontier()``, or a table
    with their columns) with:

    * the parameter columns renamed ``w[<outcome>]`` / ``b[<arm>]`` / ``alpha[<outcome>]``;
    * a ``description`` column after ``kind`` (or after ``policy``): "assign all to <arm>",
      "linear utility (tuned)" or "attached policy";
    * baselines' parameters blanked (missing): they are "assign all to X", not biases of ±79.

    Columns are otherwise kept in order; a frame without ``kind`` is returned renamed only.
    """
    names = {k: v for k, v in space.display_names().items() if k in frame.columns}
    out = frame.rename(columns=names)
    if "kind" not in out.columns or "policy" not in out.columns:
        return out
    out = out.copy()
    baseline = (out["kind"] == "baseline").to_numpy()
    for col in names.values():
        out[col] = out[col].astype(float).mask(baseline)
    pairs = zip(out["policy"], out["kind"], strict=True)
    desc = [describe_policy(str(p), str(k)) for p, k in pairs]
    if "description" not in out.columns:
        out.insert(list(out.columns).index("kind") + 1, "description", desc)
    return out


def parameter_columns(space: PolicySpace) -> list[str]:
    """The display names of the space's parameters, in order."""
    names = space.display_names()
    return [names[p] for p in space.parameter_names]
