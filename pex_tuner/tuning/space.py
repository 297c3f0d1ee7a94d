"""PolicySpace: the tunable parameters of linear-utility policies and their ranges.

Normalization (PEX paper, section 2.1): the first outcome's weight is fixed to +1 (maximized)
or -1 (minimized) and the control arm's bias to 0, leaving J - 1 weights and K - 1 biases:
J + K - 2 free parameters for J outcomes and K arms.

Ranges come from the scale of the CATE predictions the policies act on (validation split).
Let s_j be the standard deviation of tau_kj(x) over units and treatment arms. At
``w_j = s_1 / s_j`` outcome j moves utilities as much as the first outcome does, so |w_j| ranges
up to ``weight_scale * s_1 / s_j`` (``weight_scale`` = 4 by default: up to four times the first
outcome's influence). The sign is fixed by direction: positive for "max", negative for "min", so
every policy prefers improvements in every outcome. Two scalings of these coordinates:

* ``scaling="absolute"`` (default). ``w_j`` in ``[0, weight_scale * s_1 / s_j]`` (with its
  sign) on a linear scale, and biases in ``[-B, B]`` with ``B = bias_scale * M``, M the 99th
  percentile over units and arms of the largest possible weighted effect
  ``sum_j |w_j|max * |tau_kj(x)|``. A bias of M overrides the effects for almost every unit;
  most of such a range is "assign (almost) all to one arm", where no search learns anything, so
  ``bias_scale`` is 0.25 by default (bias_scale 1.0 / 0.25 / 0.1 gave 6.96e-4 / 7.38e-4 /
  7.07e-4 true hypervolume at 64 qLogNParEGO evaluations on make_synthetic, seed 0; the best of
  2,000 Sobol policies of each class was 8.36e-4 / 8.66e-4 / 7.30e-4).
* ``scaling="relative"`` (option). The parameter ``w_j`` is the magnitude |w_j| on a log scale,
  from ``weight_floor`` (1%) of the largest value to the largest value, and the parameter
  ``b_k`` is the bias in units of the policy's own utility spread: the actual bias is
  ``b_k * S(w)`` with ``S(w) = sqrt(w' M w)``, M the J x J second-moment matrix of tau_k(x)
  over units and treatment arms (so S(w) is the root mean square of the weighted effect
  ``sum_j w_j tau_kj(x)``). ``b_k`` ranges over ``[-bias_scale, bias_scale]`` (1 by default: up
  to one RMS weighted effect). Why: with absolute biases, the same bias means "override
  almost every unit" for small weights and "nudge a few units" for large ones, and an equal step
  in w changes the policy far more near 0 than near the top of its range. The metrics are then
  badly non-stationary in the parameters, which the GP surrogate assumes they are not: fitted on
  64 Sobol policies of make_synthetic (n = 100,000, 3 seeds) and tested on 1,936 others, the
  surrogate explained 85% / 74% / 77% of the variance of the three objectives' OPE values with
  absolute coordinates and 97% / 96% / 95% with relative ones
  (``benchmarks/results/surrogate.md``).
  It is not the default: the better fit has not bought more hypervolume in our tuning benchmark
  (``benchmarks/results/tuning.md``: qLogNParEGO-HV reached 0.86 of the relative class's Sobol-2000
  reference against 0.92 in absolute coordinates, and that reference is about 5% lower).

The assign-all baselines are attached as separate arms whatever the range. The shrinkage
parameterization (option) adds one alpha_j in [0, 1] per outcome, and the policy is
``LinearUtilityPolicy.from_shrinkage`` (alpha_j interpolates between the ATE and tau).

Parameter names are ``w_<j>`` for outcome j >= 1, ``b_<k>`` for arm k >= 1 and ``alpha_<j>``,
indices into the experiment's outcome and arm tuples (safe for Ax whatever the labels are, and
what saved tuners store). What people read names them by outcome and arm instead:
``display_names()`` maps ``w_1`` -> ``w[retention]``, ``b_2`` -> ``b[arm_2]``,
``alpha_0`` -> ``alpha[engagement]`` (frontier.csv, candidates.json, reports, plot hovers).
``to_policy`` turns parameters into the actual weights and biases of a LinearUtilityPolicy
(what policy artifacts carry).
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
SCALINGS = ("relative", "absolute")
#: default bias range per scaling (see the module docstring)
DEFAULT_BIAS_SCALE = {"relative": 1.0, "absolute": 0.25}


@dataclass(frozen=True)
class PolicySpace:
    """Bounds and conversions for tunable linear-utility policies.

    Attributes:
        arms, outcomes, directions: as in the experiment.
        weight_bounds: (low, high) of the weight parameter per outcome; entry 0 is the fixed
            weight (±1, ±1). Magnitudes (positive) for relative scaling, signed values for
            absolute scaling.
        bias_bound: B, bias parameters range over [-B, B] (0 when ``use_biases`` is False);
            in units of S(w) for relative scaling.
        use_biases: whether biases are tuned (False: the paper's no-bias comparison).
        parameterization: ``"linear"`` or ``"shrinkage"``.
        ate: average predicted effects, shape (n_arms, n_outcomes) (for shrinkage).
        scaling: ``"relative"`` or ``"absolute"`` (see the module docstring).
        effect_moment: M, the (n_outcomes, n_outcomes) second moment of tau over units and
            treatment arms (relative scaling).
    """

    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    directions: tuple[str, ...]
    weight_bounds: tuple[tuple[float, float], ...]
    bias_bound: float
    use_biases: bool = True
    parameterization: str = "linear"
    ate: tuple[tuple[float, ...], ...] = ()
    scaling: str = "absolute"
    effect_moment: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def from_predictions(
        cls,
        predictions: EffectPredictions,
        directions: tuple[str, ...],
        *,
        use_biases: bool = True,
        parameterization: str = "linear",
        weight_scale: float = 4.0,
        bias_scale: float | None = None,
        scaling: str = "absolute",
        weight_floor: float = 0.01,
    ) -> PolicySpace:
        """Derive ranges from CATE predictions (see the module docstring).

        Args:
            predictions: CATE predictions (tau of shape (n_units, n_arms, n_outcomes)).
            directions: "max" / "min" per outcome.
            use_biases, parameterization: see the class attributes.
            weight_scale: largest |w_j| as a multiple of s_1 / s_j.
            bias_scale: bias range (None: 1.0 for relative scaling, 0.25 for absolute).
            scaling: ``"absolute"`` (default) or ``"relative"``.
            weight_floor: smallest |w_j| as a fraction of the largest (relative scaling).
        """
        if parameterization not in PARAMETERIZATIONS:
            raise ConfigurationError(
                f"The 'parameterization' parameter must be one of {list(PARAMETERIZATIONS)}. "
                f"Got {parameterization!r} instead."
            )
        if scaling not in SCALINGS:
            raise ConfigurationError(
                f"The 'scaling' parameter must be one of {list(SCALINGS)}. Got {scaling!r} instead."
            )
        if bias_scale is None:
            bias_scale = DEFAULT_BIAS_SCALE[scaling]
        if not weight_scale > 0:
            raise ConfigurationError(f"'weight_scale' must be > 0; got {weight_scale!r}")
        if not 0 < weight_floor < 1:
            raise ConfigurationError(f"'weight_floor' must be in (0, 1); got {weight_floor!r}")
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
            if scaling == "relative":
                bounds.append((weight_floor * hi, hi))
            else:
                bounds.append((0.0, hi) if sign[j] > 0 else (-hi, 0.0))
        moment = np.zeros((0, 0))
        if scaling == "relative":
            flat = tau.reshape(-1, J)
            moment = flat.T @ flat / max(len(flat), 1)
            B = float(bias_scale)
        else:
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
            scaling=scaling,
            effect_moment=tuple(tuple(float(v) for v in row) for row in moment),
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

    def display_names(self) -> dict[str, str]:
        """Parameter name -> the name people read: ``w[<outcome>]``, ``b[<arm>]``,
        ``alpha[<outcome>]`` (the internal names are indices, kept for Ax and saved tuners)."""
        out = {f"w_{j}": f"w[{self.outcomes[j]}]" for j in range(1, len(self.outcomes))}
        if self.use_biases:
            out.update({f"b_{k}": f"b[{self.arms[k]}]" for k in range(1, len(self.arms))})
        if self.parameterization == "shrinkage":
            out.update({f"alpha_{j}": f"alpha[{o}]" for j, o in enumerate(self.outcomes)})
        return out

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

    @property
    def log_scaled(self) -> tuple[str, ...]:
        """Parameters searched on a log scale (the weight magnitudes of relative scaling)."""
        if self.scaling != "relative":
            return ()
        return tuple(f"w_{j}" for j in range(1, len(self.outcomes)))

    def bias_unit(self, weights: np.ndarray) -> float:
        """What one unit of a bias parameter is worth for ``weights`` (J,): S(w) for relative
        scaling (see the module docstring), 1 for absolute scaling."""
        if self.scaling != "relative":
            return 1.0
        w = np.asarray(weights, dtype=float)
        S = float(np.sqrt(max(w @ np.asarray(self.effect_moment) @ w, 0.0)))
        return S if S > 0 else 1.0

    def assign_all_parameters(self, arm_index: int, tau: np.ndarray) -> dict[str, float]:
        """Out-of-design parameters whose policy sends every unit to arm ``arm_index``: weights
        of the smallest magnitude and biases far beyond any utility the effects ``tau`` (n_units,
        n_arms, n_outcomes) can give. Needs biases."""
        params = {n: 0.0 for n in self.parameter_names}
        bounds = self.bounds()
        params.update({n: bounds[n][0] for n in self.log_scaled})
        w = np.asarray(self.to_policy(params).weights)
        spread = float(np.abs(tau @ w).max()) + float(np.abs(tau[:, :, 0]).max())
        L = 10.0 * (spread + self.bias_bound + 1.0) / self.bias_unit(w)
        for k in range(1, len(self.arms)):
            params[f"b_{k}"] = L if k == arm_index else -L
        if self.parameterization == "shrinkage":
            for j in range(len(self.outcomes)):
                params[f"alpha_{j}"] = 1.0
        return params

    def describe(self) -> dict[str, str]:
        """Parameter name -> human-readable meaning."""
        out = {}
        rel = self.scaling == "relative"
        for j in range(1, len(self.outcomes)):
            what = "|weight|" if rel else "weight"
            out[f"w_{j}"] = f"{what} of '{self.outcomes[j]}' ({self.directions[j]})"
        if self.use_biases:
            for k in range(1, len(self.arms)):
                unit = " (in RMS weighted effects)" if rel else ""
                out[f"b_{k}"] = f"bias of arm '{self.arms[k]}'{unit}"
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
            if self.scaling == "relative":
                w[j] = abs(w[j]) * (1.0 if self.directions[j] == "max" else -1.0)
        b = np.zeros(K)
        if self.use_biases:
            unit = self.bias_unit(w)
            for k in range(1, K):
                b[k] = float(params[f"b_{k}"]) * unit
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

    def from_unit(self, u: np.ndarray) -> list[dict[str, float]]:
        """Parameterizations from points ``u`` (n, n_parameters) of the unit cube, uniform in the
        coordinates the tuner searches (log scale for ``log_scaled`` parameters), as Ax's Sobol
        generator maps them."""
        b = self.bounds()
        u = np.asarray(u, dtype=float)
        if u.ndim != 2 or u.shape[1] != len(b):
            raise ConfigurationError(f"'u' must have shape (n, {len(b)}); got {u.shape}")
        cols = []
        for i, (name, (lo, hi)) in enumerate(b.items()):
            if name in self.log_scaled:
                cols.append(np.exp(np.log(lo) + u[:, i] * (np.log(hi) - np.log(lo))))
            else:
                cols.append(lo + u[:, i] * (hi - lo))
        vals = np.column_stack(cols) if cols else np.zeros((len(u), 0))
        return [dict(zip(b, (float(v) for v in row), strict=True)) for row in vals]

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
            "scaling": self.scaling,
            "effect_moment": [list(r) for r in self.effect_moment],
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
            scaling=str(d.get("scaling", "absolute")),  # saved before relative scaling existed
            effect_moment=tuple(tuple(r) for r in d.get("effect_moment", ())),
        )
