"""The HTTP API online experiment systems poll for candidate policies (FastAPI).

Paths (stable; clients rely on them)::

    POST /v1/runs                                   {"tuner_dir": PATH, ...} -> run_id
    POST /v1/runs/{run_id}/next-batch               {"size": k} -> k trials with artifacts
    POST /v1/runs/{run_id}/trials/{trial_id}/results  {"metrics": {...}}, Idempotency-Key
    POST /v1/runs/{run_id}/trials/{trial_id}/status   {"status": "failed" | "abandoned"}
    GET  /v1/runs/{run_id}                          status and trials
    GET  /v1/runs/{run_id}/pareto                   online Pareto frontier
    GET  /v1/runs/{run_id}/calibration              offline OPE vs online results
    GET  /v1/runs/{run_id}/model                    the CATE model file artifacts reference
    POST /v1/runs/{run_id}/launch                   {"trial_id": t, "holdout": 0.05}
    GET  /healthz, /openapi.json

Auth: every /v1 request needs ``Authorization: Bearer <token>`` with one of the configured
tokens (401 otherwise). Errors: malformed bodies 422, unknown runs / trials 404, conflicting
results 409; bad input never yields a 500.

Batches: a run hands out its pending trials (the offline candidates first); when none are left
and every issued trial has results, it generates the next batch with qLogNParEGO in a
background thread, so polls never wait for the model. Until then ``next-batch`` answers with no
trials, a ``state`` (``awaiting_results`` or ``generating``), a reason and ``retry_after_s``
(also as a ``Retry-After`` header).

Concurrency model: one server process answers requests; per-run locks serialize changes to a
run, and the database's conditional updates make issuing safe across processes too. Batches are
generated in one worker process, one at a time, so model fitting never competes with requests
for the GIL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pex_tuner.errors import (
    ConfigurationError,
    NotFittedError,
    PexTunerError,
    ResultConflictError,
)
from pex_tuner.files import MODEL_FILE
from pex_tuner.service.store import DEFAULT_URL, Store

__all__ = ["TOKEN_ENV", "create_app"]

log = logging.getLogger(__name__)
TOKEN_ENV = "PEX_TUNER_TOKEN"
RETRY_AWAITING_S = 30
RETRY_GENERATING_S = 5

Finite = Annotated[float, Field(allow_inf_nan=False)]


# ---------------------------------------------------------------------------- bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstraintBody(_Body):
    op: Literal[">=", "<="]
    bound: Finite


class CreateRunBody(_Body):
    tuner_dir: str = Field(min_length=1, description="a saved offline tuner (or `tune` output)")
    n_candidates: int = Field(4, ge=1, le=64, description="offline candidates in the 1st batch")
    objectives: dict[str, Literal["max", "min"]] | None = Field(
        None, description="online metric -> direction; default: the offline objectives"
    )
    constraints: dict[str, ConstraintBody] | None = None
    batch_size: int | None = Field(None, ge=1, le=64)
    margin: float = Field(0.25, ge=0, le=1)
    acquisition: Literal["qLogNParEGO", "qLogNEHVI"] = "qLogNParEGO"


class NextBatchBody(_Body):
    size: int = Field(ge=1, le=64)
    poller: str | None = Field(None, max_length=200)


class MetricValue(_Body):
    mean: Finite
    sem: Finite = Field(ge=0)
    n: int | None = Field(None, ge=1)


class ResultsBody(_Body):
    metrics: dict[str, MetricValue] = Field(min_length=1)


class StatusBody(_Body):
    status: Literal["failed", "abandoned"]
    reason: str | None = Field(None, max_length=2000)


class LaunchBody(_Body):
    trial_id: int = Field(ge=0)
    holdout: float = Field(0.05, ge=0.02, le=0.05)
    salt: str | None = Field(None, min_length=1, max_length=200)


# ---------------------------------------------------------------------------- state
class _Run:
    """In-memory cache of one run: its tuner, a lock, and the background generation."""

    def __init__(self, tuner: Any) -> None:
        self.tuner = tuner
        self.lock = threading.Lock()
        self.generating = False
        self.generation_error: str | None = None


class Service:
    def __init__(self, store: Store, tokens: Sequence[str]) -> None:
        self.store = store
        self.tokens = [t for t in tokens if t]
        self.runs: dict[str, _Run] = {}
        self.lock = threading.Lock()
        self._executor: Any = None
        self.pending: list[Any] = []  # generation futures not yet done
        self.done = threading.Event()

    def run(self, run_id: str) -> _Run:
        from pex_tuner.tuning.online import OnlineTuner

        with self.lock:
            cached = self.runs.get(run_id)
            if cached is not None:
                return cached
            row = self.store.get_run(run_id)
            if row is None:
                raise HTTPException(404, f"no run '{run_id}'")
            state = {**row["config"], "trials": self.store.trials(run_id)}
            run = _Run(OnlineTuner.from_state(state))
            self.runs[run_id] = run
        if run.tuner.generation_blocker() is None:  # crashed while generating: resume
            self.start_generation(run_id, run)
        return run

    # -------------------------------------------------------------- generation
    @property
    def executor(self) -> Any:
        """One worker process for Ax generation (started on first use).

        Generation is seconds of CPU-bound GP fitting and acquisition optimization. In a thread
        it would hold the GIL against request handling (measured under 50 pollers: no batch
        generated in 60 s, next-batch p50 up 10x). One process, one generation at a time:
        batches queue instead of competing for the cores. The worker keeps each run's Ax
        model between batches."""
        with self.lock:
            if self._executor is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def start_generation(self, run_id: str, run: _Run) -> None:
        with run.lock:
            if run.generating or run.tuner.generation_blocker() is not None:
                return
            run.generating = True
            run.generation_error = None
            snapshot = run.tuner.to_state()
        future = self.executor.submit(_generate_batch, run_id, snapshot)
        with self.lock:
            self.pending = [f for f in self.pending if not f.done()] + [future]
        future.add_done_callback(lambda f: self._store_batch(run_id, run, f))

    def _store_batch(self, run_id: str, run: _Run, future: Any) -> None:
        try:
            records = future.result()
            self.store.add_trials(run_id, records)  # durable before anyone can claim them
            with run.lock:
                run.tuner.update_trials(records)
                run.generating = False
        except Exception as exc:  # reported to pollers; the next poll retries
            log.error("generation failed for run %s: %s", run_id, exc)
            with run.lock:
                run.generation_error = f"{type(exc).__name__}: {exc}"
                run.generating = False
        finally:
            self.done.set()

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def wait_idle(self, timeout: float = 300.0) -> None:
        """Wait until no generation is queued or running (tests, in-process demos)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = [f for f in self.pending if not f.done()]
                generating = any(r.generating for r in self.runs.values())
            if not busy and not generating:
                return
            self.done.wait(0.05)
            self.done.clear()


def _generate_batch(run_id: str, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate the next batch of a run (in the worker process; Ax models cached per run)."""
    from pex_tuner.tuning.online import OnlineTuner

    tuner = _WORKER_TUNERS.get(run_id)
    try:
        if tuner is None:
            tuner = _WORKER_TUNERS[run_id] = OnlineTuner.from_state(snapshot)
        else:
            tuner.update_trials(snapshot["trials"])
        return [tuner.trials[t] for t in tuner.generate()]
    except BaseException:
        _WORKER_TUNERS.pop(run_id, None)  # rebuild from the database's state next time
        raise


_WORKER_TUNERS: dict[str, Any] = {}


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end the worker when the server dies (even by SIGKILL, which skips
    every shutdown hook); otherwise an orphaned worker would sleep forever holding its memory."""

    def watch() -> None:
        import time

        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="pex-parent-watch").start()


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


# ---------------------------------------------------------------------------- app
def create_app(db_url: str = DEFAULT_URL, *, tokens: Sequence[str] | str | None = None) -> FastAPI:
    """The FastAPI application.

    Args:
        db_url: SQLAlchemy URL of the database (SQLite file by default).
        tokens: accepted bearer tokens; default: the ``PEX_TUNER_TOKEN`` environment variable
            (comma-separated for several). With no token configured, ConfigurationError.
    """
    if tokens is None:
        tokens = os.environ.get(TOKEN_ENV, "")
    if isinstance(tokens, str):
        tokens = [t.strip() for t in tokens.split(",")]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ConfigurationError(
            f"the service needs a bearer token: pass --token or set {TOKEN_ENV}"
        )
    service = Service(Store(db_url), tokens)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        service.shutdown()
        service.store.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="pex-tuner online service",
        version="1",
        description=(
            "Online experiment systems poll this API for candidate personalization policies "
            "and report their results; see pex_tuner.service.app for the protocol."
        ),
    )
    app.state.service = service

    def auth(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not any(
            secrets.compare_digest(token.encode(), t.encode()) for t in service.tokens
        ):
            raise HTTPException(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.exception_handler(ResultConflictError)
    async def _conflict(_: Request, exc: ResultConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(PexTunerError)
    async def _bad(_: Request, exc: PexTunerError) -> JSONResponse:
        status = 409 if isinstance(exc, NotFittedError) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    protected = [Depends(auth)]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/runs", dependencies=protected, status_code=201)
    def create_run(body: CreateRunBody) -> dict[str, Any]:
        from pathlib import Path

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
        state = tuner.to_state()
        service.store.create_run(
            run_id, str(body.tuner_dir), tuner.config_state(), state["trials"], model
        )
        with service.lock:
            service.runs[run_id] = _Run(tuner)
        return {"run_id": run_id, "trials": len(tuner.trials), "bounds": tuner.bounds}

    @app.get("/v1/runs/{run_id}", dependencies=protected)
    def get_run(run_id: str) -> dict[str, Any]:
        run = service.run(run_id)
        row = service.store.get_run(run_id)
        with run.lock:
            t = run.tuner
            trials = [_trial_view(t, x) for _, x in sorted(t.trials.items())]
            counts = t.status_counts()
            blocker = t.generation_blocker()
        return {
            "run_id": run_id,
            "created_at": row["created_at"] if row else None,
            "objectives": t.objectives,
            "constraints": {k: {"op": o, "bound": b} for k, (o, b) in t.constraints.items()},
            "bounds": t.bounds,
            "counts": counts,
            "generating": run.generating,
            "generation_error": run.generation_error,
            "waiting_for": blocker,
            "launch": row["launch"] if row else None,
            "trials": trials,
        }

    @app.post("/v1/runs/{run_id}/next-batch", dependencies=protected)
    def next_batch(run_id: str, body: NextBatchBody, request: Request) -> Response:
        run = service.run(run_id)
        with run.lock:
            trials = sorted(run.tuner.trials.items())
            pending = [tid for tid, t in trials if t["status"] == "pending"]
            got = service.store.claim(run_id, pending[: body.size], body.poller)
            for tid in got:
                run.tuner.trials[tid].update(status="running", poller=body.poller)
            blocker = run.tuner.generation_blocker()
        if got:
            base = str(request.base_url).rstrip("/")
            url = f"{base}/v1/runs/{run_id}/model"
            docs = [
                {
                    "trial_id": tid,
                    "parameters": run.tuner.trials[tid]["parameters"],
                    "artifact": run.tuner.artifact_document(tid, model_url=url),
                }
                for tid in got
            ]
            return JSONResponse({"state": "issued", "trials": docs})
        if blocker is None:
            service.start_generation(run_id, run)
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

    @app.post("/v1/runs/{run_id}/trials/{trial_id}/results", dependencies=protected)
    def report(
        run_id: str,
        trial_id: int,
        body: ResultsBody,
        idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    ) -> dict[str, Any]:

        run = service.run(run_id)
        metrics = {k: v.model_dump(exclude_none=True) for k, v in body.metrics.items()}
        sha = hashlib.sha256(json.dumps([trial_id, metrics], sort_keys=True).encode()).hexdigest()
        with run.lock:
            if trial_id not in run.tuner.trials:
                raise HTTPException(404, f"no trial {trial_id} in run '{run_id}'")
            seen = service.store.find_report(run_id, idempotency_key)
            if seen is not None:
                if seen["body_sha256"] != sha:
                    raise ResultConflictError(
                        f"Idempotency-Key '{idempotency_key}' was already used for a different "
                        "report; use a new key for a new report"
                    )
                return {**seen["response"], "replayed": True}
            trial = run.tuner.trials[trial_id]
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
            service.store.record_report(run_id, idempotency_key, updated, sha, response)
            trial.update(updated)
            blocker = run.tuner.generation_blocker()
        if blocker is None:
            service.start_generation(run_id, run)
        return {**response, "replayed": False}

    @app.post("/v1/runs/{run_id}/trials/{trial_id}/status", dependencies=protected)
    def set_status(run_id: str, trial_id: int, body: StatusBody) -> dict[str, Any]:
        run = service.run(run_id)
        with run.lock:
            if trial_id not in run.tuner.trials:
                raise HTTPException(404, f"no trial {trial_id} in run '{run_id}'")
            trial = run.tuner.trials[trial_id]
            if trial["status"] == body.status:
                return {"trial_id": trial_id, "status": trial["status"], "changed": False}
            run.tuner.mark_failed(trial_id, abandoned=body.status == "abandoned")
            service.store.set_status(run_id, trial_id, trial["status"])
            blocker = run.tuner.generation_blocker()
        if blocker is None:
            service.start_generation(run_id, run)
        return {"trial_id": trial_id, "status": body.status, "changed": True}

    @app.get("/v1/runs/{run_id}/pareto", dependencies=protected)
    def pareto(run_id: str) -> dict[str, Any]:
        run = service.run(run_id)
        with run.lock:
            front = run.tuner.pareto()
        return {"objectives": run.tuner.objectives, "frontier": _records(front)}

    @app.get("/v1/runs/{run_id}/calibration", dependencies=protected)
    def calibration(run_id: str) -> dict[str, Any]:
        run = service.run(run_id)
        with run.lock:
            table = run.tuner.calibration()
        return {
            "points": _records(table),
            "association": _records(table.attrs["association"]),
        }

    @app.get("/v1/runs/{run_id}/model", dependencies=protected)
    def model(run_id: str) -> Response:
        run = service.run(run_id)
        sha = run.tuner.model_sha256
        data = service.store.model_bytes(sha) if sha else None
        if data is None:
            raise HTTPException(404, f"run '{run_id}' has no stored model file")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"X-Content-SHA256": sha, "Cache-Control": "max-age=31536000, immutable"},
        )

    @app.post("/v1/runs/{run_id}/launch", dependencies=protected)
    def launch(run_id: str, body: LaunchBody, request: Request) -> dict[str, Any]:
        from pex_tuner.launch.holdout import LAUNCH_FORMAT, LAUNCH_VERSION

        run = service.run(run_id)
        with run.lock:
            if body.trial_id not in run.tuner.trials:
                raise HTTPException(404, f"no trial {body.trial_id} in run '{run_id}'")
            if run.tuner.trials[body.trial_id]["status"] != "completed":
                raise ResultConflictError(
                    f"trial {body.trial_id} has no complete online results; launch a tested policy"
                )
            base = str(request.base_url).rstrip("/")
            artifact = run.tuner.artifact_document(
                body.trial_id, model_url=f"{base}/v1/runs/{run_id}/model"
            )
        doc = {
            "format": LAUNCH_FORMAT,
            "version": LAUNCH_VERSION,
            "run_id": run_id,
            "trial_id": body.trial_id,
            "holdout": body.holdout,
            "salt": body.salt or secrets.token_hex(16),
            "arms": artifact["arms"],
            "policy_artifact": artifact,
        }
        service.store.set_launch(run_id, doc)
        return doc

    return app
