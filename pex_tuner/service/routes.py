"""The endpoints of the service's HTTP API (a FastAPI ``APIRouter``; protocol in
:mod:`pex_tuner.service.app`).

Every ``/v1`` endpoint depends on :func:`auth`, then on
:func:`~pex_tuner.service.bodies.require_json_body`: bodies are read as JSON whatever their
``Content-Type`` (:class:`~pex_tuner.service.bodies.JSONBodyRoute`), and one that is not JSON is
a 415 naming the header to send. Handlers find the app's :class:`RunCache` in
``request.app.state.service`` and the accepted tokens in ``request.app.state.tokens``. Unknown
runs and trials are 404; the app maps pex-tuner errors to 409 / 422.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from pex_tuner.errors import ResultConflictError
from pex_tuner.files import MODEL_FILE, sha256_bytes
from pex_tuner.launch.document import launch_document
from pex_tuner.service.bodies import JSONBodyRoute, require_json_body
from pex_tuner.service.runs import Run, RunCache
from pex_tuner.service.schemas import (
    CalibrationResponse,
    CreateRunBody,
    CreateRunResponse,
    LaunchBody,
    LaunchResponse,
    NextBatchBody,
    NextBatchResponse,
    ParetoResponse,
    ReportResponse,
    ResultsBody,
    RunResponse,
    StatusBody,
    StatusResponse,
)

__all__ = ["RETRY_AWAITING_S", "RETRY_GENERATING_S", "accepted_metrics", "auth", "router"]

#: Seconds a poller is told to wait while a run awaits results / generates its next batch.
RETRY_AWAITING_S = 30
RETRY_GENERATING_S = 5


def auth(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Require ``Authorization: Bearer <token>`` with one of the app's tokens (401 otherwise)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not any(
        secrets.compare_digest(token.encode(), t.encode()) for t in request.app.state.tokens
    ):
        raise HTTPException(
            401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


router = APIRouter(route_class=JSONBodyRoute)
_PROTECTED = [Depends(auth), Depends(require_json_body)]


def _cache(request: Request) -> RunCache:
    return request.app.state.service


def _run(request: Request, run_id: str) -> Run:
    run = _cache(request).get(run_id)
    if run is None:
        raise HTTPException(404, f"no run '{run_id}'")
    return run


def _trial(run: Run, run_id: str, trial_id: int) -> dict[str, Any]:
    """The trial's record (call with the run's lock held); 404 if the run has no such trial."""
    if trial_id not in run.tuner.trials:
        raise HTTPException(404, f"no trial {trial_id} in run '{run_id}'")
    return run.tuner.trials[trial_id]


def accepted_metrics(tuner: Any) -> list[str]:
    """The metric names a run takes results for: its objectives and constraints (online-only
    metrics such as ``long_term`` included) and its offline outcomes (for calibration)."""
    return sorted({*tuner.required_metrics, *tuner.space.outcomes})


def _check_metric_names(tuner: Any, names: Any) -> None:
    """422 naming the reported metrics the run does not know, and the ones it accepts."""
    accepted = accepted_metrics(tuner)
    unknown = sorted(set(names) - set(accepted))
    if unknown:
        raise HTTPException(
            422,
            f"unknown metric name(s) {unknown}; this run accepts {accepted} (its objectives, "
            "constraints and offline outcomes); declare an online-only metric in 'objectives' "
            "or 'constraints' when creating the run",
        )


def _model_url(request: Request, run_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/v1/runs/{run_id}/model"


def _trial_view(tuner: Any, t: dict[str, Any]) -> dict[str, Any]:
    return {
        "trial_id": t["trial_id"],
        "status": t["status"],
        "source": t["source"],
        "parameters": t["parameters"],
        "metrics": t["metrics"],
        "offline": {k: {"value": v[0], "se": v[1]} for k, v in t["offline"].items()},
        "missing_metrics": [m for m in tuner.required_metrics if m not in t["metrics"]],
    }


def _records(frame: Any) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts (NaN -> None)."""
    return json.loads(frame.to_json(orient="records"))


def _generate_if_ready(request: Request, run_id: str, run: Run, blocker: str | None) -> None:
    """Start generating the next batch when nothing blocks it (``blocker`` is None)."""
    if blocker is None:
        _cache(request).start_generation(run_id, run)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness probe (no token needed)."""
    return {"status": "ok"}


@router.post("/v1/runs", dependencies=_PROTECTED, status_code=201)
def create_run(body: CreateRunBody, request: Request) -> CreateRunResponse:
    """Start an online run from a saved offline tuner; its first trials are the offline
    candidates."""
    from pex_tuner.tuning.online import OnlineTuner

    tuner = OnlineTuner.from_offline(
        body.tuner_dir,
        n_candidates=body.n_candidates,
        objectives=body.objectives,
        constraints=None
        if body.constraints is None
        else {k: (c.op, c.bound) for k, c in body.constraints.items()},
        margin=body.margin,
        batch_size=body.batch_size,
        acquisition=body.acquisition,
    )
    model = None
    src = Path(tuner.offline_dir) / MODEL_FILE
    if tuner.model_sha256 and src.exists():
        model = (tuner.model_sha256, src.read_bytes())
    run_id = uuid.uuid4().hex
    cache = _cache(request)
    config = tuner.to_state()
    trials = config.pop("trials")
    cache.store.create_run(run_id, str(body.tuner_dir), config, trials, model)
    cache.add(run_id, tuner)
    return CreateRunResponse(
        run_id=run_id,
        trials=len(tuner.trials),
        bounds=tuner.bounds,
        parameter_names=tuner.space.display_names(),
    )


@router.get("/v1/runs/{run_id}", dependencies=_PROTECTED)
def get_run(run_id: str, request: Request) -> RunResponse:
    """The run's configuration, trial counts, generation state, launch and trials."""
    run = _run(request, run_id)
    row = _cache(request).store.get_run(run_id)
    with run.lock:
        t = run.tuner
        trials = [_trial_view(t, x) for _, x in sorted(t.trials.items())]
        counts = t.status_counts()
        blocker = t.generation_blocker()
    return RunResponse(
        run_id=run_id,
        created_at=row["created_at"] if row else None,
        objectives=t.objectives,
        constraints={k: {"op": o, "bound": b} for k, (o, b) in t.constraints.items()},
        accepted_metrics=accepted_metrics(t),
        bounds=t.bounds,
        parameter_names=t.space.display_names(),
        counts=counts,
        generating=run.generating,
        generation_error=run.generation_error,
        waiting_for=blocker,
        launch=row["launch"] if row else None,
        trials=trials,
    )


@router.post(
    "/v1/runs/{run_id}/next-batch", dependencies=_PROTECTED, response_model=NextBatchResponse
)
def next_batch(run_id: str, body: NextBatchBody, request: Request) -> Response:
    """Issue up to ``size`` pending trials with their artifacts, or say why there are none
    and when to poll again (``Retry-After``)."""
    run = _run(request, run_id)
    with run.lock:
        trials = sorted(run.tuner.trials.items())
        pending = [tid for tid, t in trials if t["status"] == "pending"]
        got = _cache(request).store.claim(run_id, pending[: body.size], body.poller)
        for tid in got:
            run.tuner.trials[tid].update(status="running", poller=body.poller)
        blocker = run.tuner.generation_blocker()
    if got:
        url = _model_url(request, run_id)
        docs = [
            {
                "trial_id": tid,
                "parameters": run.tuner.trials[tid]["parameters"],
                "artifact": run.tuner.artifact_document(tid, model_url=url),
            }
            for tid in got
        ]
        return JSONResponse({"state": "issued", "trials": docs})
    _generate_if_ready(request, run_id, run, blocker)
    if run.generating or blocker is None:
        state, wait = "generating", RETRY_GENERATING_S
        reason = "the next batch is being generated"
    else:
        state, wait, reason = "awaiting_results", RETRY_AWAITING_S, blocker
    if run.generation_error:
        reason += f" (last generation failed: {run.generation_error}; retrying)"
    return JSONResponse(
        {"state": state, "trials": [], "detail": reason, "retry_after_s": wait},
        headers={"Retry-After": str(wait)},
    )


@router.post("/v1/runs/{run_id}/trials/{trial_id}/results", dependencies=_PROTECTED)
def report(
    run_id: str,
    trial_id: int,
    body: ResultsBody,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    request: Request,
) -> ReportResponse:
    """Report some or all of a trial's metrics, idempotently per ``Idempotency-Key``."""
    run = _run(request, run_id)
    store = _cache(request).store
    metrics = {k: v.model_dump(exclude_none=True) for k, v in body.metrics.items()}
    sha = sha256_bytes(json.dumps([trial_id, metrics], sort_keys=True).encode())
    with run.lock:
        trial = _trial(run, run_id, trial_id)
        _check_metric_names(run.tuner, metrics)  # before anything is stored
        seen = store.find_report(run_id, idempotency_key)
        if seen is not None:
            if seen["body_sha256"] != sha:
                raise ResultConflictError(
                    f"Idempotency-Key '{idempotency_key}' was already used for a different "
                    "report; use a new key for a new report"
                )
            return ReportResponse(**{**seen["response"], "changed": False}, replayed=True)
        if trial["status"] == "pending":
            raise ResultConflictError(
                f"trial {trial_id} has not been issued yet; poll next-batch for it first"
            )
        updated = run.tuner.merged(trial_id, metrics)  # validates; raises on conflict
        changed = updated["metrics"] != trial["metrics"] or updated["status"] != trial["status"]
        response = {
            "trial_id": trial_id,
            "status": updated["status"],
            "changed": changed,
            "missing_metrics": [
                m for m in run.tuner.required_metrics if m not in updated["metrics"]
            ],
        }
        store.record_report(run_id, idempotency_key, updated, sha, response)
        trial.update(updated)
        blocker = run.tuner.generation_blocker()
    _generate_if_ready(request, run_id, run, blocker)
    return ReportResponse(**response, replayed=False)


@router.post("/v1/runs/{run_id}/trials/{trial_id}/status", dependencies=_PROTECTED)
def set_status(run_id: str, trial_id: int, body: StatusBody, request: Request) -> StatusResponse:
    """Mark an issued trial failed or abandoned; it no longer blocks the next batch."""
    run = _run(request, run_id)
    with run.lock:
        trial = _trial(run, run_id, trial_id)
        if trial["status"] == body.status:
            return StatusResponse(trial_id=trial_id, status=trial["status"], changed=False)
        run.tuner.mark_failed(trial_id, abandoned=body.status == "abandoned")
        _cache(request).store.set_status(run_id, trial_id, trial["status"])
        blocker = run.tuner.generation_blocker()
    _generate_if_ready(request, run_id, run, blocker)
    return StatusResponse(trial_id=trial_id, status=body.status, changed=True)


@router.get("/v1/runs/{run_id}/pareto", dependencies=_PROTECTED)
def pareto(run_id: str, request: Request) -> ParetoResponse:
    """The trials on the online Pareto frontier."""
    run = _run(request, run_id)
    with run.lock:
        front = run.tuner.pareto()
    return ParetoResponse(objectives=run.tuner.objectives, frontier=_records(front))


@router.get("/v1/runs/{run_id}/calibration", dependencies=_PROTECTED)
def calibration(run_id: str, request: Request) -> CalibrationResponse:
    """Offline OPE estimates vs online results, and their association per metric."""
    run = _run(request, run_id)
    with run.lock:
        table = run.tuner.calibration()
    return CalibrationResponse(
        points=_records(table), association=_records(table.attrs["association"])
    )


@router.get("/v1/runs/{run_id}/model", dependencies=_PROTECTED)
def model(run_id: str, request: Request) -> Response:
    """The CATE model file the run's artifacts reference (immutable; checked by SHA-256)."""
    run = _run(request, run_id)
    sha = run.tuner.model_sha256
    data = _cache(request).store.model_bytes(sha) if sha else None
    if data is None:
        raise HTTPException(404, f"run '{run_id}' has no stored model file")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"X-Content-SHA256": sha, "Cache-Control": "max-age=31536000, immutable"},
    )


@router.post("/v1/runs/{run_id}/launch", dependencies=_PROTECTED)
def launch(run_id: str, body: LaunchBody, request: Request) -> LaunchResponse:
    """Launch a completed trial's policy with a randomized holdout: the launch document,
    with the policy artifact embedded (see :mod:`pex_tuner.launch.document`)."""
    run = _run(request, run_id)
    with run.lock:
        if _trial(run, run_id, body.trial_id)["status"] != "completed":
            raise ResultConflictError(
                f"trial {body.trial_id} has no complete online results; launch a tested policy"
            )
        artifact = run.tuner.artifact_document(body.trial_id, model_url=_model_url(request, run_id))
    doc = launch_document(
        run_id=run_id,
        trial_id=body.trial_id,
        holdout=body.holdout,
        salt=body.salt or secrets.token_hex(16),
        arms=artifact["arms"],
        policy_artifact=artifact,
    )
    _cache(request).store.set_launch(run_id, doc)
    return LaunchResponse(**doc)
