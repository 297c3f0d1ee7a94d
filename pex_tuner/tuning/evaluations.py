"""EvaluationLog: every evaluated policy's record, feasibility, frontier, hypervolume and
candidate selection.

A record is a plain JSON dict (what saved tuners store under ``"records"``)::

    {"trial_index": 7 or None, "policy": "trial_7", "kind": "tuned" | "baseline" | "attached",
     "node": "Sobol" | "BoTorch" | None, "parameters": {name: value} or None,
     "<outcome>": value, "<outcome>_se": standard error (per outcome),
     "share[<arm>]": share of units sent to the arm (per arm),
     "batch_seconds": generation time of its batch (tuned policies)}

Objective values are compared in maximization space (minimized objectives negated, see
``frontier.to_max_space``); the hypervolume reference point is assign-all-control's value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import ConfigurationError, NotFittedError
from pex_tuner.ope import PolicyEvaluation
from pex_tuner.tuning.frontier import hypervolume, pareto_mask, select_candidates, to_max_space

__all__ = ["ONE_ARM_SHARE", "EvaluationLog", "control_reference", "meets_bounds"]

_NADIR_LABEL = "nadir (no policy beats control on every objective)"
#: a policy sending at least this share of units to one arm is labelled as that arm's baseline
ONE_ARM_SHARE = 0.99


def _shortfall(k: int, got: int, collapsed: int) -> str:
    """Why ``got`` < ``k`` candidates were selected."""
    why = f"asked for {k} online candidates, got {got}: only {got} feasible policies are on "
    why += "the Pareto frontier of the eligible ones"
    if collapsed:
        why += (
            f"; {collapsed} feasible policies sent >= {ONE_ARM_SHARE:.0%} of units to one arm "
            "and count as that arm's baseline"
        )
    return why


def meets_bounds(
    values: Mapping[str, float],
    bounds: Mapping[str, float],
    outcomes: Sequence[str],
    directions: Sequence[str],
) -> bool:
    """Whether ``values`` (outcome -> value) respect guardrail ``bounds``: at least the bound
    for a maximized outcome, at most it for a minimized one."""
    for g, b in bounds.items():
        d = directions[list(outcomes).index(g)]
        if (d == "max" and values[g] < b) or (d == "min" and values[g] > b):
            return False
    return True


def control_reference(
    control: np.ndarray,
    outcomes: Sequence[str],
    directions: Sequence[str],
    objectives: Sequence[str],
    guardrails: Mapping[str, float],
) -> tuple[np.ndarray, dict[str, float]]:
    """The hypervolume reference point and the guardrails' absolute bounds, both from
    assign-all-control's values ``control`` (J,).

    Returns:
        (control's objective values in maximization space, shape (M,); guardrail outcome ->
        bound: ``tolerance`` (a fraction) below control's value for a maximized outcome, above
        it for a minimized one).
    """
    idx = [list(outcomes).index(o) for o in objectives]
    reference = to_max_space(control[idx], tuple(directions[j] for j in idx))
    bounds: dict[str, float] = {}
    for g, tol in guardrails.items():
        j = list(outcomes).index(g)
        v = control[j]
        bounds[g] = float(v - tol * abs(v) if directions[j] == "max" else v + tol * abs(v))
    return reference, bounds


class EvaluationLog:
    """The records of an offline tuner's evaluated policies and what is computed from them.

    Args:
        arms, outcomes, directions: as in the experiment (J outcomes, K arms).
        objectives: the optimized outcomes (M of them).
        guardrails: outcome -> tolerance, a fraction of assign-all-control's value.
        control: assign-all-control's value per outcome, shape (J,).
        records: records to start from (a saved tuner's).

    Attributes:
        reference_point: the hypervolume reference, control's objective values in
            maximization space, shape (M,).
        guardrail_bounds: guardrail outcome -> absolute bound (see :func:`control_reference`).
    """

    def __init__(
        self,
        *,
        arms: Sequence[str],
        outcomes: Sequence[str],
        directions: Sequence[str],
        objectives: Sequence[str],
        guardrails: Mapping[str, float],
        control: np.ndarray,
        records: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.arms = tuple(arms)
        self.outcomes = tuple(outcomes)
        self.directions = tuple(directions)
        self.objectives = list(objectives)
        self.reference_point, self.guardrail_bounds = control_reference(
            np.asarray(control, dtype=float), outcomes, directions, objectives, guardrails
        )
        self.records: list[dict[str, Any]] = list(records)
        idx = [self.outcomes.index(o) for o in self.objectives]
        self.objective_directions = tuple(self.directions[j] for j in idx)

    # ------------------------------------------------------------------ records
    def make_record(
        self,
        trial_index: int | None,
        name: str,
        kind: str,
        parameters: Mapping[str, float] | None,
        evaluation: PolicyEvaluation,
        i: int,
        node: str | None,
    ) -> dict[str, Any]:
        """The record of policy ``i`` of ``evaluation`` (not yet added to the log)."""
        rec: dict[str, Any] = {
            "trial_index": trial_index,
            "policy": name,
            "kind": kind,
            "node": node,
            "parameters": (
                None if parameters is None else {k: float(v) for k, v in parameters.items()}
            ),
        }
        for j, o in enumerate(self.outcomes):
            rec[o] = float(evaluation.value[i, j])
            rec[f"{o}_se"] = float(evaluation.se[i, j])
        for k, a in enumerate(self.arms):
            rec[f"share[{a}]"] = float(evaluation.shares[i, k])
        return rec

    def record(
        self,
        trial_index: int | None,
        name: str,
        kind: str,
        parameters: Mapping[str, float] | None,
        evaluation: PolicyEvaluation,
        i: int,
        node: str | None,
    ) -> dict[str, Any]:
        """Record policy ``i`` of ``evaluation`` (replacing a record of the same name)."""
        rec = self.make_record(trial_index, name, kind, parameters, evaluation, i, node)
        self.records = [r for r in self.records if r["policy"] != name] + [rec]
        return rec

    def extend(self, records: Sequence[dict[str, Any]]) -> None:
        """Add many new records at once (names must be new: the dense design's)."""
        names = {r["policy"] for r in self.records}
        clash = [r["policy"] for r in records if r["policy"] in names]
        if clash:
            raise ConfigurationError(f"policies already recorded: {clash[:5]}")
        self.records.extend(records)

    def find(self, name: str) -> dict[str, Any] | None:
        """The record of the policy called ``name`` (None when there is none)."""
        return next((r for r in self.records if r["policy"] == name), None)

    @property
    def n_tuned(self) -> int:
        """Tuned policies recorded (baselines and attached arms excluded)."""
        return sum(r["kind"] == "tuned" for r in self.records)

    def feasible(self, rec: Mapping[str, Any]) -> bool:
        """Whether a record (or a row of :meth:`frame`) meets the guardrails."""
        return meets_bounds(rec, self.guardrail_bounds, self.outcomes, self.directions)

    def frame(self) -> pd.DataFrame:
        """Every record as a row: parameters as columns, plus ``feasible``."""
        return self.frame_of(self.records)

    def frame_of(self, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Rows for ``records``: parameters as columns, plus ``feasible``."""
        if not records:
            return pd.DataFrame()
        rows = []
        for r in records:
            row = {k: v for k, v in r.items() if k != "parameters"}
            for p, v in (r["parameters"] or {}).items():
                row[p] = v
            row["feasible"] = self.feasible(r)
            rows.append(row)
        return pd.DataFrame(rows)

    def with_predictions(
        self,
        frame: pd.DataFrame,
        parameter_names: Sequence[str],
        predict: Callable[[list[dict[str, float]]], list[dict[str, tuple[float, float]]]],
    ) -> pd.DataFrame:
        """``frame`` (rows of :meth:`frame`) with the tuned policies' values and standard
        errors replaced by a model's and feasibility recomputed; other rows keep theirs.

        ``predict(points)`` maps parameterizations to, per point, outcome -> (mean, standard
        error); outcomes it leaves out keep their observed values.
        """
        tuned = frame["kind"] == "tuned"
        points = [{p: float(frame.loc[i, p]) for p in parameter_names} for i in frame.index[tuned]]
        if not points:
            return frame
        preds = predict(points)
        frame = frame.copy()
        for row, pred in zip(frame.index[tuned], preds, strict=True):
            for o, (mean, se) in pred.items():
                frame.loc[row, o] = float(mean)
                frame.loc[row, f"{o}_se"] = float(se)
        frame["feasible"] = [self.feasible(r) for r in frame.to_dict("records")]
        return frame

    # ------------------------------------------------------------------ objectives
    def objective_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The objective values of ``frame``'s rows in maximization space, shape (P, M)."""
        return to_max_space(frame[self.objectives].to_numpy(), self.objective_directions)

    def tuned_objectives(self) -> tuple[np.ndarray, np.ndarray]:
        """Objective values (P, M) of the tuned policies in order, and their feasibility (P,)."""
        ev = self.frame()
        if ev.empty:
            return np.zeros((0, len(self.objectives))), np.zeros(0, dtype=bool)
        tuned = ev[ev["kind"] == "tuned"]
        return self.objective_matrix(tuned), tuned["feasible"].to_numpy(dtype=bool)

    def hypervolume(self, upto: int | None = None) -> float:
        """Observed hypervolume of the feasible tuned policies (first ``upto``) vs control."""
        Y, ok = self.tuned_objectives()
        Y, ok = Y[:upto], ok[:upto]
        return hypervolume(Y[ok], self.reference_point)

    def hypervolume_trace(self) -> pd.DataFrame:
        """Observed hypervolume after tuned evaluations: columns evaluations, hypervolume.

        One row per evaluation after the dense design; inside the design (evaluated in one
        go) only at powers of two and at its end."""
        Y, ok = self.tuned_objectives()
        n = len(Y)
        n_design = sum(r["kind"] == "tuned" and r["node"] == "design" for r in self.records)
        marks = {2**i for i in range(n_design.bit_length()) if 2**i <= n_design}
        marks |= {n_design} - {0}
        marks |= set(range(n_design + 1, n + 1))
        at = sorted(marks)
        return pd.DataFrame(
            {
                "evaluations": np.asarray(at, dtype=np.int64),
                "hypervolume": [hypervolume(Y[:i][ok[:i]], self.reference_point) for i in at],
            }
        )

    def frontier(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The Pareto frontier of the objectives among ``frame``'s feasible rows, sorted by the
        first objective (best first)."""
        frame = frame[frame["feasible"]]
        front = frame[pareto_mask(self.objective_matrix(frame))].copy()
        first = self.objectives[0]
        ascending = self.objective_directions[0] == "min"
        return front.sort_values(first, ascending=ascending).reset_index(drop=True)

    # ------------------------------------------------------------------ candidates
    def select_candidates(
        self,
        k: int,
        *,
        frame: pd.DataFrame | None = None,
        include_baselines: bool = False,
        reference_point: Any = "control",
    ) -> pd.DataFrame:
        """The k frontier policies whose set has the largest hypervolume (see
        ``OfflineTuner.select_online_candidates``) among the rows of ``frame`` (default:
        :meth:`frame`); the selected rows plus ``subset_hypervolume``, ``reference`` and
        ``same_as`` (the baseline a policy sending >= 99% of units to one arm is labelled
        as; such policies are not candidates). ``attrs["note"]`` says why when fewer than k
        are returned."""
        if int(k) < 1:
            raise ConfigurationError(f"'k' must be a positive integer; got {k!r}")
        ev = self.frame() if frame is None else frame
        ev = ev[ev["feasible"]] if not ev.empty else ev
        if not include_baselines and not ev.empty:
            ev = ev[ev["kind"] != "baseline"]
        if ev.empty:
            raise NotFittedError("no feasible tuned policies yet: call run(budget)")
        ev = ev.assign(same_as=self.same_as(ev))
        collapsed = ev["same_as"].notna() & (ev["kind"] != "baseline")
        ev = ev[~collapsed]
        if ev.empty:
            raise NotFittedError(
                f"every feasible policy sends >= {ONE_ARM_SHARE:.0%} of units to one arm: "
                "no personalized candidate (use include_baselines=True for the baselines)"
            )
        Y_all = self.objective_matrix(ev)
        ref, given = self._reference(Y_all, reference_point)
        # the frontier among the eligible policies (baselines may dominate them all)
        idx, ref, label = select_candidates(Y_all, ref, int(k))
        out = ev.iloc[idx].copy()
        out["subset_hypervolume"] = hypervolume(self.objective_matrix(out), ref)
        out["reference"] = given if label == "given" else _NADIR_LABEL
        out = out.reset_index(drop=True)
        if len(out) < k:
            out.attrs["note"] = _shortfall(k, len(out), int(collapsed.sum()))
            warnings.warn(out.attrs["note"], stacklevel=3)
        return out

    def same_as(self, frame: pd.DataFrame) -> pd.Series:
        """Per row of ``frame``: ``"all:<arm>"`` when the policy sends at least
        ``ONE_ARM_SHARE`` of units to one arm, else None."""
        shares = frame[[f"share[{a}]" for a in self.arms]].to_numpy(dtype=float)
        top = shares.argmax(axis=1)
        label = np.array([f"all:{self.arms[t]}" for t in top], dtype=object)
        label[shares.max(axis=1) < ONE_ARM_SHARE] = None
        return pd.Series(label, index=frame.index, dtype=object)

    def _reference(self, Y: np.ndarray, reference_point: Any) -> tuple[np.ndarray, str]:
        """The reference point (maximization space, shape (M,)) for candidate selection among
        the rows of ``Y`` (P, M), and its label."""
        if isinstance(reference_point, str):
            if reference_point not in ("control", "nadir"):
                raise ConfigurationError(
                    f"'reference_point' must be 'control', 'nadir' or values per objective; "
                    f"got {reference_point!r}"
                )
            if reference_point == "control":
                return self.reference_point, reference_point
            low = Y[pareto_mask(Y)].min(axis=0)
            return low - 1e-9 * (1.0 + np.abs(low)), reference_point
        ref = to_max_space(np.asarray(reference_point, dtype=float), self.objective_directions)
        if ref.shape != (len(self.objectives),):
            raise ConfigurationError(
                f"'reference_point' needs one value per objective {self.objectives}"
            )
        return ref, "given"
