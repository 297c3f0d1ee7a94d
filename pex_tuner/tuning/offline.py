"""OfflineTuner: multi-objective Bayesian optimization of linear-utility policies on OPE.

The tuner checks its configuration in full (:class:`~pex_tuner.tuning.config.TunerConfig`),
splits the experiment (train / validation / test, seeded, stratified by arm), and fits a
cross-fitted CATE model on train: by default the learner the data choose
(``learner="auto"``, :func:`~pex_tuner.effects.select_learner`). Policies are scored by an
:class:`~pex_tuner.tuning.metric.OPEMetric` on every non-test unit by default
(``split="train+validation"``: the training units with their out-of-fold predictions plus the
validation units); the test split stays untouched for the honest report
(:meth:`OfflineTuner.frontier_report`).

Policies are points of a :class:`~pex_tuner.tuning.space.PolicySpace` (weights and biases with
ranges from the CATE predictions). The Ax experiment (reached through ``ax_bridge`` only) has
one parameter per free weight / bias and one metric per outcome. It starts from a dense
quasi-random design (``design_size`` policies evaluated in batched OPE passes, see ``design``)
whose ``model_points`` policies nearest the observed frontier are attached to Ax as trials, and
is refined by BoTorch batches (qLogNParEGO by default; ``generation``), each generated under a
seed derived from ``random_state`` so runs repeat. ``design_size=0`` gives the earlier
behaviour: Sobol initialization inside Ax. Every evaluated policy lands in an
:class:`~pex_tuner.tuning.evaluations.EvaluationLog` (frontier, hypervolume, candidates).

The frontier is selected from the observed OPE estimates of every evaluated policy by default;
``frontier_estimate="model"`` selects it by the GP's posterior mean among the policies in the
Ax experiment instead (a denoised estimate, but of a pool of about a hundred policies rather
than a thousand: it found less true hypervolume in ``benchmarks/results/tuning.md``). The
online candidates, a set of a few policies where the winner's curse bites hardest, are chosen
by the GP's posterior mean by default (``candidate_estimate="model"``: as much true
hypervolume on average in the benchmark, with less spread). Either way the best of many noisy
estimates is biased upward: :meth:`OfflineTuner.frontier_report` puts every frontier policy's
estimate on the untouched test split beside the one that selected it.

Its verbs follow Ax's: ``get_next_trials``, ``complete_trial``, ``run``,
``get_pareto_frontier``, plus ``evaluate_design``, ``select_online_candidates``,
``frontier_report``, ``save`` / ``load`` (directory with JSON) and ``save_to_db`` /
``load_from_db`` (SQLAlchemy URL, SQLite by default; see ``persistence``).

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

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.data import ExperimentData
from pex_tuner.effects import CateModel, LearnerSelection, select_learner
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.policies.artifact import write_artifact
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.progress import progress_bar
from pex_tuner.tuning import design, storage
from pex_tuner.tuning.config import TunerConfig, check_base_learner, check_count, check_policy_names
from pex_tuner.tuning.evaluations import EvaluationLog
from pex_tuner.tuning.generation import (
    NEEDS_REFERENCE_POINT,
    make_generation_strategy,
    make_model_strategy,
    seeded_generation,
)
from pex_tuner.tuning.metric import split_metric
from pex_tuner.tuning.persistence import TunerPersistence
from pex_tuner.tuning.results import TunerResults
from pex_tuner.tuning.space import PolicySpace

__all__ = ["OfflineTuner"]


class OfflineTuner(TunerResults, TunerPersistence):
    """Tune linear-utility policies offline with multi-objective Bayesian optimization.

    Args:
        data: the whole logged experiment; the tuner splits it.
        objectives: outcomes to optimize (default: every outcome not named in guardrails),
            each in its own direction.
        guardrails: outcome -> allowed relative degradation vs assign-all-control (0.005 =
            0.5%); these become outcome constraints instead of objectives.
        learner: the CATE meta-learner: ``"auto"`` (default: T, X, DR and S-learners fitted
            cross-fitted and the best by a held-out criterion kept, see
            :func:`~pex_tuner.effects.select_learner`; the table is ``learner_selection``),
            or ``"t"``, ``"x"``, ``"s"``, ``"dr"``.
        base_learner, n_folds: the CATE model's base regressor and folds (see ``CateModel``).
        effects: an already fitted CateModel on the train split (skips fitting).
        estimator: OPE estimator of the metric (``"dr"`` default).
        split: ``"train+validation"`` (default), ``"validation"`` or ``"test"``: where
            policies are evaluated. ``"train+validation"`` evaluates on the training units
            with the CATE model's out-of-fold (cross-fitted) predictions, so no unit is scored
            by a model that saw it, plus the validation units: every non-test unit. The policy
            space (parameter ranges) comes from the validation predictions whatever the split.
        use_biases: tune per-arm biases (False: the paper's no-bias comparison).
        parameterization: ``"linear"`` or ``"shrinkage"``.
        acquisition: ``"qLogNParEGO"`` (default), ``"qLogNParEGO-HV"`` (ParEGO with the
            hypervolume scalarization relative to assign-all-control; see
            ``acquisition``), ``"qLogNEHVI"``, ``"qLogNEI"`` (single objective) or ``"sobol"``.
        batch_size: q, trials per generation batch.
        init_trials: Sobol trials before the model when ``design_size=0`` (default
            ``max(5, 2 * n_parameters)``).
        design_size: policies of the dense quasi-random design evaluated before the model
            (0: none, Sobol initialization inside Ax instead).
        model_points: design policies attached to Ax for the GP (those nearest the frontier).
        frontier_estimate: ``"observed"`` (default: the frontier and candidates are chosen by
            the OPE estimates of every evaluated policy) or ``"model"`` (by the GP's posterior
            mean among the policies in the Ax experiment; see the module docstring).
        candidate_estimate: the same choice for the online candidates (``select_online_
            candidates``); ``"model"`` by default: for a set of k policies the winner's curse
            bites harder than for a whole frontier, and the GP-mean candidates held more true
            hypervolume in the benchmark.
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
        learner_selection: the :class:`~pex_tuner.effects.LearnerSelection` (its ``scores``
            table) when ``learner="auto"`` chose the CATE model, else None.
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
        learner: str = "auto",
        base_learner: Any = None,
        n_folds: int = 5,
        effects: CateModel | None = None,
        estimator: str = "dr",
        split: str = "train+validation",
        use_biases: bool = True,
        parameterization: str = "linear",
        acquisition: str = "qLogNParEGO",
        batch_size: int = 8,
        init_trials: int | None = None,
        design_size: int = 1024,
        model_points: int = 64,
        frontier_estimate: str = "observed",
        candidate_estimate: str = "model",
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
            design_size=design_size,
            model_points=model_points,
            frontier_estimate=frontier_estimate,
            candidate_estimate=candidate_estimate,
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
        self.learner_selection: LearnerSelection | None = None
        if effects is None:
            effects = self._fit_effects(config, data.subset(self.split_indices["train"]))
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
        self._test_metric: Any = None
        self._predicted: Any = None  # (experiment state, GP-estimate frame): see results

    def _fit_effects(self, config: TunerConfig, train: ExperimentData) -> CateModel:
        """The CATE model on the train split: the learner chosen by the data for ``"auto"``
        (its table kept as ``learner_selection``), else the named learner."""
        options = {
            "base_learner": self.base_learner,
            "n_folds": config.n_folds,
            "random_state": config.random_state,
            "progress": self.progress,
        }
        if config.learner == "auto":
            self.learner_selection = select_learner(train, **options)
            return self.learner_selection.model
        return CateModel(learner=config.learner, **options).fit(train)

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
        if cfg.design_size:
            strategy = make_model_strategy(cfg.acquisition)
        else:
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
            if cfg.design_size:
                self._attach_design(client)
        return client

    def evaluate_design(self) -> OfflineTuner:
        """Evaluate the dense design: ``design_size`` scrambled-Sobol policies (seeded by
        ``random_state``) in batched OPE passes, recorded as tuned policies ``design_<i>``
        (node ``"design"``). Idempotent; the Ax client calls it when it is created, so
        ``run`` needs no separate call. Needs no Ax: ``tuner.evaluate_design()`` followed by
        ``get_pareto_frontier(use_model_predictions=False)`` is the design's OPE frontier."""
        cfg = self.config
        if not cfg.design_size or self.log.find("design_0") is not None:
            return self
        params = design.design_parameters(self.space, cfg.design_size, cfg.random_state)
        records = []
        for start in range(0, len(params), design.DESIGN_PASS):
            chunk = params[start : start + design.DESIGN_PASS]
            ev = self.metric.evaluate_matrix(*self.space.to_matrices(chunk))
            records += [
                self.log.make_record(None, f"design_{start + i}", "tuned", p, ev, i, "design")
                for i, p in enumerate(chunk)
            ]
        self.log.extend(records)
        return self

    def _attach_design(self, client: Any) -> None:
        """Attach the ``model_points`` design policies nearest the observed frontier to Ax as
        completed trials (the GP's data); the other design policies stay in the log only."""
        self.evaluate_design()
        rows = [r for r in self.records if r["node"] == "design"]
        frame = self.log.frame_of(rows)
        Y = self.log.objective_matrix(frame)
        ok = frame["feasible"].to_numpy(dtype=bool)
        for i in design.near_frontier(Y, ok, self.config.model_points):
            rec = rows[i]
            idx = client.attach_trial(parameters=dict(rec["parameters"]), arm_name=rec["policy"])
            client.complete_trial(idx, raw_data=self._raw_data(rec))
            rec["trial_index"] = idx

    def _raw_data(self, rec: dict[str, Any]) -> dict[str, tuple[float, float]]:
        """Ax ``raw_data`` of a record: metric name -> (value, standard error)."""
        names = self.metric.metric_names
        return {names[o]: (float(rec[o]), float(rec[f"{o}_se"])) for o in self.data.outcomes}

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
        client = self.client
        step = ax_bridge.n_trials(client)
        with seeded_generation(self.config.random_state, step):
            return ax_bridge.get_next_trials(client, int(max_trials or self.config.batch_size))

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
        """Evaluate ``budget`` more model-guided policies in batches of ``batch_size`` (after
        the dense design, which the first call evaluates; with ``design_size=0`` the first
        ``init_trials`` are Sobol points).

        Shows a progress bar (evaluations) in terminals and notebooks.
        """
        budget = check_count("budget", budget)
        _ = self.client  # the design (if any) is evaluated when the client is created
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
