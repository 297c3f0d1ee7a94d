"""``pex-tuner demo``: all three phases on the built-in synthetic experiment, narrated.

Phase 1a: CATE models and the OPE report of simple policies next to the ground truth
(:mod:`~pex_tuner.workflows.ope_report`); phase 1b: the offline tuning run
(:mod:`~pex_tuner.workflows.offline`); phases 2 and 3: online rounds through the service API
against the simulator, launch with a randomized holdout, and backtest
(:mod:`~pex_tuner.workflows.online_demo`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pex_tuner.data import ExperimentData
from pex_tuner.datasets import make_synthetic
from pex_tuner.errors import ConfigurationError
from pex_tuner.workflows.offline import OfflineRun, run_offline_tuning
from pex_tuner.workflows.ope_report import ope_report

__all__ = ["DEMO_GUARDRAILS", "run_demo"]

#: the guardrail the README describes: retention at most 0.5% below assign-all-control
DEMO_GUARDRAILS = {"retention": 0.005}


def run_demo(
    *,
    n_units: int = 20_000,
    seed: int = 0,
    learner: str = "t",
    budget: int = 8,
    batch_size: int = 8,
    candidates: int = 3,
    rounds: int = 3,
    offline_only: bool = False,
    out: str | Path = "pex_tuner_demo",
    app_factory: Callable[..., Any] | None = None,
) -> OfflineRun:
    """Run and narrate the demo, printing each phase's results; files go to ``out``.

    Args:
        n_units: units of the synthetic experiment.
        seed: its ``random_state``, and that of the split, the models, the tuner and the
            online simulator.
        learner: CATE meta-learner of the OPE report (phase 1a).
        budget, batch_size, candidates: of the offline tuning run (phase 1b).
        rounds: online rounds (phase 2).
        offline_only: stop after the offline phase.
        out: output folder.
        app_factory: the service's app factory, ``pex_tuner.service.create_app`` (the online
            phases talk to the service; workflows sit below it, so the caller passes it).
            Required unless ``offline_only``.

    Returns:
        The offline run (its tuner, frontier and candidates).
    """
    if not offline_only and app_factory is None:
        raise ConfigurationError(
            "the online phases need 'app_factory' (pex_tuner.service.create_app); pass it, "
            "or offline_only=True"
        )
    truth = make_synthetic(n_units, random_state=seed)
    print("pex-tuner demo: built-in synthetic experiment (goal, guardrail and cost outcomes)")
    print("\n== Phase 1a: CATE models and off-policy evaluation of simple policies ==")
    print(ope_report(truth.data, learner=learner, seed=seed, truth=truth).text())
    print(
        "\nEach cell: doubly robust estimate on the test split with its 95% CI and, because "
        "the experiment is simulated, the true value; 'lift' is the paired difference to "
        "assign-all-control."
    )
    guard = ", ".join(f"{g} at most {t:.1%} below control" for g, t in DEMO_GUARDRAILS.items())
    print(
        f"\n== Phase 1b: offline tuning (CATE learner chosen by the data, a dense design of "
        f"1,024 policies, then {budget} qLogNParEGO refinements; guardrail: {guard}) =="
    )
    run = run_offline_tuning(
        truth.data,
        out=out,
        budget=budget,
        batch_size=batch_size,
        candidates=candidates,
        seed=seed,
        truth=truth,
        guardrails=dict(DEMO_GUARDRAILS),
    )
    print(run.summary())
    bounds = ", ".join(f"{g} >= {b:.4g}" for g, b in run.tuner.guardrail_bounds.items())
    print(
        "\nColumns '<outcome>_true_test' are the true values of each frontier policy on the "
        f"held-out test units. Policies that break the guardrail ({bounds}) are left off the "
        "frontier. Open report.html for the Pareto front, the with/without-bias comparison "
        "and the hypervolume trace."
    )
    if app_factory is not None and not offline_only:
        _online_phases(run, truth.data, app_factory, rounds, candidates, seed)
    return run


def _online_phases(
    run: OfflineRun,
    data: ExperimentData,
    app_factory: Callable[..., Any],
    rounds: int,
    candidates: int,
    seed: int,
) -> None:
    """Phases 2 and 3: online rounds from the saved tuner, launch, backtest."""
    from pex_tuner.workflows.online_demo import run_online_phase, summarize

    print(
        f"\n== Phase 2: online tuning, {rounds} rounds through the service API, against "
        "the online simulator (a long-term outcome joins the objectives; the retention "
        "guardrail carries over) =="
    )
    online = run_online_phase(
        run.out / "tuner",
        run.out,
        app_factory=app_factory,
        rounds=rounds,
        candidates=candidates,
        seed=seed,
        data=data,
    )
    print("\n== Phase 3: launch with a randomized holdout, and backtest ==")
    print(summarize(online))
    print(
        f"\nWrote {online['report']} (online results, calibration, backtest) and the launch "
        f"file {online['launch_file']}. All online state is in the SQLite database "
        f"{online['db']}."
    )
