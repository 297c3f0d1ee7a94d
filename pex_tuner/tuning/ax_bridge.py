"""The one module that touches Ax: quiet import, Client and GenerationStrategy factories, JSON
snapshots, and every read of Ax internals.

Everything else in ``pex_tuner.tuning`` goes through these functions, so an Ax upgrade is
checked here (the versions the code is tested with are pinned in ``constraints.txt``; see
``shared/AX_NOTES.md`` for the behaviours relied on). Each read of a private Ax attribute says
which public API is missing.

Importing this module does not import Ax (``import ax`` takes seconds); the functions import
it when they are first called. Call Ax inside :func:`quiet_ax`.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pex_tuner.errors import NotFittedError

__all__ = [
    "acquisition_in_use",
    "botorch_strategy",
    "client_from_json",
    "client_to_json",
    "get_next_trials",
    "import_ax_quietly",
    "make_ax_client",
    "n_trials",
    "predict",
    "quiet_ax",
    "register_acquisition",
    "sobol_botorch_strategy",
    "sobol_strategy",
    "trial_is_terminal",
    "trial_node",
    "trial_parameters",
]


def import_ax_quietly() -> None:
    """Import Ax without the INFO lines it logs at import time."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        import ax  # noqa: F401
    finally:
        logging.disable(previous)


@contextmanager
def quiet_ax() -> Iterator[None]:
    """Silence Ax's per-trial logs (and its "only n trials could be generated", which our batch
    loop handles) and known-harmless warnings while we drive it."""
    import_ax_quietly()
    import torch
    from ax.utils.common.logger import set_ax_logger_levels

    set_ax_logger_levels(logging.ERROR)
    # GP fitting and acquisition optimization on a few hundred points gain nothing from
    # threads, and torch's OpenMP threads next to any other busy process run 10-20x slower
    # (measured: a 300x300 Cholesky loop took 22.7 s with 2 threads vs 1.1 s with 1 on a loaded
    # 2-core machine). Use one thread while Ax works, and restore the caller's setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- the client
def make_ax_client(
    name: str,
    bounds: Mapping[str, tuple[float, float]],
    objectives: Mapping[str, str],
    constraints: Sequence[tuple[str, str, float]],
    strategy: Any,
    log_scaled: Sequence[str] = (),
) -> Any:
    """An Ax Client over float parameters with ``bounds`` (those named in ``log_scaled`` on a
    log scale), maximizing / minimizing the ``objectives`` (Ax metric name -> "max" / "min")
    subject to ``constraints`` ((metric, ">=" or "<=", bound)), generating with ``strategy``.
    Call it inside :func:`quiet_ax`."""
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    client = Client()
    client.configure_experiment(
        name=name,
        parameters=[
            RangeParameterConfig(
                name=n,
                parameter_type="float",
                bounds=b,
                scaling="log" if n in log_scaled else "linear",
            )
            for n, b in bounds.items()
        ],
    )
    objective = ", ".join(m if d == "max" else f"-{m}" for m, d in objectives.items())
    cons = [f"{m} {op} {b!r}" for m, op, b in constraints]
    client.configure_optimization(objective=objective, outcome_constraints=cons or None)
    client.set_generation_strategy(strategy)
    return client


def get_next_trials(client: Any, q: int, *, fill: bool = True) -> dict[int, dict[str, float]]:
    """Up to ``q`` new trials: trial index -> parameters.

    With ``fill`` it asks again until q trials exist (at the Sobol -> BoTorch switch one call
    can return fewer) and stops, returning what it has, when Ax needs data first
    (``DataRequiredError``: complete the pending trials). Without ``fill`` it asks once and
    lets Ax's errors through.
    """
    import_ax_quietly()
    from ax.exceptions.core import DataRequiredError

    out: dict[int, dict[str, float]] = {}
    with quiet_ax():
        if not fill:
            return dict(client.get_next_trials(max_trials=q))
        while len(out) < q:
            try:
                got = client.get_next_trials(max_trials=q - len(out))
            except DataRequiredError:
                break  # complete pending trials first
            if not got:
                break
            out.update(got)
    return out


def predict(client: Any, points: Sequence[Mapping[str, float]]) -> list[dict[str, Any]]:
    """The surrogate's predictions at ``points``: per point, Ax metric -> (mean, sem).

    The model is refitted on every completed trial first (the adapter of the last generation
    predates the results of its own batch, and before the first generation there is none).
    Raises NotFittedError while there is no model (Sobol initialization)."""
    import_ax_quietly()
    from ax.exceptions.core import UnsupportedError

    try:
        with quiet_ax():
            # missing public API: Client cannot refit; GenerationStrategy.fit is public
            client._generation_strategy.fit(client._experiment)
            return list(client.predict([dict(p) for p in points]))
    except UnsupportedError as exc:
        raise NotFittedError(
            "no model to predict with yet (still in Sobol initialization): run more trials"
        ) from exc


# ---------------------------------------------------------------------------- Ax internals
def _trial(client: Any, trial_index: int) -> Any:
    # missing public API: Client has no accessor for one trial (ax.api.Client 1.3.1 exposes
    # summarize() as a DataFrame only), so read the experiment's trial directly
    return client._experiment.trials[trial_index]


def n_trials(client: Any) -> int:
    """The number of trials in the client's experiment (any status)."""
    # missing public API: as for _trial
    return len(client._experiment.trials)


def trial_parameters(client: Any, trial_index: int) -> dict[str, float]:
    """The parameters of a (single-arm) trial."""
    return dict(_trial(client, trial_index).arm.parameters)


def trial_node(client: Any, trial_index: int) -> str | None:
    """The name of the generation node that produced a trial ("Sobol", "BoTorch"); None for
    attached trials."""
    # missing public API: GeneratorRun keeps its node name in a private attribute
    return getattr(_trial(client, trial_index).generator_run, "_generation_node_name", None)


def trial_is_terminal(client: Any, trial_index: int) -> bool:
    """Whether Ax considers the trial finished (completed, failed, abandoned...)."""
    return bool(_trial(client, trial_index).status.is_terminal)


def acquisition_in_use(client: Any) -> Any:
    """The BoTorch acquisition class of the current generation node (None in Sobol)."""
    # missing public API: Client does not expose its generation strategy, nor a generator
    # spec its fitted adapter; the acquisition class is read from the fitted generator, or
    # from the node's configuration before the first fit
    spec = client._generation_strategy.current_node.generator_specs[0]
    adapter = spec._fitted_adapter
    if adapter is not None and hasattr(adapter.generator, "botorch_acqf_class"):
        return adapter.generator.botorch_acqf_class
    return spec.generator_kwargs.get("botorch_acqf_class")


# ---------------------------------------------------------------------------- JSON snapshots
def client_to_json(client: Any) -> str:
    """The Client's JSON snapshot (experiment, data and generation strategy) as text."""
    # Client.save_to_json_file is the public path; a string form would be Client's private
    # _to_json_snapshot, so go through a temporary file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ax_client.json"
        client.save_to_json_file(str(path))
        return path.read_text()


def client_from_json(text: str) -> Any:
    """A Client restored from :func:`client_to_json` text; it resumes generating where it
    stopped. Custom acquisition classes must be registered first
    (:func:`register_acquisition`)."""
    import_ax_quietly()
    from ax.api.client import Client

    with tempfile.TemporaryDirectory() as tmp, quiet_ax():
        path = Path(tmp) / "ax_client.json"
        path.write_text(text)
        return Client.load_from_json_file(str(path))


def register_acquisition(acqf_class: type) -> None:
    """Add a custom BoTorch acquisition class to Ax's JSON and SQL registries (idempotent)."""
    import_ax_quietly()
    from ax.storage.botorch_modular_registry import register_acquisition_function

    register_acquisition_function(acqf_class)


# ---------------------------------------------------------------------------- strategies
def _botorch_node(acqf: type, num_restarts: int, raw_samples: int) -> Any:
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


def _sobol_spec(seed: int | None) -> Any:
    import_ax_quietly()
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generator_spec import GeneratorSpec

    return GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})


def sobol_strategy(seed: int | None) -> Any:
    """A GenerationStrategy that never leaves Sobol."""
    from ax.generation_strategy.generation_node import GenerationNode
    from ax.generation_strategy.generation_strategy import GenerationStrategy

    spec = _sobol_spec(seed)
    return GenerationStrategy(
        name="Sobol", nodes=[GenerationNode(name="Sobol", generator_specs=[spec])]
    )


def sobol_botorch_strategy(
    name: str,
    acqf: type,
    *,
    init_trials: int,
    seed: int | None,
    num_restarts: int,
    raw_samples: int,
) -> Any:
    """A GenerationStrategy: ``init_trials`` Sobol points (never more, even when a batch asks
    for more), then the BoTorch node with ``acqf`` once ``init_trials`` trials have data."""
    spec = _sobol_spec(seed)
    from ax.core.trial_status import TrialStatus
    from ax.generation_strategy.generation_node import GenerationNode
    from ax.generation_strategy.generation_strategy import GenerationStrategy
    from ax.generation_strategy.transition_criterion import MaxTrialsAwaitingData, MinTrials

    given_up = [TrialStatus.FAILED, TrialStatus.ABANDONED]
    sobol = GenerationNode(
        name="Sobol",
        generator_specs=[spec],
        transition_criteria=[
            MinTrials(
                threshold=init_trials,
                transition_to="BoTorch",
                use_all_trials_in_exp=False,
                not_in_statuses=given_up,
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
                threshold=init_trials, not_in_statuses=given_up, use_all_trials_in_exp=False
            )
        ],
        should_deduplicate=True,
    )
    botorch = _botorch_node(acqf, num_restarts, raw_samples)
    return GenerationStrategy(name=name, nodes=[sobol, botorch])


def botorch_strategy(name: str, acqf: type, *, num_restarts: int, raw_samples: int) -> Any:
    """A GenerationStrategy with only the BoTorch node (generation raises Ax's
    ``DataRequiredError`` until trials have data)."""
    import_ax_quietly()
    from ax.generation_strategy.generation_strategy import GenerationStrategy

    return GenerationStrategy(name=name, nodes=[_botorch_node(acqf, num_restarts, raw_samples)])
