"""Least privilege and observability of the service (issue 14): token scopes (401 / 403),
token configuration, the runs root (path escapes are 403), the per-token rate limit (429 with
Retry-After), /metrics, /readyz, request ids and JSON logs."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from pex_tuner.errors import ConfigurationError  # noqa: E402
from pex_tuner.service import create_app, load_tokens  # noqa: E402
from pex_tuner.service.auth import find_token  # noqa: E402
from pex_tuner.service.observe import JSONFormatter  # noqa: E402

OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}
TOKENS = {
    "tokens": [
        {"name": "dash", "token": "t-read", "scopes": ["read"]},
        {"name": "poller", "token": "t-report", "scopes": ["report"]},
        {"name": "ops", "sha256": hashlib.sha256(b"t-admin").hexdigest(), "scopes": ["admin"]},
        {"name": "slow", "token": "t-slow", "scopes": ["report"], "rate_per_s": 0.5, "burst": 2},
    ]
}


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def served(offline_dir, tmp_path_factory):
    """An app whose runs root is the offline tuner's parent folder, and one run."""
    db = tmp_path_factory.mktemp("svc_security") / "svc.db"
    app = create_app(f"sqlite:///{db}", tokens=TOKENS, runs_root=offline_dir.parent)
    client = TestClient(app)
    body = {"tuner_dir": offline_dir.name, "n_candidates": 2, "objectives": OBJECTIVES}
    r = client.post("/v1/runs", json=body, headers=_auth("t-admin"))
    assert r.status_code == 201, r.text
    return client, r.json()["run_id"], app


def test_scopes(served):
    client, run_id, _ = served
    run, poll = f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/next-batch"
    assert client.get(run).status_code == 401
    assert client.get(run, headers=_auth("nope")).status_code == 401
    assert client.get(run, headers={"Authorization": "Basic t-read"}).status_code == 401
    for token in ("t-read", "t-report", "t-admin"):  # scopes include the ones below them
        assert client.get(run, headers=_auth(token)).status_code == 200
    r = client.post(poll, json={"size": 1}, headers=_auth("t-read"))
    assert r.status_code == 403 and "lacks the 'report' scope" in r.json()["detail"]
    assert client.post(poll, json={"size": 1}, headers=_auth("t-report")).status_code == 200
    body = {"tuner_dir": "tuner"}
    r = client.post("/v1/runs", json=body, headers=_auth("t-report"))
    assert r.status_code == 403 and "'admin' scope" in r.json()["detail"]
    r = client.post(f"{run}/launch", json={"trial_id": 0}, headers=_auth("t-report"))
    assert r.status_code == 403


def test_token_configuration(tmp_path, monkeypatch):
    for var in ("PEX_TUNER_TOKEN", "PEX_TUNER_TOKENS", "PEX_TUNER_TOKENS_FILE"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    from_file = load_tokens(tokens_file=path)
    assert [t.name for t in from_file] == ["dash", "poller", "ops", "slow"]
    assert find_token("t-admin", from_file).name == "ops"  # matched by its SHA-256
    assert find_token("t-admin ", from_file) is None
    monkeypatch.setenv("PEX_TUNER_TOKENS", json.dumps(TOKENS))
    assert [t.scopes for t in load_tokens()] == [t.scopes for t in from_file]
    monkeypatch.delenv("PEX_TUNER_TOKENS")
    monkeypatch.setenv("PEX_TUNER_TOKEN", "a, b")  # the old way: every scope
    assert all(t.allows("admin") for t in load_tokens())
    bad = [
        ({"tokens": [{"token": "x", "scopes": ["write"]}]}, "'scopes' must be a non-empty"),
        ({"tokens": [{"token": "x", "sha256": "ab", "scopes": ["read"]}]}, "exactly one of"),
        ({"tokens": [{"sha256": "zz", "scopes": ["read"]}]}, "64 hex digits"),
        ({"tokens": [{"token": "x", "scopes": ["read"], "rate": 1}]}, "unknown field"),
        ({"tokens": [{"token": "x", "scopes": ["read"], "rate_per_s": 0}]}, "must be > 0"),
        ({"tokens": []}, "must be"),
    ]
    for config, message in bad:
        with pytest.raises(ConfigurationError, match=message):
            load_tokens(config)


def test_runs_root_refuses_path_escapes(served, offline_dir, tmp_path):
    client, _, _ = served
    admin = _auth("t-admin")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = offline_dir.parent / "link_out"
    if not link.exists():
        os.symlink(outside, link)
    cases = {
        "../tuner": "may not contain '..'",
        f"{offline_dir}/../../x": "may not contain '..'",
        str(outside): "is outside the runs root",
        "/etc": "is outside the runs root",
        "link_out": "through a symbolic link",
    }
    for path, message in cases.items():
        r = client.post("/v1/runs", json={"tuner_dir": path}, headers=admin)
        assert r.status_code == 403 and message in r.json()["detail"], (path, r.text)
    r = client.post("/v1/runs", json={"tuner_dir": str(offline_dir)}, headers=admin)
    assert r.status_code == 201  # an absolute path inside the root is fine
    r = client.post("/v1/runs", json={"tuner_dir": "missing"}, headers=admin)
    assert r.status_code == 422  # inside the root, but no tuner there
    with pytest.raises(ConfigurationError, match="is not a directory"):
        create_app(f"sqlite:///{tmp_path / 'x.db'}", tokens="t", runs_root=tmp_path / "none")


def test_rate_limit_answers_429_with_retry_after(served):
    client, run_id, _ = served
    codes = [
        client.get(f"/v1/runs/{run_id}/model", headers=_auth("t-slow")).status_code
        for _ in range(3)
    ]
    assert codes[:2] == [200, 200] and codes[2] == 429  # burst 2, then 0.5 / s
    r = client.get(f"/v1/runs/{run_id}/model", headers=_auth("t-slow"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "rate limit of token 'slow'" in r.json()["detail"]
    # other tokens are not affected
    assert client.get(f"/v1/runs/{run_id}/model", headers=_auth("t-read")).status_code == 200


def test_metrics_readiness_and_request_ids(served, monkeypatch):
    client, run_id, app = served
    r = client.get(f"/v1/runs/{run_id}", headers={**_auth("t-read"), "X-Request-ID": "abc-1"})
    assert r.headers["X-Request-ID"] == "abc-1"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "abc-1"
    odd = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["X-Request-ID"] != "bad id\twith spaces"
    text = client.get("/metrics").text
    assert 'pex_http_requests_total{method="GET",route="/v1/runs/{run_id}",status="200"}' in text
    assert "pex_http_request_duration_seconds_bucket{" in text
    assert f'pex_trials{{run="{run_id}",status="pending"}}' in text
    assert "pex_batches_generated_total" in text and "pex_generation_seconds_bucket" in text
    assert client.get("/readyz").json() == {"status": "ready"}

    def down():
        raise OSError("connection refused")

    monkeypatch.setattr(app.state.service.store, "ping", down)
    r = client.get("/readyz")
    assert r.status_code == 503 and "database unavailable" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200  # alive, not ready


def test_json_log_lines_carry_the_request_id():
    record = logging.makeLogRecord(
        {"name": "pex_tuner.service.access", "levelname": "INFO", "msg": "request"}
    )
    record.request_id, record.status = "abc", 200
    doc = json.loads(JSONFormatter().format(record))
    assert doc["msg"] == "request" and doc["request_id"] == "abc" and doc["status"] == 200
