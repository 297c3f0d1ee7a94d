"""OnlineTuner: multi-objective Bayesian optimization on online results (PEX paper, 2.2).

Offline OPE is biased in ways that are hard to predict, and the metrics that matter most (a
long-term outcome, say) are not in the logged data. So the candidates picked offline run as
online arms, and their online results drive the next batches:

1. ``OnlineTuner.from_offline(tuner_dir, n_candidates=k)`` reads a saved
   :class:`~pex_tuner.tuning.tuner.OfflineTuner`. Its hypervolume-selected candidates become the
   first online batch, and the offline results **narrow the search space**: each parameter's
   range becomes the bounding box of the offline Pareto frontier's parameters, widened on both
   sides by ``margin`` (default 25%) of the offline range and clipped to it. Policies far from
   the offline frontier are offline-dominated; online tuning refines around the frontier.
2. Results arrive per trial as ``{metric: {"mean", "sem", "n"}}``: any metric, including ones
   the offline OPE never saw. They may arrive in parts (merged per metric) and late; a trial is
   complete when every objective and constraint metric has been reported. Trials can be marked
   failed or abandoned.
3. ``generate(q)`` asks Ax for q new policies with qLogNParEGO (qLogNEHVI as an option) on the
   completed online results; the offline candidates are the model's initial data, so no Sobol
   points are spent online.

The tuner's state is plain JSON (``to_state`` / ``from_state``) and the Ax client is a cache
rebuilt from it (trials attached in order, results replayed): the service stores the state in
its database and the model is never the source of truth.

Calibration (PEX paper, Figure 2 right): for policies measured both ways, the offline OPE
estimate against the online result, per metric, with the correlation reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.errors import (
    ConfigurationError,
    InputDataError,
    NotFittedError,
    ResultConflictError,
)
from pex_tuner.files import MODEL_FILE
from pex_tuner.tuning.frontier import pareto_mask, select_candidates, to_max_space
from pex_tuner.tuning.metric import metric_names_for
from pex_tuner.tuning.space import PolicySpace

__all__ = ["TRIAL_STATUSES", "OnlineTuner", "narrow_space", "parse_metrics"]

TRIAL_STATUSES = ("pending", "running", "completed", "failed", "abandoned")
STATE_VERSION = 1


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


def narrow_space(
    space: PolicySpace, frontier_params: list[dict[str, float]], margin: float = 0.25
) -> dict[str, tuple[float, float]]:
    """Bounds around the offline frontier: bounding box of ``frontier_params`` widened by
    ``margin`` times each parameter's full range on both sides, clipped to the full range.
    Fixed parameters of the space are unaffected; with no frontier the full bounds return."""
    full = space.bounds()
    if not frontier_params:
        return dict(full)
    out = {}
    for name, (lo, hi) in full.items():
        vals = np.array([p[name] for p in frontier_params], dtype=float)
        width = hi - lo
        a = max(lo, float(vals.min()) - margin * width)
        b = min(hi, float(vals.max()) + margin * width)
        if b - a < 1e-9 * max(1.0, width):  # a degenerate box: keep a sliver around it
            a, b = max(lo, a - 0.05 * width), min(hi, b + 0.05 * width)
        out[name] = (a, b)
    return out


def _offline_state(tuner_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    path = Path(tuner_dir)
    if (path / "tuner" / "tuner.json").exists():  # the output folder of `pex-tuner tune`
        path = path / "tuner"
    for f in ("tuner.json", MODEL_FILE):
        if not (path / f).exists():
            raise InputDataError(
                f"'{tuner_dir}' is not a saved offline tuner: '{f}' is missing (save one with "
                "OfflineTuner.save(DIR) or `pex-tuner tune --out DIR`)"
            )
    state = json.loads((path / "tuner.json").read_text())
    for key in ("feature_schema", "reference_point"):
        if key not in state:
            raise InputDataError(
                f"the saved tuner in '{path}' predates online tuning (no '{key}'); load it with "
                "OfflineTuner.load(DIR, data) and save it again"
            )
    return path, state


class OnlineTuner:
    """The online tuning loop over linear-utility policies (see the module docstring).

    Args:
        space: the policy space (arms, outcomes, fixed first weight) of the offline tuner.
        bounds: parameter name -> (low, high) searched online (see :func:`narrow_space`).
        objectives: online metric -> ``"max"`` or ``"min"``; may name metrics the offline
            data never had (``"long_term"``).
        constraints: online metric -> (``">="`` or ``"<="``, bound), absolute bounds.
        batch_size: q, trials per generated batch.
        acquisition: ``"qLogNParEGO"`` (default) or ``"qLogNEHVI"``.
        min_completed: completed trials needed before the model generates (>= 2).
        schema: feature schema (a dict from ``FeatureSchema.to_dict``) for artifacts.
        model_sha256: hash of the CATE model file the policies act on.
    """

    def __init__(
        self,
        *,
        space: PolicySpace,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        objectives: Mapping[str, str],
        constraints: Mapping[str, tuple[str, float]] | None = None,
        batch_size: int = 4,
        acquisition: str = "qLogNParEGO",
        min_completed: int = 2,
        schema: Mapping[str, Any] | None = None,
        model_sha256: str | None = None,
    ) -> None:
        if not objectives:
            raise ConfigurationError("'objectives' needs at least one metric")
        for m, d in objectives.items():
            if d not in ("max", "min"):
                raise ConfigurationError(
                    f"objective '{m}' direction must be 'max' or 'min'; got {d!r}"
                )
        constraints = {k: (str(v[0]), float(v[1])) for k, v in (constraints or {}).items()}
        for m, (op, _) in constraints.items():
            if op not in (">=", "<="):
                raise ConfigurationError(f"constraint '{m}' must use '>=' or '<='; got {op!r}")
            if m in objectives:
                raise ConfigurationError(f"'{m}' cannot be both an objective and a constraint")
        if acquisition not in ("qLogNParEGO", "qLogNEHVI"):
            raise ConfigurationError(
                f"online 'acquisition' must be 'qLogNParEGO' or 'qLogNEHVI'; got {acquisition!r}"
            )
        if len(objectives) < 2:
            raise ConfigurationError(f"{acquisition} needs at least two objectives")
        if int(batch_size) < 1 or int(min_completed) < 2:
            raise ConfigurationError("'batch_size' must be >= 1 and 'min_completed' >= 2")
        full = space.bounds()
        bounds = dict(full if bounds is None else bounds)
        if set(bounds) != set(full):
            raise ConfigurationError(f"'bounds' must cover exactly {sorted(full)}")
        self.space = space
        self.bounds = {k: (float(a), float(b)) for k, (a, b) in bounds.items()}
        self.objectives = dict(objectives)
        self.constraints = constraints
        self.batch_size = int(batch_size)
        self.acquisition = acquisition
        self.min_completed = int(min_completed)
        self.schema = dict(schema) if schema is not None else None
        self.model_sha256 = model_sha256
        self.metric_names = metric_names_for([*self.objectives, *self.constraints])
        self.trials: dict[int, dict[str, Any]] = {}
        self._client: Any = None
        self._ax_index: dict[int, int] = {}  # trial id -> Ax trial index
        self._ax_status: dict[int, str] = {}  # trial id -> status Ax has seen

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_offline(
        cls,
        tuner_dir: str | Path,
        *,
        n_candidates: int = 4,
        objectives: Mapping[str, str] | None = None,
        constraints: Mapping[str, tuple[str, float]] | None = None,
        margin: float = 0.25,
        batch_size: int | None = None,
        acquisition: str = "qLogNParEGO",
    ) -> OnlineTuner:
        """Start from a saved offline tuner (its directory, or the ``tune`` output folder).

        The first ``n_candidates`` trials (status ``pending``) are the offline candidates with
        the largest joint hypervolume; ``objectives`` default to the offline objectives (add
        online-only metrics here, e.g. ``{"engagement": "max", ..., "long_term": "max"}``);
        ``constraints`` default to the offline guardrails as absolute bounds.
        """
        from pex_tuner.files import MODEL_FILE, sha256_file

        path, state = _offline_state(tuner_dir)
        space = PolicySpace.from_dict(state["space"])
        cfg = state["config"]
        outs, dirs = list(space.outcomes), list(space.directions)
        if objectives is None:
            objectives = {o: dirs[outs.index(o)] for o in cfg["objectives"]}
        if constraints is None:
            constraints = {
                g: (">=" if dirs[outs.index(g)] == "max" else "<=", b)
                for g, b in state.get("guardrail_bounds", {}).items()
            }
        records = [r for r in state["records"] if r["kind"] == "tuned" and r["parameters"]]
        if not records:
            raise NotFittedError(f"the offline tuner in '{path}' has no tuned policies yet")
        off_obj = cfg["objectives"]
        off_dirs = tuple(dirs[outs.index(o)] for o in off_obj)
        from pex_tuner.tuning.tuner import meets_bounds

        guard = state.get("guardrail_bounds", {})
        feasible = [r for r in records if meets_bounds(r, guard, outs, dirs)]
        records = feasible or records
        Y = to_max_space(np.array([[r[o] for o in off_obj] for r in records]), off_dirs)
        front = [records[i] for i in np.flatnonzero(pareto_mask(Y))]
        bounds = narrow_space(space, [r["parameters"] for r in front], margin)
        idx, _, _ = select_candidates(
            Y, np.asarray(state["reference_point"], dtype=float), int(n_candidates)
        )
        tuner = cls(
            space=space,
            bounds=bounds,
            objectives=objectives,
            constraints=constraints,
            batch_size=batch_size or max(2, int(n_candidates)),
            acquisition=acquisition,
            schema=state["feature_schema"],
            model_sha256=sha256_file(path / MODEL_FILE) if (path / MODEL_FILE).exists() else None,
        )
        tuner.offline_dir = str(path)
        for i in idx:
            r = records[i]
            offline = {o: (float(r[o]), float(r[f"{o}_se"])) for o in outs}
            params = {k: float(np.clip(v, *bounds[k])) for k, v in r["parameters"].items()}
            tuner.add_trial(params, source=f"offline:{r['policy']}", offline=offline)
        return tuner

    # ------------------------------------------------------------------ trials
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
        tid = len(self.trials)
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

    @property
    def required_metrics(self) -> list[str]:
        return [*self.objectives, *self.constraints]

    def mark_running(self, trial_id: int) -> None:
        t = self._trial(trial_id)
        if t["status"] == "pending":
            t["status"] = "running"

    def merged(self, trial_id: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The trial record as it would be after reporting ``metrics``, without changing it
        (the service stores it first and applies it after the commit).

        Raises InputDataError for malformed metrics and ResultConflictError when a metric
        already reported has a different value.
        """
        import copy

        parsed = parse_metrics(metrics)
        t = copy.deepcopy(self._trial(trial_id))
        for name, rec in parsed.items():
            old = t["metrics"].get(name)
            if old is not None and old != rec:
                raise ResultConflictError(
                    f"trial {trial_id} already has a different result for metric '{name}' "
                    f"({old}); results are immutable once reported"
                )
        was_failed = t["status"] in ("failed", "abandoned")
        t["metrics"].update(parsed)
        if t["status"] != "completed" and all(m in t["metrics"] for m in self.required_metrics):
            if was_failed:
                # a late result for a trial given up on: Ax cannot reopen it, so the model gets
                # the observation as a new trial of the same policy
                t["late"] = True
            t["status"] = "completed"
        return t

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
        if t["status"] == "completed":
            raise ResultConflictError(f"trial {trial_id} is already completed")
        t["status"] = "abandoned" if abandoned else "failed"

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TRIAL_STATUSES, 0)
        for t in self.trials.values():
            counts[t["status"]] += 1
        return counts

    def generation_blocker(self) -> str | None:
        """Why a new batch cannot be generated now (None when it can)."""
        c = self.status_counts()
        if c["pending"]:
            return f"{c['pending']} generated trials are still waiting to be handed out"
        if c["running"]:
            return f"waiting for results of {c['running']} running trials"
        if c["completed"] < self.min_completed:
            return (
                f"the model needs results of at least {self.min_completed} trials; "
                f"{c['completed']} completed"
            )
        return None

    # ------------------------------------------------------------------ Ax
    @property
    def client(self) -> Any:
        """The Ax Client, rebuilt from the trials on first use."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        from pex_tuner.tuning.generation import make_model_strategy
        from pex_tuner.tuning.tuner import _quiet_ax, make_ax_client

        names = self.metric_names
        with _quiet_ax():
            client = make_ax_client(
                "pex_tuner_online",
                self.bounds,
                {names[m]: d for m, d in self.objectives.items()},
                [(names[m], op, b) for m, (op, b) in self.constraints.items()],
                make_model_strategy(self.acquisition),
                log_scaled=self.space.log_scaled,
            )
        self._ax_index, self._ax_status = {}, {}
        return client

    def _sync(self) -> None:
        """Bring the Ax experiment up to date with the trials (attach new ones, replay results
        and failures). Reports never touch Ax, so they stay fast; the model sees them here."""
        from pex_tuner.tuning.tuner import _quiet_ax

        client = self.client
        for tid in sorted(self.trials):
            t = self.trials[tid]
            if tid not in self._ax_index:
                with _quiet_ax():
                    self._ax_index[tid] = client.attach_trial(parameters=dict(t["parameters"]))
                self._ax_status[tid] = "running"
            if self._ax_status.get(tid) == t["status"] or t["status"] in ("pending", "running"):
                continue
            if t["status"] == "completed":
                self._complete_in_ax(tid)
            else:
                self._mark_in_ax(tid)
            self._ax_status[tid] = t["status"]

    def _raw_data(self, tid: int) -> dict[str, tuple[float, float]]:
        m = self.trials[tid]["metrics"]
        return {self.metric_names[k]: (m[k]["mean"], m[k]["sem"]) for k in self.required_metrics}

    def _complete_in_ax(self, tid: int) -> None:
        from pex_tuner.tuning.tuner import _quiet_ax

        with _quiet_ax():
            idx = self._ax_index[tid]
            status = self._client._experiment.trials[idx].status
            if status.is_terminal:  # late result for an abandoned / failed trial
                idx = self._client.attach_trial(parameters=dict(self.trials[tid]["parameters"]))
                self._ax_index[tid] = idx
            self._client.complete_trial(idx, raw_data=self._raw_data(tid))

    def _mark_in_ax(self, tid: int) -> None:
        from pex_tuner.tuning.tuner import _quiet_ax

        with _quiet_ax():
            idx = self._ax_index[tid]
            if self.trials[tid]["status"] == "abandoned":
                self._client.mark_trial_abandoned(idx)
            else:
                self._client.mark_trial_failed(idx)

    def generate(self, q: int | None = None) -> list[int]:
        """Generate a batch of q (default batch_size) new trials with the acquisition.

        Raises NotFittedError with the reason when the model cannot generate yet.
        """
        from pex_tuner.tuning.tuner import _quiet_ax

        blocker = self.generation_blocker()
        if blocker is not None:
            raise NotFittedError(f"cannot generate a batch yet: {blocker}")
        q = int(q or self.batch_size)
        self._sync()
        out: list[int] = []
        with _quiet_ax():
            got = self.client.get_next_trials(max_trials=q)
        for idx, params in sorted(got.items()):
            tid = len(self.trials)
            self.trials[tid] = {
                "trial_id": tid,
                "parameters": {k: float(v) for k, v in params.items()},
                "source": self.acquisition,
                "status": "pending",
                "metrics": {},
                "offline": {},
            }
            self._ax_index[tid] = idx
            self._ax_status[tid] = "running"
            out.append(tid)
        return out

    def acquisition_in_use(self) -> Any:
        """The BoTorch acquisition class of the generator (after a generation)."""
        gs = self.client._generation_strategy
        spec = gs.current_node.generator_specs[0]
        adapter = spec._fitted_adapter
        if adapter is not None and hasattr(adapter.generator, "botorch_acqf_class"):
            return adapter.generator.botorch_acqf_class
        return spec.generator_kwargs.get("botorch_acqf_class")

    # ------------------------------------------------------------------ policies
    def policy(self, trial_id: int) -> Any:
        t = self._trial(trial_id)
        return self.space.to_policy(t["parameters"], name=f"online_{int(trial_id)}")

    def artifact_document(self, trial_id: int, *, model_url: str | None = None) -> dict[str, Any]:
        """The policy artifact of a trial as a JSON document (what ``write_artifact`` writes):
        the policy, arms, outcomes, feature schema and the model reference (file name, SHA-256
        and, when served, the URL to fetch it from)."""
        from pex_tuner.files import MODEL_FILE
        from pex_tuner.policies.artifact import artifact_document

        if self.schema is None:
            raise NotFittedError("this online tuner has no feature schema; artifacts need one")
        model: dict[str, Any] = {"file": MODEL_FILE, "sha256": self.model_sha256}
        if model_url:
            model["url"] = model_url
        return artifact_document(
            self.policy(trial_id),
            schema=self.schema,
            model_ref=model,
            parameters=dict(self._trial(trial_id)["parameters"]),
        )

    def load_model(self) -> Any:
        """The fitted CateModel of the offline tuner (from its directory; cached)."""
        import joblib

        from pex_tuner.files import MODEL_FILE, sha256_file

        if getattr(self, "_model", None) is None:
            src = Path(getattr(self, "offline_dir", "")) / MODEL_FILE
            if not src.exists():
                raise NotFittedError(f"the model file '{src}' is not available")
            if self.model_sha256 and sha256_file(src) != self.model_sha256:
                raise InputDataError(f"model file '{src}' changed since the run started")
            self._model = joblib.load(src)
        return self._model

    def assigner(self, trial_id: int) -> Any:
        """An object with ``assign_frame(frame)`` (arm index per row of a feature frame) for
        the trial's policy, for simulators and in-process systems."""
        from pex_tuner.schema import FeatureSchema

        if self.schema is None:
            raise NotFittedError("this online tuner has no feature schema")
        return _FramePolicy(
            self.policy(trial_id), self.load_model(), FeatureSchema.from_dict(self.schema)
        )

    def write_artifact(self, trial_id: int, path: str | Path) -> Path:
        """Write the trial's artifact JSON with the model file copied beside it."""

        from pex_tuner.files import MODEL_FILE, atomic_copy, atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        target = path.parent / MODEL_FILE
        if not target.exists():
            src = Path(getattr(self, "offline_dir", "")) / MODEL_FILE
            if not src.exists():
                raise NotFittedError(f"the model file '{src}' is not available to copy")
            atomic_copy(src, target)
        atomic_write_text(path, json.dumps(self.artifact_document(trial_id), indent=2))
        return path

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

    def _feasible(self, t: dict[str, Any]) -> bool:
        for m, (op, b) in self.constraints.items():
            v = t["metrics"][m]["mean"]
            if (op == ">=" and v < b) or (op == "<=" and v > b):
                return False
        return True

    def pareto(self) -> pd.DataFrame:
        """The observed online Pareto frontier of completed, feasible trials."""
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

    def set_offline(self, trial_id: int, offline: Mapping[str, tuple[float, float]]) -> None:
        """Record a trial's offline OPE estimates (value, se per outcome) for calibration."""
        rec = {k: [float(v[0]), float(v[1])] for k, v in offline.items()}
        self._trial(trial_id)["offline"] = rec

    def calibration(self) -> pd.DataFrame:
        """Offline OPE vs online result for every metric measured both ways.

        Returns one row per (trial, metric): ``offline``, ``offline_se``, ``online``,
        ``online_sem``; ``attrs["association"]`` holds, per metric, the number of policies,
        Pearson and Spearman correlations and the least-squares slope of online on offline.
        """
        from scipy import stats

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
        table = pd.DataFrame(
            rows, columns=["trial_id", "metric", "offline", "offline_se", "online", "online_sem"]
        )
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
        table.attrs["association"] = pd.DataFrame(
            assoc, columns=["metric", "n_policies", "pearson_r", "spearman_rho", "slope"]
        )
        return table

    # ------------------------------------------------------------------ state
    def config_state(self) -> dict[str, Any]:
        """Everything but the trials, as JSON-able data."""
        return {
            "version": STATE_VERSION,
            "space": self.space.to_dict(),
            "bounds": {k: list(v) for k, v in self.bounds.items()},
            "objectives": self.objectives,
            "constraints": {k: list(v) for k, v in self.constraints.items()},
            "batch_size": self.batch_size,
            "acquisition": self.acquisition,
            "min_completed": self.min_completed,
            "schema": self.schema,
            "model_sha256": self.model_sha256,
            "offline_dir": getattr(self, "offline_dir", None),
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.config_state(), "trials": [self.trials[k] for k in sorted(self.trials)]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OnlineTuner:
        if state.get("version") != STATE_VERSION:
            raise InputDataError(
                f"online tuner state has version {state.get('version')!r}; expected {STATE_VERSION}"
            )
        tuner = cls(
            space=PolicySpace.from_dict(state["space"]),
            bounds={k: tuple(v) for k, v in state["bounds"].items()},
            objectives=state["objectives"],
            constraints={k: tuple(v) for k, v in state["constraints"].items()},
            batch_size=state["batch_size"],
            acquisition=state["acquisition"],
            min_completed=state["min_completed"],
            schema=state["schema"],
            model_sha256=state["model_sha256"],
        )
        tuner.update_trials(state.get("trials", []))
        if state.get("offline_dir"):
            tuner.offline_dir = state["offline_dir"]
        return tuner

    def update_trials(self, trials: Any) -> None:
        """Replace or add trials from their JSON records (copies); the model syncs on the next
        ``generate``."""
        import copy

        for t in trials:
            self.trials[int(t["trial_id"])] = copy.deepcopy(dict(t))

    def __repr__(self) -> str:
        c = self.status_counts()
        return (
            f"OnlineTuner(objectives={self.objectives}, constraints={self.constraints}, "
            f"trials={len(self.trials)} ({', '.join(f'{k} {v}' for k, v in c.items() if v)}))"
        )


class _FramePolicy:
    """A linear policy bound to its CATE model and feature schema: assigns from raw features."""

    def __init__(self, policy: Any, model: Any, schema: Any) -> None:
        self.policy, self.model, self.schema = policy, model, schema
        self.arms = policy.arms
        self.name = policy.name

    def assign_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm index per row, shape (n,)."""
        return self.policy.assign_index(self.model.predict(self.schema.encode(frame)))
