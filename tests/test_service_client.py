"""pex_tuner.client.Client: the loop against an in-process service, retries that honour
Retry-After and reuse the call's Idempotency-Key, and error answers as ServiceError."""

from __future__ import annotations

import httpx
import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import pex_tuner.client as client_module  # noqa: E402
from pex_tuner.client import Client, ServiceError  # noqa: E402
from pex_tuner.service import create_app  # noqa: E402

OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}
VALUE = {"mean": 1.0, "sem": 0.1, "n": 100}


def test_the_online_loop_in_ten_lines(offline_dir, tmp_path):
    app = create_app(f"sqlite:///{tmp_path / 'c.db'}", tokens="tok", runs_root=offline_dir.parent)
    with Client(token="tok", http=TestClient(app)) as tuner:
        run_id = tuner.create_run(offline_dir.name, n_candidates=2, objectives=OBJECTIVES)
        trials = tuner.get_next_trials(run_id, 5, poller="me")
        assert [t["trial_id"] for t in trials] == [0, 1]
        assert tuner.get_next_trials(run_id, 1) == []  # awaiting results, no wait
        model = trials[0]["artifact"]["model"]
        assert len(tuner.model_bytes(model["url"])) > 0
        ack = tuner.complete_trial(run_id, 0, {m: VALUE for m in OBJECTIVES})
        assert ack["status"] == "completed" and ack["replayed"] is False
        again = tuner.complete_trial(run_id, 0, {"engagement": VALUE}, idempotency_key="k")
        assert again["changed"] is False
        assert tuner.mark_trial_failed(run_id, 1, abandoned=True) is True
        assert tuner.get_run(run_id)["counts"]["abandoned"] == 1
        assert [t["trial_id"] for t in tuner.get_pareto_frontier(run_id)] == [0]
        with pytest.raises(ServiceError, match="HTTP 404: no trial 9") as err:
            tuner.complete_trial(run_id, 9, {"engagement": VALUE})
        assert err.value.status == 404
    app.state.service.shutdown()


def test_retries_honour_retry_after_and_keep_the_idempotency_key(monkeypatch):
    seen, waits = [], []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Idempotency-Key"))
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow"})
        if len(seen) == 2:
            raise httpx.ConnectError("connection reset")
        return httpx.Response(200, json={"trial_id": 1, "status": "running", "replayed": False})

    monkeypatch.setattr(client_module.time, "sleep", waits.append)
    http = httpx.Client(base_url="http://svc", transport=httpx.MockTransport(handler))
    tuner = Client(token="t", http=http, backoff=0.25)
    assert tuner.complete_trial("r", 1, {"engagement": VALUE})["status"] == "running"
    assert len(seen) == 3 and len(set(seen)) == 1 and seen[0]  # one key for the whole call
    assert waits[0] == 3.0 and 0.25 <= waits[1] <= 0.75  # Retry-After, then 0.5 s jittered
    tuner.complete_trial("r", 1, {"engagement": VALUE})
    assert seen[3] != seen[0]  # a new call, a new key

    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="down")

    http = httpx.Client(base_url="http://svc", transport=httpx.MockTransport(unavailable))
    with pytest.raises(ServiceError, match="HTTP 503: down"):
        Client(http=http, retries=2).get_run("r")
