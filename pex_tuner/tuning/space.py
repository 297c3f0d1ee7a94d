"""PolicySpace: the tunable parameters of linear-utility policies and their ranges.

Normalization (PEX paper, section 2.1): the first outcome's weight is fixed to +1 (maximized)
or -1 (minimized) and the control arm's bias to 0, leaving J - 1 weights and K - 1 biases:
J + K - 2 free parameters for J outcomes and K arms.

Ranges come from the scale of the CATE predictions the policies act on (validation split):

* weights: let s_j be the standard deviation of tau_kj(x) over units and treatment arms. At
  ``w_j = s_1 / s_j`` outcome j moves utilities as much as the first outcome does, so the range
  of |w_j| is ``[0, weight_scale * s_1 / s_j]`` (``weight_scale`` = 4 by default: up to four
  times the first outcome's influence). The sign is fixed by direction: positive for "max",
  negative for "min", so every policy prefers improvements in every outcome.
* biases: ``[-B, B]`` with ``B = bias_scale * M``, M the 99th percentile over units and arms
  of the largest possible weighted effect ``sum_j |w_j|max * |tau_kj(x)|``. A bias of M
  overrides the effects for almost every unit; most of such a range is "assign (almost) all
  to one arm", where no search learns anything. ``bias_scale = 0.25`` (default) keeps the
  range where effects and biases trade off. Measured on make_synthetic (seed 0, 64
  evaluations, true hypervolume on test units, qLogNParEGO): bias_scale 1.0 gave 6.96e-4,
  0.25 gave 7.38e-4 (and more at 16 and 32 evaluations), 0.1 gave 7.07e-4; the best of
  2,000 Sobol policies of each class was 8.36e-4 / 8.66e-4 / 7.30e-4. The assign-all
  baselines are attached as separate arms whatever the range.
* shrinkage parameterization (option): one alpha_j in [0, 1] per outcome in addition, and the
  policy is ``LinearUtilityPolicy.from_shrinkage`` (alpha_j interpolates between the ATE and
  tau).

Parameter names are ``w_<j>`` for outcome j >= 1, ``b_<k>`` for arm k >= 1 and ``alpha_<j>``,
indices into the experiment's outcome and arm tuples (safe for Ax whatever the labels are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError
from pex_tuner.policies.linear import LinearUtilityPolicy

__all__ = ["PolicySpace"]

PARAMETERIZATIONS = ("linear", "shrinkage")


@dataclass(frozen=True)
class PolicySpace:
    """Bounds and conversions for tunable linear-utility policies.

    Attributes:
        arms, outcomes, directions: as in the experiment.
        weight_bounds: (low, high) per outcome; entry 0 is the fixed weight (±1, ±1).
        bias_bound: B, biases range over [-B, B] (0 when ``use_biases`` is False).
        use_biases: whether biases are tuned (False: the paper's no-bias comparison).
        parameterization: ``"linear"`` or ``"shrinkage"``.
        ate: average predicted effects, shape (n_arms, n_outcomes) (for shrinkage).
    """

    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    directions: tuple[str, ...]
    weight_bounds: tuple[tuple[float, float], ...]
    bias_bound: float
    use_biases: bool = True
    parameterization: str = "linear"
    ate: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def from_predictions(
        cls,
        predictions: EffectPredictions,
        directions: tuple[str, ...],
        *,
        use_biases: bool = True,
        parameterization: str = "linear",
        weight_scale: float = 4.0,
        bias_scale: float = 0.25,
    ) -> PolicySpace:
        """Derive ranges from CATE predictions (see the module docstring)."""
        if parameterization not in PARAMETERIZATIONS:
            raise ConfigurationError(
                f"The 'parameterization' parameter must be one of {list(PARAMETERIZATIONS)}. "
                f"Got {parameterization!r} instead."
            )
        if not weight_scale > 0:
            raise ConfigurationError(f"'weight_scale' must be > 0; got {weight_scale!r}")
        if not bias_scale > 0:
            raise ConfigurationError(f"'bias_scale' must be > 0; got {bias_scale!r}")
        tau = predictions.tau[:, 1:, :]  # treatment arms only
        J = tau.shape[2]
        s = tau.std(axis=(0, 1))
        s = np.where(s > 0, s, np.maximum(np.abs(tau).mean(axis=(0, 1)), 1e-12))
        sign = np.array([1.0 if d == "max" else -1.0 for d in directions])
        bounds: list[tuple[float, float]] = [(sign[0], sign[0])]
        wmax = np.ones(J)
        for j in range(1, J):
            hi = float(weight_scale * s[0] / s[j])
            wmax[j] = hi
            bounds.append((0.0, hi) if sign[j] > 0 else (-hi, 0.0))
        impact = np.abs(tau) @ wmax  # (n, K-1)
        B = float(np.quantile(impact, 0.99)) if impact.size else 1.0
        B = bias_scale * (B if B > 0 else 1.0)
        return cls(
            arms=predictions.arms,
            outcomes=predictions.outcomes,
            directions=tuple(directions),
            weight_bounds=tuple(bounds),
            bias_bound=B if use_biases else 0.0,
            use_biases=use_biases,
            parameterization=parameterization,
            ate=tuple(tuple(float(v) for v in row) for row in predictions.ate),
        )

    # ------------------------------------------------------------------ parameters
    @property
    def parameter_names(self) -> list[str]:
        names = [f"w_{j}" for j in range(1, len(self.outcomes))]
        if self.use_biases:
            names += [f"b_{k}" for k in range(1, len(self.arms))]
        if self.parameterization == "shrinkage":
            names += [f"alpha_{j}" for j in range(len(self.outcomes))]
        return names

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Parameter name -> (low, high)."""
        out: dict[str, tuple[float, float]] = {}
        for j in range(1, len(self.outcomes)):
            out[f"w_{j}"] = self.weight_bounds[j]
        if self.use_biases:
            for k in range(1, len(self.arms)):
                out[f"b_{k}"] = (-self.bias_bound, self.bias_bound)
        if self.parameterization == "shrinkage":
            for j in range(len(self.outcomes)):
                out[f"alpha_{j}"] = (0.0, 1.0)
        return out

    def describe(self) -> dict[str, str]:
        """Parameter name -> human-readable meaning."""
        out = {}
        for j in range(1, len(self.outcomes)):
            out[f"w_{j}"] = f"weight of '{self.outcomes[j]}' ({self.directions[j]})"
        if self.use_biases:
            for k in range(1, len(self.arms)):
                out[f"b_{k}"] = f"bias of arm '{self.arms[k]}'"
        if self.parameterization == "shrinkage":
            for j in range(len(self.outcomes)):
                out[f"alpha_{j}"] = f"personalization of '{self.outcomes[j]}' (0: ATE, 1: tau)"
        return out

    def to_policy(self, params: dict[str, Any], name: str | None = None) -> LinearUtilityPolicy:
        """The LinearUtilityPolicy of one parameterization."""
        J, K = len(self.outcomes), len(self.arms)
        w = np.empty(J)
        w[0] = self.weight_bounds[0][0]
        for j in range(1, J):
            w[j] = float(params[f"w_{j}"])
        b = np.zeros(K)
        if self.use_biases:
            for k in range(1, K):
                b[k] = float(params[f"b_{k}"])
        if self.parameterization == "shrinkage":
            alphas = [float(params[f"alpha_{j}"]) for j in range(J)]
            return LinearUtilityPolicy.from_shrinkage(
                w, alphas, np.asarray(self.ate), self.arms, self.outcomes, biases=b, name=name
            )
        return LinearUtilityPolicy(
            weights=tuple(w), biases=tuple(b), arms=self.arms, outcomes=self.outcomes, name=name
        )

    def to_matrices(self, params_list: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Weights (P, J) and biases (P, K) of many parameterizations."""
        pols = [self.to_policy(p) for p in params_list]
        return (
            np.array([p.weights for p in pols], dtype=float),
            np.array([p.biases for p in pols], dtype=float),
        )

    def sample(self, n: int, rng: np.random.Generator) -> list[dict[str, float]]:
        """n uniform random parameterizations (for baselines such as large Sobol budgets)."""
        b = self.bounds()
        lo = np.array([v[0] for v in b.values()])
        hi = np.array([v[1] for v in b.values()])
        u = rng.uniform(size=(n, len(b)))
        vals = lo + u * (hi - lo)
        return [dict(zip(b, row, strict=True)) for row in vals]

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": list(self.arms),
            "outcomes": list(self.outcomes),
            "directions": list(self.directions),
            "weight_bounds": [list(b) for b in self.weight_bounds],
            "bias_bound": self.bias_bound,
            "use_biases": self.use_biases,
            "parameterization": self.parameterization,
            "ate": [list(r) for r in self.ate],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicySpace:
        return cls(
            arms=tuple(d["arms"]),
            outcomes=tuple(d["outcomes"]),
            directions=tuple(d["directions"]),
            weight_bounds=tuple(tuple(b) for b in d["weight_bounds"]),
            bias_bound=float(d["bias_bound"]),
            use_biases=bool(d["use_biases"]),
            parameterization=str(d["parameterization"]),
            ate=tuple(tuple(r) for r in d["ate"]),
        )
