"""OPE on a partitioned experiment: the in-memory estimators, summed over partitions.

Each OPE estimator of :mod:`pex_tuner.ope.estimators` is a finalizer over sums of per-unit
statistics; the in-memory path adds them chunk by chunk, this one adds them partition by
partition on the cluster (:func:`~pex_tuner.distributed.reduce.map_partitions_reduce`) with the
same kernel, then finalizes once on the client. Two passes: a small one for the estimator's
centring shift and the logged arm counts (cached per split), then one per batch of policies,
however many policies the batch holds. The numbers equal the in-memory ones up to the order of
floating-point additions (a test checks 1e-10 for every estimator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pex_tuner.data import ExperimentData
from pex_tuner.effects.predictions import EffectPredictions
from pex_tuner.errors import ConfigurationError, InputDataError
from pex_tuner.ope.estimators import (
    Estimator,
    components,
    control_score_sums,
    make_estimator,
    residual_parts,
    statistics,
)
from pex_tuner.ope.evaluate import (
    DEFAULT_CHUNK,
    PolicyEvaluation,
    WeightedPolicy,
    evaluation_from_sums,
    linear_matrices,
    stack_weighted,
)
from pex_tuner.ope.kernel import (
    accumulate_assignments,
    accumulate_linear_mean,
    accumulate_linear_snips,
    linear_arm_index,
)

if TYPE_CHECKING:  # pragma: no cover
    from pex_tuner.distributed.experiment import DistributedExperiment
    from pex_tuner.distributed.predictions import DistributedPredictions

__all__ = ["base_sums", "evaluate", "evaluate_assignments", "evaluate_linear_policies"]


# ---------------------------------------------------------------------- per-partition work
def _base_part(data: ExperimentData, preds: EffectPredictions | None) -> dict[str, np.ndarray]:
    """Units, logged arm counts, outcome sums and control-surface sums of one partition."""
    out = {
        "n": np.array([data.n_units], dtype=np.int64),
        "logged": np.bincount(data.treatment, minlength=data.n_arms),
        "y": data.Y.sum(axis=0),
    }
    if preds is not None:
        out["mu0"] = preds.mu[:, 0, :].sum(axis=0)
    return out


def _snips_control(est: Estimator, data: ExperimentData) -> np.ndarray:
    """SNIPS control sums of make_estimator over one partition's units, shape (2 + 3J,)."""
    wc = (data.treatment == 0) / data.propensity
    yc = data.Y - est.shift
    w2 = wc**2
    return np.concatenate(
        [
            [wc.sum()],
            (wc[:, None] * yc).sum(axis=0),
            [w2.sum()],
            (w2[:, None] * yc).sum(axis=0),
            (w2[:, None] * yc**2).sum(axis=0),
        ]
    )


def _linear_part(
    data: ExperimentData,
    preds: EffectPredictions,
    est: Estimator,
    W: np.ndarray,
    B: np.ndarray,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sums (P, K, M), counts (P, K), control sums) of one partition, as the in-memory
    ``evaluate_linear_policies`` loop computes them."""
    K = data.n_arms
    sums = np.zeros((W.shape[0], K, est.n_stats))
    counts = np.zeros((W.shape[0], K), dtype=np.int64)
    control = np.zeros_like(est.control_sums)
    mu, tau = preds.mu, preds.tau
    for lo in range(0, data.n_units, chunk):
        sl = slice(lo, lo + chunk)
        Y, T, p = data.Y[sl], data.treatment[sl], data.propensity[sl]
        mu_c = None if est.name == "ips" else mu[sl]
        if est.name == "snips":
            w, y = components(est, Y, T, p, mu_c, K)
            s, c = accumulate_linear_snips(tau[sl], W, B, w, y)
        else:
            r, g = residual_parts(est, Y, T, p, mu_c)
            s, c = accumulate_linear_mean(tau[sl], W, B, mu_c, T, r, est.shift, g)
            control += control_score_sums(g)
        sums += s
        counts += c
    if est.name == "snips":
        control = _snips_control(est, data)
    return sums, counts, control


def _assignment_part(
    data: ExperimentData,
    preds: EffectPredictions | None,
    est: Estimator,
    policies: Sequence[Any],
    chunk: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sums, counts, control sums) of one partition for policies assigned unit by unit."""
    codes = []
    for pol in policies:
        if isinstance(pol, WeightedPolicy):
            W, B = stack_weighted([pol], data)
            codes.append(linear_arm_index(preds.tau, W[0], B[0]))
        else:
            codes.append(np.asarray(pol.assign_data(data), dtype=np.int64))
    A = np.column_stack(codes) if codes else np.zeros((data.n_units, 0), dtype=np.int64)
    K, J = data.n_arms, data.n_outcomes
    mu = None if preds is None else preds.mu
    sums = np.zeros((A.shape[1], K, est.n_stats))
    counts = np.zeros((A.shape[1], K), dtype=np.int64)
    control = np.zeros_like(est.control_sums)
    for lo in range(0, data.n_units, chunk):
        sl = slice(lo, lo + chunk)
        mu_c = None if mu is None else mu[sl]
        R = statistics(est, data.Y[sl], data.treatment[sl], data.propensity[sl], mu_c, K)
        s, c = accumulate_assignments(A[sl], R)
        sums += s
        counts += c
        if est.name != "snips":
            control += R[:, 0, : 2 * J].sum(axis=0)
    if est.name == "snips":
        control = _snips_control(est, data)
    return sums, counts, control


# ---------------------------------------------------------------------- client side
def base_sums(
    experiment: DistributedExperiment,
    predictions: DistributedPredictions | None,
    split: str | Sequence[str] | None,
    *,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """One pass: units ``n``, logged arm counts ``logged`` (K,), outcome sums ``y`` (J,) and
    control-surface sums ``mu0`` (J,) over the split (what every estimator's shift needs)."""
    from pex_tuner.distributed.reduce import map_partitions_reduce

    return map_partitions_reduce(
        _base_part, experiment, predictions, split=split, local="no-features", progress=progress
    )


def _estimator(
    name: str, experiment: Any, base: Mapping[str, np.ndarray], has_mu: bool
) -> Estimator:
    """The estimator of ``make_estimator`` (same checks and messages) with the shift of the
    whole split; control sums are filled in by the pass."""
    K, J = experiment.n_arms, experiment.n_outcomes
    one = make_estimator(
        name,
        np.zeros((1, J)),
        np.zeros(1, dtype=np.int64),
        np.ones(1),
        np.zeros((1, K, J)) if has_mu else None,
        K,
    )
    n = int(base["n"][0])
    if n == 0:
        shift = np.zeros(J)
    elif name in ("ips", "snips"):
        shift = base["y"] / n
    else:
        shift = base["mu0"] / n
    return replace(one, shift=shift, control_sums=np.zeros_like(one.control_sums))


def _result(
    experiment: Any,
    est: Estimator,
    totals: tuple[np.ndarray, np.ndarray, np.ndarray],
    base: Mapping[str, np.ndarray],
    names: Sequence[str],
    confidence: float,
) -> PolicyEvaluation:
    sums, counts, control = totals
    est = replace(est, control_sums=control)
    n = int(base["n"][0])
    logged = base["logged"] if experiment.propensity_source == "empirical" else None
    return evaluation_from_sums(est, sums, counts, n, experiment, names, confidence, logged=logged)


def _check(
    experiment: Any,
    predictions: Any,
    confidence: float,
    chunk_size: int,
    split: str | Sequence[str] | None,
) -> None:
    from pex_tuner.distributed.hashing import SPLITS

    if not 0.0 < confidence < 1.0:
        raise ConfigurationError(f"'confidence' must be in (0, 1); got {confidence!r}")
    if int(chunk_size) < 1:
        raise ConfigurationError(f"'chunk_size' must be a positive integer; got {chunk_size!r}")
    names = [] if split is None else [split] if isinstance(split, str) else list(split)
    if any(s not in SPLITS for s in names) or (split is not None and not names):
        raise ConfigurationError(
            f"'split' must be one of {list(SPLITS)}, a tuple of them, or None; got {split!r}"
        )
    if predictions is not None and (
        predictions.arms != experiment.arms or predictions.outcomes != experiment.outcomes
    ):
        raise InputDataError(
            f"predictions are for arms {list(predictions.arms)} / outcomes "
            f"{list(predictions.outcomes)}; the experiment has {list(experiment.arms)} / "
            f"{list(experiment.outcomes)}"
        )


def evaluate_linear_policies(
    experiment: DistributedExperiment,
    predictions: DistributedPredictions,
    weights: np.ndarray | Sequence[WeightedPolicy],
    biases: np.ndarray | None = None,
    *,
    estimator: str = "dr",
    names: Sequence[str] | None = None,
    split: str | Sequence[str] | None = "validation",
    confidence: float = 0.95,
    chunk_size: int = DEFAULT_CHUNK,
    base: Mapping[str, np.ndarray] | None = None,
    progress: bool = False,
) -> PolicyEvaluation:
    """Evaluate many linear-utility policies in one pass over a partitioned experiment.

    Args:
        experiment, predictions: the experiment and its stored predictions.
        weights: (P, J) weights or a sequence of linear-utility policies; biases: (P, K).
        estimator: ``"dr"`` (default), ``"ips"``, ``"snips"`` or ``"dm"``.
        names: policy names; split: the units evaluated on: a split, a tuple of splits
            (``("train", "validation")``: every unit but the test split) or None (all).
        confidence: interval level; chunk_size: units per kernel call within a partition.
        base: the result of :func:`base_sums` for this split (computed when None).
        progress: Dask's progress bar.

    Returns:
        PolicyEvaluation, arrays of shape (P, J): what ``pex_tuner.ope.evaluate_linear_policies``
        returns on the same units.
    """
    from pex_tuner.distributed.reduce import map_partitions_reduce

    _check(experiment, predictions, confidence, chunk_size, split)
    W, B, names = linear_matrices(experiment, weights, biases, names)
    if base is None:
        base = base_sums(experiment, predictions, split, progress=progress)
    est = _estimator(estimator, experiment, base, has_mu=True)
    totals = map_partitions_reduce(
        _linear_part,
        experiment,
        predictions,
        split=split,
        local="no-features",
        args=(est, W, B, int(chunk_size)),
        progress=progress,
    )
    return _result(experiment, est, totals, base, names, confidence)


def evaluate_assignments(
    experiment: DistributedExperiment,
    policies: Mapping[str, Any],
    *,
    predictions: DistributedPredictions | None = None,
    estimator: str = "dr",
    split: str | Sequence[str] | None = "validation",
    confidence: float = 0.95,
    chunk_size: int = DEFAULT_CHUNK,
    base: Mapping[str, np.ndarray] | None = None,
    progress: bool = False,
) -> PolicyEvaluation:
    """Off-policy value of policies that assign arms unit by unit, in one pass.

    Args:
        experiment: the partitioned experiment.
        policies: policy name -> a linear-utility policy (assigned from the predictions) or
            any object with ``assign_data(ExperimentData)`` returning arm indices of shape
            (n_units,) (e.g. a TreePolicy); it runs on the workers, partition by partition.
        predictions: stored predictions; required by ``"dr"``, ``"dm"`` and linear policies.
        estimator, split, confidence, chunk_size, base, progress: as in
            :func:`evaluate_linear_policies`.

    Returns:
        PolicyEvaluation with arrays of shape (n_policies, n_outcomes).
    """
    from pex_tuner.distributed.reduce import map_partitions_reduce

    _check(experiment, predictions, confidence, chunk_size, split)
    if not isinstance(policies, Mapping) or not policies:
        raise InputDataError(
            "'policies' must be a non-empty mapping of policy name to a policy (a "
            "LinearUtilityPolicy or an object with assign_data)"
        )
    for name, pol in policies.items():
        if not isinstance(pol, WeightedPolicy) and not hasattr(pol, "assign_data"):
            raise InputDataError(
                f"policy '{name}' is a {type(pol).__name__}; at scale a policy must be a "
                "LinearUtilityPolicy or have assign_data(data) (arrays of arm labels do not "
                "scale: evaluate them in memory with pex_tuner.evaluate)"
            )
        if isinstance(pol, WeightedPolicy) and predictions is None:
            raise ConfigurationError(
                f"policy '{name}' is a LinearUtilityPolicy: pass predictions= to assign it"
            )
    if base is None:
        base = base_sums(experiment, predictions, split, progress=progress)
    est = _estimator(estimator, experiment, base, has_mu=predictions is not None)
    totals = map_partitions_reduce(
        _assignment_part,
        experiment,
        predictions,
        split=split,
        args=(est, list(policies.values()), int(chunk_size)),
        progress=progress,
    )
    return _result(experiment, est, totals, base, [str(n) for n in policies], confidence)


def evaluate(
    experiment: DistributedExperiment, policies: Mapping[str, Any], **kwargs: Any
) -> pd.DataFrame:
    """:func:`evaluate_assignments` as the tidy table of ``pex_tuner.evaluate`` (one row per
    policy and outcome)."""
    return evaluate_assignments(experiment, policies, **kwargs).to_frame()
