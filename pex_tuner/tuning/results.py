"""The offline tuner's results: evaluations, hypervolume, frontier, candidates, honest report.

:class:`TunerResults` is mixed into :class:`~pex_tuner.tuning.offline.OfflineTuner`. It reads
the tuner's evaluation log, and for the GP estimate (``frontier_estimate="model"``) the Ax
surrogate's posterior at the policies in the Ax experiment.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.errors import NotFittedError
from pex_tuner.tuning import honest
from pex_tuner.tuning.config import TunerConfig, check_count
from pex_tuner.tuning.evaluations import EvaluationLog
from pex_tuner.tuning.generation import seeded_generation
from pex_tuner.tuning.metric import split_metric

__all__ = ["TunerResults"]


class TunerResults:
    """Result verbs of the offline tuner (a mixin over its log, config, metric and client)."""

    config: TunerConfig
    log: EvaluationLog
    metric: Any
    data: Any
    space: Any
    effects: Any
    split_indices: Any
    _test_metric: Any
    _predicted: Any

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

    def get_pareto_frontier(self, use_model_predictions: bool | None = None) -> pd.DataFrame:
        """The Pareto frontier of the objectives among feasible evaluated policies.

        Args:
            use_model_predictions: None (default) follows ``frontier_estimate``. True: the
                frontier of the policies in the Ax experiment (the design's ``model_points``
                nearest the frontier and the refined ones) by the surrogate's posterior mean
                and standard error, a denoised estimate that the winner's curse biases less;
                baselines and attached arms keep their observed values. False: the observed
                OPE values of every evaluated policy.

        Returns:
            DataFrame with policy, kind, trial_index, parameters, value and ``<outcome>_se``
            per outcome, ``share[<arm>]`` per arm, sorted by the first objective.
        """
        return self.log.frontier(self._estimates(use_model_predictions))

    def _estimates(self, use_model_predictions: bool | None) -> pd.DataFrame:
        """The evaluations a frontier is taken from: observed, or the surrogate's for the
        policies in the Ax experiment (see :meth:`get_pareto_frontier`)."""
        if use_model_predictions is None:
            use_model_predictions = self.config.frontier_estimate == "model"
        if use_model_predictions:
            _ = self.client  # the design's policies nearest the frontier join Ax on creation
        ev = self.evaluations()
        if ev.empty:
            raise NotFittedError("nothing evaluated yet: call run(budget) first")
        if not use_model_predictions:
            return ev
        ev = ev[(ev["kind"] != "tuned") | ev["trial_index"].notna()]
        # one GP fit per state of the experiment: the frontier, the candidates, the report and
        # a save in a row ask for the same predictions
        key = (ax_bridge.n_trials(self.client), len(self.log.records))
        if self._predicted is None or self._predicted[0] != key:
            self._predicted = (key, self._with_predictions(ev))
        return self._predicted[1].copy()

    def _with_predictions(self, ev: pd.DataFrame) -> pd.DataFrame:
        """``ev`` with the surrogate's mean and standard error for the tuned policies."""
        names = self.metric.metric_names

        def predict(points: list[dict[str, float]]) -> list[dict[str, tuple[float, float]]]:
            client = self.client
            # the GP's fit draws restarts from torch's generator: seed it, so frontiers repeat
            with seeded_generation(self.config.random_state, ax_bridge.n_trials(client)):
                preds = ax_bridge.predict(client, points)
            return [{o: p[names[o]] for o in self.data.outcomes if names[o] in p} for p in preds]

        return self.log.with_predictions(ev, self.space.parameter_names, predict)

    def select_online_candidates(
        self,
        k: int,
        *,
        include_baselines: bool = False,
        reference_point: Any = "control",
        use_model_predictions: bool | None = None,
    ) -> pd.DataFrame:
        """The k frontier policies whose set has the largest hypervolume.

        The frontier is taken among the eligible policies (tuned and attached ones; baselines
        too with ``include_baselines``), so candidates exist even when an assign-all baseline
        dominates every tuned policy. A policy that sends 99% or more of the units to one arm
        is that arm's baseline in all but name: it is labelled so (column ``same_as``) and is
        not offered as a personalized candidate. Exact search over subsets when affordable,
        BoTorch's greedy selection otherwise. When fewer than k policies qualify, the frame's
        ``attrs["note"]`` says why (and a warning repeats it).

        Args:
            k: number of candidates.
            include_baselines: allow assign-all baselines among the candidates.
            reference_point: ``"control"`` (default: assign-all-control's values),
                ``"nadir"`` (the worst frontier value of each objective), or explicit values per
                objective in their own units. When no frontier policy beats control on every
                objective, every subset has zero hypervolume against control; the nadir point
                is then used instead and the ``reference`` column says so.
            use_model_predictions: the estimate candidates are chosen by (see
                :meth:`get_pareto_frontier`); None (default) follows ``candidate_estimate``.

        Returns:
            The selected frontier rows plus ``subset_hypervolume``, ``reference`` and
            ``same_as``.
        """
        k = check_count("k", k)
        if use_model_predictions is None:
            use_model_predictions = self.config.candidate_estimate == "model"
        return self.log.select_candidates(
            k,
            frame=self._estimates(use_model_predictions),
            include_baselines=include_baselines,
            reference_point=reference_point,
        )

    def _candidate_values(self) -> dict[str, dict[str, list[float]]] | None:
        """Policy -> outcome -> [estimate, standard error] of the tuned policies the online
        candidates are chosen among, when that is the GP's posterior mean
        (``candidate_estimate="model"``); None for the observed estimates or while there is no
        model yet. Saved with the tuner, so that an online run started from it
        (``OnlineTuner.from_offline``) begins with the same candidates."""
        if self.config.candidate_estimate != "model":
            return None
        try:
            ev = self._estimates(True)
        except NotFittedError:
            return None
        rows = ev[ev["kind"] == "tuned"]
        outs = self.data.outcomes
        return {
            str(r["policy"]): {o: [float(r[o]), float(r[f"{o}_se"])] for o in outs}
            for r in rows.to_dict("records")
        }

    def frontier_report(self, use_model_predictions: bool | None = None) -> pd.DataFrame:
        """Every frontier policy with the estimate that selected it and an honest estimate on
        the untouched test split, each with its 95% interval (see ``honest``).

        Returns:
            One row per frontier policy: policy, kind, then per outcome ``<o>`` /
            ``<o>_low`` / ``<o>_high`` (the selection estimate) and ``<o>[test]`` /
            ``<o>[test]_low`` / ``<o>[test]_high``, and ``share[<arm>]`` per arm.
        """
        front = self.get_pareto_frontier(use_model_predictions)
        policies = {name: self.policy(name) for name in front["policy"]}
        return honest.frontier_report(front, policies, self.test_metric, self.data.outcomes)

    @property
    def test_metric(self) -> Any:
        """The OPE metric on the untouched test split (made on first use)."""
        if self._test_metric is None:
            self._test_metric, _ = split_metric(
                self.data,
                self.split_indices,
                self.effects,
                split="test",
                estimator=self.config.estimator,
            )
        return self._test_metric
