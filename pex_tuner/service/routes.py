"""The endpoints of the service's HTTP API (a FastAPI ``APIRouter``; protocol in
:mod:`pex_tuner.service.app`).

Every ``/v1`` endpoint depends on :func:`require` with its scope (401 / 403 / 429, see
:mod:`pex_tuner.service.auth`), then on :func:`~pex_tuner.service.bodies.require_json_body`:
bodies are read as JSON whatever their ``Content-Type``
(:class:`~pex_tuner.service.bodies.JSONBodyRoute`), and one that is not JSON is a 415 naming the
header to send. Handlers find the app's :class:`RunCache` in ``request.app.state.service``.
``next-batch``, ``results`` and ``status`` work on database rows in one transaction each
(never on a process's cached trials, never on Ax); the other reads use the cached tuner,
refreshed when the run's version moved. Unknown runs and trials are 404; the app maps
pex-tuner errors to 409 / 422.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from pex_tuner.errors import ResultConflictError
from pex_tuner.files import MODEL_FILE, sha256_bytes
from pex_tuner.launch.document import launch_document
from pex_tuner.service import observe
from pex_tuner.service.auth import check_tuner_dir, find_token
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

__all__ = ["RETRY_AWAITING_S", "RETRY_GENERATING_S", "accepted_metrics", "require", "router"]

#: Seconds a poller is told to wait while a run awaits results / generates its next batch.
RETRY_AWAITING_S = 30
RETRY_GENERATING_S = 5


def require(scope: str) -> Callable[..., None]:
    """A dependency: ``Authorization: Bearer <token>`` with a configured token (401
    otherwise) that has ``scope`` (403 otherwise) and is within its rate limit (429 with
    ``Retry-After`` otherwise)."""

    def check(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        token = find_token(presented.strip(), request.app.state.tokens)
        if scheme.lower() != "bearer" or token is None:
            raise HTTPException(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        request.scope.setdefault("state", {})["token_name"] = token.name
        if not token.allows(scope):
            raise HTTPException(
                403, f"this token ('{token.name}') lacks the '{scope}' scope this call needs"
            )
        wait = request.app.state.limiter.retry_after(token)
        if wait:
            raise HTTPException(
                429,
                f"rate limit of token '{token.name}' exceeded; retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )

    return check


router = APIRouter(route_class=JSONBodyRoute)
READ = [Depends(require("read")), Depends(require_json_body)]
REPORT = [Depends(require("report")), Depends(require_json_body)]
ADMIN = [Depends(require("admin")), Depends(require_json_body)]


def _cache(request: Request) -> RunCache:
    return request.app.state.service


def _run(request: Request, run_id: str) -> Run:
    run = _cache(request).get(run_id)
    if run is None:
        raise HTTPException(404, f"no run '{run_id}'")
    return run


def _config(request: Request, run_id: str) -> Any:
    """The run's tuner, for its configuration only (404 for an unknown run)."""
    tuner = _cache(request).config(run_id)
    if tuner is None:
        raise HTTPException(404, f"no run '{run_id}'")
    return tuner


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


def _generate_if_ready(request: Request, run_id: str, status: str) -> None:
    """After a trial became ``status``: start the next batch when the run needs it."""
    if status in ("completed", "failed", "abandoned"):
        _cache(request).maybe_generate(run_id)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness probe (no token needed): the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "the database does not answer"}})
def readyz(request: Request) -> Response:
    """Readiness probe (no token needed): the database answers (503 otherwise)."""
    try:
        _cache(request).store.ping()
    except Exception as exc:
        detail = f"database unavailable: {type(exc).__name__}"
        return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics (text format; no token needed: bind the port privately)."""
    body = observe.metrics_text(_cache(request).store)
    return Response(body, media_type=observe.CONTENT_TYPE_LATEST)


@router.post("/v1/runs", dependencies=ADMIN, status_code=201)
def create_run(body: CreateRunBody, request: Request) -> CreateRunResponse:
    """Start an online run from a saved offline tuner under the server's runs root; its first
    trials are the offline candidates."""
    from pex_tuner.tuning.online import OnlineTuner

    try:
        tuner_dir = check_tuner_dir(body.tuner_dir, request.app.state.runs_root)
    except PermissionError as exc:
        raise HTTPException(403, str(exc)) from None
    except (OSError, ValueError) as exc:  # a name the file system cannot take
        raise HTTPException(422, f"'tuner_dir' is not a usable path: {exc}") from None
    tuner = OnlineTuner.from_offline(
        tuner_dir,
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
    cache.store.create_run(run_id, str(tuner_dir), config, trials, model)
    cache.add(run_id, tuner, version=0)
    return CreateRunResponse(
        run_id=run_id,
        trials=len(tuner.trials),
        bounds=tuner.bounds,
        parameter_names=tuner.space.display_names(),
    )


@router.get("/v1/runs/{run_id}", dependencies=READ)
def get_run(run_id: str, request: Request) -> RunResponse:
    """The run's configuration, trial counts, generation state, launch and trials."""
    run = _run(request, run_id)
    row = _cache(request).store.get_run(run_id) or {}
    with run.lock:
        t = run.tuner
        trials = [_trial_view(t, x) for _, x in sorted(t.trials.items())]
        counts = t.status_counts()
        blocker = t.generation_blocker()
    return RunResponse(
        run_id=run_id,
        created_at=row.get("created_at"),
        objectives=t.objectives,
        constraints={k: {"op": o, "bound": b} for k, (o, b) in t.constraints.items()},
        accepted_metrics=accepted_metrics(t),
        bounds=t.bounds,
        parameter_names=t.space.display_names(),
        counts=counts,
        generating=bool(row) and _cache(request).generating(row),
        generation_error=row.get("generation_error"),
        waiting_for=blocker,
        launch=row.get("launch"),
        trials=trials,
    )


def _waiting(request: Request, run_id: str, tuner: Any, state: dict[str, Any]) -> Response:
    """The next-batch answer with no trials: why, and when to poll again; starts the next
    batch when the run needs one and no process is generating it."""
    from pex_tuner.tuning.trials import generation_blocker

    cache = _cache(request)
    blocker = generation_blocker(state["counts"], tuner.min_completed)
    generating = cache.generating(state)
    if blocker is None and not generating:
        generating = cache.maybe_generate(run_id, state) or cache.generating(
            cache.store.run_state(run_id) or state
        )
    if generating or blocker is None:
        state_name, wait = "generating", RETRY_GENERATING_S
        reason = "the next batch is being generated"
    else:
        state_name, wait, reason = "awaiting_results", RETRY_AWAITING_S, blocker
    if state["generation_error"]:
        reason += f" (last generation failed: {state['generation_error']}; retrying)"
    return JSONResponse(
        {"state": state_name, "trials": [], "detail": reason, "retry_after_s": wait},
        headers={"Retry-After": str(wait)},
    )


@router.post("/v1/runs/{run_id}/next-batch", dependencies=REPORT, response_model=NextBatchResponse)
def next_batch(run_id: str, body: NextBatchBody, request: Request) -> Response:
    """Issue up to ``size`` pending trials with their artifacts, or say why there are none
    and when to poll again (``Retry-After``)."""
    tuner = _config(request, run_id)
    store = _cache(request).store
    state = store.run_state(run_id)
    if state is None:
        raise HTTPException(404, f"no run '{run_id}'")
    got = store.claim(run_id, body.size, body.poller) if state["counts"].get("pending") else []
    if not got:
        return _waiting(request, run_id, tuner, state)
    url = _model_url(request, run_id)
    docs = [
        {
            "trial_id": t["trial_id"],
            "parameters": t["parameters"],
            "artifact": tuner.artifact_document(
                t["trial_id"], model_url=url, parameters=t["parameters"]
            ),
        }
        for t in got
    ]
    return JSONResponse({"state": "issued", "trials": docs})


@router.post("/v1/runs/{run_id}/trials/{trial_id}/results", dependencies=REPORT)
def report(
    run_id: str,
    trial_id: int,
    body: ResultsBody,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    request: Request,
) -> ReportResponse:
    """Report some or all of a trial's metrics, idempotently per ``Idempotency-Key``."""
    from pex_tuner.tuning.trials import merge_metrics

    tuner = _config(request, run_id)
    metrics = {k: v.model_dump(exclude_none=True) for k, v in body.metrics.items()}
    sha = sha256_bytes(json.dumps([trial_id, metrics], sort_keys=True).encode())
    _check_metric_names(tuner, metrics)  # before anything is stored
    required = tuner.required_metrics

    def apply(trial: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        if trial["status"] == "pending":
            raise ResultConflictError(
                f"trial {trial_id} has not been issued yet; poll next-batch for it first"
            )
        updated = merge_metrics(trial, metrics, required)  # validates; raises on conflict
        changed = updated["metrics"] != trial["metrics"] or updated["status"] != trial["status"]
        return updated, {
            "trial_id": trial_id,
            "status": updated["status"],
            "changed": changed,
            "missing_metrics": [m for m in required if m not in updated["metrics"]],
        }

    response, replayed = _cache(request).store.report(run_id, trial_id, idempotency_key, sha, apply)
    if not replayed and response["changed"]:
        _generate_if_ready(request, run_id, response["status"])
    return ReportResponse(**response, replayed=replayed)


@router.post("/v1/runs/{run_id}/trials/{trial_id}/status", dependencies=REPORT)
def set_status(run_id: str, trial_id: int, body: StatusBody, request: Request) -> StatusResponse:
    """Mark an issued trial failed or abandoned; it no longer blocks the next batch."""
    from pex_tuner.tuning.trials import given_up

    _config(request, run_id)

    def change(trial: dict[str, Any]) -> dict[str, Any] | None:
        return None if trial["status"] == body.status else given_up(trial, body.status)

    new = _cache(request).store.change_status(run_id, trial_id, change)
    if new is None:
        return StatusResponse(trial_id=trial_id, status=body.status, changed=False)
    _generate_if_ready(request, run_id, body.status)
    return StatusResponse(trial_id=trial_id, status=body.status, changed=True)


@router.get("/v1/runs/{run_id}/pareto", dependencies=READ)
def pareto(run_id: str, request: Request) -> ParetoResponse:
    """The trials on the online Pareto frontier."""
    run = _run(request, run_id)
    with run.lock:
        front = run.tuner.pareto()
    return ParetoResponse(objectives=run.tuner.objectives, frontier=_records(front))


@router.get("/v1/runs/{run_id}/calibration", dependencies=READ)
def calibration(run_id: str, request: Request) -> CalibrationResponse:
    """Offline OPE estimates vs online results, and their association per metric."""
    run = _run(request, run_id)
    with run.lock:
        table = run.tuner.calibration()
    return CalibrationResponse(
        points=_records(table), association=_records(table.attrs["association"])
    )


@router.get("/v1/runs/{run_id}/model", dependencies=READ)
def model(run_id: str, request: Request) -> Response:
    """The CATE model file the run's artifacts reference (immutable; checked by SHA-256)."""
    sha = _config(request, run_id).model_sha256
    data = _cache(request).store.model_bytes(sha) if sha else None
    if data is None:
        raise HTTPException(404, f"run '{run_id}' has no stored model file")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"X-Content-SHA256": sha, "Cache-Control": "max-age=31536000, immutable"},
    )


@router.post("/v1/runs/{run_id}/launch", dependencies=ADMIN)
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
