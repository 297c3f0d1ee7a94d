"""Generation strategies: Sobol initialization, then a BoTorch acquisition via Ax's modular
BoTorch generator.

qLogNParEGO is our default (the PEX paper's qNParEGO; BoTorch 0.18 only ships the log
version). It must be requested explicitly: Ax's default for up to four objectives would be
qLogNEHVI, which we offer as an option. ``Client.get_next_trials(q)`` makes q single-arm trials
with fresh ParEGO scalarization weights each and earlier picks as pending points, the
behaviour qNParEGO describes (see shared/AX_NOTES.md).
"""

from __future__ import annotations

from typing import Any

from pex_tuner.errors import ConfigurationError

__all__ = [
    "ACQUISITIONS",
    "acquisition_class",
    "make_generation_strategy",
    "make_model_strategy",
]

ACQUISITIONS = ("qLogNParEGO", "qLogNEHVI", "qLogNEI", "sobol")


def acquisition_class(name: str) -> Any:
    """The BoTorch acquisition class for a name in ``ACQUISITIONS`` (None for "sobol")."""
    if name == "qLogNParEGO":
        from botorch.acquisition.multi_objective.parego import qLogNParEGO

        return qLogNParEGO
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
    from ax.generators.torch.botorch_modular.surrogate import ModelConfig, SurrogateSpec

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
    botorch = GenerationNode(
        name="BoTorch",
        generator_specs=[
            GeneratorSpec(
                generator_enum=Generators.BOTORCH_MODULAR,
                generator_kwargs={
                    "botorch_acqf_class": acqf,
                    "surrogate_spec": SurrogateSpec(model_configs=[ModelConfig()]),
                },
                generator_gen_kwargs={
                    "model_gen_options": {
                        "optimizer_kwargs": {
                            "num_restarts": num_restarts,
                            "raw_samples": raw_samples,
                        }
                    }
                },
            )
        ],
        should_deduplicate=True,
    )
    return GenerationStrategy(name=f"Sobol+{acquisition}", nodes=[sobol, botorch])


def make_model_strategy(acquisition: str, *, num_restarts: int = 8, raw_samples: int = 256) -> Any:
    """A GenerationStrategy with only the BoTorch node: for experiments whose initial data
    comes from elsewhere (the online tuner starts from the offline candidates' results, so no
    Sobol trials are spent online). Generation raises Ax's ``DataRequiredError`` until trials
    have data."""
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generation_node import GenerationNode
    from ax.generation_strategy.generation_strategy import GenerationStrategy
    from ax.generation_strategy.generator_spec import GeneratorSpec
    from ax.generators.torch.botorch_modular.surrogate import ModelConfig, SurrogateSpec

    acqf = acquisition_class(acquisition)
    if acqf is None:
        raise ConfigurationError("a model-only strategy needs a BoTorch acquisition, not 'sobol'")
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
    node = GenerationNode(name="BoTorch", generator_specs=[spec], should_deduplicate=True)
    return GenerationStrategy(name=f"{acquisition} only", nodes=[node])
