"""A Python client of the pex-tuner online service (httpx, synchronous).

An online experiment system integrates in a few lines::

    from pex_tuner.client import Client

    with Client("http://tuner:8000", token="...") as tuner:
        for trial in tuner.get_next_trials(run_id, 4, wait=True):   # waits while generating
            metrics = run_online(trial["artifact"])                  # your experiment
            tuner.complete_trial(run_id, trial["trial_id"], metrics)
        front = tuner.get_pareto_frontier(run_id)

The verbs follow Ax's client (``get_next_trials``, ``complete_trial``, ``mark_trial_failed``,
``get_pareto_frontier``). Every call is retried on connection errors and on 429 / 502 / 503 /
504 answers, waiting what ``Retry-After`` says (else an exponential backoff), up to
``retries`` times. Reports carry an ``Idempotency-Key`` made once per call and reused by its
retries, so a report retried after a lost answer is stored once. Other error answers raise
:class:`ServiceError` with the status and the service's message.

Transports can be swapped: pass ``http=`` any ``httpx.Client`` (FastAPI's ``TestClient``, for an
in-process service).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from pex_tuner.errors import PexTunerError

__all__ = ["RETRY_STATUSES", "Client", "ServiceError"]

#: Answers retried (after ``Retry-After`` when given): rate limited, or the service unavailable.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class ServiceError(PexTunerError, RuntimeError):
    """An error answer of the service: ``status`` (HTTP) and ``detail`` (its message)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    """A client of one pex-tuner service.

    Args:
        url: the service's base URL (``http://host:8000``).
        token: a bearer token with the scopes the calls need.
        timeout: seconds per request.
        retries: retries per call on connection errors and 429 / 502 / 503 / 504.
        backoff: first wait (seconds) when the service gives no ``Retry-After``; doubles.
        max_wait: the longest single wait between retries or polls (seconds).
        http: an ``httpx.Client`` to send requests with (default: a new one for ``url``).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.retries, self.backoff, self.max_wait = int(retries), float(backoff), float(max_wait)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._own = http is None
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.headers = headers

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the HTTP connections (when this client made them)."""
        if self._own:
            self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_s(self, response: httpx.Response | None, attempt: int) -> float:
        header = response.headers.get("Retry-After") if response is not None else None
        try:
            wait = float(header) if header is not None else None
        except ValueError:
            wait = None
        if wait is None:
            wait = self.backoff * 2**attempt * (0.5 + random.random())  # jittered
        return min(max(wait, 0.0), self.max_wait)

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Send a request with retries (see the module docstring); the final answer, raising
        :class:`ServiceError` for an error status."""
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                response = self.http.request(
                    method, path, json=body, headers={**self.headers, **(headers or {})}
                )
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            if response is not None and (
                response.status_code not in RETRY_STATUSES or attempt == self.retries
            ):
                break
            time.sleep(self._wait_s(response, attempt))
        assert response is not None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(response.status_code, str(detail))
        return response

    def _json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request(method, path, body, **kw).json()

    # ------------------------------------------------------------------ runs
    def create_run(self, tuner_dir: str, **options: Any) -> str:
        """Start an online run from a saved offline tuner (a path under the server's runs
        root; ``options``: n_candidates, objectives, constraints, batch_size, margin,
        acquisition); returns its id. Needs the ``admin`` scope."""
        return self._json("POST", "/v1/runs", {"tuner_dir": str(tuner_dir), **options})["run_id"]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run: configuration, counts per status, generation state, launch and trials."""
        return self._json("GET", f"/v1/runs/{run_id}")

    def get_next_trials(
        self,
        run_id: str,
        size: int = 1,
        *,
        poller: str | None = None,
        wait: bool = False,
        timeout: float = 600.0,
    ) -> list[dict[str, Any]]:
        """Up to ``size`` trials (``trial_id``, ``parameters``, ``artifact``). With nothing to
        hand out: [] (``wait=False``), or poll again after the service's ``Retry-After``
        until trials come or ``timeout`` seconds pass (``wait=True``)."""
        deadline = time.monotonic() + timeout
        body = {"size": int(size), **({"poller": poller} if poller else {})}
        while True:
            answer = self._json("POST", f"/v1/runs/{run_id}/next-batch", body)
            if answer["trials"] or not wait:
                return answer["trials"]
            pause = min(float(answer.get("retry_after_s") or 5), self.max_wait)
            if time.monotonic() + pause > deadline:
                return []
            time.sleep(pause)

    def complete_trial(
        self,
        run_id: str,
        trial_id: int,
        metrics: Mapping[str, Mapping[str, float]],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Report (some of) a trial's metrics ``{name: {"mean", "sem", "n"}}``; the answer
        says its status and which metrics are still missing. One Idempotency-Key per call
        (``idempotency_key``, or a new one), reused by its retries."""
        key = idempotency_key or uuid.uuid4().hex
        return self._json(
            "POST",
            f"/v1/runs/{run_id}/trials/{int(trial_id)}/results",
            {"metrics": {k: dict(v) for k, v in metrics.items()}},
            headers={"Idempotency-Key": key},
        )

    def mark_trial_failed(self, run_id: str, trial_id: int, *, abandoned: bool = False) -> bool:
        """Give up on a trial (failed, or ``abandoned``: late results still count); returns
        whether its status changed."""
        body = {"status": "abandoned" if abandoned else "failed"}
        path = f"/v1/runs/{run_id}/trials/{int(trial_id)}/status"
        return bool(self._json("POST", path, body)["changed"])

    def get_pareto_frontier(self, run_id: str) -> list[dict[str, Any]]:
        """The trials on the online Pareto frontier (one dict per trial)."""
        return self._json("GET", f"/v1/runs/{run_id}/pareto")["frontier"]

    def get_calibration(self, run_id: str) -> dict[str, Any]:
        """Offline OPE estimates vs online results (``points``) and their ``association``."""
        return self._json("GET", f"/v1/runs/{run_id}/calibration")

    def model_bytes(self, url_or_run_id: str) -> bytes:
        """The CATE model file artifacts reference (by the artifact's model URL, or run id)."""
        path = url_or_run_id if "/" in url_or_run_id else f"/v1/runs/{url_or_run_id}/model"
        return self.request("GET", path).content

    def launch(self, run_id: str, trial_id: int, holdout: float = 0.05) -> dict[str, Any]:
        """Launch a completed trial's policy with a randomized holdout: the launch document.
        Needs the ``admin`` scope."""
        body = {"trial_id": int(trial_id), "holdout": float(holdout)}
        return self._json("POST", f"/v1/runs/{run_id}/launch", body)
