"""Saving and loading an OfflineTuner: the verbs over ``storage``'s pieces.

:class:`TunerPersistence` is mixed into :class:`~pex_tuner.tuning.offline.OfflineTuner`; it
makes the three saved pieces (state JSON, the Ax client's JSON, the CATE model) and assembles a
tuner from them. The state holds every evaluated policy's record (the dense design included),
the policy space, the split, and the learner-selection table when ``learner="auto"`` chose the
CATE model.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.data import ExperimentData
from pex_tuner.effects.selection import LearnerSelection
from pex_tuner.errors import InputDataError
from pex_tuner.policies.artifact import load_policy_document
from pex_tuner.tuning import storage
from pex_tuner.tuning.config import TunerConfig
from pex_tuner.tuning.generation import acquisition_class
from pex_tuner.tuning.space import PolicySpace

__all__ = ["TunerPersistence"]

T = TypeVar("T", bound="TunerPersistence")


class TunerPersistence:
    """save / load / save_to_db / load_from_db for the offline tuner (a mixin: it uses the
    tuner's config, data, split, space, log, effects, extra arms and client)."""

    config: TunerConfig
    data: ExperimentData
    fingerprint: str
    split_indices: dict[str, np.ndarray]
    space: PolicySpace
    log: Any
    effects: Any
    extra_arms: dict[str, Any]
    learner_selection: LearnerSelection | None
    _client: Any

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
            "reference_point": [float(v) for v in self.log.reference_point],
            "guardrail_bounds": dict(self.log.guardrail_bounds),
            "records": self.log.records,
            "extra_arms": {
                name: p.to_dict() for name, p in self.extra_arms.items() if hasattr(p, "to_dict")
            },
            "learner_selection": (
                None if self.learner_selection is None else self.learner_selection.to_dict()
            ),
            # the estimates the online candidates are chosen by, for OnlineTuner.from_offline
            "candidate_values": self._candidate_values(),  # type: ignore[attr-defined]
        }
        client = self.client  # type: ignore[attr-defined]
        return storage.SavedTuner(state, ax_bridge.client_to_json(client), self.effects)

    @classmethod
    def _from_saved(cls: type[T], saved: storage.SavedTuner, data: ExperimentData) -> T:
        """Assemble a tuner from saved pieces: rebuilt from its configuration with the saved
        CATE model (nothing is refitted), then given the saved records, extra arms, policy
        space, learner-selection table and Ax client."""
        state = saved.state
        storage.check_state(state, data)
        config = TunerConfig.from_dict(state["config"])
        split = {k: np.asarray(v, dtype=np.int64) for k, v in state["split_indices"].items()}
        tuner = cls(data, effects=saved.model, **config.to_dict())  # type: ignore[call-arg]
        if any(not np.array_equal(split[k], tuner.split_indices.get(k)) for k in split):
            raise InputDataError(
                "the saved tuner's train / validation / test split differs from the one this "
                f"pex-tuner draws with random_state={config.random_state}"
            )
        tuner.space = PolicySpace.from_dict(state["space"])
        tuner.log.records = list(state["records"])
        tuner._record_baselines()  # type: ignore[attr-defined]
        extra = state.get("extra_arms", {})
        tuner.extra_arms = {n: load_policy_document(doc) for n, doc in extra.items()}
        selection = state.get("learner_selection")
        tuner.learner_selection = (
            None if selection is None else LearnerSelection.from_dict(selection, model=saved.model)
        )
        acquisition_class(config.acquisition)  # custom classes must be registered to load
        tuner._client = ax_bridge.client_from_json(saved.ax_json)
        return tuner

    def save(self, directory: str) -> None:
        """Save to a directory (JSON state, Ax client JSON, CATE model); see ``storage``."""
        storage.write_directory(directory, self._saved())

    @classmethod
    def load(cls: type[T], directory: str, data: ExperimentData) -> T:
        """Load a tuner saved with :meth:`save`; ``data`` must be the same experiment."""
        return cls._from_saved(storage.read_directory(directory), data)

    def save_to_db(self, url: str = "sqlite:///pex_tuner.db") -> None:
        """Save to a SQL database (SQLAlchemy URL; SQLite by default)."""
        storage.write_database(url, self.config.name, self._saved())

    @classmethod
    def load_from_db(
        cls: type[T],
        data: ExperimentData,
        url: str = "sqlite:///pex_tuner.db",
        name: str = "pex_tuner",
    ) -> T:
        """Load the tuner called ``name`` from a SQL database."""
        return cls._from_saved(storage.read_database(url, name), data)
