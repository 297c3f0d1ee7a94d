"""EffectPredictions: CATE estimates and outcome surfaces for a set of units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pex_tuner.errors import InputDataError

__all__ = ["EffectPredictions"]


@dataclass(frozen=True, eq=False)
class EffectPredictions:
    """Predicted effects and outcome surfaces.

    Attributes:
        tau: effect of each arm vs control, ndarray of shape (n_units, n_arms, n_outcomes);
            the control slice ``tau[:, 0, :]`` is zero.
        mu: predicted mean outcome under each arm, same shape
            (``mu[:, k] - mu[:, 0] == tau[:, k]``).
        arms: arm labels, control first.
        outcomes: outcome names.
        out_of_fold: True when every unit's prediction comes from models that did not see it.
    """

    tau: np.ndarray
    mu: np.ndarray
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    out_of_fold: bool = False

    def __post_init__(self) -> None:
        if self.tau.ndim != 3 or self.tau.shape != self.mu.shape:
            raise InputDataError(
                f"tau and mu must both have shape (n_units, n_arms, n_outcomes); got "
                f"{self.tau.shape} and {self.mu.shape}"
            )
        if self.tau.shape[1:] != (len(self.arms), len(self.outcomes)):
            raise InputDataError(
                f"tau has shape {self.tau.shape}; expected (n_units, {len(self.arms)}, "
                f"{len(self.outcomes)}) for arms {list(self.arms)} and outcomes "
                f"{list(self.outcomes)}"
            )

    @property
    def n_units(self) -> int:
        return int(self.tau.shape[0])

    def __len__(self) -> int:
        return self.n_units

    @property
    def ate(self) -> np.ndarray:
        """Average predicted effect per arm and outcome, shape (n_arms, n_outcomes)."""
        return self.tau.mean(axis=0)

    def subset(self, indices: np.ndarray) -> EffectPredictions:
        idx = np.asarray(indices)
        return EffectPredictions(
            tau=self.tau[idx],
            mu=self.mu[idx],
            arms=self.arms,
            outcomes=self.outcomes,
            out_of_fold=self.out_of_fold,
        )
