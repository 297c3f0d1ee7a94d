"""OfflineTuner: multi-objective Bayesian optimization of linear-utility policies on OPE.

The tuner checks its configuration in full (:class:`~pex_tuner.tuning.config.TunerConfig`),
splits the experiment (train / validation / test, seeded, stratified by arm), fits a
cross-fitted CATE model on train, and evaluates policies with an
:class:`~pex_tuner.tuning.metric.OPEMetric` on the validation split (the noisy objective;
``split="train+validation"`` adds the training units with their out-of-fold predictions).
Policies are points of a :class:`~pex_tuner.tuning.space.PolicySpace` (weights and biases with
ranges from the CATE predictions); an Ax ``Client`` (reached through ``ax_bridge`` only) has one
parameter per free weight / bias and one metric per outcome, driven by Sobol then qLogNParEGO
(``generation``). Every evaluated policy lands in an
:class:`~pex_tuner.tuning.evaluations.EvaluationLog` (frontier, hypervolume, candidates).

Its verbs follow Ax's: ``get_next_trials``, ``complete_trial``, ``run``,
``get_pareto_frontier``, plus ``select_online_candidates``, ``save`` / ``load`` (directory
with JSON) and ``save_to_db`` / ``load_from_db`` (SQLAlchemy URL, SQLite by default).

Assign-all-to-each-arm baselines are evaluated by the same metric. With biases they are real
Ax arms (attached out-of-design trials with biases large enough to send every unit to one arm;
Ax keeps out-of-design points out of the surrogate); without biases they cannot be written as
parameters and are kept as named reference arms. Assign-all-control is the hypervolume
reference point. Guardrails become absolute outcome constraints computed from that control
value: ``{"retention": 0.005}`` means "retention may not fall more than 0.5% below control"
(for a minimized outcome: may not rise more than 0.5% above).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.data import ExperimentData
from pex_tuner.effects import CateModel
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies.artifact import load_policy_document, write_artifact
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.progress import progress_bar
from pex_tuner.tuning import storage
from pex_tuner.tuning.config import TunerConfig, check_base_learner, check_count, check_policy_names
from pex_tuner.tuning.evaluations import EvaluationLog
from pex_tuner.tuning.generation import (
    NEEDS_REFERENCE_POINT,
    acquisition_class,
    make_generation_strategy,
)
from pex_tuner.tuning.metric import split_metric
from pex_tuner.tuning.space import PolicySpace

__all__ = ["OfflineTuner"]


class OfflineTuner:
    """Tune linear-utility policies offline with multi-objective Bayesian optimization.

    Args:
        data: the whole logged experiment; the tuner splits it.
        objectives: outcomes to optimize (default: every outcome not named in guardrails),
            each in its own direction.
        guardrails: outcome -> allowed relative degradation vs assign-all-control (0.005 =
            0.5%); these become outcome constraints instead of objectives.
        learner, base_learner, n_folds: the CATE model (see ``fit_effects``).
        effects: an already fitted CateModel on the train split (skips fitting).
        estimator: OPE estimator of the metric (``"dr"`` default).
        split: ``"validation"`` (default), ``"train+validation"`` or ``"test"``: where
            policies are evaluated. ``"train+validation"`` evaluates on the training units too,
            with the CATE model's out-of-fold (cross-fitted) predictions there, so no unit is
            scored by a model that saw it; about 3.3 times the units of the validation split
            (standard errors about 0.55 times as large). The policy space (parameter ranges)
            comes from the validation predictions whatever the split.
        use_biases: tune per-arm biases (False: the paper's no-bias comparison).
        parameterization: ``"linear"`` or ``"shrinkage"``.
        acquisition: ``"qLogNParEGO"`` (default), ``"qLogNParEGO-HV"`` (ParEGO with the
            hypervolume scalarization relative to assign-all-control; see
            ``acquisition``), ``"qLogNEHVI"``, ``"qLogNEI"`` (single objective) or ``"sobol"``.
        batch_size: q, trials per generation batch.
        init_trials: Sobol trials before the model (default ``max(5, 2 * n_parameters)``).
        scaling: ``"absolute"`` (default) or ``"relative"`` (log-scaled weight magnitudes and
            biases in units of the policy's utility spread: a much better fitting surrogate,
            though no more hypervolume in our benchmark; see ``PolicySpace``).
        weight_scale: weight range multiplier (see ``PolicySpace``).
        bias_scale: bias range (see ``PolicySpace``; None: 1 RMS weighted effect for relative
            scaling, a quarter of the largest weighted effect for absolute scaling).
        random_state: seed for the split, the CATE model and Sobol.
        progress: progress bars (None: automatic).
        name: the Ax experiment's name (and the row name in a database).

    Every option is checked before the CATE model is fitted (:class:`TunerConfig`).

    Attributes:
        config: the :class:`TunerConfig` (``config["objectives"]`` reads it by name).
        split_indices: ``{"train", "validation", "test"}`` -> unit indices.
        effects: the fitted CateModel; ``metric``: the OPEMetric; ``space``: the PolicySpace.
        baselines: ``"all:<arm>"`` -> assign-all policy; ``baseline_eval``: their evaluation.
        reference_point: assign-all-control's objective values, shape (M,), maximization space.
        guardrail_bounds: guardrail outcome -> absolute bound.
        log: the EvaluationLog; ``records`` its records.
    """

    def __init__(
        self,
        data: ExperimentData,
        *,
        objectives: Sequence[str] | None = None,
        guardrails: Mapping[str, float] | None = None,
        learner: str = "t",
        base_learner: Any = None,
        n_folds: int = 5,
        effects: CateModel | None = None,
        estimator: str = "dr",
        split: str = "validation",
        use_biases: bool = True,
        parameterization: str = "linear",
        acquisition: str = "qLogNParEGO",
        batch_size: int = 4,
        init_trials: int | None = None,
        scaling: str = "absolute",
        weight_scale: float = 4.0,
        bias_scale: float | None = None,
        random_state: int = 0,
        progress: bool | None = None,
        name: str = "pex_tuner",
    ) -> None:
        if not isinstance(data, ExperimentData):
            raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
        config = TunerConfig.from_options(
            data,
            objectives=objectives,
            guardrails=guardrails,
            learner=learner,
            n_folds=n_folds,
            estimator=estimator,
            split=split,
            use_biases=use_biases,
            parameterization=parameterization,
            acquisition=acquisition,
            batch_size=batch_size,
            init_trials=init_trials,
            scaling=scaling,
            weight_scale=weight_scale,
            bias_scale=bias_scale,
            random_state=random_state,
            name=name,
        )
        check_base_learner(base_learner)
        self.data = data
        self.base_learner = base_learner
        self.progress = progress
        self._build(config, effects)

    def _build(self, config: TunerConfig, effects: CateModel | None) -> None:
        """Split, fit the CATE model (unless given), make the metric, the policy space and the
        evaluation log with the evaluated baselines."""
        data = self.data
        self.fingerprint = storage.data_fingerprint(data)
        self.split_indices = data.split_indices(random_state=config.random_state)
        if effects is None:
            effects = CateModel(
                learner=config.learner,
                base_learner=self.base_learner,
                n_folds=config.n_folds,
                random_state=config.random_state,
                progress=self.progress,
            ).fit(data.subset(self.split_indices["train"]))
        self.effects = effects
        self.metric, space_predictions = split_metric(
            data, self.split_indices, effects, split=config.split, estimator=config.estimator
        )
        self.space = PolicySpace.from_predictions(
            space_predictions,
            data.directions,
            use_biases=config.use_biases,
            parameterization=config.parameterization,
            weight_scale=config.weight_scale,
            bias_scale=config.bias_scale,
            scaling=config.scaling,
        )
        self.config = config.with_init_trials(len(self.space.parameter_names))
        arms, outs = data.arms, data.outcomes
        self.baselines = {f"all:{a}": LinearUtilityPolicy.assign_all(a, arms, outs) for a in arms}
        self.baseline_eval = self.metric.evaluate(self.baselines)
        self.log = EvaluationLog(
            arms=arms,
            outcomes=outs,
            directions=data.directions,
            objectives=config.objectives,
            guardrails=config.guardrails,
            control=self.baseline_eval.value[0],
        )
        self._record_baselines()
        self.extra_arms: dict[str, Any] = {}
        self._client: Any = None

    def _record_baselines(self) -> None:
        """Record the baselines not yet recorded (attached to Ax, with a trial index, when the
        client is created)."""
        for k, name in enumerate(self.baselines):
            if self.log.find(name) is None:
                self.log.record(None, name, "baseline", None, self.baseline_eval, k, None)

    # ------------------------------------------------------------------ the Ax client
    @property
    def client(self) -> Any:
        """The Ax Client (created on first use: importing Ax takes seconds)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        names = self.metric.metric_names
        dirs = dict(zip(self.data.outcomes, self.data.directions, strict=True))
        bounds = dict(self.guardrail_bounds)
        cfg = self.config
        if cfg.acquisition in NEEDS_REFERENCE_POINT:
            # constraints on objectives are Ax's objective thresholds: the hypervolume
            # reference point, assign-all-control's value
            control = self.baseline_eval.value[0]
            for o in cfg.objectives:
                bounds[o] = float(control[self.data.outcomes.index(o)])
        strategy = make_generation_strategy(
            cfg.acquisition, init_trials=cfg.init_trials, seed=cfg.random_state
        )
        with ax_bridge.quiet_ax():
            client = ax_bridge.make_ax_client(
                cfg.name,
                self.space.bounds(),
                {names[o]: dirs[o] for o in cfg.objectives},
                [(names[g], ">=" if dirs[g] == "max" else "<=", b) for g, b in bounds.items()],
                strategy,
                log_scaled=self.space.log_scaled,
            )
            if self.space.use_biases:
                self._attach_baselines(client)
        return client

    def _attach_baselines(self, client: Any) -> None:
        for k, name in enumerate(self.baselines):
            params = self.space.assign_all_parameters(k, self.metric.predictions.tau)
            idx = client.attach_trial(parameters=params, arm_name=name)
            client.complete_trial(idx, raw_data=self.metric.raw_data(self.baseline_eval, k))
            self.log.record(idx, name, "baseline", params, self.baseline_eval, k, None)

    @property
    def reference_point(self) -> np.ndarray:
        """Assign-all-control's objective values, shape (M,), maximization space."""
        return self.log.reference_point

    @property
    def guardrail_bounds(self) -> dict[str, float]:
        """Guardrail outcome -> absolute bound (from assign-all-control's value)."""
        return self.log.guardrail_bounds

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every evaluated policy's record (see ``evaluations``)."""
        return self.log.records

    @property
    def n_evaluations(self) -> int:
        """Tuned policies evaluated so far (baselines and attached arms excluded)."""
        return self.log.n_tuned

    # ------------------------------------------------------------------ Ax verbs
    def get_next_trials(self, max_trials: int | None = None) -> dict[int, dict[str, float]]:
        """Generate up to ``max_trials`` (default: batch_size) new parameterizations."""
        return ax_bridge.get_next_trials(self.client, int(max_trials or self.config.batch_size))

    def complete_trial(self, trial_index: int) -> dict[str, tuple[float, float]]:
        """Evaluate a generated trial with the OPE metric and report it to Ax."""
        params = ax_bridge.trial_parameters(self.client, trial_index)
        name = f"trial_{trial_index}"
        ev = self.metric.evaluate([self.space.to_policy(params, name=name)], names=[name])
        raw = self.metric.raw_data(ev, 0)
        with ax_bridge.quiet_ax():
            self.client.complete_trial(trial_index, raw_data=raw)
        node = ax_bridge.trial_node(self.client, trial_index)
        self.log.record(trial_index, name, "tuned", params, ev, 0, node)
        return raw

    def run(self, budget: int) -> OfflineTuner:
        """Evaluate ``budget`` more tuned policies in batches of ``batch_size``.

        Shows a progress bar (evaluations) in terminals and notebooks.
        """
        budget = check_count("budget", budget)
        target = self.n_evaluations + budget
        bar = progress_bar(budget, f"tuning ({self.config.acquisition})", self.progress)
        try:
            while self.n_evaluations < target:
                q = min(self.config.batch_size, target - self.n_evaluations)
                t0 = time.perf_counter()
                trials = self.get_next_trials(q)
                gen_s = time.perf_counter() - t0
                if not trials:
                    raise ConfigurationError("Ax generated no new trials (search space exhausted?)")
                for idx in trials:
                    self.complete_trial(idx)
                    self.records[-1]["batch_seconds"] = gen_s  # complete_trial appends it
                bar.update(len(trials))
                bar.set_postfix(hv=f"{self.hypervolume():.4g}")
        finally:
            bar.close()
        return self

    def attach_policy(self, name: str, policy: Any) -> None:
        """Evaluate any policy (e.g. an interpretable tree) by the same metric and keep it as
        an alternative arm on the frontier."""
        if name in self.baselines or self.log.find(name) is not None:
            raise ConfigurationError(f"a policy named '{name}' already exists")
        ev = self.metric.evaluate({name: policy})
        self.extra_arms[name] = policy
        self.log.record(None, name, "attached", None, ev, 0, None)

    @property
    def acquisition_in_use(self) -> Any:
        """The BoTorch acquisition class of the current generation node (None in Sobol)."""
        return ax_bridge.acquisition_in_use(self.client)

    # ------------------------------------------------------------------ results
    def evaluations(self) -> pd.DataFrame:
        """Every evaluated policy: kind, parameters, value and se per outcome, arm shares,
        feasibility."""
        return self.log.frame()

    def hypervolume(self, upto: int | None = None) -> float:
        """Observed hypervolume of the tuned policies (first ``upto`` of them) vs control."""
        return self.log.hypervolume(upto)

    def hypervolume_trace(self) -> pd.DataFrame:
        """Observed hypervolume after each tuned evaluation: columns evaluations, hypervolume."""
        return self.log.hypervolume_trace()

    def get_pareto_frontier(self, use_model_predictions: bool = False) -> pd.DataFrame:
        """The Pareto frontier of the objectives among feasible evaluated policies.

        Args:
            use_model_predictions: replace observed values of tuned policies by the Ax
                surrogate's predictions (mean and standard error) before taking the frontier;
                baselines and attached arms keep their observed values.

        Returns:
            DataFrame with policy, kind, trial_index, parameters, value and ``<outcome>_se``
            per outcome, ``share[<arm>]`` per arm, sorted by the first objective.
        """
        ev = self.evaluations()
        if ev.empty:
            raise NotFittedError("nothing evaluated yet: call run(budget) first")
        if use_model_predictions:
            ev = self._with_predictions(ev)
        return self.log.frontier(ev)

    def _with_predictions(self, ev: pd.DataFrame) -> pd.DataFrame:
        """``ev`` with the surrogate's mean and standard error for the tuned policies."""
        names = self.metric.metric_names

        def predict(points: list[dict[str, float]]) -> list[dict[str, tuple[float, float]]]:
            preds = ax_bridge.predict(self.client, points)
            return [{o: p[names[o]] for o in self.data.outcomes if names[o] in p} for p in preds]

        return self.log.with_predictions(ev, self.space.parameter_names, predict)

    def select_online_candidates(
        self, k: int, *, include_baselines: bool = False, reference_point: Any = "control"
    ) -> pd.DataFrame:
        """The k frontier policies whose set has the largest hypervolume.

        The frontier is taken among the eligible policies (tuned and attached ones; baselines
        too with ``include_baselines``), so candidates exist even when an assign-all baseline
        dominates every tuned policy. Exact search over subsets when affordable, BoTorch's
        greedy selection otherwise.

        Args:
            k: number of candidates.
            include_baselines: allow assign-all baselines among the candidates.
            reference_point: ``"control"`` (default: assign-all-control's values),
                ``"nadir"`` (the worst frontier value of each objective), or explicit values per
                objective in their own units. When no frontier policy beats control on every
                objective, every subset has zero hypervolume against control; the nadir point
                is then used instead and the ``reference`` column says so.

        Returns:
            The selected frontier rows plus ``subset_hypervolume`` and ``reference``.
        """
        k = check_count("k", k)
        return self.log.select_candidates(
            k, include_baselines=include_baselines, reference_point=reference_point
        )

    def policy(self, name: str) -> Any:
        """The policy object of an evaluated policy (``trial_<i>``, ``all:<arm>`` or attached)."""
        if name in self.baselines:
            return self.baselines[name]
        if name in self.extra_arms:
            return self.extra_arms[name]
        rec = self.log.find(name)
        if rec is not None and rec["parameters"] is not None:
            return self.space.to_policy(rec["parameters"], name=name)
        raise ConfigurationError(f"no evaluated policy named '{name}'")

    def write_artifacts(self, directory: str, names: Sequence[str] | None = None) -> dict[str, str]:
        """Write policy artifacts (JSON + shared model file) for evaluated policies.

        Args:
            directory: folder for the artifacts (created).
            names: policies to write (default: every evaluated policy).

        Returns:
            policy name -> artifact path.
        """
        names = [r["policy"] for r in self.records] if names is None else names
        names = check_policy_names(names, self.policy)
        out: dict[str, str] = {}
        for name in names:
            rec = self.log.find(name)
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            path = write_artifact(
                Path(directory) / f"{safe}.json",
                self.policy(name),
                schema=self.data.schema,
                model=self.effects,
                parameters=None if rec is None else rec["parameters"],
            )
            out[name] = str(path)
        return out

    def __repr__(self) -> str:
        return (
            f"OfflineTuner(objectives={self.config['objectives']}, "
            f"guardrails={self.config['guardrails']}, acquisition="
            f"{self.config.acquisition!r}, evaluations={self.n_evaluations})"
        )

    # ------------------------------------------------------------------ persistence
    def _saved(self) -> storage.SavedTuner:
        """The pieces a save writes (see ``storage``)."""
        state = {
            "version": storage.STATE_VERSION,
            "config": self.config.to_dict(),
            "fingerprint": self.fingerprint,
            "split_indices": {k: v.tolist() for k, v in self.split_indices.items()},
            "space": self.space.to_dict(),
            # lets an online run (pex_tuner.tuning.online) write artifacts without the data
            "feature_schema": self.data.schema.to_dict(),
            "reference_point": [float(v) for v in self.reference_point],
            "guardrail_bounds": dict(self.guardrail_bounds),
            "records": self.records,
            "extra_arms": {
                name: p.to_dict() for name, p in self.extra_arms.items() if hasattr(p, "to_dict")
            },
        }
        return storage.SavedTuner(state, ax_bridge.client_to_json(self.client), self.effects)

    @classmethod
    def _from_saved(cls, saved: storage.SavedTuner, data: ExperimentData) -> OfflineTuner:
        """Assemble a tuner from saved pieces: rebuilt from its configuration with the saved
        CATE model (nothing is refitted), then given the saved records, extra arms, policy
        space and Ax client."""
        state = saved.state
        storage.check_state(state, data)
        config = TunerConfig.from_dict(state["config"])
        split = {k: np.asarray(v, dtype=np.int64) for k, v in state["split_indices"].items()}
        tuner = cls(data, effects=saved.model, **config.to_dict())
        if any(not np.array_equal(split[k], tuner.split_indices.get(k)) for k in split):
            raise InputDataError(
                "the saved tuner's train / validation / test split differs from the one this "
                f"pex-tuner draws with random_state={config.random_state}"
            )
        tuner.space = PolicySpace.from_dict(state["space"])
        tuner.log.records = list(state["records"])
        tuner._record_baselines()
        extra = state.get("extra_arms", {})
        tuner.extra_arms = {n: load_policy_document(doc) for n, doc in extra.items()}
        acquisition_class(config.acquisition)  # custom classes must be registered to load
        tuner._client = ax_bridge.client_from_json(saved.ax_json)
        return tuner

    def save(self, directory: str) -> None:
        """Save to a directory (JSON state, Ax client JSON, CATE model); see ``storage``."""
        storage.write_directory(directory, self._saved())

    @classmethod
    def load(cls, directory: str, data: ExperimentData) -> OfflineTuner:
        """Load a tuner saved with :meth:`save`; ``data`` must be the same experiment."""
        return cls._from_saved(storage.read_directory(directory), data)

    def save_to_db(self, url: str = "sqlite:///pex_tuner.db") -> None:
        """Save to a SQL database (SQLAlchemy URL; SQLite file by default)."""
        storage.write_database(url, self.config.name, self._saved())

    @classmethod
    def load_from_db(
        cls, data: ExperimentData, url: str = "sqlite:///pex_tuner.db", name: str = "pex_tuner"
    ) -> OfflineTuner:
        """Load the tuner called ``name`` from a SQL database."""
        return cls._from_saved(storage.read_database(url, name), data)
