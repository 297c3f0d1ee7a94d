"""``pex-tuner serve``: the online service, in one or several server processes (uvicorn).

Every server process builds its app with :func:`pex_tuner.service.app_from_env`, so the
options travel to uvicorn's worker processes as environment variables. The processes share
nothing but the database (see :mod:`pex_tuner.service.store`); ``--workers N`` runs N of them
on one port, and any number may run behind a load balancer or another process manager.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["add_serve_parser", "cmd_serve"]


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until stopped; returns 0."""
    import uvicorn

    from pex_tuner.errors import ConfigurationError
    from pex_tuner.service import app as service_app
    from pex_tuner.service import auth

    env = {
        service_app.DB_ENV: args.db,
        auth.RUNS_ROOT_ENV: str(Path(args.runs_root).resolve()),
        service_app.GENERATION_WORKERS_ENV: str(args.generation_workers),
        service_app.LEASE_ENV: str(args.lease_s),
        service_app.LOG_LEVEL_ENV: args.log_level,
    }
    if args.token:
        env[auth.TOKEN_ENV] = args.token
    if args.tokens_file:
        env[auth.TOKENS_FILE_ENV] = str(Path(args.tokens_file).resolve())
    if not Path(env[auth.RUNS_ROOT_ENV]).is_dir():
        raise ConfigurationError(f"--runs-root '{args.runs_root}' is not a directory")
    os.environ.update(env)
    auth.load_tokens()  # fail here, once, rather than in every worker
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # one metrics file per process, summed by /metrics (prometheus_client multiprocess)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pex_metrics_")
    print(
        f"pex-tuner service on http://{args.host}:{args.port} ({args.workers} process(es), "
        f"database {args.db}, runs root {env[auth.RUNS_ROOT_ENV]}); OpenAPI at /openapi.json, "
        "metrics at /metrics",
        flush=True,
    )
    uvicorn.run(
        "pex_tuner.service.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,  # the service logs each request as JSON, with its request id
    )
    return 0


def add_serve_parser(sub: Any, int_in_range: Any) -> None:
    """Add the ``serve`` subcommand (``int_in_range``: the CLI's bounded-int argument type)."""
    from pex_tuner.service.runs import DEFAULT_LEASE_S
    from pex_tuner.service.store import DEFAULT_URL

    serve = sub.add_parser("serve", help="run the online service (HTTP API for online systems)")
    serve.add_argument("--db", default=DEFAULT_URL, help="SQLAlchemy URL (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int_in_range(0, 65535), default=8000)
    serve.add_argument(
        "--workers",
        type=int_in_range(1, 64),
        default=1,
        help="server processes on this port; they share only the database (default 1)",
    )
    serve.add_argument(
        "--generation-workers",
        type=int_in_range(1, 64),
        default=1,
        help="processes per server process that generate batches (more for many runs)",
    )
    serve.add_argument(
        "--runs-root",
        default=".",
        help="runs may only be created from tuner folders under this one (default: the "
        "current directory)",
    )
    serve.add_argument(
        "--token",
        default=None,
        help="bearer token(s) with every scope, comma-separated (or PEX_TUNER_TOKEN)",
    )
    serve.add_argument(
        "--tokens-file",
        default=None,
        help="JSON file of tokens with scopes and rate limits (or PEX_TUNER_TOKENS_FILE; "
        "see pex_tuner.service.auth)",
    )
    serve.add_argument(
        "--lease-s",
        type=float,
        default=DEFAULT_LEASE_S,
        help="seconds a generation lease lasts without renewal (default %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        default="info",
        help="uvicorn's level, and the service's JSON request logs at info",
    )
    serve.set_defaults(func=cmd_serve)
