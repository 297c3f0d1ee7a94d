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
    GET  /healthz, /readyz, /metrics, /openapi.json

Auth (:mod:`pex_tuner.service.auth`): every /v1 request needs ``Authorization: Bearer
<token>`` with a configured token (401 otherwise) that has the endpoint's scope (``read`` for
GETs, ``report`` for next-batch / results / status, ``admin`` for creating runs and launching;
403 otherwise), within the token's rate limit (429 with ``Retry-After``). Runs are created only
from tuner directories under the server's runs root (403 otherwise). Bodies are JSON, read as
JSON whatever their ``Content-Type`` (so ``curl -d`` works without ``-H "Content-Type:
application/json"``); a body that is not JSON is a 415 naming that header. Errors: malformed
bodies 422, metric names that are not the run's objectives, constraints or offline outcomes 422
(nothing stored), unknown runs / trials 404, conflicting results 409; bad input never yields a
500. A replayed report (same Idempotency-Key and body) answers the first response with
``replayed: true`` and ``changed: false``.

Batches: a run hands out its pending trials (the offline candidates first); when none are left
and every issued trial has results, one server process wins the run's generation lease and
generates the next batch with qLogNParEGO in its generation pool (worker processes), so polls
never wait for the model. Until then ``next-batch`` answers with no trials, a ``state``
(``awaiting_results`` or ``generating``), a reason and ``retry_after_s`` (also as a
``Retry-After`` header).

Concurrency model: any number of server processes (``pex-tuner serve --workers N``, or several
behind a load balancer) share one database, the only source of truth: trials, ids, statuses,
idempotency records and generation leases live there, every change is one transaction, and a
process's cached tuner is refreshed when the run's version moves (:mod:`.store`, :mod:`.runs`).

Observability (:mod:`pex_tuner.service.observe`): ``GET /metrics`` (Prometheus), ``/healthz``
(liveness), ``/readyz`` (the database answers), a JSON log line per request with its request
id, echoed in the ``X-Request-ID`` response header.

Rooms: this module builds the app; ``routes`` holds the endpoints, ``schemas`` the request and
response bodies, ``runs`` the run cache and the generation worker, ``store`` the database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pex_tuner.errors import (
    ConfigurationError,
    NotFittedError,
    PexTunerError,
    ResultConflictError,
)
from pex_tuner.service.auth import RUNS_ROOT_ENV, TOKEN_ENV, RateLimiter, load_tokens
from pex_tuner.service.observe import RequestObserver, configure_logging
from pex_tuner.service.routes import router
from pex_tuner.service.runs import DEFAULT_LEASE_S, RunCache
from pex_tuner.service.store import DEFAULT_URL, Store, UnknownTrialError

__all__ = ["DB_ENV", "TOKEN_ENV", "app_from_env", "create_app"]

#: Environment variables ``app_from_env`` reads (set by ``pex-tuner serve`` for its workers).
DB_ENV = "PEX_TUNER_DB"
GENERATION_WORKERS_ENV = "PEX_TUNER_GENERATION_WORKERS"
LEASE_ENV = "PEX_TUNER_LEASE_S"
LOG_LEVEL_ENV = "PEX_TUNER_LOG_LEVEL"


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc.args[0] if exc.args else exc)}, status_code=404)


async def _bad(_: Request, exc: Exception) -> JSONResponse:
    status = 409 if isinstance(exc, NotFittedError) else 422
    return JSONResponse({"detail": str(exc)}, status_code=status)


def create_app(
    db_url: str = DEFAULT_URL,
    *,
    tokens: Sequence[str] | str | Mapping[str, Any] | None = None,
    tokens_file: str | Path | None = None,
    runs_root: str | Path | None = None,
    generation_workers: int = 1,
    lease_s: float = DEFAULT_LEASE_S,
) -> FastAPI:
    """The FastAPI application.

    Args:
        db_url: SQLAlchemy URL of the database (SQLite file by default).
        tokens: bearer tokens with every scope (a string, comma-separated for several, or a
            list), or a token configuration dict (see :mod:`pex_tuner.service.auth`);
            default: the environment (``PEX_TUNER_TOKENS``, ``PEX_TUNER_TOKEN``). With no
            token configured, ConfigurationError.
        tokens_file: a JSON token configuration file (default ``PEX_TUNER_TOKENS_FILE``).
        runs_root: the folder runs may be created from (default ``PEX_TUNER_RUNS_ROOT``; when
            neither is set, any folder: for in-process use, where the caller is trusted;
            ``pex-tuner serve`` always sets one).
        generation_workers: processes generating batches in this server process.
        lease_s: seconds a generation lease lasts without renewal.

    Returns:
        The app; ``app.state.service`` is its :class:`~pex_tuner.service.runs.RunCache` (with
        the :class:`~pex_tuner.service.store.Store` as ``.store``).
    """
    accepted = load_tokens(tokens, tokens_file)
    root = runs_root or os.environ.get(RUNS_ROOT_ENV) or None
    if root is not None and not Path(root).is_dir():
        raise ConfigurationError(f"the runs root '{root}' is not a directory")
    if int(generation_workers) < 1 or float(lease_s) <= 0:
        raise ConfigurationError("'generation_workers' must be >= 1 and 'lease_s' > 0")
    cache = RunCache(Store(db_url), generation_workers=generation_workers, lease_s=lease_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # import the tuning stack (seconds) before serving, not in the first poll of a run
        import pex_tuner.tuning.online  # noqa: F401

        yield
        cache.shutdown()
        cache.store.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="pex-tuner online service",
        version="1",
        description=(
            "Online experiment systems poll this API for candidate personalization policies "
            "and report their results; see pex_tuner.service.app for the protocol."
        ),
    )
    app.state.service = cache
    app.state.tokens = accepted
    app.state.limiter = RateLimiter()
    app.state.runs_root = None if root is None else Path(root).resolve()
    app.add_exception_handler(ResultConflictError, _conflict)
    app.add_exception_handler(UnknownTrialError, _not_found)
    app.add_exception_handler(PexTunerError, _bad)
    app.include_router(router)
    app.add_middleware(RequestObserver)
    return app


def app_from_env() -> FastAPI:
    """The app configured by environment variables (``PEX_TUNER_DB``, the token variables,
    ``PEX_TUNER_RUNS_ROOT``, ``PEX_TUNER_GENERATION_WORKERS``, ``PEX_TUNER_LEASE_S``,
    ``PEX_TUNER_LOG_LEVEL``): the factory each ``pex-tuner serve`` worker process calls."""
    configure_logging(os.environ.get(LOG_LEVEL_ENV, "info"))
    return create_app(
        os.environ.get(DB_ENV, DEFAULT_URL),
        generation_workers=int(os.environ.get(GENERATION_WORKERS_ENV, "1")),
        lease_s=float(os.environ.get(LEASE_ENV, str(DEFAULT_LEASE_S))),
    )
