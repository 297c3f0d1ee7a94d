"""ExperimentWithTruth: a built-in experiment together with its true potential outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.errors import InputDataError

__all__ = ["ExperimentWithTruth"]


@dataclass(frozen=True, eq=False)
class ExperimentWithTruth:
    """A logged experiment and the mean potential outcome of every unit under every arm.

    Unpacks as ``data, potential_outcomes = make_synthetic()``.

    Attributes:
        data: the logged experiment (what a user would have).
        potential_outcomes: true mean outcomes, ndarray of shape (n_units, n_arms, n_outcomes),
            arms and outcomes ordered as in ``data``.
        long_term: true mean of an outcome that is not logged (e.g. long-term retention),
            ndarray of shape (n_units, n_arms), or None.
        name: short name of the experiment.
    """

    data: ExperimentData
    potential_outcomes: np.ndarray
    long_term: np.ndarray | None = None
    name: str = "experiment"

    def __post_init__(self) -> None:
        expected = (self.data.n_units, self.data.n_arms, self.data.n_outcomes)
        if self.potential_outcomes.shape != expected:
            raise InputDataError(
                f"potential_outcomes has shape {self.potential_outcomes.shape}; expected {expected}"
            )
        if self.long_term is not None and self.long_term.shape != expected[:2]:
            raise InputDataError(
                f"long_term has shape {self.long_term.shape}; expected {expected[:2]}"
            )

    def __iter__(self) -> Iterator[Any]:
        return iter((self.data, self.potential_outcomes))

    @property
    def true_effects(self) -> np.ndarray:
        """True CATE of each arm vs control, shape (n_units, n_arms, n_outcomes), control 0."""
        return self.potential_outcomes - self.potential_outcomes[:, :1, :]

    def subset(self, indices: np.ndarray) -> ExperimentWithTruth:
        idx = np.asarray(indices)
        return ExperimentWithTruth(
            data=self.data.subset(idx),
            potential_outcomes=self.potential_outcomes[idx],
            long_term=None if self.long_term is None else self.long_term[idx],
            name=self.name,
        )

    def split(self, **kwargs: Any) -> dict[str, ExperimentWithTruth]:
        """Train / validation / test parts (keyword arguments as ``ExperimentData.split``)."""
        ind = self.data.split_indices(**kwargs)
        return {k: self.subset(v) for k, v in ind.items() if len(v)}

    def _codes(self, assignments: Any) -> np.ndarray:
        a = np.asarray(assignments)
        if a.shape != (self.data.n_units,):
            raise InputDataError(
                f"assignments has shape {a.shape}; expected ({self.data.n_units},), one arm "
                "per unit"
            )
        if np.issubdtype(a.dtype, np.integer):
            return a.astype(np.int64)
        lookup = {arm: i for i, arm in enumerate(self.data.arms)}
        try:
            return np.fromiter((lookup[str(v)] for v in a), dtype=np.int64, count=len(a))
        except KeyError as exc:
            raise InputDataError(
                f"assignments hold arm {exc.args[0]!r}; expected one of {list(self.data.arms)}"
            ) from None

    def policy_value(self, assignments: Any) -> np.ndarray:
        """True mean of each outcome if every unit got its assigned arm, shape (n_outcomes,).

        ``assignments`` holds arm labels or arm indices, shape (n_units,).
        """
        codes = self._codes(assignments)
        rows = np.arange(self.data.n_units)
        return self.potential_outcomes[rows, codes, :].mean(axis=0)

    def long_term_value(self, assignments: Any) -> float:
        """True mean of the unlogged long-term outcome under ``assignments``."""
        if self.long_term is None:
            raise InputDataError(f"experiment '{self.name}' has no long-term outcome")
        codes = self._codes(assignments)
        return float(self.long_term[np.arange(self.data.n_units), codes].mean())

    def oracle_assignment(self, weights: Any) -> np.ndarray:
        """Arm index maximizing ``sum_j weights_j * mu_kj(x)`` per unit, shape (n_units,)."""
        w = np.asarray(weights, dtype=float)
        utility = self.potential_outcomes @ w
        return np.argmax(utility, axis=1)

    def regret(self, assignments: Any, weights: Any) -> float:
        """Oracle utility minus the utility of ``assignments`` (weights per outcome)."""
        w = np.asarray(weights, dtype=float)
        best = self.policy_value(self.oracle_assignment(w)) @ w
        return float(best - self.policy_value(assignments) @ w)
