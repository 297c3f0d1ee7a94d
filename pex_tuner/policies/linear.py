"""LinearUtilityPolicy: assign each unit the arm with the largest linear utility.

    u_k(x) = b_k + sum_j w_j * tau_kj(x),      arm(x) = argmax_k u_k(x)

``tau_kj(x)`` is the estimated effect of arm k vs control on outcome j (zero for control), so
``u_control = b_control = 0`` and an arm is chosen only when its weighted effect plus bias beats
control. Ties go to the lowest arm index, control first.

How minimized outcomes enter: weights multiply the effects on their *raw* scale. A minimized
outcome (direction ``"min"``) is therefore favoured by a *negative* weight; a positive weight on
it would reward increasing it. :meth:`LinearUtilityPolicy.from_preferences` takes non-negative
preference weights and applies the sign of each outcome's direction for you, and the tuner fixes
the first weight to +1 or -1 by its direction (the PEX paper's normalization).

The shrinkage parameterization (PEX paper, eq. 2 and appendix A.1) replaces tau by a per-outcome
interpolation between the average effect and the unit-level effect,
``tau~_kj(x) = alpha_j * tau_kj(x) + (1 - alpha_j) * ATE_kj``, with alpha_j in [0, 1]
(alpha = 0: every unit gets the same, ATE-based, decision; alpha = 1: full personalization).
Because the ATE terms do not depend on x, that policy is the linear policy with
``w'_j = w_j * alpha_j`` and ``b'_k = b_k + sum_j w_j (1 - alpha_j) ATE_kj``; see
:meth:`LinearUtilityPolicy.from_shrinkage`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope.kernel import linear_utilities

__all__ = ["ARTIFACT_VERSION", "LinearUtilityPolicy"]

ARTIFACT_VERSION = 1
KIND = "linear_utility"


def _floats(name: str, values: Sequence[float], length: int) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (length,):
        raise ConfigurationError(f"'{name}' must have {length} values; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ConfigurationError(f"'{name}' must be finite; got {arr.tolist()}")
    return tuple(float(v) for v in arr)


def _tau_of(predictions: EffectPredictions | np.ndarray) -> np.ndarray:
    if isinstance(predictions, EffectPredictions):
        return predictions.tau
    tau = np.asarray(predictions, dtype=float)
    if tau.ndim != 3:
        raise InputDataError(
            f"expected EffectPredictions or tau of shape (n_units, n_arms, n_outcomes); got "
            f"shape {tau.shape}"
        )
    return tau


@dataclass(frozen=True)
class LinearUtilityPolicy:
    """Weights per outcome and biases per arm of a linear-utility policy.

    Attributes:
        weights: w_j, one per outcome, applied to raw-scale effects.
        biases: b_k, one per arm, control first and fixed at 0.
        arms: arm labels, control first.
        outcomes: outcome names.
        name: optional display name.
    """

    weights: tuple[float, ...]
    biases: tuple[float, ...]
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        arms = tuple(str(a) for a in self.arms)
        outcomes = tuple(str(o) for o in self.outcomes)
        if len(arms) < 2:
            raise ConfigurationError(f"a policy needs at least two arms; got {list(arms)}")
        if len(set(arms)) != len(arms):
            raise ConfigurationError(f"arm labels must be unique; got {list(arms)}")
        if len(outcomes) < 1:
            raise ConfigurationError("a policy needs at least one outcome")
        object.__setattr__(self, "arms", arms)
        object.__setattr__(self, "outcomes", outcomes)
        object.__setattr__(self, "weights", _floats("weights", self.weights, len(outcomes)))
        biases = _floats("biases", self.biases, len(arms))
        if biases[0] != 0.0:
            raise ConfigurationError(
                f"the control arm's bias must be 0 (only differences between arms matter); got "
                f"{biases[0]} for '{arms[0]}'"
            )
        object.__setattr__(self, "biases", biases)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def assign_all(
        cls, arm: str, arms: Sequence[str], outcomes: Sequence[str]
    ) -> LinearUtilityPolicy:
        """The baseline that sends every unit to ``arm`` (zero weights, bias 1 on that arm)."""
        arms_t = tuple(str(a) for a in arms)
        if str(arm) not in arms_t:
            raise ConfigurationError(f"unknown arm {arm!r}; expected one of {list(arms_t)}")
        b = np.zeros(len(arms_t))
        k = arms_t.index(str(arm))
        if k > 0:
            b[k] = 1.0
        return cls(
            weights=tuple([0.0] * len(outcomes)),
            biases=tuple(b),
            arms=arms_t,
            outcomes=tuple(outcomes),
            name=f"all:{arm}",
        )

    @classmethod
    def from_preferences(
        cls,
        preferences: Sequence[float],
        directions: Sequence[str],
        arms: Sequence[str],
        outcomes: Sequence[str],
        biases: Sequence[float] | None = None,
        name: str | None = None,
    ) -> LinearUtilityPolicy:
        """Weights from non-negative preferences: ``w_j = +p_j`` for "max", ``-p_j`` for "min"."""
        p = np.asarray(preferences, dtype=float)
        if (p < 0).any():
            raise ConfigurationError(f"'preferences' must be non-negative; got {p.tolist()}")
        if len(directions) != len(p) or any(d not in ("max", "min") for d in directions):
            raise ConfigurationError(
                f"'directions' must give 'max' or 'min' for each of {len(p)} outcomes"
            )
        sign = np.array([1.0 if d == "max" else -1.0 for d in directions])
        b = np.zeros(len(arms)) if biases is None else biases
        return cls(
            weights=tuple(sign * p),
            biases=tuple(b),
            arms=tuple(arms),
            outcomes=tuple(outcomes),
            name=name,
        )

    @classmethod
    def from_shrinkage(
        cls,
        weights: Sequence[float],
        alphas: Sequence[float],
        ate: np.ndarray,
        arms: Sequence[str],
        outcomes: Sequence[str],
        biases: Sequence[float] | None = None,
        name: str | None = None,
    ) -> LinearUtilityPolicy:
        """Convert the shrinkage parameterization to an equivalent (w, b).

        Args:
            weights: w_j per outcome.
            alphas: alpha_j in [0, 1] per outcome (1: use tau as is; 0: use the ATE).
            ate: average effects, shape (n_arms, n_outcomes), control row zero
                (``EffectPredictions.ate``).
            biases: b_k per arm before conversion (control 0); zeros by default.
        """
        J, K = len(outcomes), len(arms)
        w = np.asarray(_floats("weights", weights, J))
        a = np.asarray(_floats("alphas", alphas, J))
        if ((a < 0) | (a > 1)).any():
            raise ConfigurationError(f"'alphas' must lie in [0, 1]; got {a.tolist()}")
        ate = np.asarray(ate, dtype=float)
        if ate.shape != (K, J):
            raise ConfigurationError(f"'ate' must have shape ({K}, {J}); got {ate.shape}")
        b = np.zeros(K) if biases is None else np.asarray(_floats("biases", biases, K))
        b_new = b + (ate - ate[:1]) @ (w * (1.0 - a))
        b_new[0] = 0.0
        return cls(
            weights=tuple(w * a),
            biases=tuple(b_new),
            arms=tuple(arms),
            outcomes=tuple(outcomes),
            name=name,
        )

    # ------------------------------------------------------------------ decisions
    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def n_outcomes(self) -> int:
        return len(self.outcomes)

    def _check(self, predictions: EffectPredictions | np.ndarray) -> np.ndarray:
        tau = _tau_of(predictions)
        if tau.shape[1:] != (self.n_arms, self.n_outcomes):
            raise InputDataError(
                f"effects have shape {tau.shape}; this policy expects (n_units, {self.n_arms}, "
                f"{self.n_outcomes}) for arms {list(self.arms)} and outcomes "
                f"{list(self.outcomes)}"
            )
        if isinstance(predictions, EffectPredictions) and (
            predictions.arms != self.arms or predictions.outcomes != self.outcomes
        ):
            raise InputDataError(
                f"predictions are for arms {list(predictions.arms)} and outcomes "
                f"{list(predictions.outcomes)}; this policy is for arms {list(self.arms)} and "
                f"outcomes {list(self.outcomes)}"
            )
        return tau

    def utilities(self, predictions: EffectPredictions | np.ndarray) -> np.ndarray:
        """Utility of each arm for each unit, shape (n_units, n_arms).

        Summed outcome by outcome in a fixed order, the same order as the batched OPE kernel, so
        both pick identical arms.
        """
        return linear_utilities(self._check(predictions), self.weights, self.biases)

    def assign_index_from_effects(self, predictions: EffectPredictions | np.ndarray) -> np.ndarray:
        """Arm index per unit (0 = control) from its effects, int ndarray of shape (n_units,).

        The policy decides from CATE predictions, not from features: ``assign_index(frame)``
        of tree policies and artifacts takes raw features (a policy artifact of this policy
        predicts the effects itself).
        """
        return np.argmax(self.utilities(predictions), axis=1)

    def assign_from_effects(self, predictions: EffectPredictions | np.ndarray) -> np.ndarray:
        """Arm label per unit from its effects, object ndarray of shape (n_units,)."""
        return np.asarray(self.arms, dtype=object)[self.assign_index_from_effects(predictions)]

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": ARTIFACT_VERSION,
            "name": self.name,
            "arms": list(self.arms),
            "outcomes": list(self.outcomes),
            "weights": list(self.weights),
            "biases": list(self.biases),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearUtilityPolicy:
        if not isinstance(d, dict) or d.get("kind") != KIND:
            kind = d.get("kind") if isinstance(d, dict) else type(d).__name__
            raise InputDataError(f"expected a '{KIND}' policy document; got kind {kind!r}")
        version = d.get("version")
        if version != ARTIFACT_VERSION:
            raise InputDataError(
                f"policy document has version {version!r}; this pex-tuner reads version "
                f"{ARTIFACT_VERSION}"
            )
        missing = [k for k in ("arms", "outcomes", "weights", "biases") if k not in d]
        if missing:
            raise InputDataError(f"policy document lacks field(s) {missing}")
        return cls(
            weights=tuple(d["weights"]),
            biases=tuple(d["biases"]),
            arms=tuple(d["arms"]),
            outcomes=tuple(d["outcomes"]),
            name=d.get("name"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> LinearUtilityPolicy:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"policy JSON is not valid JSON: {exc}") from exc
        return cls.from_dict(d)


def stack_policies(
    policies: Sequence[LinearUtilityPolicy],
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and biases of several policies as matrices.

    Returns:
        (W of shape (n_policies, n_outcomes), B of shape (n_policies, n_arms)).
    """
    if not policies:
        raise ConfigurationError("expected at least one policy")
    first = policies[0]
    for p in policies[1:]:
        if p.arms != first.arms or p.outcomes != first.outcomes:
            raise ConfigurationError(
                "all policies must share arms and outcomes to be evaluated together"
            )
    W = np.array([p.weights for p in policies], dtype=float)
    B = np.array([p.biases for p in policies], dtype=float)
    return W, B
