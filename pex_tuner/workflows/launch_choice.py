"""Which online policy to launch, by a stated rule, and one line that says why and what it trades.

The rule (``pex-tuner demo``, notebooks/03_online_loop.ipynb): among the online Pareto policies
(completed trials that meet every guardrail, none dominated on the online objectives), launch
the one with the best value of ``goal``, by default the long-term outcome, the metric offline
OPE could not see. The line names the rule, the guardrail and the cost of the choice: for every
other objective, how far the launched policy is from the best of the eligible policies.

When no completed trial meets the guardrails there is nothing the rule allows; the policy
closest to the first guardrail is chosen and the line says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from pex_tuner.errors import InputDataError

__all__ = ["LaunchChoice", "choose_launch"]


@dataclass(frozen=True)
class LaunchChoice:
    """The launched trial, the trials the rule chose among, and the line that explains it."""

    trial_id: int
    eligible: tuple[int, ...]
    reason: str


def _guardrail_text(
    constraints: Mapping[str, tuple[str, float]], tolerances: Mapping[str, float]
) -> str:
    parts = []
    for m, (op, bound) in constraints.items():
        text = f"{m} {op} {bound:.4g}"
        if m in tolerances:
            side = "below" if op == ">=" else "above"
            text += f" (at most {tolerances[m]:.1%} {side} control)"
        parts.append(text)
    return " and ".join(parts)


def _trades(chosen: pd.Series, pool: pd.DataFrame, objectives: Mapping[str, str], goal: str) -> str:
    """What the chosen row gives up on each other objective against the pool's best."""
    given_up, also_best = [], []
    for m, d in objectives.items():
        if m == goal or m not in pool.columns:
            continue
        best = pool.loc[pool[m].idxmax() if d == "max" else pool[m].idxmin()]
        v, b = float(chosen[m]), float(best[m])
        if v == b:
            also_best.append(m)
            continue
        rel = (v - b) / abs(b) if b != 0 else float("nan")
        delta = f"{rel:+.1%}" if rel == rel else f"{v - b:+.3g}"
        which = "the best" if d == "max" else "the lowest"
        given_up.append(f"{m} {delta} vs {which} (trial {int(best['trial_id'])})")
    best_on = f"the best of them on {', '.join(also_best)}" if also_best else ""
    if not given_up:
        return f"it is also {best_on}" if best_on else "it gives up nothing on other objectives"
    return "it trades " + ", ".join(given_up) + (f", and is {best_on}" if best_on else "")


def choose_launch(
    results: pd.DataFrame,
    pareto: pd.DataFrame,
    objectives: Mapping[str, str],
    constraints: Mapping[str, tuple[str, float]] | None = None,
    *,
    goal: str = "long_term",
    tolerances: Mapping[str, float] | None = None,
) -> LaunchChoice:
    """Apply the launch rule (see the module docstring).

    Args:
        results: ``OnlineTuner.results()`` (columns trial_id, status and one per metric).
        pareto: ``OnlineTuner.pareto()``: the completed trials that meet the constraints and
            are not dominated.
        objectives: metric -> ``"max"`` / ``"min"`` (the online objectives, ``goal`` among them).
        constraints: metric -> (``">="`` / ``"<="``, bound): the guardrails as absolute bounds.
        goal: the objective the rule maximizes (minimizes, for a ``"min"`` objective).
        tolerances: guardrail metric -> tolerance as a fraction of control (for the line).

    Returns:
        The :class:`LaunchChoice`.
    """
    if goal not in objectives:
        raise InputDataError(f"goal '{goal}' is not one of the objectives {list(objectives)}")
    constraints, tolerances = dict(constraints or {}), dict(tolerances or {})
    ascending = objectives[goal] == "min"
    guard = _guardrail_text(constraints, tolerances)
    pool = pareto.dropna(subset=[goal])
    if not pool.empty:
        chosen = pool.sort_values(goal, ascending=ascending, kind="stable").iloc[0]
        among = f"the {len(pool)} online Pareto policies" + (f" with {guard}" if guard else "")
        head = f"best {goal} ({chosen[goal]:.4g}) among {among}"
    else:
        done = results[results["status"] == "completed"].dropna(subset=[goal])
        if done.empty:
            raise InputDataError("no completed online trial to launch")
        pool = done
        if constraints:  # nothing meets the guardrail: the one closest to it
            m, (op, _) = next(iter(constraints.items()))
            chosen = done.sort_values(m, ascending=op == "<=", kind="stable").iloc[0]
            head = f"no online policy met the guardrail ({guard}); closest to it on {m}"
        else:
            chosen = done.sort_values(goal, ascending=ascending, kind="stable").iloc[0]
            head = f"best {goal} ({chosen[goal]:.4g}) among the {len(done)} completed policies"
    tid = int(chosen["trial_id"])
    trades = _trades(chosen, pool, objectives, goal)
    eligible = tuple(int(t) for t in pool["trial_id"])
    return LaunchChoice(tid, eligible, f"Launching trial {tid}: {head}; {trades}.")
