"""Seeing the service: Prometheus metrics, structured JSON logs with request ids.

- :class:`RequestObserver` (ASGI middleware): gives every request an id (the client's
  ``X-Request-ID`` when it sends a sane one, else a new one), echoes it in the
  ``X-Request-ID`` response header, counts the request and times it per route template and
  status, and logs one JSON line per request (logger ``pex_tuner.service.access``).
- :func:`metrics_text`: ``GET /metrics`` in the Prometheus text format: the request counters
  and latency histograms, batches generated, generation seconds and failures, and the number
  of trials per run and status, read from the database at scrape time (so every process
  reports the same, correct, numbers). With several server processes (``serve --workers N``)
  the process metrics are aggregated through ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
  multiprocess mode, set by ``pex-tuner serve``).
- :class:`JSONFormatter` and :func:`configure_logging`: log records as one JSON object a line,
  with any ``extra`` fields (``request_id``, ``run_id``, ...).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

__all__ = [
    "BATCHES",
    "CONTENT_TYPE_LATEST",
    "GENERATION_FAILURES",
    "GENERATION_SECONDS",
    "REQUEST_ID_HEADER",
    "JSONFormatter",
    "RequestObserver",
    "configure_logging",
    "metrics_text",
]

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("pex_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "pex_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=_BUCKETS,
)
BATCHES = Counter("pex_batches_generated", "Batches generated and stored by this service")
GENERATION_SECONDS = Histogram(
    "pex_generation_seconds",
    "Seconds from submitting a generation to its result",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
)
GENERATION_FAILURES = Counter("pex_generation_failures", "Generations that failed")

access_log = logging.getLogger("pex_tuner.service.access")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestObserver:
    """ASGI middleware: request id, metrics and one JSON access-log line per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Serve the request, recording its id, route, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SANE_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]
        t0 = time.perf_counter()

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            labels = (scope["method"], route, str(status[0]))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope.get("path"),
                        "route": route,
                        "status": status[0],
                        "ms": round(seconds * 1000, 2),
                        "token": scope["state"].get("token_name"),
                    },
                )


class _TrialCounts:
    """A Prometheus collector: trials per run and status, read from the database."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Any:
        """Yield the ``pex_trials`` gauge family."""
        family = GaugeMetricFamily(
            "pex_trials", "Trials per run and status (from the database)", labels=["run", "status"]
        )
        for run_id, status, n in self.store.trial_counts():
            family.add_metric([run_id, status], n)
        yield family


def metrics_text(store: Any) -> bytes:
    """The Prometheus exposition: this process's (or, in multiprocess mode, every process's)
    metrics, then the trial counts from the database."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        head = generate_latest(registry)
    else:
        head = generate_latest(REGISTRY)
    trials = CollectorRegistry(auto_describe=False)
    trials.register(_TrialCounts(store))
    return head + generate_latest(trials)


# ---------------------------------------------------------------------------- JSON logs
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str = "info") -> None:
    """Send the service's logs (``pex_tuner.service.*``) to stderr as JSON lines at ``level``."""
    logger = logging.getLogger("pex_tuner.service")
    if not any(isinstance(h.formatter, JSONFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JSONFormatter())
        logger.addHandler(handler)
    logger.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    logger.propagate = False
