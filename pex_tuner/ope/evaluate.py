"""Public OPE entry points: ``evaluate`` (any assignments) and ``evaluate_linear_policies``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope.estimators import (
    Estimator,
    components,
    control_score_sums,
    finalize,
    make_estimator,
    residual_parts,
    statistics,
)
from pex_tuner.ope.kernel import (
    accumulate_assignments,
    accumulate_linear_mean,
    accumulate_linear_snips,
    linear_arm_index,
)

__all__ = [
    "DEFAULT_CHUNK",
    "PolicyEvaluation",
    "WeightedPolicy",
    "evaluate",
    "evaluate_assignments",
    "evaluate_linear_policies",
    "evaluation_from_sums",
    "linear_matrices",
    "stack_weighted",
]

DEFAULT_CHUNK = 1 << 16


@runtime_checkable
class WeightedPolicy(Protocol):
    """What OPE needs of a linear-utility policy (``LinearUtilityPolicy`` is one).

    ``weights``: length n_outcomes; ``biases``: length n_arms (control first, zero); the policy
    assigns ``argmax_k biases[k] + sum_j weights[j] * tau[n, k, j]``. OPE reads these fields
    and never imports a policy class.
    """

    name: str
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    weights: Sequence[float]
    biases: Sequence[float]


def stack_weighted(
    policies: Sequence[WeightedPolicy], data: ExperimentData
) -> tuple[np.ndarray, ...]:
    """Weights (P, J) and biases (P, K) of weighted policies that share ``data``'s arms and
    outcomes (checked: ConfigurationError / InputDataError otherwise)."""
    first = policies[0]
    for p in policies[1:]:
        if p.arms != first.arms or p.outcomes != first.outcomes:
            raise ConfigurationError(
                "all policies must share arms and outcomes to be evaluated together"
            )
    if first.arms != data.arms or first.outcomes != data.outcomes:
        raise InputDataError(
            f"policies are for arms {list(first.arms)} / outcomes "
            f"{list(first.outcomes)}; the experiment has {list(data.arms)} / "
            f"{list(data.outcomes)}"
        )
    W = np.array([p.weights for p in policies], dtype=float)
    B = np.array([p.biases for p in policies], dtype=float)
    return W, B


@dataclass(frozen=True, eq=False)
class PolicyEvaluation:
    """OPE results for P policies and J outcomes.

    Attributes:
        policies: policy names, length P.
        arms, outcomes, directions: as in the experiment.
        estimator: estimator name.
        n_units: units evaluated on.
        value, se: policy value and its standard error, shape (P, J).
        lift, lift_se: value minus assign-all-control's, paired on the same units, (P, J).
        shares: share of units each policy sends to each arm, shape (P, K).
        confidence: confidence level of the intervals (0.95 by default).
    """

    policies: tuple[str, ...]
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    directions: tuple[str, ...]
    estimator: str
    n_units: int
    value: np.ndarray
    se: np.ndarray
    lift: np.ndarray
    lift_se: np.ndarray
    shares: np.ndarray
    confidence: float = 0.95

    @property
    def z(self) -> float:
        return float(stats.norm.ppf(0.5 + self.confidence / 2))

    @property
    def ci_low(self) -> np.ndarray:
        return self.value - self.z * self.se

    @property
    def ci_high(self) -> np.ndarray:
        return self.value + self.z * self.se

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per policy and outcome.

        Columns: policy, outcome, direction, estimator, value, se, ci_low, ci_high, lift,
        lift_se, lift_ci_low, lift_ci_high, n_units, then ``share[<arm>]`` per arm.
        """
        P, J = self.value.shape
        z = self.z
        frame = pd.DataFrame(
            {
                "policy": np.repeat(np.asarray(self.policies, dtype=object), J),
                "outcome": np.tile(np.asarray(self.outcomes, dtype=object), P),
                "direction": np.tile(np.asarray(self.directions, dtype=object), P),
                "estimator": self.estimator,
                "value": self.value.ravel(),
                "se": self.se.ravel(),
                "ci_low": (self.value - z * self.se).ravel(),
                "ci_high": (self.value + z * self.se).ravel(),
                "lift": self.lift.ravel(),
                "lift_se": self.lift_se.ravel(),
                "lift_ci_low": (self.lift - z * self.lift_se).ravel(),
                "lift_ci_high": (self.lift + z * self.lift_se).ravel(),
                "n_units": self.n_units,
            }
        )
        for k, arm in enumerate(self.arms):
            frame[f"share[{arm}]"] = np.repeat(self.shares[:, k], J)
        return frame


def _check_inputs(
    data: ExperimentData, predictions: EffectPredictions | None, estimator: str
) -> np.ndarray | None:
    if not isinstance(data, ExperimentData):
        raise InputDataError(f"expected an ExperimentData, got {type(data).__name__}")
    if predictions is None:
        return None
    if not isinstance(predictions, EffectPredictions):
        raise InputDataError(
            f"'predictions' must be EffectPredictions, got {type(predictions).__name__}"
        )
    if predictions.n_units != data.n_units:
        raise InputDataError(
            f"predictions cover {predictions.n_units} units but the experiment has "
            f"{data.n_units}; predict on the same units you evaluate on"
        )
    if predictions.arms != data.arms or predictions.outcomes != data.outcomes:
        raise InputDataError(
            f"predictions are for arms {list(predictions.arms)} / outcomes "
            f"{list(predictions.outcomes)}; the experiment has {list(data.arms)} / "
            f"{list(data.outcomes)}"
        )
    return predictions.mu


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigurationError(f"'confidence' must be in (0, 1); got {confidence!r}")


def _check_chunk(chunk_size: int) -> None:
    if int(chunk_size) < 1:
        raise ConfigurationError(f"'chunk_size' must be a positive integer; got {chunk_size!r}")


def _result(
    est: Estimator,
    sums: np.ndarray,
    counts: np.ndarray,
    data: ExperimentData,
    names: Sequence[str],
    confidence: float,
) -> PolicyEvaluation:
    logged = None
    if data.propensity_source == "empirical":
        logged = np.bincount(data.treatment, minlength=data.n_arms)
    return evaluation_from_sums(
        est, sums, counts, data.n_units, data, names, confidence, logged=logged
    )


def evaluation_from_sums(
    est: Estimator,
    sums: np.ndarray,
    counts: np.ndarray,
    n_units: int,
    experiment: Any,
    names: Sequence[str],
    confidence: float,
    *,
    logged: np.ndarray | None = None,
) -> PolicyEvaluation:
    """The PolicyEvaluation of accumulated statistics: ``sums`` and ``counts`` as the kernel
    returns them (per policy and arm), over ``n_units`` units of ``experiment`` (anything with
    ``arms``, ``outcomes`` and ``directions``: an ExperimentData, or a partitioned experiment
    whose statistics were summed over partitions). ``logged``: units logged per arm, shape (K,),
    with empirical propensities (see ``estimators.finalize``)."""
    value, se, lift, lift_se = finalize(est, sums, n_units, counts=counts, logged=logged)
    return PolicyEvaluation(
        policies=tuple(names),
        arms=experiment.arms,
        outcomes=experiment.outcomes,
        directions=experiment.directions,
        estimator=est.name,
        n_units=n_units,
        value=value,
        se=se,
        lift=lift,
        lift_se=lift_se,
        shares=counts / max(n_units, 1),
        confidence=confidence,
    )


def linear_matrices(
    data: ExperimentData,
    weights: np.ndarray | Sequence[WeightedPolicy],
    biases: np.ndarray | None,
    names: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Checked weight (P, J) and bias (P, K) matrices and P policy names."""
    if (
        not isinstance(weights, np.ndarray)
        and len(weights)
        and isinstance(weights[0], WeightedPolicy)
    ):
        pols = list(weights)
        W, B = stack_weighted(pols, data)
        if names is None:
            names = [p.name or f"policy_{i}" for i, p in enumerate(pols)]
    else:
        W = np.atleast_2d(np.asarray(weights, dtype=float))
        if biases is None:
            B = np.zeros((W.shape[0], data.n_arms))
        else:
            B = np.atleast_2d(np.asarray(biases, dtype=float))
    P = W.shape[0]
    if W.shape != (P, data.n_outcomes):
        raise ConfigurationError(
            f"'weights' must have shape (n_policies, {data.n_outcomes}); got {W.shape}"
        )
    if B.shape != (P, data.n_arms):
        raise ConfigurationError(f"'biases' must have shape ({P}, {data.n_arms}); got {B.shape}")
    if not (np.isfinite(W).all() and np.isfinite(B).all()):
        raise ConfigurationError("'weights' and 'biases' must be finite")
    if names is None:
        names = [f"policy_{i}" for i in range(P)]
    if len(names) != P:
        raise ConfigurationError(f"'names' has {len(names)} entries for {P} policies")
    if len(set(names)) != P:
        raise ConfigurationError(
            "policy names must be unique; pass names= (policies without a name get policy_<i>)"
        )

    return W, B, list(names)


def evaluate_linear_policies(
    data: ExperimentData,
    predictions: EffectPredictions,
    weights: np.ndarray | Sequence[WeightedPolicy],
    biases: np.ndarray | None = None,
    *,
    estimator: str = "dr",
    names: Sequence[str] | None = None,
    confidence: float = 0.95,
    chunk_size: int = DEFAULT_CHUNK,
) -> PolicyEvaluation:
    """Evaluate many linear-utility policies in one chunked pass over the units.

    Args:
        data: the experiment to evaluate on (usually the validation or test split).
        predictions: effect predictions for the same units (tau drives the decisions, mu the
            DM / DR outcome model). Use out-of-fold predictions for training units.
        weights: weight matrix of shape (P, J), or a sequence of linear-utility policies
            (anything with ``weights``, ``biases``, ``arms``, ``outcomes``, ``name``).
        biases: bias matrix of shape (P, K), control column zero (omit with policies).
        estimator: ``"dr"`` (default), ``"ips"``, ``"snips"`` or ``"dm"``.
        names: policy names (default ``policy_0 ...`` or the policies' names).
        confidence: level of the reported intervals.
        chunk_size: units per chunk; memory is O(chunk_size x K x (3J)) plus accumulators.

    Returns:
        PolicyEvaluation with arrays of shape (P, J); ``.to_frame()`` gives the tidy table.
    """
    _check_confidence(confidence)
    _check_chunk(chunk_size)
    mu = _check_inputs(data, predictions, estimator)
    if mu is None:
        raise ConfigurationError(
            "linear policies decide from effect predictions: pass predictions="
            "fit_effects(...).predict(data)"
        )
    W, B, names = linear_matrices(data, weights, biases, names)
    P = W.shape[0]
    K = data.n_arms
    est = make_estimator(estimator, data.Y, data.treatment, data.propensity, mu, K)
    sums = np.zeros((P, K, est.n_stats))
    counts = np.zeros((P, K), dtype=np.int64)
    tau = predictions.tau
    control = np.zeros_like(est.control_sums)
    for lo in range(0, data.n_units, int(chunk_size)):
        sl = slice(lo, lo + int(chunk_size))
        Y, T, p = data.Y[sl], data.treatment[sl], data.propensity[sl]
        mu_c = None if mu is None or est.name == "ips" else mu[sl]
        if est.name == "snips":
            w, y = components(est, Y, T, p, mu_c, K)
            s, c = accumulate_linear_snips(tau[sl], W, B, w, y)
        else:
            r, g = residual_parts(est, Y, T, p, mu_c)
            s, c = accumulate_linear_mean(tau[sl], W, B, mu_c, T, r, est.shift, g)
            control += control_score_sums(g)
        sums += s
        counts += c
    if est.name != "snips":
        est = replace(est, control_sums=control)
    return _result(est, sums, counts, data, names, confidence)


def _assignment_codes(data: ExperimentData, name: str, values: Any) -> np.ndarray:
    a = np.asarray(values)
    if a.shape != (data.n_units,):
        raise InputDataError(
            f"assignments of policy '{name}' have shape {a.shape}; expected ({data.n_units},), "
            "one arm label per unit"
        )
    lookup = {arm: i for i, arm in enumerate(data.arms)}
    uniq, inv = np.unique(a.astype(str), return_inverse=True)
    unknown = [str(u) for u in uniq if u not in lookup]
    if unknown:
        raise InputDataError(
            f"assignments of policy '{name}' hold arm(s) {unknown[:5]} that are not in the "
            f"experiment; expected labels from {list(data.arms)}"
        )
    return np.array([lookup[u] for u in uniq], dtype=np.int64)[inv.ravel()]


def evaluate_assignments(
    data: ExperimentData,
    assignments: Any,
    *,
    predictions: EffectPredictions | None = None,
    estimator: str = "dr",
    confidence: float = 0.95,
    chunk_size: int = DEFAULT_CHUNK,
) -> PolicyEvaluation:
    """Off-policy value of one or several policies on a logged experiment.

    Args:
        data: the logged experiment.
        assignments: one array of arm labels per unit (shape (n_units,)), or a mapping of
            policy name to such arrays; a mapping value may also be a LinearUtilityPolicy,
            which is then assigned from ``predictions``.
        predictions: effect predictions for the same units; required by ``"dr"`` and ``"dm"``.
        estimator: ``"dr"`` (default), ``"ips"``, ``"snips"`` or ``"dm"``.
        confidence: level of the intervals (0.95).
        chunk_size: units per chunk.

    Returns:
        PolicyEvaluation with arrays of shape (n_policies, n_outcomes).
    """
    _check_confidence(confidence)
    _check_chunk(chunk_size)
    mu = _check_inputs(data, predictions, estimator)
    if isinstance(assignments, Mapping):
        items = list(assignments.items())
        if not items:
            raise InputDataError("'assignments' is an empty mapping; expected at least one policy")
    else:
        items = [("policy", assignments)]
    names: list[str] = []
    codes: list[np.ndarray] = []
    for name, value in items:
        names.append(str(name))
        if isinstance(value, WeightedPolicy):
            if predictions is None:
                raise ConfigurationError(
                    f"policy '{name}' is a LinearUtilityPolicy: pass predictions= to assign it"
                )
            W, B = stack_weighted([value], data)
            codes.append(linear_arm_index(predictions.tau, W[0], B[0]))
        else:
            codes.append(_assignment_codes(data, str(name), value))
    A = np.column_stack(codes)
    K = data.n_arms
    est = make_estimator(estimator, data.Y, data.treatment, data.propensity, mu, K)
    sums = np.zeros((A.shape[1], K, est.n_stats))
    counts = np.zeros((A.shape[1], K), dtype=np.int64)
    control = np.zeros_like(est.control_sums)
    for lo in range(0, data.n_units, int(chunk_size)):
        sl = slice(lo, lo + int(chunk_size))
        R = statistics(
            est,
            data.Y[sl],
            data.treatment[sl],
            data.propensity[sl],
            None if mu is None else mu[sl],
            K,
        )
        s, c = accumulate_assignments(A[sl], R)
        sums += s
        counts += c
        if est.name != "snips":  # R[:, 0] holds the control score g and g**2
            control += R[:, 0, : 2 * data.n_outcomes].sum(axis=0)
    if est.name != "snips":
        est = replace(est, control_sums=control)
    return _result(est, sums, counts, data, names, confidence)


def evaluate(
    data: ExperimentData,
    assignments: Any,
    *,
    predictions: EffectPredictions | None = None,
    estimator: str = "dr",
    confidence: float = 0.95,
    chunk_size: int = DEFAULT_CHUNK,
) -> pd.DataFrame:
    """Off-policy value of one or several policies on a logged experiment, as a table.

    Args:
        data: the logged experiment.
        assignments: one array of arm labels per unit (shape (n_units,)), or a mapping of
            policy name to such arrays; a mapping value may also be a LinearUtilityPolicy,
            which is then assigned from ``predictions``.
        predictions: effect predictions for the same units; required by ``"dr"`` and ``"dm"``.
        estimator: ``"dr"`` (default), ``"ips"``, ``"snips"`` or ``"dm"``.
        confidence: level of the intervals (0.95).
        chunk_size: units per chunk.

    Returns:
        Tidy DataFrame, one row per policy and outcome, with columns policy, outcome,
        direction, estimator, value, se, ci_low, ci_high, lift, lift_se, lift_ci_low,
        lift_ci_high, n_units and ``share[<arm>]`` for each arm.
    """
    return evaluate_assignments(
        data,
        assignments,
        predictions=predictions,
        estimator=estimator,
        confidence=confidence,
        chunk_size=chunk_size,
    ).to_frame()
