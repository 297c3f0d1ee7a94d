"""The online phase end to end, against the online simulator, through the service's HTTP API.

Used by ``pex-tuner demo`` and notebooks/03_online_loop.ipynb. The service runs in-process
(FastAPI's TestClient speaks HTTP to the app without a socket); the "online system" side is
what a real one does: poll ``next-batch``, fetch each trial's artifact and the model it
references, assign units, report metrics with an Idempotency-Key, and finally launch the chosen
policy with a randomized holdout and backtest it on the launch traffic.

Workflows sit below the service in the house (the service is a top-floor leaf), so the caller
passes the app factory: ``run_online_phase(..., app_factory=pex_tuner.service.create_app)``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pex_tuner.files import MODEL_FILE, atomic_write_bytes, atomic_write_text, sha256_bytes
from pex_tuner.plotting.styles import format_p_value
from pex_tuner.workflows.launch_choice import LaunchChoice, choose_launch

__all__ = ["run_online_phase", "save_served_artifact", "summarize"]

#: the simulator's metrics and their directions; the online objectives are those the offline
#: tuner does not guard (a guardrail, e.g. retention, stays a constraint online)
OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}


def save_served_artifact(
    client: Any, headers: dict[str, str], doc: dict[str, Any], folder: Path
) -> Path:
    """Write a served artifact document into ``folder``, downloading its model once.

    Args:
        client: an HTTP client of the service (``httpx.Client`` or FastAPI's ``TestClient``).
        headers: request headers (the bearer token).
        doc: the artifact document, as ``next-batch`` or ``launch`` serve it.
        folder: where the artifact JSON and its model file go.

    Returns:
        Path of the artifact JSON, loadable with ``PolicyArtifact.load``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / MODEL_FILE
    if not model.exists():
        data = client.get(doc["model"]["url"], headers=headers).content
        if sha256_bytes(data) != doc["model"]["sha256"]:
            raise RuntimeError("downloaded model does not match the artifact's SHA-256")
        atomic_write_bytes(model, data)
    return atomic_write_text(folder / f"{doc['name']}.json", json.dumps(doc, indent=2))


@dataclass
class _Session:
    """An in-process service, an HTTP client of it, and one run."""

    client: Any
    service: Any  # the app's run cache (``app.state.service``)
    headers: dict[str, str]
    run_id: str = ""

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """POST ``body`` to the run's ``path`` (to ``/v1/runs`` before the run exists)."""
        url = f"/v1/runs/{self.run_id}{path}" if self.run_id else "/v1/runs"
        return self.client.post(url, json=body, headers={**self.headers, **(headers or {})})

    def next_batch(self, size: int) -> list[dict[str, Any]]:
        """The next ``size`` trials, waiting for the background generation if needed."""
        batch = self.post("/next-batch", {"size": size}).json()
        while not batch["trials"]:  # in-process: wait for the background generation
            self.service.wait_idle()
            batch = self.post("/next-batch", {"size": size}).json()
        return batch["trials"]


def _open_session(app_factory: Callable[..., Any], db: Path, tuner_dir: Path, k: int) -> _Session:
    """Start the service on the SQLite file ``db`` and create a run from ``tuner_dir``."""
    import warnings

    with warnings.catch_warnings():  # starlette's notice about its httpx transport
        # StarletteDeprecationWarning subclasses UserWarning, not DeprecationWarning
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    token = secrets.token_hex(16)
    app = app_factory(f"sqlite:///{db}", tokens=token)
    session = _Session(TestClient(app), app.state.service, {"Authorization": f"Bearer {token}"})
    guarded = _guardrail_tolerances(tuner_dir)
    objectives = {m: d for m, d in OBJECTIVES.items() if m not in guarded}
    r = session.post("", {"tuner_dir": str(tuner_dir), "n_candidates": k, "objectives": objectives})
    if r.status_code != 201:
        raise RuntimeError(f"creating the online run failed ({r.status_code}): {r.text}")
    session.run_id = r.json()["run_id"]
    return session


def _online_rounds(
    session: _Session,
    sim: Any,
    folder: Path,
    *,
    rounds: int,
    candidates: int,
    units_per_policy: int,
    progress: bool | None,
) -> None:
    """Poll, run each issued policy on the simulator, report its metrics; ``rounds`` times."""
    from pex_tuner.policies import PolicyArtifact
    from pex_tuner.progress import progress_bar

    bar = progress_bar(rounds, "online rounds", progress)
    try:
        for _ in range(rounds):
            arts = {
                t["trial_id"]: PolicyArtifact.load(
                    save_served_artifact(session.client, session.headers, t["artifact"], folder)
                )
                for t in session.next_batch(candidates)
            }
            results = sim.run({str(k): a for k, a in arts.items()}, units_per_policy)
            for tid in arts:
                resp = session.post(
                    f"/trials/{tid}/results",
                    {"metrics": results[str(tid)]},
                    {"Idempotency-Key": f"{session.run_id}:{tid}"},
                )
                if resp.status_code != 200:
                    raise RuntimeError(f"report for trial {tid} refused: {resp.text}")
            bar.update(1)
    finally:
        bar.close()


def _with_offline_estimates(tuner: Any, data: Any) -> Any:
    """A local copy of the online tuner with every completed policy also evaluated offline
    (DR OPE on the offline tuner's validation split), so calibration covers all of them."""
    from pex_tuner.tuning import OfflineTuner
    from pex_tuner.tuning.online import OnlineTuner

    offline = OfflineTuner.load(str(Path(tuner.offline_dir)), data)
    tuner = OnlineTuner.from_state(tuner.to_state())
    ids = [t for t, rec in tuner.trials.items() if rec["status"] == "completed"]
    ev = offline.metric.evaluate([tuner.policy(t) for t in ids])
    for i, t in enumerate(ids):
        tuner.set_offline(t, {o: (ev.value[i, j], ev.se[i, j]) for j, o in enumerate(ev.outcomes)})
    return tuner


def _launch(
    session: _Session, sim: Any, best: int, *, holdout: float, launch_units: int, out: Path
) -> dict[str, Any]:
    """Launch trial ``best`` through the service, save the launch, backtest it on traffic."""
    from pex_tuner.launch import backtest, launch_policy

    doc = session.post("/launch", {"trial_id": best, "holdout": holdout}).json()
    art_path = save_served_artifact(
        session.client, session.headers, doc["policy_artifact"], out / "launch"
    )
    launched = launch_policy(art_path, holdout=doc["holdout"], salt=doc["salt"])
    launch_file = launched.save(out / "launch" / "launch.json")
    traffic = sim.simulate_launch(launched, launch_units)
    table = backtest(traffic, list(sim.metrics), directions=OBJECTIVES)
    return {"launch": doc, "launch_file": launch_file, "backtest": table, "traffic": traffic}


def _write_report(
    path: Path,
    summary: dict[str, Any],
    *,
    rounds: int,
    candidates: int,
    gap: float,
    launch_units: int,
) -> Path:
    """The HTML report of the online phase: trials, calibration and backtest."""
    from pex_tuner.plotting import plot_backtest, plot_calibration, plot_online_trials, write_report

    res, calib, table = summary["results"], summary["calibration"], summary["backtest"]
    trials = _trials_table(res, summary["parameter_names"], summary["choice"])
    n_waiting = int((res["status"] != "completed").sum())
    sections = [
        f"Run {summary['run_id']}: {rounds} online rounds of {candidates} policies against the "
        f"simulator (offline/online gap {gap}); first round = the offline candidates "
        "with the largest joint hypervolume, later rounds = qLogNParEGO on the online "
        "results (including the long-term outcome, which offline OPE never saw).",
        summary["choice"].reason,
        f"Launched with a {summary['launch']['holdout']:.0%} randomized holdout; backtest "
        f"on {launch_units} units of launch traffic: policy group vs holdout (uniformly random "
        "arms), Welch 95% CIs; green / red = significantly better / worse in the metric's "
        "direction.",
    ]
    if n_waiting:
        sections.append(
            f"{n_waiting} trial(s) without results (the next batch, generated but not run, or "
            "failed / abandoned) are not in the table."
        )
    figs = [
        plot_online_trials(res, "engagement", "long_term", directions=OBJECTIVES),
        plot_calibration(calib),
        plot_backtest(table),
    ]
    return write_report(
        path,
        figs,
        title="pex-tuner: online tuning, launch and backtest",
        sections=sections,
        tables={
            "Online trials (means ± 95%)": trials,
            "Calibration (offline OPE vs online)": calib.attrs["association"],
            "Backtest (policy minus holdout)": _backtest_table(table),
        },
    )


def _trials_table(res: pd.DataFrame, names: dict[str, str], choice: LaunchChoice) -> pd.DataFrame:
    """Completed trials only (no rows of pending trials), parameters named by outcome and arm,
    one ``mean ± 95%`` column per metric, and which trials the launch rule chose among."""
    done = res[res["status"] == "completed"]
    out = done[["trial_id", "source"]].copy()
    out["online Pareto"] = done["trial_id"].isin(choice.eligible).to_numpy()
    out["launched"] = (done["trial_id"] == choice.trial_id).to_numpy()
    for p, shown in names.items():
        if p in done.columns:
            out[shown] = done[p]
    for m, d in OBJECTIVES.items():
        if m in done.columns:
            pairs = zip(done[m], done[f"{m}_sem"], strict=True)
            out[f"{m} ({d})"] = [f"{v:.4g} ± {1.959964 * se:.2g}" for v, se in pairs]
    return out


def _backtest_table(table: pd.DataFrame) -> pd.DataFrame:
    """The backtest as the report shows it: interval in one column, relative lift in %."""
    out = table[["metric", "direction", "policy_mean", "holdout_mean", "difference"]].copy()
    bounds = zip(table["ci_low"], table["ci_high"], strict=True)
    out["95% CI"] = [f"[{lo:.4g}, {hi:.4g}]" for lo, hi in bounds]
    out["relative lift"] = [f"{v:+.1%}" for v in table["relative_lift"]]
    out["p_value"] = table["p_value"]
    out["verdict"] = table["verdict"]
    return out


# Over 80 lines by its docstring only (every key of the returned summary is documented here);
# the body is about 40 lines of calls to the steps below.
def run_online_phase(
    tuner_dir: str | Path,
    out: str | Path,
    *,
    app_factory: Callable[..., Any],
    rounds: int = 3,
    candidates: int = 3,
    units_per_policy: int = 5000,
    gap: float = 0.2,
    launch_units: int = 40_000,
    holdout: float = 0.05,
    seed: int = 0,
    design_seed: int = 0,
    data: Any = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Online rounds, launch with holdout and backtest; state in ``out/pex_tuner_online.db``.

    Args:
        tuner_dir: a saved offline tuner (or the ``tune`` / ``demo`` output folder).
        out: output folder (report, artifacts, launch file, SQLite database).
        app_factory: ``pex_tuner.service.create_app`` (called as ``(db_url, tokens=token)``;
            the app's ``state.service`` is its run cache).
        rounds: online batches to run (the first is the offline candidates).
        candidates: policies per batch.
        units_per_policy: simulated units per online arm.
        gap: the simulator's offline/online gap (see ``OnlineSimulator``).
        launch_units: simulated units of launch traffic for the backtest.
        holdout: launch holdout fraction (0.02 to 0.05).
        seed: seed of the simulator; design_seed: its effect design (match the offline data).
        data: the offline ExperimentData; when given, every online policy is also evaluated
            offline (DR OPE on the tuner's validation split) so the calibration covers all
            of them, not only the offline candidates.
        progress: progress bar (True), log lines (None when not interactive) or nothing;
            see ``pex_tuner.progress.progress_bar``.

    Returns:
        dict with ``run_id``, ``results`` (OnlineTuner.results), ``pareto``, ``calibration``,
        ``association``, ``launch`` (document), ``launch_file``, ``backtest`` (table, with
        ``direction`` and ``verdict``), ``traffic``, ``db``, ``report``, ``launched_trial``,
        ``choice`` (:class:`~pex_tuner.workflows.launch_choice.LaunchChoice`), ``launch_reason``
        (its one line: the rule, the guardrail and what the launched policy trades) and
        ``parameter_names`` (internal -> display names).

    The launched policy is chosen by :func:`~pex_tuner.workflows.launch_choice.choose_launch`:
    the best long-term outcome among the online Pareto policies that meet the guardrails (the
    offline tuner's, as absolute bounds).
    """
    from pex_tuner.datasets import OnlineSimulator

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "pex_tuner_online.db"
    session = _open_session(app_factory, db, Path(tuner_dir), candidates)
    sim = OnlineSimulator(design_seed=design_seed, gap=gap, random_state=seed)
    _online_rounds(
        session,
        sim,
        out / "online_policies",
        rounds=rounds,
        candidates=candidates,
        units_per_policy=units_per_policy,
        progress=progress,
    )
    session.service.wait_idle()
    tuner = session.service.get(session.run_id).tuner
    if data is not None:
        tuner = _with_offline_estimates(tuner, data)
    res, front, calib = tuner.results(), tuner.pareto(), tuner.calibration()
    choice = _launch_rule(tuner, res, front, tuner_dir)
    launched = _launch(
        session, sim, choice.trial_id, holdout=holdout, launch_units=launch_units, out=out
    )
    summary = {"run_id": session.run_id, "results": res, "pareto": front, "calibration": calib}
    summary.update(association=calib.attrs["association"], **launched)
    summary.update(launched_trial=choice.trial_id, choice=choice, launch_reason=choice.reason)
    summary["parameter_names"] = tuner.space.display_names()
    report = _write_report(
        out / "online_report.html",
        summary,
        rounds=rounds,
        candidates=candidates,
        gap=gap,
        launch_units=launch_units,
    )
    session.service.store.dispose()
    return {**summary, "db": db, "report": report}


def _launch_rule(
    tuner: Any, res: pd.DataFrame, front: pd.DataFrame, tuner_dir: str | Path
) -> LaunchChoice:
    """The launch rule: the online-Pareto policy (guardrails met) with the best long-term
    outcome, the metric offline OPE could not see."""
    return choose_launch(
        res,
        front,
        tuner.objectives,
        tuner.constraints,
        goal="long_term",
        tolerances=_guardrail_tolerances(tuner_dir),
    )


def _guardrail_tolerances(tuner_dir: str | Path) -> dict[str, float]:
    """The offline tuner's guardrails (outcome -> tolerance, a fraction of control)."""
    from pex_tuner.tuning.storage import read_offline_state

    _, state = read_offline_state(tuner_dir)
    return {k: float(v) for k, v in (state["config"].get("guardrails") or {}).items()}


def summarize(summary: dict[str, Any]) -> str:
    """Plain-text summary of ``run_online_phase`` for terminals."""
    res: pd.DataFrame = summary["results"]
    res = res[res["status"] == "completed"]  # not the next batch, already generated
    cols = ["trial_id", "source", "status", "engagement", "retention", "cost", "long_term"]
    bt = summary["backtest"].copy()
    bt["p_value"] = [format_p_value(p) for p in bt["p_value"]]
    bt_cols = ["metric", "difference", "ci_low", "ci_high", "p_value", "verdict"]
    lines = [
        "Online trials (means of the simulated online experiment):",
        res[[c for c in cols if c in res]].round(4).to_string(index=False),
        "",
        "Offline OPE vs online (policies measured both ways):",
        summary["association"].round(3).to_string(index=False),
        "",
        summary["launch_reason"],
        f"Launched trial {summary['launched_trial']} with a "
        f"{summary['launch']['holdout']:.0%} holdout; backtest (policy minus holdout):",
        bt[[c for c in bt_cols if c in bt]].round(4).to_string(index=False),
    ]
    return "\n".join(lines)
