"""AxReplay: an Ax client rebuilt from online trial records, a cache and never the source of
truth.

The online tuner's trials (:mod:`pex_tuner.tuning.trials`) are plain JSON; before generating,
:meth:`AxReplay.sync` brings the Ax experiment up to date with them: new trials are attached in
order, results and failures replayed. Reports never touch Ax, so they stay fast; the model
sees them here. A client lost with its process is rebuilt from the records alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pex_tuner.tuning.ax_bridge as ax_bridge

__all__ = ["AxReplay"]


class AxReplay:
    """The Ax side of an online run.

    Args:
        make_client: makes the empty Ax Client (its experiment and a model-only generation
            strategy: the first trials' results are the model's initial data).
    """

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self._make_client = make_client
        self._client: Any = None
        self._index: dict[int, int] = {}  # trial id -> Ax trial index
        self._status: dict[int, str] = {}  # trial id -> status Ax has seen

    @property
    def client(self) -> Any:
        """The Ax Client (created empty on first use; :meth:`sync` fills it)."""
        if self._client is None:
            self._client = self._make_client()
            self._index, self._status = {}, {}
        return self._client

    def sync(
        self,
        trials: Mapping[int, Mapping[str, Any]],
        raw_data: Callable[[int], dict[str, tuple[float, float]]],
    ) -> None:
        """Attach trials Ax has not seen, in id order, and replay results (``raw_data(trial
        id)``: Ax metric name -> (mean, sem)) and failures it has not seen."""
        client = self.client
        for tid in sorted(trials):
            t = trials[tid]
            if tid not in self._index:
                with ax_bridge.quiet_ax():
                    self._index[tid] = client.attach_trial(parameters=dict(t["parameters"]))
                self._status[tid] = "running"
            if self._status.get(tid) == t["status"] or t["status"] in ("pending", "running"):
                continue
            with ax_bridge.quiet_ax():
                if t["status"] == "completed":
                    self._complete(tid, t, raw_data(tid))
                elif t["status"] == "abandoned":
                    client.mark_trial_abandoned(self._index[tid])
                else:
                    client.mark_trial_failed(self._index[tid])
            self._status[tid] = t["status"]

    def _complete(
        self, tid: int, trial: Mapping[str, Any], raw: dict[str, tuple[float, float]]
    ) -> None:
        idx = self._index[tid]
        if ax_bridge.trial_is_terminal(self.client, idx):  # late result: failed / abandoned
            idx = self.client.attach_trial(parameters=dict(trial["parameters"]))
            self._index[tid] = idx
        self.client.complete_trial(idx, raw_data=raw)

    def generate(self, q: int) -> list[tuple[int, dict[str, float]]]:
        """q new parameterizations from the acquisition: (Ax trial index, parameters) in index
        order. Call :meth:`adopt` with the trial id each one gets."""
        got = ax_bridge.get_next_trials(self.client, q, fill=False)
        return sorted(got.items())

    def adopt(self, trial_id: int, ax_index: int) -> None:
        """Record that trial ``trial_id`` is the generated Ax trial ``ax_index``."""
        self._index[trial_id] = ax_index
        self._status[trial_id] = "running"

    def acquisition_in_use(self) -> Any:
        """The BoTorch acquisition class of the generator (after a generation)."""
        return ax_bridge.acquisition_in_use(self.client)
