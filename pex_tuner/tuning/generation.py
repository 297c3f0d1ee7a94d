"""Generation strategies: Sobol initialization, then a BoTorch acquisition via Ax's modular
BoTorch generator.

qLogNParEGO is our default (the PEX paper's qNParEGO; BoTorch 0.18 only ships the log
version). It must be requested explicitly: Ax's default for up to four objectives would be
qLogNEHVI, which we offer as an option. ``Client.get_next_trials(q)`` makes q single-arm trials
with fresh ParEGO scalarization weights each and earlier picks as pending points, the
behaviour qNParEGO describes (see shared/AX_NOTES.md).

``"qLogNParEGO-HV"`` is qLogNParEGO with a different random scalarization: instead of the
augmented Chebyshev distance to the best observed value of each objective, scaled by the observed
range (worst to best), it maximizes the hypervolume scalarization of Zhang & Golovin (2020,
"Random hypervolume scalarizations for provable multi-objective black box optimization"),
``min_i (y_i - r_i) / (s_i * lambda_i)`` plus a 0.05-weighted sum, with ``r`` the hypervolume
reference point (the tuner passes assign-all-control as Ax objective thresholds), ``s_i`` the
distance from ``r_i`` to the best value among the observations that dominate ``r`` (the best of
all observations would let policies far below the reference on another objective stretch, and
squash, this one) and ``lambda`` uniform on the positive unit sphere, taken from a scrambled
Sobol sequence so that successive candidates' directions spread evenly. Every scalarization
then rewards only improvements over the reference point, and its expectation over ``lambda`` is
the hypervolume, so the suggestions spread over the part of the front that adds hypervolume
instead of its extremes below control. Without a reference point
(or when no observation beats it on every objective) it falls back to the Chebyshev
scalarization. See ``benchmarks/results/tuning.md`` for measurements.
"""

from __future__ import annotations

from typing import Any

from pex_tuner.errors import ConfigurationError

__all__ = [
    "ACQUISITIONS",
    "NEEDS_REFERENCE_POINT",
    "acquisition_class",
    "make_generation_strategy",
    "make_model_strategy",
]

ACQUISITIONS = ("qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI", "qLogNEI", "sobol")
#: acquisitions that use the hypervolume reference point (given to Ax as objective thresholds)
NEEDS_REFERENCE_POINT = ("qLogNParEGO-HV",)

_HV_PAREGO: list[Any] = []  # the class, built (and registered) on first use


_DIRECTIONS: dict[int, Any] = {}  # number of objectives -> scrambled Sobol engine


def _next_direction(m: int) -> Any:
    """The next scalarization direction lambda, uniform on the positive part of the unit sphere
    in R^m: |z| / ||z|| for z standard normal, with z from a scrambled Sobol sequence (through
    the normal quantile function) instead of independent draws, so that the directions of
    successive candidates (a batch and the batches after it) spread evenly instead of
    clumping."""
    import torch
    from scipy.stats import norm, qmc

    if m not in _DIRECTIONS:
        _DIRECTIONS[m] = qmc.Sobol(d=m, scramble=True)
    u = _DIRECTIONS[m].random(1)[0].clip(1e-9, 1 - 1e-9)
    return torch.as_tensor(norm.ppf(u)).abs()


def _hv_parego_class() -> Any:
    """qLogNParEGO with the hypervolume scalarization (see the module docstring), registered
    with BoTorch's input constructors and Ax's JSON storage on first use."""
    if _HV_PAREGO:
        return _HV_PAREGO[0]
    import torch
    from ax.storage.botorch_modular_registry import register_acquisition_function
    from botorch.acquisition.input_constructors import (
        acqf_input_constructor,
        construct_inputs_qLogNParEGO,
    )
    from botorch.acquisition.logei import TAU_MAX, TAU_RELU, qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.base import MultiObjectiveMCAcquisitionFunction
    from botorch.acquisition.multi_objective.parego import qLogNParEGO
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.posteriors.fully_bayesian import MCMC_DIM
    from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization
    from botorch.utils.sampling import sample_simplex
    from botorch.utils.transforms import is_ensemble

    class qLogNParEGOHV(qLogNParEGO):  # noqa: N801 (BoTorch naming)
        """qLogNParEGO maximizing a random hypervolume scalarization relative to ``ref_point``
        (Zhang & Golovin 2020) instead of a Chebyshev scalarization; arguments as qLogNParEGO,
        plus ``ref_point`` (objective space, maximization-aligned). ``scalarization_weights``,
        if given, is the direction lambda (normalized here)."""

        def __init__(
            self,
            model: Any,
            X_baseline: Any,
            ref_point: Any = None,
            scalarization_weights: Any = None,
            sampler: Any = None,
            objective: Any = None,
            constraints: Any = None,
            X_pending: Any = None,
            eta: Any = 1e-3,
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
            m = Y_baseline.shape[-1]
            ref = None if ref_point is None else torch.as_tensor(ref_point).to(Y_baseline)
            dominating = None if ref is None else Y_baseline[(Y_baseline > ref).all(dim=-1)]
            if dominating is not None and len(dominating) > 0:
                if scalarization_weights is None:
                    lam = _next_direction(m).to(Y_baseline)
                else:
                    lam = torch.as_tensor(scalarization_weights).to(Y_baseline).abs()
                lam = (lam + 1e-6) / (lam + 1e-6).norm()
                # the extent of the region that dominates the reference point: scaling by the
                # best value over all observations would squash an objective whose best
                # values come from policies far below the reference on another objective
                scale = dominating.max(dim=-2).values - ref

                def scalarization(Y: Any, X: Any = None) -> Any:
                    Z = (Y - ref) / scale
                    return (Z / lam).min(dim=-1).values + 0.05 * Z.sum(dim=-1)

                weights = lam
            else:  # no reference point, or nothing beats it yet: plain ParEGO
                weights = (
                    scalarization_weights
                    if scalarization_weights is not None
                    else sample_simplex(d=m, device=X_baseline.device, dtype=X_baseline.dtype).view(
                        -1
                    )
                )
                scalarization = get_chebyshev_scalarization(weights=weights, Y=Y_baseline)
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
                objective=composite,
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
            self._org_objective = org_objective
            self.chebyshev_scalarization = scalarization
            self.scalarization_weights = weights
            self.Y_baseline = Y_baseline
            self.ref_point = ref

    @acqf_input_constructor(qLogNParEGOHV)
    def _construct_inputs(
        model: Any,
        training_data: Any,
        ref_point: Any = None,
        scalarization_weights: Any = None,
        objective: Any = None,
        X_pending: Any = None,
        sampler: Any = None,
        X_baseline: Any = None,
        prune_baseline: bool | None = True,
        cache_root: bool | None = None,
        constraints: Any = None,
        eta: Any = 1e-3,
        fat: bool = True,
        tau_max: float = TAU_MAX,
        tau_relu: float = TAU_RELU,
    ) -> dict[str, Any]:
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

    qLogNParEGOHV.__module__ = __name__
    qLogNParEGOHV.__qualname__ = "qLogNParEGOHV"
    register_acquisition_function(qLogNParEGOHV)
    _HV_PAREGO.append(qLogNParEGOHV)
    return qLogNParEGOHV


def acquisition_class(name: str) -> Any:
    """The BoTorch acquisition class for a name in ``ACQUISITIONS`` (None for "sobol")."""
    if name == "qLogNParEGO":
        from botorch.acquisition.multi_objective.parego import qLogNParEGO

        return qLogNParEGO
    if name == "qLogNParEGO-HV":
        return _hv_parego_class()
    if name == "qLogNEHVI":
        from botorch.acquisition.multi_objective.logei import (
            qLogNoisyExpectedHypervolumeImprovement,
        )

        return qLogNoisyExpectedHypervolumeImprovement
    if name == "qLogNEI":
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement

        return qLogNoisyExpectedImprovement
    if name == "sobol":
        return None
    raise ConfigurationError(
        f"The 'acquisition' parameter must be one of {list(ACQUISITIONS)}. Got {name!r} instead."
    )


def _botorch_node(acqf: Any, num_restarts: int, raw_samples: int) -> Any:
    """The GenerationNode "BoTorch": Ax's modular BoTorch generator with ``acqf``."""
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_node import GenerationNode
    from ax.generation_strategy.generator_spec import GeneratorSpec
    from ax.generators.torch.botorch_modular.surrogate import ModelConfig, SurrogateSpec

    spec = GeneratorSpec(
        generator_enum=Generators.BOTORCH_MODULAR,
        generator_kwargs={
            "botorch_acqf_class": acqf,
            "surrogate_spec": SurrogateSpec(model_configs=[ModelConfig()]),
        },
        generator_gen_kwargs={
            "model_gen_options": {
                "optimizer_kwargs": {"num_restarts": num_restarts, "raw_samples": raw_samples}
            }
        },
    )
    return GenerationNode(name="BoTorch", generator_specs=[spec], should_deduplicate=True)


def make_generation_strategy(
    acquisition: str,
    *,
    init_trials: int,
    seed: int | None,
    num_restarts: int = 8,
    raw_samples: int = 256,
) -> Any:
    """An Ax GenerationStrategy: ``init_trials`` Sobol points, then ``acquisition``.

    Args:
        acquisition: a name from ``ACQUISITIONS``; ``"sobol"`` never leaves Sobol.
        init_trials: Sobol trials before the model takes over.
        seed: Sobol seed (the Client itself gets no seed, so that ParEGO draws fresh weights
            in every batch).
        num_restarts, raw_samples: acquisition optimizer settings (Ax's defaults, 20 / 1024,
            cost about twice the time for little gain here).
    """
    from ax.adapter.registry import Generators
    from ax.core.trial_status import TrialStatus
    from ax.generation_strategy.generation_node import GenerationNode
    from ax.generation_strategy.generation_strategy import GenerationStrategy
    from ax.generation_strategy.generator_spec import GeneratorSpec
    from ax.generation_strategy.transition_criterion import MaxTrialsAwaitingData, MinTrials

    acqf = acquisition_class(acquisition)
    sobol_spec = GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})
    if acqf is None:
        return GenerationStrategy(
            name="Sobol",
            nodes=[GenerationNode(name="Sobol", generator_specs=[sobol_spec])],
        )
    sobol = GenerationNode(
        name="Sobol",
        generator_specs=[sobol_spec],
        transition_criteria=[
            MinTrials(
                threshold=init_trials,
                transition_to="BoTorch",
                use_all_trials_in_exp=False,
                not_in_statuses=[TrialStatus.FAILED, TrialStatus.ABANDONED],
            ),
            MinTrials(
                threshold=init_trials,
                transition_to="BoTorch",
                use_all_trials_in_exp=False,
                only_in_statuses=[TrialStatus.COMPLETED],
                count_only_trials_with_data=True,
            ),
        ],
        # never more than init_trials Sobol points, even when a batch asks for more
        pausing_criteria=[
            MaxTrialsAwaitingData(
                threshold=init_trials,
                not_in_statuses=[TrialStatus.FAILED, TrialStatus.ABANDONED],
                use_all_trials_in_exp=False,
            )
        ],
        should_deduplicate=True,
    )
    botorch = _botorch_node(acqf, num_restarts, raw_samples)
    return GenerationStrategy(name=f"Sobol+{acquisition}", nodes=[sobol, botorch])


def make_model_strategy(acquisition: str, *, num_restarts: int = 8, raw_samples: int = 256) -> Any:
    """A GenerationStrategy with only the BoTorch node: for experiments whose initial data
    comes from elsewhere (the online tuner starts from the offline candidates' results, so no
    Sobol trials are spent online). Generation raises Ax's ``DataRequiredError`` until trials
    have data."""
    from ax.generation_strategy.generation_strategy import GenerationStrategy

    acqf = acquisition_class(acquisition)
    if acqf is None:
        raise ConfigurationError("a model-only strategy needs a BoTorch acquisition, not 'sobol'")
    node = _botorch_node(acqf, num_restarts, raw_samples)
    return GenerationStrategy(name=f"{acquisition} only", nodes=[node])
