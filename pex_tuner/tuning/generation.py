"""Generation strategies: Sobol initialization, then a BoTorch acquisition via Ax's modular
BoTorch generator.

qLogNParEGO is our default (the PEX paper's qNParEGO; BoTorch 0.18 only ships the log
version). It must be requested explicitly: Ax's default for up to four objectives would be
qLogNEHVI, which we offer as an option. ``Client.get_next_trials(q)`` makes q single-arm trials
with fresh ParEGO scalarization weights each and earlier picks as pending points, the
behaviour qNParEGO describes (see shared/AX_NOTES.md).

``"qLogNParEGO-HV"`` is qLogNParEGO with the random hypervolume scalarization relative to
assign-all-control (:class:`~pex_tuner.tuning.acquisition.qLogNParEGOHV`).

The strategies themselves are built by :mod:`pex_tuner.tuning.ax_bridge`; this module names the
acquisitions and chooses the nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pex_tuner.tuning.ax_bridge as ax_bridge
from pex_tuner.errors import ConfigurationError

__all__ = [
    "ACQUISITIONS",
    "MULTI_OBJECTIVE",
    "NEEDS_REFERENCE_POINT",
    "acquisition_class",
    "make_generation_strategy",
    "make_model_strategy",
    "seeded_generation",
]

ACQUISITIONS = ("qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI", "qLogNEI", "sobol")
#: acquisitions that need at least two objectives
MULTI_OBJECTIVE = ("qLogNParEGO", "qLogNParEGO-HV", "qLogNEHVI")
#: acquisitions that use the hypervolume reference point (given to Ax as objective thresholds)
NEEDS_REFERENCE_POINT = ("qLogNParEGO-HV",)


def acquisition_class(name: str) -> Any:
    """The BoTorch acquisition class for a name in ``ACQUISITIONS`` (None for "sobol").

    ``"qLogNParEGO-HV"`` is also registered with Ax's JSON storage, so that saved clients that
    use it load."""
    if name == "qLogNParEGO":
        from botorch.acquisition.multi_objective.parego import qLogNParEGO

        return qLogNParEGO
    if name == "qLogNParEGO-HV":
        from pex_tuner.tuning.acquisition import qLogNParEGOHV

        ax_bridge.register_acquisition(qLogNParEGOHV)
        return qLogNParEGOHV
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
    acqf = acquisition_class(acquisition)
    if acqf is None:
        return ax_bridge.sobol_strategy(seed)
    return ax_bridge.sobol_botorch_strategy(
        f"Sobol+{acquisition}",
        acqf,
        init_trials=init_trials,
        seed=seed,
        num_restarts=num_restarts,
        raw_samples=raw_samples,
    )


def make_model_strategy(acquisition: str, *, num_restarts: int = 8, raw_samples: int = 256) -> Any:
    """A GenerationStrategy with only the BoTorch node: for experiments whose initial data
    comes from elsewhere (the online tuner starts from the offline candidates' results, so no
    Sobol trials are spent online). Generation raises Ax's ``DataRequiredError`` until trials
    have data."""
    acqf = acquisition_class(acquisition)
    if acqf is None:
        raise ConfigurationError("a model-only strategy needs a BoTorch acquisition, not 'sobol'")
    return ax_bridge.botorch_strategy(
        f"{acquisition} only", acqf, num_restarts=num_restarts, raw_samples=raw_samples
    )


@contextmanager
def seeded_generation(random_state: int, step: int) -> Iterator[None]:
    """Make one generation call repeatable: torch's and numpy's global generators seeded from
    (``random_state``, ``step``) inside the block and restored after it, and the
    hypervolume-scalarization directions restarted at point ``step`` of the sequence scrambled
    with ``random_state``.

    BoTorch draws ParEGO's scalarization weights, the acquisition optimizer's raw samples and
    the GP fit's restarts from torch's global generator; Ax's Client would re-seed it with the
    same seed on every call (so every batch would repeat the last one's weights, see
    shared/AX_NOTES.md), hence a seed per step: the same tuner with the same ``random_state``
    then generates the same trials in any process, and successive batches still differ.

    Args:
        random_state: the tuner's seed.
        step: the number of trials in the experiment before this call.
    """
    import numpy as np
    import torch

    from pex_tuner.tuning.acquisition import reset_directions

    seed = (int(random_state) * 1_000_003 + int(step)) % (2**31 - 1)
    np_state = np.random.get_state()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        np.random.seed(seed)
        reset_directions(int(random_state), int(step))
        try:
            yield
        finally:
            np.random.set_state(np_state)
