"""qLogNParEGOHV: qLogNParEGO with the random hypervolume scalarization.

qLogNParEGO scalarizes the objectives by the augmented Chebyshev distance to the best observed
value of each objective, scaled by the observed range (worst to best). qLogNParEGOHV maximizes
instead the hypervolume scalarization of Zhang & Golovin (2020, "Random hypervolume
scalarizations for provable multi-objective black box optimization")::

    s_lambda(y) = min_i (y_i - r_i) / (s_i * lambda_i) + 0.05 * sum_i (y_i - r_i) / s_i

with ``r`` the hypervolume reference point (the tuner passes assign-all-control as Ax objective
thresholds), ``s_i`` the distance from ``r_i`` to the best value among the observations that
dominate ``r`` (the best of all observations would let policies far below the reference on
another objective stretch, and squash, this one) and ``lambda`` uniform on the positive unit
sphere, taken from a scrambled Sobol sequence so that successive candidates' directions spread
evenly (:func:`next_direction`). Every scalarization then rewards only improvements over the
reference point, and its expectation over ``lambda`` is the hypervolume, so the suggestions
spread over the part of the front that adds hypervolume instead of its extremes below control.
Without a reference point (or when no observation beats it on every objective) it falls back to
the Chebyshev scalarization. See ``benchmarks/results/tuning.md`` for measurements.

The class is registered with BoTorch's input constructors on import (as BoTorch registers its
own); :func:`pex_tuner.tuning.generation.acquisition_class` also registers it with Ax's JSON
storage. Importing this module imports torch and BoTorch, not Ax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from botorch.acquisition.input_constructors import (
    MaybeDict,
    acqf_input_constructor,
    construct_inputs_qLogNParEGO,
)
from botorch.acquisition.logei import TAU_MAX, TAU_RELU, qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.base import MultiObjectiveMCAcquisitionFunction
from botorch.acquisition.multi_objective.objective import MCMultiOutputObjective
from botorch.acquisition.multi_objective.parego import qLogNParEGO
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import Model
from botorch.posteriors.fully_bayesian import MCMC_DIM
from botorch.sampling.base import MCSampler
from botorch.utils.datasets import SupervisedDataset
from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization
from botorch.utils.sampling import sample_simplex
from botorch.utils.transforms import is_ensemble
from torch import Tensor

__all__ = [
    "construct_inputs_qLogNParEGOHV",
    "next_direction",
    "qLogNParEGOHV",
    "reset_directions",
]

Scalarization = Callable[..., Tensor]

_DIRECTIONS: dict[int, Any] = {}  # number of objectives -> scrambled Sobol engine
_DIRECTION_SEED: list[tuple[int | None, int]] = [(None, 0)]  # (seed, points to skip)


def reset_directions(seed: int | None, start: int = 0) -> None:
    """Restart the direction sequences: scrambled with ``seed``, skipping the first ``start``
    points. The tuner calls it before every generation with its random_state and the number of
    trials so far, so the same seed gives the same directions in any process, and successive
    batches still continue one evenly spread sequence."""
    _DIRECTIONS.clear()
    _DIRECTION_SEED[0] = (seed, int(start))


def next_direction(m: int) -> Tensor:
    """The next scalarization direction lambda, an ``m``-dim tensor pointing into the positive
    orthant: |z| for z standard normal (normalize it to get a point uniform on the positive
    part of the unit sphere), with z from a scrambled Sobol sequence (through the normal
    quantile function) instead of independent draws, so that the directions of successive
    candidates (a batch and the batches after it) spread evenly instead of clumping. One
    sequence per ``m``, seeded and positioned by :func:`reset_directions`."""
    from scipy.stats import norm, qmc

    if m not in _DIRECTIONS:
        seed, start = _DIRECTION_SEED[0]
        engine = qmc.Sobol(d=m, scramble=True, seed=seed)
        if start:
            engine.fast_forward(start)
        _DIRECTIONS[m] = engine
    u = _DIRECTIONS[m].random(1)[0].clip(1e-9, 1 - 1e-9)
    return torch.as_tensor(norm.ppf(u)).abs()


def hypervolume_scalarization(
    Y_baseline: Tensor, ref: Tensor, weights: Tensor | None
) -> tuple[Scalarization, Tensor] | None:
    """The hypervolume scalarization relative to ``ref`` and its direction lambda.

    Args:
        Y_baseline: ``r x m`` objective values of the observed points (maximization).
        ref: ``m``-dim reference point.
        weights: the direction lambda (``m``-dim, normalized here), or None for the next one
            from :func:`next_direction`.

    Returns:
        (scalarization mapping ``... x m`` values to ``...``, the unit direction), or None
        when no observation dominates ``ref``.
    """
    dominating = Y_baseline[(Y_baseline > ref).all(dim=-1)]
    if len(dominating) == 0:
        return None
    m = Y_baseline.shape[-1]
    lam = next_direction(m) if weights is None else torch.as_tensor(weights).abs()
    lam = lam.to(Y_baseline)
    lam = (lam + 1e-6) / (lam + 1e-6).norm()
    # the extent of the region that dominates the reference point: scaling by the best value
    # over all observations would squash an objective whose best values come from policies far
    # below the reference on another objective
    scale = dominating.max(dim=-2).values - ref

    def scalarization(Y: Tensor, X: Tensor | None = None) -> Tensor:
        Z = (Y - ref) / scale
        return (Z / lam).min(dim=-1).values + 0.05 * Z.sum(dim=-1)

    return scalarization, lam


class qLogNParEGOHV(qLogNParEGO):  # noqa: N801 (BoTorch's naming)
    """qLogNParEGO maximizing a random hypervolume scalarization relative to ``ref_point``
    (Zhang & Golovin 2020; see the module docstring) instead of a Chebyshev scalarization.

    Arguments as :class:`~botorch.acquisition.multi_objective.parego.qLogNParEGO`, plus
    ``ref_point``: an ``m``-dim reference point in objective space, maximization-aligned
    (None: plain qLogNParEGO). ``scalarization_weights``, if given, is the direction lambda
    (normalized here). After construction ``chebyshev_scalarization`` is the scalarization in
    use (the name qLogNParEGO gives it), ``scalarization_weights`` its weights or direction,
    ``ref_point`` the reference point.
    """

    def __init__(
        self,
        model: Model,
        X_baseline: Tensor,
        ref_point: Tensor | None = None,
        scalarization_weights: Tensor | None = None,
        sampler: MCSampler | None = None,
        objective: MCMultiOutputObjective | None = None,
        constraints: list[Callable[[Tensor], Tensor]] | None = None,
        X_pending: Tensor | None = None,
        eta: Tensor | float = 1e-3,
        fat: bool = True,
        prune_baseline: bool = False,
        cache_root: bool | None = None,
        tau_relu: float = TAU_RELU,
        tau_max: float = TAU_MAX,
        incremental: bool = True,
    ) -> None:
        MultiObjectiveMCAcquisitionFunction.__init__(
            self,
            model=model,
            sampler=sampler,
            objective=objective,
            constraints=constraints,
            eta=eta,
        )
        org_objective = self.objective
        with torch.no_grad():
            Y_baseline = org_objective(model.posterior(X_baseline).mean)
        if is_ensemble(model):
            Y_baseline = torch.mean(Y_baseline, dim=MCMC_DIM)
        ref = None if ref_point is None else torch.as_tensor(ref_point).to(Y_baseline)
        scalarization, weights = self._scalarization(
            Y_baseline, ref, scalarization_weights, X_baseline
        )
        composite = GenericMCObjective(
            objective=lambda samples, X=None: scalarization(
                org_objective(samples=samples, X=X), X=X
            )
        )
        qLogNoisyExpectedImprovement.__init__(
            self,
            model=model,
            X_baseline=X_baseline,
            sampler=sampler,
            objective=composite,  # overwrites self.objective
            X_pending=X_pending,
            constraints=constraints,
            eta=eta,
            fat=fat,
            prune_baseline=prune_baseline,
            cache_root=cache_root,
            tau_max=tau_max,
            tau_relu=tau_relu,
            incremental=incremental,
        )
        # set after __init__ so that they are not overwritten (as qLogNParEGO does)
        self._org_objective = org_objective
        self.chebyshev_scalarization = scalarization
        self.scalarization_weights = weights
        self.Y_baseline = Y_baseline
        self.ref_point = ref

    @staticmethod
    def _scalarization(
        Y_baseline: Tensor, ref: Tensor | None, weights: Tensor | None, X_baseline: Tensor
    ) -> tuple[Scalarization, Tensor]:
        """The hypervolume scalarization when an observation dominates ``ref``, else
        qLogNParEGO's Chebyshev scalarization (weights drawn from the simplex, on
        ``X_baseline``'s device and dtype, unless given)."""
        hv = None if ref is None else hypervolume_scalarization(Y_baseline, ref, weights)
        if hv is not None:
            return hv
        if weights is None:
            m = Y_baseline.shape[-1]
            weights = sample_simplex(d=m, device=X_baseline.device, dtype=X_baseline.dtype)
            weights = weights.view(-1)
        return get_chebyshev_scalarization(weights=weights, Y=Y_baseline), weights


@acqf_input_constructor(qLogNParEGOHV)
def construct_inputs_qLogNParEGOHV(  # noqa: N802 (BoTorch's naming)
    model: Model,
    training_data: MaybeDict[SupervisedDataset],
    ref_point: Tensor | None = None,
    scalarization_weights: Tensor | None = None,
    objective: MCMultiOutputObjective | None = None,
    X_pending: Tensor | None = None,
    sampler: MCSampler | None = None,
    X_baseline: Tensor | None = None,
    prune_baseline: bool | None = True,
    cache_root: bool | None = None,
    constraints: list[Callable[[Tensor], Tensor]] | None = None,
    eta: Tensor | float = 1e-3,
    fat: bool = True,
    tau_max: float = TAU_MAX,
    tau_relu: float = TAU_RELU,
) -> dict[str, Any]:
    """Keyword arguments for :class:`qLogNParEGOHV`: qLogNParEGO's, plus ``ref_point`` (Ax
    passes the objective thresholds, maximization-aligned, as ``ref_point``)."""
    inputs = construct_inputs_qLogNParEGO(
        model=model,
        training_data=training_data,
        scalarization_weights=scalarization_weights,
        objective=objective,
        X_pending=X_pending,
        sampler=sampler,
        X_baseline=X_baseline,
        prune_baseline=prune_baseline,
        cache_root=cache_root,
        constraints=constraints,
        eta=eta,
        fat=fat,
        tau_max=tau_max,
        tau_relu=tau_relu,
    )
    inputs["ref_point"] = ref_point
    return inputs
