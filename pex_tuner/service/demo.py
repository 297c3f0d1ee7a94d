"""The online phase end to end, against the online simulator, through the service's HTTP API.

Used by ``pex-tuner demo`` and notebooks/03_online_loop.ipynb. The service runs in-process
(FastAPI's TestClient speaks HTTP to the app without a socket); the "online system" side is
what a real one does: poll ``next-batch``, fetch each trial's artifact and the model it
references, assign units, report metrics with an Idempotency-Key, and finally launch the chosen
policy with a randomized holdout and backtest it on the launch traffic.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["run_online_phase"]


def _artifact(client: Any, headers: dict[str, str], doc: dict[str, Any], folder: Path) -> Path:
    """Write a served artifact document into ``folder``, downloading its model once."""
    from pex_tuner.files import MODEL_FILE, atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    model = folder / MODEL_FILE
    if not model.exists():
        data = client.get(doc["model"]["url"], headers=headers).content
        if hashlib.sha256(data).hexdigest() != doc["model"]["sha256"]:
            raise RuntimeError("downloaded model does not match the artifact's SHA-256")
        atomic_write_bytes(model, data)
    path = folder / f"{doc['name']}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def run_online_phase(
    tuner_dir: str | Path,
    out: str | Path,
    *,
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

    Returns:
        dict with ``run_id``, ``results`` (OnlineTuner.results), ``pareto``, ``calibration``,
        ``association``, ``launch`` (document), ``backtest`` (table), ``db`` and ``report``.
    """
    import warnings

    with warnings.catch_warnings():  # starlette's notice about its httpx transport
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    from pex_tuner.datasets import OnlineSimulator
    from pex_tuner.launch import backtest, launch_policy
    from pex_tuner.plotting import (
        plot_backtest,
        plot_calibration,
        plot_online_trials,
        write_report,
    )
    from pex_tuner.policies import PolicyArtifact
    from pex_tuner.progress import progress_bar
    from pex_tuner.service.app import create_app

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "pex_tuner_online.db"
    token = secrets.token_hex(16)
    app = create_app(f"sqlite:///{db}", tokens=token)
    service = app.state.service
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {token}"}
    sim = OnlineSimulator(design_seed=design_seed, gap=gap, random_state=seed)
    objectives = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}
    r = client.post(
        "/v1/runs",
        json={"tuner_dir": str(tuner_dir), "n_candidates": candidates, "objectives": objectives},
        headers=headers,
    )
    if r.status_code != 201:
        raise RuntimeError(f"creating the online run failed ({r.status_code}): {r.text}")
    run_id = r.json()["run_id"]
    folder = out / "online_policies"
    bar = progress_bar(rounds, "online rounds", progress)
    try:
        for _ in range(rounds):
            batch = client.post(
                f"/v1/runs/{run_id}/next-batch", json={"size": candidates}, headers=headers
            ).json()
            while not batch["trials"]:  # in-process: wait for the background generation
                service.wait_idle()
                batch = client.post(
                    f"/v1/runs/{run_id}/next-batch", json={"size": candidates}, headers=headers
                ).json()
            arts = {
                t["trial_id"]: PolicyArtifact.load(
                    _artifact(client, headers, t["artifact"], folder)
                )
                for t in batch["trials"]
            }
            results = sim.run({str(k): a for k, a in arts.items()}, units_per_policy)
            for tid in arts:
                resp = client.post(
                    f"/v1/runs/{run_id}/trials/{tid}/results",
                    json={"metrics": results[str(tid)]},
                    headers={**headers, "Idempotency-Key": f"{run_id}:{tid}"},
                )
                if resp.status_code != 200:
                    raise RuntimeError(f"report for trial {tid} refused: {resp.text}")
            bar.update(1)
    finally:
        bar.close()
    service.wait_idle()
    tuner = service.run(run_id).tuner
    if data is not None:
        from pex_tuner.tuning import OfflineTuner
        from pex_tuner.tuning.online import OnlineTuner

        offline = OfflineTuner.load(str(Path(tuner.offline_dir)), data)
        tuner = OnlineTuner.from_state(tuner.to_state())  # a local copy for the report
        ids = [t for t, rec in tuner.trials.items() if rec["status"] == "completed"]
        ev = offline.metric.evaluate([tuner.policy(t) for t in ids])
        for i, t in enumerate(ids):
            tuner.set_offline(
                t, {o: (ev.value[i, j], ev.se[i, j]) for j, o in enumerate(ev.outcomes)}
            )
    res = tuner.results()
    front = tuner.pareto()
    calib = tuner.calibration()
    # launch the online-Pareto policy with the best long-term outcome: the metric offline OPE
    # could not see
    best = int(front.sort_values("long_term", ascending=False)["trial_id"].iloc[0])
    doc = client.post(
        f"/v1/runs/{run_id}/launch", json={"trial_id": best, "holdout": holdout}, headers=headers
    ).json()
    art_path = _artifact(client, headers, doc["policy_artifact"], out / "launch")
    launched = launch_policy(art_path, holdout=doc["holdout"], salt=doc["salt"])
    launch_file = launched.save(out / "launch" / "launch.json")
    traffic = sim.simulate_launch(launched, launch_units)
    table = backtest(traffic, list(sim.metrics))
    figs = [
        plot_online_trials(res, "engagement", "long_term"),
        plot_calibration(calib),
        plot_backtest(table),
    ]
    report = write_report(
        out / "online_report.html",
        figs,
        title="pex-tuner: online tuning, launch and backtest",
        sections=[
            f"Run {run_id}: {rounds} online rounds of {candidates} policies against the "
            f"simulator (offline/online gap {gap}); first round = the offline candidates "
            "with the largest joint hypervolume, later rounds = qLogNParEGO on the online "
            "results (including the long-term outcome, which offline OPE never saw).",
            f"Launched trial {best} (best long-term outcome on the online Pareto front) with a "
            f"{doc['holdout']:.0%} randomized holdout; backtest on {launch_units} units of "
            "launch traffic: policy group vs holdout (uniformly random arms), Welch 95% CIs.",
        ],
        tables={
            "Online trials": res.round(4),
            "Calibration (offline OPE vs online)": calib.attrs["association"].round(3),
            "Backtest": table.round(4),
        },
    )
    service.store.dispose()
    return {
        "run_id": run_id,
        "results": res,
        "pareto": front,
        "calibration": calib,
        "association": calib.attrs["association"],
        "launch": doc,
        "launch_file": launch_file,
        "backtest": table,
        "traffic": traffic,
        "db": db,
        "report": report,
        "launched_trial": best,
    }


def summarize(summary: dict[str, Any]) -> str:
    """Plain-text summary of ``run_online_phase`` for terminals."""
    res: pd.DataFrame = summary["results"]
    res = res[res["status"] != "pending"]  # the next batch, already generated
    cols = ["trial_id", "source", "status", "engagement", "retention", "cost", "long_term"]
    lines = [
        "Online trials (means of the simulated online experiment):",
        res[[c for c in cols if c in res]].round(4).to_string(index=False),
        "",
        "Offline OPE vs online (policies measured both ways):",
        summary["association"].round(3).to_string(index=False),
        "",
        f"Launched trial {summary['launched_trial']} with a "
        f"{summary['launch']['holdout']:.0%} holdout; backtest (policy minus holdout):",
        summary["backtest"][["metric", "difference", "ci_low", "ci_high", "n_policy", "n_holdout"]]
        .round(4)
        .to_string(index=False),
    ]
    return "\n".join(lines)
