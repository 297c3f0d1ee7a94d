"""OnlineTrials: the online trial state machine, plain JSON and no Ax.

A trial is a JSON record::

    {"trial_id": 3, "parameters": {name: value}, "source": "offline:trial_12" | "manual" |
     "<acquisition>", "status": "pending" | "running" | "completed" | "failed" | "abandoned",
     "metrics": {metric: {"mean", "sem", "n"}}, "offline": {outcome: [value, se]},
     "late": true (only for a result that arrived after the trial was given up on)}

Statuses move ``pending`` (generated, not handed out) -> ``running`` (handed out) ->
``completed`` (every objective and constraint metric reported) or ``failed`` / ``abandoned``.
Results may arrive in parts (merged per metric) and late: an abandoned or failed trial that
gets all its results completes. A metric once reported never changes
(:class:`~pex_tuner.errors.ResultConflictError`).

The observed frontier and the offline / online calibration are computed from the records.
:class:`~pex_tuner.tuning.online.OnlineTuner` adds the Ax model on top.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import InputDataError, ResultConflictError
from pex_tuner.tuning.frontier import pareto_mask, to_max_space

__all__ = [
    "TRIAL_STATUSES",
    "OnlineTrials",
    "generation_blocker",
    "given_up",
    "merge_metrics",
    "parse_metrics",
]

TRIAL_STATUSES = ("pending", "running", "completed", "failed", "abandoned")
_CALIBRATION_COLUMNS = ["trial_id", "metric", "offline", "offline_se", "online", "online_sem"]
_ASSOCIATION_COLUMNS = ["metric", "n_policies", "pearson_r", "spearman_rho", "slope"]


def parse_metrics(metrics: Any) -> dict[str, dict[str, float]]:
    """Validate ``{name: {"mean": m, "sem": s, "n": n}}``; returns floats (n may be absent).

    Raises InputDataError naming the metric and field that is wrong.
    """
    if not isinstance(metrics, Mapping) or not metrics:
        raise InputDataError(
            "'metrics' must be a non-empty object {name: {'mean': m, 'sem': s, 'n': n}}"
        )
    out: dict[str, dict[str, float]] = {}
    for name, v in metrics.items():
        if not isinstance(name, str) or not name:
            raise InputDataError(f"metric names must be non-empty strings; got {name!r}")
        if not isinstance(v, Mapping):
            raise InputDataError(f"metric '{name}' must be an object with 'mean', 'sem' and 'n'")
        rec: dict[str, float] = {}
        for field in ("mean", "sem", "n"):
            x = v.get(field)
            if x is None:
                if field == "n":
                    continue
                raise InputDataError(f"metric '{name}' is missing '{field}'")
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                raise InputDataError(
                    f"metric '{name}': '{field}' must be a finite number; got {x!r}"
                )
            rec[field] = float(x)
        if rec["sem"] < 0:
            raise InputDataError(f"metric '{name}': 'sem' must be >= 0; got {rec['sem']}")
        if "n" in rec and (rec["n"] < 1 or rec["n"] != int(rec["n"])):
            raise InputDataError(f"metric '{name}': 'n' must be a positive integer; got {rec['n']}")
        out[name] = rec
    return out


def merge_metrics(
    trial: Mapping[str, Any], metrics: Mapping[str, Any], required: Iterable[str]
) -> dict[str, Any]:
    """A copy of the trial record with ``metrics`` merged in, completed when every
    ``required`` metric is in (a pure function: the service applies it to database rows).

    Raises InputDataError for malformed metrics and ResultConflictError when a metric already
    reported has a different value.
    """
    parsed = parse_metrics(metrics)
    t = copy.deepcopy(dict(trial))
    for name, rec in parsed.items():
        old = t["metrics"].get(name)
        if old is not None and old != rec:
            raise ResultConflictError(
                f"trial {t['trial_id']} already has a different result for metric '{name}' "
                f"({old}); results are immutable once reported"
            )
    was_failed = t["status"] in ("failed", "abandoned")
    t["metrics"].update(parsed)
    if t["status"] != "completed" and all(m in t["metrics"] for m in required):
        if was_failed:
            # a late result for a trial given up on: Ax cannot reopen it, so the model gets
            # the observation as a new trial of the same policy
            t["late"] = True
        t["status"] = "completed"
    return t


def given_up(trial: Mapping[str, Any], status: str) -> dict[str, Any]:
    """A copy of the trial record marked ``failed`` or ``abandoned``; ResultConflictError for a
    completed trial."""
    if trial["status"] == "completed":
        raise ResultConflictError(f"trial {trial['trial_id']} is already completed")
    return {**trial, "status": status}


def generation_blocker(counts: Mapping[str, int], min_completed: int) -> str | None:
    """Why a new batch cannot be generated with these trial counts per status (None when it
    can): trials still pending or running, or fewer than ``min_completed`` completed."""
    pending, running = counts.get("pending", 0), counts.get("running", 0)
    completed = counts.get("completed", 0)
    if pending:
        return f"{pending} generated trials are still waiting to be handed out"
    if running:
        return f"waiting for results of {running} running trials"
    if completed < min_completed:
        return f"the model needs results of at least {min_completed} trials; {completed} completed"
    return None


class OnlineTrials:
    """Online trials and their results (see the module docstring).

    Args:
        bounds: parameter name -> (low, high): added trials must lie inside.
        objectives: metric -> ``"max"`` or ``"min"``.
        constraints: metric -> (``">="`` or ``"<="``, bound), absolute bounds.
        min_completed: completed trials needed before a new batch can be generated.
    """

    def __init__(
        self,
        *,
        bounds: Mapping[str, tuple[float, float]],
        objectives: Mapping[str, str],
        constraints: Mapping[str, tuple[str, float]],
        min_completed: int,
    ) -> None:
        self.bounds = {k: (float(a), float(b)) for k, (a, b) in bounds.items()}
        self.objectives = dict(objectives)
        self.constraints = {k: (str(v[0]), float(v[1])) for k, v in constraints.items()}
        self.min_completed = int(min_completed)
        self.trials: dict[int, dict[str, Any]] = {}

    @property
    def required_metrics(self) -> list[str]:
        """The metrics a trial needs to complete: objectives, then constraints."""
        return [*self.objectives, *self.constraints]

    # ------------------------------------------------------------------ transitions
    def add_trial(
        self,
        parameters: Mapping[str, float],
        *,
        source: str = "manual",
        offline: Mapping[str, tuple[float, float]] | None = None,
    ) -> int:
        """Add a policy to test online (status ``pending``); returns its trial id."""
        names = set(self.bounds)
        if set(parameters) != names:
            raise InputDataError(
                f"parameters must be exactly {sorted(names)}; got {sorted(parameters)}"
            )
        for k, v in parameters.items():
            lo, hi = self.bounds[k]
            if not lo - 1e-9 <= float(v) <= hi + 1e-9:
                raise InputDataError(f"parameter '{k}' = {v} is outside [{lo:.6g}, {hi:.6g}]")
        return self._new_trial(parameters, source, offline)

    def _new_trial(
        self,
        parameters: Mapping[str, float],
        source: str,
        offline: Mapping[str, tuple[float, float]] | None = None,
    ) -> int:
        tid = max(self.trials, default=-1) + 1
        self.trials[tid] = {
            "trial_id": tid,
            "parameters": {k: float(v) for k, v in parameters.items()},
            "source": source,
            "status": "pending",
            "metrics": {},
            "offline": {k: list(v) for k, v in (offline or {}).items()},
        }
        return tid

    def _trial(self, trial_id: int) -> dict[str, Any]:
        try:
            return self.trials[int(trial_id)]
        except (KeyError, ValueError, TypeError):
            raise InputDataError(f"no trial {trial_id!r} in this run") from None

    def mark_running(self, trial_id: int) -> None:
        """A pending trial was handed out."""
        t = self._trial(trial_id)
        if t["status"] == "pending":
            t["status"] = "running"

    def merged(self, trial_id: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The trial record as it would be after reporting ``metrics``, without changing it
        (the service stores it first and applies it after the commit).

        Raises InputDataError for malformed metrics and ResultConflictError when a metric
        already reported has a different value.
        """
        return merge_metrics(self._trial(trial_id), metrics, self.required_metrics)

    def report(self, trial_id: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Merge (part of) a trial's online results; complete it when all metrics are in.

        Returns the trial; errors as :meth:`merged`.
        """
        t = self._trial(trial_id)
        t.update(self.merged(trial_id, metrics))
        return t

    def mark_failed(self, trial_id: int, *, abandoned: bool = False) -> None:
        """Mark a trial failed (it broke) or abandoned (given up on; late results still count)."""
        t = self._trial(trial_id)
        t.update(given_up(t, "abandoned" if abandoned else "failed"))

    def set_offline(self, trial_id: int, offline: Mapping[str, tuple[float, float]]) -> None:
        """Record a trial's offline OPE estimates (value, se per outcome) for calibration."""
        rec = {k: [float(v[0]), float(v[1])] for k, v in offline.items()}
        self._trial(trial_id)["offline"] = rec

    def update_trials(self, trials: Iterable[Mapping[str, Any]]) -> None:
        """Replace or add trials from their JSON records (copies)."""
        for t in trials:
            self.trials[int(t["trial_id"])] = copy.deepcopy(dict(t))

    # ------------------------------------------------------------------ status
    def status_counts(self) -> dict[str, int]:
        """Number of trials per status (every status, in ``TRIAL_STATUSES`` order)."""
        counts = dict.fromkeys(TRIAL_STATUSES, 0)
        for t in self.trials.values():
            counts[t["status"]] += 1
        return counts

    def generation_blocker(self) -> str | None:
        """Why a new batch cannot be generated now (None when it can)."""
        return generation_blocker(self.status_counts(), self.min_completed)

    # ------------------------------------------------------------------ results
    def results(self) -> pd.DataFrame:
        """One row per trial: id, source, status, parameters, mean / sem / n per metric, and
        the offline OPE value / se where known (``<outcome>_offline``)."""
        rows = []
        for tid, t in sorted(self.trials.items()):
            row: dict[str, Any] = {"trial_id": tid, "source": t["source"], "status": t["status"]}
            row.update(t["parameters"])
            for m, rec in t["metrics"].items():
                row[m] = rec["mean"]
                row[f"{m}_sem"] = rec["sem"]
                row[f"{m}_n"] = rec.get("n")
            for o, (v, se) in t["offline"].items():
                row[f"{o}_offline"] = v
                row[f"{o}_offline_se"] = se
            rows.append(row)
        return pd.DataFrame(rows)

    def _feasible(self, t: Mapping[str, Any]) -> bool:
        for m, (op, b) in self.constraints.items():
            v = t["metrics"][m]["mean"]
            if (op == ">=" and v < b) or (op == "<=" and v > b):
                return False
        return True

    def pareto(self) -> pd.DataFrame:
        """The observed online Pareto frontier of completed, feasible trials (rows of
        :meth:`results`)."""
        done = [t for t in self.trials.values() if t["status"] == "completed" and self._feasible(t)]
        if not done:
            return pd.DataFrame(columns=["trial_id", *self.objectives])
        objs = list(self.objectives)
        Y = to_max_space(
            np.array([[t["metrics"][m]["mean"] for m in objs] for t in done]),
            tuple(self.objectives.values()),
        )
        keep = {done[i]["trial_id"] for i in np.flatnonzero(pareto_mask(Y))}
        res = self.results()
        return res[res["trial_id"].isin(keep)].reset_index(drop=True)

    def calibration(self) -> pd.DataFrame:
        """Offline OPE vs online result for every metric measured both ways.

        Returns one row per (trial, metric): ``offline``, ``offline_se``, ``online``,
        ``online_sem``; ``attrs["association"]`` holds, per metric, the number of policies,
        Pearson and Spearman correlations and the least-squares slope of online on offline.
        """
        rows = []
        for tid, t in sorted(self.trials.items()):
            for m, (v, se) in t["offline"].items():
                if m in t["metrics"]:
                    rec = t["metrics"][m]
                    rows.append(
                        {
                            "trial_id": tid,
                            "metric": m,
                            "offline": v,
                            "offline_se": se,
                            "online": rec["mean"],
                            "online_sem": rec["sem"],
                        }
                    )
        table = pd.DataFrame(rows, columns=_CALIBRATION_COLUMNS)
        table.attrs["association"] = _association(table)
        return table


def _association(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric of a calibration table: policies, Pearson and Spearman correlations and the
    slope of online on offline (NaN below 3 policies or without spread)."""
    from scipy import stats

    assoc = []
    for m, g in table.groupby("metric", sort=False):
        row: dict[str, Any] = {"metric": m, "n_policies": len(g)}
        if len(g) >= 3 and g["offline"].std() > 0 and g["online"].std() > 0:
            row["pearson_r"] = float(stats.pearsonr(g["offline"], g["online"])[0])
            row["spearman_rho"] = float(stats.spearmanr(g["offline"], g["online"])[0])
            row["slope"] = float(np.polyfit(g["offline"], g["online"], 1)[0])
        else:
            row.update(pearson_r=np.nan, spearman_rho=np.nan, slope=np.nan)
        assoc.append(row)
    return pd.DataFrame(assoc, columns=_ASSOCIATION_COLUMNS)
