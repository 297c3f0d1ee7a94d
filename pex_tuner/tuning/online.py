"""OnlineTuner: multi-objective Bayesian optimization on online results (PEX paper, 2.2).

Offline OPE is biased in ways that are hard to predict, and the metrics that matter most (a
long-term outcome, say) are not in the logged data. So the candidates picked offline run as
online arms, and their online results drive the next batches:

1. ``OnlineTuner.from_offline(tuner_dir, n_candidates=k)`` reads a saved
   :class:`~pex_tuner.tuning.offline.OfflineTuner`. Its hypervolume-selected candidates become
   the first online batch, and the offline results **narrow the search space**: each parameter's
   range becomes the bounding box of the offline Pareto frontier's parameters, widened on both
   sides by ``margin`` (default 25%) of the offline range and clipped to it. Policies far from
   the offline frontier are offline-dominated; online tuning refines around the frontier.
2. Results arrive per trial as ``{metric: {"mean", "sem", "n"}}``: any metric, including ones
   the offline OPE never saw. They may arrive in parts (merged per metric) and late; a trial is
   complete when every objective and constraint metric has been reported. Trials can be marked
   failed or abandoned (the state machine: :mod:`pex_tuner.tuning.trials`).
3. ``generate(q)`` asks Ax for q new policies with qLogNParEGO (qLogNEHVI as an option) on the
   completed online results; the offline candidates are the model's initial data, so no Sobol
   points are spent online.

The tuner's state is plain JSON (``to_state`` / ``from_state``) and the Ax client is a cache
rebuilt from it (:class:`~pex_tuner.tuning.replay.AxReplay`: trials attached in order, results
replayed): the service stores the state in its database and the model is never the source of
truth.

Calibration (PEX paper, Figure 2 right): for policies measured both ways, the offline OPE
estimate against the online result, per metric, with the correlation reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.files import MODEL_FILE, atomic_copy, atomic_write_text, sha256_file
from pex_tuner.tuning.evaluations import ONE_ARM_SHARE, meets_bounds
from pex_tuner.tuning.frontier import pareto_mask, select_candidates, to_max_space
from pex_tuner.tuning.generation import make_model_strategy
from pex_tuner.tuning.metric import metric_names_for
from pex_tuner.tuning.replay import AxReplay
from pex_tuner.tuning.space import PolicySpace
from pex_tuner.tuning.storage import read_offline_state
from pex_tuner.tuning.trials import TRIAL_STATUSES, OnlineTrials, parse_metrics

__all__ = ["TRIAL_STATUSES", "OnlineTuner", "narrow_space", "parse_metrics"]

STATE_VERSION = 1
ONLINE_ACQUISITIONS = ("qLogNParEGO", "qLogNEHVI")


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


def _check_options(
    objectives: Mapping[str, str],
    constraints: Mapping[str, tuple[str, float]],
    acquisition: str,
    batch_size: int,
    min_completed: int,
) -> None:
    if not objectives:
        raise ConfigurationError("'objectives' needs at least one metric")
    for m, d in objectives.items():
        if d not in ("max", "min"):
            raise ConfigurationError(f"objective '{m}' direction must be 'max' or 'min'; got {d!r}")
    for m, (op, _) in constraints.items():
        if op not in (">=", "<="):
            raise ConfigurationError(f"constraint '{m}' must use '>=' or '<='; got {op!r}")
        if m in objectives:
            raise ConfigurationError(f"'{m}' cannot be both an objective and a constraint")
    if acquisition not in ONLINE_ACQUISITIONS:
        raise ConfigurationError(
            f"online 'acquisition' must be 'qLogNParEGO' or 'qLogNEHVI'; got {acquisition!r}"
        )
    if len(objectives) < 2:
        raise ConfigurationError(f"{acquisition} needs at least two objectives")
    if int(batch_size) < 1 or int(min_completed) < 2:
        raise ConfigurationError("'batch_size' must be >= 1 and 'min_completed' >= 2")


class OnlineTuner(OnlineTrials):
    """The online tuning loop over linear-utility policies (see the module docstring).

    The trials, their statuses and results are :class:`~pex_tuner.tuning.trials.OnlineTrials`
    (plain JSON); this class adds the policy space, the Ax model and policy artifacts.

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
        constraints = {k: (str(v[0]), float(v[1])) for k, v in (constraints or {}).items()}
        _check_options(objectives or {}, constraints, acquisition, batch_size, min_completed)
        full = space.bounds()
        bounds = dict(full if bounds is None else bounds)
        if set(bounds) != set(full):
            raise ConfigurationError(f"'bounds' must cover exactly {sorted(full)}")
        super().__init__(
            bounds=bounds,
            objectives=objectives,
            constraints=constraints,
            min_completed=min_completed,
        )
        self.space = space
        self.batch_size = int(batch_size)
        self.acquisition = acquisition
        self.schema = dict(schema) if schema is not None else None
        self.model_sha256 = model_sha256
        self.offline_dir: str | None = None
        self.metric_names = metric_names_for(self.required_metrics)
        self._replay = AxReplay(self._make_client)
        self._model: Any = None

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
        path, state = read_offline_state(tuner_dir)
        space = PolicySpace.from_dict(state["space"])
        off_obj = state["config"]["objectives"]
        outs, dirs = list(space.outcomes), list(space.directions)
        guard = state.get("guardrail_bounds", {})
        if objectives is None:
            objectives = {o: dirs[outs.index(o)] for o in off_obj}
        if constraints is None:
            constraints = {
                g: (">=" if dirs[outs.index(g)] == "max" else "<=", b) for g, b in guard.items()
            }
        records = [r for r in state["records"] if r["kind"] == "tuned" and r["parameters"]]
        if not records:
            raise NotFittedError(f"the offline tuner in '{path}' has no tuned policies yet")
        records = _candidate_pool(records, state.get("candidate_values"), space.arms)
        records = [r for r in records if meets_bounds(r, guard, outs, dirs)] or records
        off_dirs = tuple(dirs[outs.index(o)] for o in off_obj)
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

    # ------------------------------------------------------------------ Ax
    @property
    def client(self) -> Any:
        """The Ax Client, rebuilt from the trials on first use."""
        return self._replay.client

    def _make_client(self) -> Any:
        names = self.metric_names
        with ax_bridge.quiet_ax():
            return ax_bridge.make_ax_client(
                "pex_tuner_online",
                self.bounds,
                {names[m]: d for m, d in self.objectives.items()},
                [(names[m], op, b) for m, (op, b) in self.constraints.items()],
                make_model_strategy(self.acquisition),
                log_scaled=self.space.log_scaled,
            )

    def _raw_data(self, tid: int) -> dict[str, tuple[float, float]]:
        m = self.trials[tid]["metrics"]
        return {self.metric_names[k]: (m[k]["mean"], m[k]["sem"]) for k in self.required_metrics}

    def generate(self, q: int | None = None) -> list[int]:
        """Generate a batch of q (default batch_size) new trials with the acquisition.

        Raises NotFittedError with the reason when the model cannot generate yet.
        """
        blocker = self.generation_blocker()
        if blocker is not None:
            raise NotFittedError(f"cannot generate a batch yet: {blocker}")
        self._replay.sync(self.trials, self._raw_data)
        out: list[int] = []
        for idx, params in self._replay.generate(int(q or self.batch_size)):
            tid = self._new_trial(params, self.acquisition)
            self._replay.adopt(tid, idx)
            out.append(tid)
        return out

    def acquisition_in_use(self) -> Any:
        """The BoTorch acquisition class of the generator (after a generation)."""
        return self._replay.acquisition_in_use()

    # ------------------------------------------------------------------ policies
    def policy(self, trial_id: int) -> Any:
        """The LinearUtilityPolicy of a trial (named ``online_<id>``)."""
        t = self._trial(trial_id)
        return self.space.to_policy(t["parameters"], name=f"online_{int(trial_id)}")

    def artifact_document(
        self,
        trial_id: int,
        *,
        model_url: str | None = None,
        parameters: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """The policy artifact of a trial as a JSON document (what ``write_artifact`` writes):
        the policy, arms, outcomes, feature schema and the model reference (file name, SHA-256
        and, when served, the URL to fetch it from). ``parameters``: the trial's parameters
        when the caller has its record (the service, from the database); default: this
        tuner's record of the trial."""
        from pex_tuner.policies.artifact import artifact_document

        if self.schema is None:
            raise NotFittedError("this online tuner has no feature schema; artifacts need one")
        model: dict[str, Any] = {"file": MODEL_FILE, "sha256": self.model_sha256}
        if model_url:
            model["url"] = model_url
        params = dict(self._trial(trial_id)["parameters"] if parameters is None else parameters)
        policy = self.space.to_policy(params, name=f"online_{int(trial_id)}")
        return artifact_document(policy, schema=self.schema, model_ref=model, parameters=params)

    def _model_file(self) -> Path:
        return Path(self.offline_dir or "") / MODEL_FILE

    def load_model(self) -> Any:
        """The fitted CateModel of the offline tuner (from its directory; cached)."""
        import joblib

        if self._model is None:
            src = self._model_file()
            if not src.exists():
                raise NotFittedError(f"the model file '{src}' is not available")
            if self.model_sha256 and sha256_file(src) != self.model_sha256:
                raise InputDataError(f"model file '{src}' changed since the run started")
            self._model = joblib.load(src)
        return self._model

    def assigner(self, trial_id: int) -> Any:
        """An object with ``assign_index(frame)`` (arm index per row of a feature frame) for
        the trial's policy, for simulators and in-process systems."""
        from pex_tuner.schema import FeatureSchema

        if self.schema is None:
            raise NotFittedError("this online tuner has no feature schema")
        return _FramePolicy(
            self.policy(trial_id), self.load_model(), FeatureSchema.from_dict(self.schema)
        )

    def write_artifact(self, trial_id: int, path: str | Path) -> Path:
        """Write the trial's artifact JSON with the model file copied beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        target = path.parent / MODEL_FILE
        if not target.exists():
            src = self._model_file()
            if not src.exists():
                raise NotFittedError(f"the model file '{src}' is not available to copy")
            atomic_copy(src, target)
        atomic_write_text(path, json.dumps(self.artifact_document(trial_id), indent=2))
        return path

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
            "offline_dir": self.offline_dir,
        }

    def to_state(self) -> dict[str, Any]:
        """The whole tuner as JSON-able data: :meth:`config_state` plus the trials."""
        return {**self.config_state(), "trials": [self.trials[k] for k in sorted(self.trials)]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OnlineTuner:
        """The tuner of a :meth:`to_state` document (the Ax model is rebuilt when needed)."""
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

    def assign_index(self, frame: pd.DataFrame) -> np.ndarray:
        """Arm index per row of ``frame`` (n rows): an int array of shape (n,)."""
        return self.policy.assign_index_from_effects(self.model.predict(self.schema.encode(frame)))


def _candidate_pool(
    records: list[dict[str, Any]],
    values: Mapping[str, Mapping[str, Sequence[float]]] | None,
    arms: Sequence[str],
) -> list[dict[str, Any]]:
    """The offline records the first online trials are chosen among, as the offline tuner
    chooses its candidates (``select_online_candidates``): with the saved GP estimates when the
    tuner chose by them (``candidate_values``), and without policies that send at least
    ``ONE_ARM_SHARE`` of units to one arm (baselines in all but name). Falls back to the
    records as given when nothing would be left."""
    pool = records
    if values:
        pool = [
            {**r, **{o: v[0] for o, v in values[r["policy"]].items()}}
            | {f"{o}_se": v[1] for o, v in values[r["policy"]].items()}
            for r in records
            if r["policy"] in values
        ] or records
    personal = [r for r in pool if max(r[f"share[{a}]"] for a in arms) < ONE_ARM_SHARE]
    return personal or pool
