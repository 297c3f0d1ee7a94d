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
tokens (401 otherwise). Bodies are JSON, read as JSON whatever their ``Content-Type`` (so
``curl -d`` works without ``-H "Content-Type: application/json"``); a body that is not JSON is a
415 naming that header. Errors: malformed bodies 422, metric names that are not the run's
objectives, constraints or offline outcomes 422 (nothing stored), unknown runs / trials 404,
conflicting results 409; bad input never yields a 500. A replayed report (same Idempotency-Key
and body) answers the first response with ``replayed: true`` and ``changed: false``.

Batches: a run hands out its pending trials (the offline candidates first); when none are left
and every issued trial has results, it generates the next batch with qLogNParEGO in a
background thread, so polls never wait for the model. Until then ``next-batch`` answers with no
trials, a ``state`` (``awaiting_results`` or ``generating``), a reason and ``retry_after_s``
(also as a ``Retry-After`` header).

Concurrency model: one server process answers requests; per-run locks serialize changes to a
run, and the database's conditional updates make issuing safe across processes too. Batches are
generated in one worker process, one at a time, so model fitting never competes with requests
for the GIL.

Rooms: this module builds the app; ``routes`` holds the endpoints, ``schemas`` the request and
response bodies, ``runs`` the run cache and the generation worker, ``store`` the database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pex_tuner.errors import (
    ConfigurationError,
    NotFittedError,
    PexTunerError,
    ResultConflictError,
)
from pex_tuner.service.routes import router
from pex_tuner.service.runs import RunCache
from pex_tuner.service.store import DEFAULT_URL, Store

__all__ = ["TOKEN_ENV", "create_app"]

#: Environment variable with the accepted bearer token(s), comma-separated.
TOKEN_ENV = "PEX_TUNER_TOKEN"


def _tokens(tokens: Sequence[str] | str | None) -> list[str]:
    if tokens is None:
        tokens = os.environ.get(TOKEN_ENV, "")
    if isinstance(tokens, str):
        tokens = [t.strip() for t in tokens.split(",")]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise ConfigurationError(
            f"the service needs a bearer token: pass --token or set {TOKEN_ENV}"
        )
    return tokens


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _bad(_: Request, exc: Exception) -> JSONResponse:
    status = 409 if isinstance(exc, NotFittedError) else 422
    return JSONResponse({"detail": str(exc)}, status_code=status)


def create_app(db_url: str = DEFAULT_URL, *, tokens: Sequence[str] | str | None = None) -> FastAPI:
    """The FastAPI application.

    Args:
        db_url: SQLAlchemy URL of the database (SQLite file by default).
        tokens: accepted bearer tokens; default: the ``PEX_TUNER_TOKEN`` environment variable
            (comma-separated for several). With no token configured, ConfigurationError.

    Returns:
        The app; ``app.state.service`` is its :class:`~pex_tuner.service.runs.RunCache` (with
        the :class:`~pex_tuner.service.store.Store` as ``.store``).
    """
    accepted = _tokens(tokens)
    cache = RunCache(Store(db_url))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
    app.add_exception_handler(ResultConflictError, _conflict)
    app.add_exception_handler(PexTunerError, _bad)
    app.include_router(router)
    return app
