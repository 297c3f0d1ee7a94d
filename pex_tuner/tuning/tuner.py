"""OfflineTuner: multi-objective Bayesian optimization of linear-utility policies on OPE.

The tuner owns

* the experiment's train / validation / test split (seeded, stratified by arm),
* a cross-fitted CATE model fitted on train,
* an :class:`~pex_tuner.tuning.metric.OPEMetric` on the validation split (the noisy objective;
  ``split="train+validation"`` adds the training units with their out-of-fold predictions),
* a :class:`~pex_tuner.tuning.space.PolicySpace` (weights and biases with ranges from the
  CATE predictions),
* an Ax ``Client`` whose experiment has one parameter per free weight / bias and one metric per
  outcome, driven by Sobol then qLogNParEGO (``generation.make_generation_strategy``).

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

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.effects import CateModel
from pex_tuner.effects.cate import _fingerprint
from pex_tuner.errors import ConfigurationError, InputDataError, NotFittedError
from pex_tuner.policies.linear import LinearUtilityPolicy
from pex_tuner.tuning.frontier import (
    hypervolume,
    pareto_mask,
    select_candidates,
    to_max_space,
)
from pex_tuner.tuning.generation import (
    NEEDS_REFERENCE_POINT,
    acquisition_class,
    make_generation_strategy,
)
from pex_tuner.tuning.metric import OPEMetric
from pex_tuner.tuning.space import SCALINGS, PolicySpace

__all__ = ["OfflineTuner"]

log = logging.getLogger(__name__)

SPLITS = ("validation", "train+validation", "test")


def import_ax_quietly() -> None:
    """Import Ax without the INFO lines it logs at import time."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        import ax  # noqa: F401
    finally:
        logging.disable(previous)


@contextmanager
def _quiet_ax():
    """Silence Ax's per-trial logs (and its "only n trials could be generated", which our batch
    loop handles) and known-harmless warnings while we drive it."""
    import_ax_quietly()
    import torch
    from ax.utils.common.logger import set_ax_logger_levels

    set_ax_logger_levels(logging.ERROR)
    # GP fitting and acquisition optimization on a few hundred points gain nothing from
    # threads, and torch's OpenMP threads next to any other busy process run 10-20x slower
    # (measured: a 300x300 Cholesky loop took 22.7 s with 2 threads vs 1.1 s with 1 on a loaded
    # 2-core machine). Use one thread while Ax works, and restore the caller's setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(threads)


def make_ax_client(
    name: str,
    bounds: Mapping[str, tuple[float, float]],
    objectives: Mapping[str, str],
    constraints: Sequence[tuple[str, str, float]],
    strategy: Any,
    log_scaled: Sequence[str] = (),
) -> Any:
    """An Ax Client over float parameters with ``bounds`` (those named in ``log_scaled`` on a
    log scale), maximizing / minimizing the ``objectives`` (Ax metric name -> "max" / "min")
    subject to ``constraints`` ((metric, ">=" or "<=", bound)), generating with ``strategy``.
    Call it inside ``_quiet_ax()``."""
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    client = Client()
    client.configure_experiment(
        name=name,
        parameters=[
            RangeParameterConfig(
                name=n,
                parameter_type="float",
                bounds=b,
                scaling="log" if n in log_scaled else "linear",
            )
            for n, b in bounds.items()
        ],
    )
    objective = ", ".join(m if d == "max" else f"-{m}" for m, d in objectives.items())
    cons = [f"{m} {op} {b!r}" for m, op, b in constraints]
    client.configure_optimization(objective=objective, outcome_constraints=cons or None)
    client.set_generation_strategy(strategy)
    return client


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


def data_fingerprint(data: ExperimentData) -> str:
    """Hash of features, arms and outcomes: a saved tuner refuses different data."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(_fingerprint(data.X, data.treatment).encode())
    h.update(np.ascontiguousarray(data.Y).tobytes())
    h.update(repr((data.arms, data.outcomes, data.directions)).encode())
    return h.hexdigest()


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
            ``generation``), ``"qLogNEHVI"``, ``"qLogNEI"`` (single objective) or ``"sobol"``.
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
        guardrails = dict(guardrails or {})
        for g, tol in guardrails.items():
            if g not in data.outcomes:
                raise ConfigurationError(
                    f"guardrail '{g}' is not an outcome; expected one of {list(data.outcomes)}"
                )
            if not (isinstance(tol, int | float) and 0 <= tol < 1):
                raise ConfigurationError(
                    f"guardrail '{g}' tolerance must be a fraction in [0, 1) (0.005 = 0.5%); "
                    f"got {tol!r}"
                )
        if objectives is None:
            objectives = [o for o in data.outcomes if o not in guardrails]
        objectives = list(objectives)
        for o in objectives:
            if o not in data.outcomes:
                raise ConfigurationError(
                    f"objective '{o}' is not an outcome; expected one of {list(data.outcomes)}"
                )
            if o in guardrails:
                raise ConfigurationError(f"'{o}' cannot be both an objective and a guardrail")
        if not objectives:
            raise ConfigurationError("at least one outcome must be an objective")
        acquisition_class(acquisition)  # validates the name
        if len(objectives) == 1 and acquisition in ("qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI"):
            raise ConfigurationError(
                f"acquisition '{acquisition}' needs at least two objectives; with one "
                "objective use acquisition='qLogNEI'"
            )
        if split not in SPLITS:
            raise ConfigurationError(f"'split' must be one of {list(SPLITS)}; got {split!r}")
        if scaling not in SCALINGS:
            raise ConfigurationError(
                f"The 'scaling' parameter must be one of {list(SCALINGS)}. Got {scaling!r} instead."
            )
        if int(batch_size) < 1:
            raise ConfigurationError(f"'batch_size' must be >= 1; got {batch_size!r}")
        self.data = data
        self.config: dict[str, Any] = {
            "name": name,
            "objectives": objectives,
            "guardrails": guardrails,
            "learner": learner,
            "n_folds": int(n_folds),
            "estimator": estimator,
            "split": split,
            "use_biases": bool(use_biases),
            "parameterization": parameterization,
            "acquisition": acquisition,
            "batch_size": int(batch_size),
            "init_trials": init_trials,
            "scaling": scaling,
            "weight_scale": float(weight_scale),
            "bias_scale": None if bias_scale is None else float(bias_scale),
            "random_state": int(random_state),
        }
        self.base_learner = base_learner
        self.progress = progress
        self.fingerprint = data_fingerprint(data)
        self.split_indices = data.split_indices(random_state=random_state)
        self.effects = effects
        self.records: list[dict[str, Any]] = []
        self.extra_arms: dict[str, Any] = {}
        self._client: Any = None
        self._setup()

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg = self.config
        train = self.data.subset(self.split_indices["train"])
        if self.effects is None:
            self.effects = CateModel(
                learner=cfg["learner"],
                base_learner=self.base_learner,
                n_folds=cfg["n_folds"],
                random_state=cfg["random_state"],
                progress=self.progress,
            ).fit(train)
        if cfg["acquisition"] in NEEDS_REFERENCE_POINT:
            acquisition_class(cfg["acquisition"])  # registers it (JSON loading needs that)
        if cfg["split"] == "train+validation":
            evaluation, predictions = self._train_validation_units(train)
            space_predictions = self.effects.predict(
                self.data.subset(self.split_indices["validation"]), out_of_fold="never"
            )
        else:
            evaluation = self.data.subset(self.split_indices[cfg["split"]])
            predictions = self.effects.predict(evaluation, out_of_fold="never")
            space_predictions = predictions
        self.metric = OPEMetric(evaluation, predictions, estimator=cfg["estimator"])
        self.space = PolicySpace.from_predictions(
            space_predictions,
            self.data.directions,
            use_biases=cfg["use_biases"],
            parameterization=cfg["parameterization"],
            weight_scale=cfg["weight_scale"],
            # tuners saved before these options existed used absolute scaling, 0.25
            bias_scale=cfg.get("bias_scale", 0.25),
            scaling=cfg.get("scaling", "absolute"),
        )
        arms, outs = self.data.arms, self.data.outcomes
        self.baselines = {f"all:{a}": LinearUtilityPolicy.assign_all(a, arms, outs) for a in arms}
        self.baseline_eval = self.metric.evaluate(self.baselines)
        recorded = {r["policy"] for r in self.records}
        for k, name in enumerate(self.baselines):
            if name not in recorded:  # attached to Ax (with a trial index) when it is created
                self._record(None, name, "baseline", None, self.baseline_eval, k, None)
        control = self.baseline_eval.value[0]
        self.reference_point = to_max_space(control[self._objective_idx], self._objective_dirs)
        self.guardrail_bounds: dict[str, float] = {}
        for g, tol in cfg["guardrails"].items():
            j = outs.index(g)
            v = control[j]
            bound = v - tol * abs(v) if self.data.directions[j] == "max" else v + tol * abs(v)
            self.guardrail_bounds[g] = float(bound)
        if cfg["init_trials"] is None:
            cfg["init_trials"] = max(5, 2 * len(self.space.parameter_names))

    def _train_validation_units(self, train: ExperimentData) -> tuple[ExperimentData, Any]:
        """Train + validation units and their predictions: out-of-fold on the training units
        (the CATE model must have been fitted on exactly the train split), fold-averaged on the
        validation units."""
        from pex_tuner.effects.predictions import EffectPredictions

        oof = self.effects.predict(train)
        if not oof.out_of_fold:
            raise ConfigurationError(
                "split='train+validation' needs out-of-fold predictions for the training units: "
                "the CATE model must be fitted on this tuner's train split (same data and "
                "random_state)"
            )
        validation = self.data.subset(self.split_indices["validation"])
        pv = self.effects.predict(validation, out_of_fold="never")
        idx = np.concatenate([self.split_indices["train"], self.split_indices["validation"]])
        predictions = EffectPredictions(
            tau=np.concatenate([oof.tau, pv.tau]),
            mu=np.concatenate([oof.mu, pv.mu]),
            arms=pv.arms,
            outcomes=pv.outcomes,
            out_of_fold=True,
        )
        return self.data.subset(idx), predictions

    @property
    def _objective_idx(self) -> list[int]:
        return [self.data.outcomes.index(o) for o in self.config["objectives"]]

    @property
    def _objective_dirs(self) -> tuple[str, ...]:
        return tuple(self.data.directions[j] for j in self._objective_idx)

    @property
    def client(self) -> Any:
        """The Ax Client (created on first use: ``import ax`` takes seconds)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        names = self.metric.metric_names
        dirs = dict(zip(self.data.outcomes, self.data.directions, strict=True))
        bounds = dict(self.guardrail_bounds)
        if self.config["acquisition"] in NEEDS_REFERENCE_POINT:
            # constraints on objectives are Ax's objective thresholds: the hypervolume
            # reference point, assign-all-control's value
            control = self.baseline_eval.value[0]
            for o in self.config["objectives"]:
                bounds[o] = float(control[self.data.outcomes.index(o)])
        with _quiet_ax():
            client = make_ax_client(
                self.config["name"],
                self.space.bounds(),
                {names[o]: dirs[o] for o in self.config["objectives"]},
                [(names[g], ">=" if dirs[g] == "max" else "<=", b) for g, b in bounds.items()],
                make_generation_strategy(
                    self.config["acquisition"],
                    init_trials=self.config["init_trials"],
                    seed=self.config["random_state"],
                ),
                log_scaled=self.space.log_scaled,
            )
            if self.space.use_biases:
                self._attach_baselines(client)
        return client

    def _baseline_parameters(self, arm_index: int) -> dict[str, float]:
        """Out-of-design parameters that send every unit to ``arm_index``: weights of the
        smallest magnitude and biases far beyond any utility."""
        space = self.space
        params = {n: 0.0 for n in space.parameter_names}
        bounds = space.bounds()
        params.update({n: bounds[n][0] for n in space.log_scaled})
        w = np.asarray(space.to_policy(params).weights)
        tau = self.metric.predictions.tau
        spread = float(np.abs(tau @ w).max()) + float(np.abs(tau[:, :, 0]).max())
        L = 10.0 * (spread + space.bias_bound + 1.0) / space.bias_unit(w)
        for k in range(1, len(self.data.arms)):
            params[f"b_{k}"] = L if k == arm_index else -L
        if self.space.parameterization == "shrinkage":
            for j in range(len(self.data.outcomes)):
                params[f"alpha_{j}"] = 1.0
        return params

    def _attach_baselines(self, client: Any) -> None:
        for k, (name, _) in enumerate(self.baselines.items()):
            params = self._baseline_parameters(k)
            idx = client.attach_trial(parameters=params, arm_name=name)
            client.complete_trial(idx, raw_data=self.metric.raw_data(self.baseline_eval, k))
            self._record(idx, name, "baseline", params, self.baseline_eval, k, None)

    # ------------------------------------------------------------------ records
    def _record(
        self,
        idx: int | None,
        name: str,
        kind: str,
        params: dict[str, float] | None,
        ev: Any,
        i: int,
        node: str | None,
    ) -> None:
        rec: dict[str, Any] = {
            "trial_index": idx,
            "policy": name,
            "kind": kind,
            "node": node,
            "parameters": None if params is None else {k: float(v) for k, v in params.items()},
        }
        for j, o in enumerate(self.data.outcomes):
            rec[o] = float(ev.value[i, j])
            rec[f"{o}_se"] = float(ev.se[i, j])
        for k, a in enumerate(self.data.arms):
            rec[f"share[{a}]"] = float(ev.shares[i, k])
        self.records = [r for r in self.records if r["policy"] != name] + [rec]

    @property
    def n_evaluations(self) -> int:
        """Tuned policies evaluated so far (baselines and attached arms excluded)."""
        return sum(r["kind"] == "tuned" for r in self.records)

    # ------------------------------------------------------------------ Ax verbs
    def get_next_trials(self, max_trials: int | None = None) -> dict[int, dict[str, float]]:
        """Generate up to ``max_trials`` (default: batch_size) new parameterizations."""
        import_ax_quietly()
        from ax.exceptions.core import DataRequiredError

        q = int(max_trials or self.config["batch_size"])
        out: dict[int, dict[str, float]] = {}
        with _quiet_ax():
            while len(out) < q:
                try:
                    got = self.client.get_next_trials(max_trials=q - len(out))
                except DataRequiredError:
                    break  # complete pending trials first
                if not got:
                    break
                out.update(got)
        return out

    def complete_trial(self, trial_index: int) -> dict[str, tuple[float, float]]:
        """Evaluate a generated trial with the OPE metric and report it to Ax."""
        trial = self.client._experiment.trials[trial_index]
        params = dict(trial.arm.parameters)
        name = f"trial_{trial_index}"
        policy = self.space.to_policy(params, name=name)
        ev = self.metric.evaluate([policy], names=[name])
        raw = self.metric.raw_data(ev, 0)
        with _quiet_ax():
            self.client.complete_trial(trial_index, raw_data=raw)
        node = getattr(trial.generator_run, "_generation_node_name", None)
        self._record(trial_index, name, "tuned", params, ev, 0, node)
        return raw

    def run(self, budget: int) -> OfflineTuner:
        """Evaluate ``budget`` more tuned policies in batches of ``batch_size``.

        Shows a progress bar (evaluations) in terminals and notebooks.
        """
        from pex_tuner.progress import progress_bar

        if int(budget) < 1:
            raise ConfigurationError(f"'budget' must be a positive integer; got {budget!r}")
        target = self.n_evaluations + int(budget)
        bar = progress_bar(int(budget), f"tuning ({self.config['acquisition']})", self.progress)
        try:
            while self.n_evaluations < target:
                q = min(self.config["batch_size"], target - self.n_evaluations)
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

    # ------------------------------------------------------------------ extra arms
    def attach_policy(self, name: str, policy: Any) -> None:
        """Evaluate any policy (e.g. an interpretable tree) by the same metric and keep it as
        an alternative arm on the frontier."""
        if name in self.baselines or any(r["policy"] == name for r in self.records):
            raise ConfigurationError(f"a policy named '{name}' already exists")
        ev = self.metric.evaluate({name: policy})
        self.extra_arms[name] = policy
        self._record(None, name, "attached", None, ev, 0, None)

    # ------------------------------------------------------------------ results
    def evaluations(self) -> pd.DataFrame:
        """Every evaluated policy: kind, parameters, value and se per outcome, arm shares."""
        if not self.records:
            return pd.DataFrame()
        rows = []
        for r in self.records:
            row = {k: v for k, v in r.items() if k != "parameters"}
            for p, v in (r["parameters"] or {}).items():
                row[p] = v
            row["feasible"] = self._feasible(r)
            rows.append(row)
        return pd.DataFrame(rows)

    def _feasible(self, rec: dict[str, Any]) -> bool:
        return meets_bounds(rec, self.guardrail_bounds, self.data.outcomes, self.data.directions)

    def _objective_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return to_max_space(frame[self.config["objectives"]].to_numpy(), self._objective_dirs)

    def _tuned_objectives(self) -> tuple[np.ndarray, np.ndarray]:
        """Objective values (max space) of the tuned policies in order, and their feasibility."""
        ev = self.evaluations()
        if ev.empty:
            return np.zeros((0, len(self._objective_idx))), np.zeros(0, dtype=bool)
        tuned = ev[ev["kind"] == "tuned"]
        return self._objective_matrix(tuned), tuned["feasible"].to_numpy(dtype=bool)

    def hypervolume(self, upto: int | None = None) -> float:
        """Observed hypervolume of the tuned policies (first ``upto`` of them) vs control."""
        Y, ok = self._tuned_objectives()
        Y, ok = Y[:upto], ok[:upto]
        return hypervolume(Y[ok], self.reference_point)

    def hypervolume_trace(self) -> pd.DataFrame:
        """Observed hypervolume after each tuned evaluation: columns evaluations, hypervolume."""
        Y, ok = self._tuned_objectives()
        n = len(Y)
        return pd.DataFrame(
            {
                "evaluations": np.arange(1, n + 1),
                "hypervolume": [
                    hypervolume(Y[:i][ok[:i]], self.reference_point) for i in range(1, n + 1)
                ],
            }
        )

    def get_pareto_frontier(self, use_model_predictions: bool = False) -> pd.DataFrame:
        """The Pareto frontier of the objectives among feasible evaluated policies.

        Args:
            use_model_predictions: replace observed values of tuned policies by the Ax
                surrogate's predictions (mean and standard error; Ax reports variances,
                converted here) before taking the frontier; baselines and attached arms keep
                their observed values.

        Returns:
            DataFrame with policy, kind, trial_index, parameters, value and ``<outcome>_se``
            per outcome, ``share[<arm>]`` per arm, sorted by the first objective.
        """
        ev = self.evaluations()
        if ev.empty:
            raise NotFittedError("nothing evaluated yet: call run(budget) first")
        if use_model_predictions:
            ev = self._with_predictions(ev)
        ev = ev[ev["feasible"]]
        mask = pareto_mask(self._objective_matrix(ev))
        front = ev[mask].copy()
        first = self.config["objectives"][0]
        asc = self.data.directions[self.data.outcomes.index(first)] == "min"
        return front.sort_values(first, ascending=asc).reset_index(drop=True)

    def _with_predictions(self, ev: pd.DataFrame) -> pd.DataFrame:
        tuned = ev["kind"] == "tuned"
        points = [
            {p: float(ev.loc[i, p]) for p in self.space.parameter_names} for i in ev.index[tuned]
        ]
        if not points:
            return ev
        import_ax_quietly()
        from ax.exceptions.core import UnsupportedError

        try:
            with _quiet_ax():
                preds = self.client.predict(points)
        except UnsupportedError as exc:
            raise NotFittedError(
                "no model to predict with yet (still in Sobol initialization): run more trials"
            ) from exc
        ev = ev.copy()
        names = self.metric.metric_names
        for row, pred in zip(ev.index[tuned], preds, strict=True):
            for o in self.data.outcomes:
                if names[o] in pred:
                    ev.loc[row, o] = float(pred[names[o]][0])
                    ev.loc[row, f"{o}_se"] = float(pred[names[o]][1])
        ev["feasible"] = [self._feasible(r) for r in ev.to_dict("records")]
        return ev

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
        if int(k) < 1:
            raise ConfigurationError(f"'k' must be a positive integer; got {k!r}")
        ev = self.evaluations()
        ev = ev[ev["feasible"]] if not ev.empty else ev
        if not include_baselines and not ev.empty:
            ev = ev[ev["kind"] != "baseline"]
        if ev.empty:
            raise NotFittedError("no feasible tuned policies yet: call run(budget)")
        Y_all = self._objective_matrix(ev)
        if isinstance(reference_point, str):
            if reference_point not in ("control", "nadir"):
                raise ConfigurationError(
                    f"'reference_point' must be 'control', 'nadir' or values per objective; "
                    f"got {reference_point!r}"
                )
            low = Y_all[pareto_mask(Y_all)].min(axis=0)
            nadir = low - 1e-9 * (1.0 + np.abs(low))
            ref = self.reference_point if reference_point == "control" else nadir
            given = reference_point
        else:
            ref = to_max_space(np.asarray(reference_point, dtype=float), self._objective_dirs)
            if ref.shape != (len(self._objective_idx),):
                raise ConfigurationError(
                    f"'reference_point' needs one value per objective {self.config['objectives']}"
                )
            given = "given"
        # the frontier among the eligible policies (baselines may dominate them all)
        idx, ref, label = select_candidates(Y_all, ref, int(k))
        nadir_label = "nadir (no policy beats control on every objective)"
        label = given if label == "given" else nadir_label
        out = ev.iloc[idx].copy()
        out["subset_hypervolume"] = hypervolume(self._objective_matrix(out), ref)
        out["reference"] = label
        return out.reset_index(drop=True)

    def policy(self, name: str) -> Any:
        """The policy object of an evaluated policy (``trial_<i>``, ``all:<arm>`` or attached)."""
        if name in self.baselines:
            return self.baselines[name]
        if name in self.extra_arms:
            return self.extra_arms[name]
        for r in self.records:
            if r["policy"] == name and r["parameters"] is not None:
                return self.space.to_policy(r["parameters"], name=name)
        raise ConfigurationError(f"no evaluated policy named '{name}'")

    def write_artifacts(self, directory: str, names: Sequence[str] | None = None) -> dict[str, str]:
        """Write policy artifacts (JSON + shared model file) for evaluated policies.

        Args:
            directory: folder for the artifacts (created).
            names: policies to write (default: every evaluated policy).

        Returns:
            policy name -> artifact path.
        """
        from pathlib import Path

        from pex_tuner.policies.artifact import write_artifact

        names = list(names) if names is not None else [r["policy"] for r in self.records]
        out: dict[str, str] = {}
        for name in names:
            rec = next((r for r in self.records if r["policy"] == name), None)
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

    @property
    def acquisition_in_use(self) -> Any:
        """The BoTorch acquisition class of the current generation node (None in Sobol)."""
        gs = self.client._generation_strategy
        node = gs.current_node
        spec = node.generator_specs[0]
        adapter = spec._fitted_adapter
        if adapter is not None and hasattr(adapter.generator, "botorch_acqf_class"):
            return adapter.generator.botorch_acqf_class
        return spec.generator_kwargs.get("botorch_acqf_class")

    def __repr__(self) -> str:
        return (
            f"OfflineTuner(objectives={self.config['objectives']}, "
            f"guardrails={self.config['guardrails']}, acquisition="
            f"{self.config['acquisition']!r}, evaluations={self.n_evaluations})"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str) -> None:
        """Save to a directory (JSON state, Ax client JSON, CATE model); see ``storage``."""
        from pex_tuner.tuning.storage import save_directory

        save_directory(self, directory)

    @classmethod
    def load(cls, directory: str, data: ExperimentData) -> OfflineTuner:
        """Load a tuner saved with :meth:`save`; ``data`` must be the same experiment."""
        from pex_tuner.tuning.storage import load_directory

        return load_directory(cls, directory, data)

    def save_to_db(self, url: str = "sqlite:///pex_tuner.db") -> None:
        """Save to a SQL database (SQLAlchemy URL; SQLite file by default)."""
        from pex_tuner.tuning.storage import save_database

        save_database(self, url)

    @classmethod
    def load_from_db(
        cls, data: ExperimentData, url: str = "sqlite:///pex_tuner.db", name: str = "pex_tuner"
    ) -> OfflineTuner:
        """Load the tuner called ``name`` from a SQL database."""
        from pex_tuner.tuning.storage import load_database

        return load_database(cls, url, name, data)
