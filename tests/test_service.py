"""The online service: protocol, auth, idempotency, concurrency, errors (schemathesis), crash
safety (SIGKILL and restart), and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pex_tuner.datasets import OnlineSimulator

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from pex_tuner.errors import ConfigurationError  # noqa: E402
from pex_tuner.service import create_app  # noqa: E402

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _client(url):
    app = create_app(url, tokens=TOKEN)
    return TestClient(app), app.state.service


def _create(client, offline_dir, k=3):
    r = client.post(
        "/v1/runs",
        json={"tuner_dir": str(offline_dir), "n_candidates": k, "objectives": OBJECTIVES},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    return r.json()["run_id"]


def _report(client, run_id, tid, metrics, key=None):
    return client.post(
        f"/v1/runs/{run_id}/trials/{tid}/results",
        json={"metrics": metrics},
        headers={**AUTH, "Idempotency-Key": key or uuid.uuid4().hex},
    )


def _metrics(sim, assigner, n=2000):
    return sim.run({"p": assigner}, n)["p"]


def test_token_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("PEX_TUNER_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="needs a bearer token"):
        create_app(f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.setenv("PEX_TUNER_TOKEN", "from-env")
    client = TestClient(create_app(f"sqlite:///{tmp_path / 'b.db'}"))
    assert client.post("/v1/runs", json={"tuner_dir": "x"}).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert client.post("/v1/runs", json={"tuner_dir": "x"}, headers=bad).status_code == 401
    ok = {"Authorization": "Bearer from-env"}
    r = client.post("/v1/runs", json={"tuner_dir": str(tmp_path)}, headers=ok)
    assert r.status_code == 422 and "is not a saved offline tuner" in r.json()["detail"]


def _protocol(client, service, offline_dir):
    """The whole protocol against one database; returns the run id."""
    sim = OnlineSimulator(design_seed=0, gap=0.2, random_state=7)
    run_id = _create(client, offline_dir, k=3)
    assert client.get("/v1/runs/nope", headers=AUTH).status_code == 404
    # writes without a token are refused
    assert client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 1}).status_code == 401

    got = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 2}, headers=AUTH).json()
    assert got["state"] == "issued" and [t["trial_id"] for t in got["trials"]] == [0, 1]
    art = got["trials"][0]["artifact"]
    assert art["kind"] == "linear_utility" and art["feature_schema"]["names"]
    assert art["model"]["url"].endswith(f"/v1/runs/{run_id}/model")
    model = client.get(f"/v1/runs/{run_id}/model", headers=AUTH)
    import hashlib

    assert hashlib.sha256(model.content).hexdigest() == art["model"]["sha256"]
    last = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 5}, headers=AUTH).json()
    assert [t["trial_id"] for t in last["trials"]] == [2]
    wait = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 1}, headers=AUTH)
    body = wait.json()
    assert body["trials"] == [] and body["state"] == "awaiting_results"
    assert "waiting for results of 3 running trials" in body["detail"]
    assert wait.headers["Retry-After"] == str(body["retry_after_s"])

    tuner = service.runs[run_id].tuner
    results = {t: _metrics(sim, tuner.assigner(t)) for t in (0, 1, 2)}
    # a partial report, then its replay, then the rest
    part = {k: results[0][k] for k in ("engagement", "retention")}
    r1 = _report(client, run_id, 0, part, key="k0")
    assert r1.status_code == 200 and r1.json()["missing_metrics"] == ["cost", "long_term"]
    r2 = _report(client, run_id, 0, part, key="k0")
    assert r2.json()["replayed"] is True and r2.json()["status"] == "running"
    assert r1.json()["changed"] is True and r2.json()["changed"] is False
    conflict = _report(client, run_id, 0, {"cost": results[0]["cost"]}, key="k0")
    assert conflict.status_code == 409 and "already used for a different report" in conflict.text
    rest = {k: v for k, v in results[0].items() if k not in part}
    assert _report(client, run_id, 0, rest, key="k0b").json()["status"] == "completed"
    # same values again under a new key: accepted, nothing changes; different values: 409
    same = _report(client, run_id, 0, results[0])
    assert same.status_code == 200 and same.json()["changed"] is False
    moved = dict(results[0]["cost"], mean=results[0]["cost"]["mean"] + 1.0)
    r = _report(client, run_id, 0, {"cost": moved})
    assert r.status_code == 409 and "already has a different result for metric 'cost'" in r.text
    # bad bodies: 422, unknown trial: 404
    bad = _report(client, run_id, 1, {"cost": {"mean": 1.0, "sem": -1.0}})
    assert bad.status_code == 422
    nokey = client.post(
        f"/v1/runs/{run_id}/trials/1/results", json={"metrics": results[1]}, headers=AUTH
    )
    assert nokey.status_code == 422
    assert _report(client, run_id, 42, results[1]).status_code == 404
    assert _report(client, run_id, 1, results[1]).json()["status"] == "completed"
    # trial 2 is abandoned: the next batch is generated in the background
    r = client.post(
        f"/v1/runs/{run_id}/trials/2/status", json={"status": "abandoned"}, headers=AUTH
    )
    assert r.json()["changed"] is True
    service.wait_idle()
    nxt = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 10}, headers=AUTH).json()
    assert nxt["state"] == "issued" and len(nxt["trials"]) == 3  # batch_size = n_candidates
    assert all(t["trial_id"] >= 3 for t in nxt["trials"])
    # a late result for the abandoned trial still counts
    assert _report(client, run_id, 2, results[2]).json()["status"] == "completed"

    run = client.get(f"/v1/runs/{run_id}", headers=AUTH).json()
    assert run["counts"]["completed"] == 3 and run["counts"]["running"] == 3
    sources = {t["source"] for t in run["trials"]}
    assert "qLogNParEGO" in sources
    front = client.get(f"/v1/runs/{run_id}/pareto", headers=AUTH).json()
    assert {r["trial_id"] for r in front["frontier"]} <= {0, 1, 2}
    calib = client.get(f"/v1/runs/{run_id}/calibration", headers=AUTH).json()
    assert {a["metric"] for a in calib["association"]} == {"engagement", "retention", "cost"}
    # launch: only a tested policy
    r = client.post(f"/v1/runs/{run_id}/launch", json={"trial_id": 3}, headers=AUTH)
    assert r.status_code == 409
    r = client.post(f"/v1/runs/{run_id}/launch", json={"trial_id": 1, "holdout": 0.1}, headers=AUTH)
    assert r.status_code == 422
    r = client.post(f"/v1/runs/{run_id}/launch", json={"trial_id": 1}, headers=AUTH)
    assert r.status_code == 200 and r.json()["holdout"] == 0.05
    assert client.get(f"/v1/runs/{run_id}", headers=AUTH).json()["launch"]["trial_id"] == 1
    return run_id


def _check_launch_document_loads(client, run_id, folder):
    """The service's launch document, saved beside its model file, loads with
    LaunchedPolicy.load and assigns like the artifact launched by hand with the same salt."""
    import json

    import pandas as pd

    from pex_tuner.datasets import make_synthetic
    from pex_tuner.launch import LaunchedPolicy, launch_policy
    from pex_tuner.workflows.online_demo import save_served_artifact

    doc = client.get(f"/v1/runs/{run_id}", headers=AUTH).json()["launch"]
    art = save_served_artifact(client, AUTH, doc["policy_artifact"], folder)
    (folder / "launch.json").write_text(json.dumps(doc))
    from_service = LaunchedPolicy.load(folder / "launch.json")
    by_hand = launch_policy(art, holdout=doc["holdout"], salt=doc["salt"])
    assert from_service.arms == tuple(doc["arms"]) and from_service.salt == doc["salt"]
    units = make_synthetic(500, random_state=1).data.to_frame()
    pd.testing.assert_frame_equal(from_service.assign(units), by_hand.assign(units))
    # saved again, the embedded policy stays embedded and loads the same way
    again = LaunchedPolicy.load(from_service.save(folder / "again.json"))
    assert "policy_artifact" in json.loads((folder / "again.json").read_text())
    pd.testing.assert_frame_equal(again.assign(units), by_hand.assign(units))


def test_protocol_sqlite(tmp_path, offline_dir):
    client, service = _client(f"sqlite:///{tmp_path / 'svc.db'}")
    run_id = _protocol(client, service, offline_dir)
    _check_launch_document_loads(client, run_id, tmp_path / "launch")
    # a fresh app on the same database sees the same run (state comes from the database)
    client2, _ = _client(f"sqlite:///{tmp_path / 'svc.db'}")
    run = client2.get(f"/v1/runs/{run_id}", headers=AUTH).json()
    assert run["counts"] == {
        "pending": 0,
        "running": 3,
        "completed": 3,
        "failed": 0,
        "abandoned": 0,
    }


def test_concurrent_pollers_never_share_a_trial(tmp_path, offline_dir):
    client, _ = _client(f"sqlite:///{tmp_path / 'svc.db'}")
    run_id = _create(client, offline_dir, k=8)
    # up to 8: the offline frontier may hold fewer policies than asked for
    n_trials = len(client.get(f"/v1/runs/{run_id}", headers=AUTH).json()["trials"])
    assert 4 <= n_trials <= 8
    seen: list[int] = []
    lock = threading.Lock()

    def poll():
        for _ in range(4):
            r = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 1}, headers=AUTH)
            with lock:
                seen.extend(t["trial_id"] for t in r.json()["trials"])

    threads = [threading.Thread(target=poll) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(n_trials))


def test_openapi_fuzz_finds_no_server_error(tmp_path, offline_dir):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    # the runs root holds the offline tuner; the fuzzer's paths elsewhere are refused (403)
    root = offline_dir.parent
    app = create_app(f"sqlite:///{tmp_path / 'fuzz.db'}", tokens=TOKEN, runs_root=root)
    client = TestClient(app)
    _create(client, offline_dir, k=2)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []

    def checker(operation):
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(operation.as_strategy())
        def check(case):
            case.headers = {**(case.headers or {}), **AUTH}
            response = case.call()
            if response.status_code >= 500:
                failures.append((operation.label, response.status_code, response.text[:200]))

        return check

    n_ops = 0
    for op in schema.get_all_operations():
        checker(op.ok())()
        n_ops += 1
    assert n_ops >= 11  # the nine /v1 operations, /readyz and /metrics (and /healthz)
    assert not failures, failures


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db_url, port, runs_root, *extra, log=None):
    """A ``pex-tuner serve`` process (its JSON logs to the file ``log``), once it answers."""
    env = {**os.environ, "PEX_TUNER_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "pex_tuner.cli", "serve", "--db", db_url, "--port", str(port)]
    cmd += ["--runs-root", str(runs_root), *extra]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            tail = Path(log).read_text()[-3000:] if log else ""
            raise RuntimeError(f"server exited: {tail}")
    proc.kill()
    raise RuntimeError("server did not start")


def _serve(db_url, port, runs_root):
    return serve(db_url, port, runs_root)


def test_sigkill_between_reports_loses_nothing(tmp_path, offline_dir):
    import httpx

    sim = OnlineSimulator(design_seed=0, gap=0.0, random_state=9)
    from pex_tuner.tuning.online import OnlineTuner

    local = OnlineTuner.from_offline(offline_dir, n_candidates=4, objectives=OBJECTIVES)
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(db, port, offline_dir.parent)
    try:
        r = httpx.post(
            f"{base}/v1/runs",
            json={"tuner_dir": str(offline_dir), "n_candidates": 4, "objectives": OBJECTIVES},
            headers=AUTH,
            timeout=60,
        )
        run_id = r.json()["run_id"]
        issued = httpx.post(
            f"{base}/v1/runs/{run_id}/next-batch", json={"size": 3}, headers=AUTH, timeout=30
        ).json()["trials"]
        acked = {}
        for t in issued[:2]:
            tid = t["trial_id"]
            metrics = _metrics(sim, local.assigner(tid))
            r = httpx.post(
                f"{base}/v1/runs/{run_id}/trials/{tid}/results",
                json={"metrics": metrics},
                headers={**AUTH, "Idempotency-Key": f"r{tid}"},
                timeout=30,
            )
            assert r.status_code == 200
            acked[tid] = metrics
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = _serve(db, port, offline_dir.parent)
    try:
        run = httpx.get(f"{base}/v1/runs/{run_id}", headers=AUTH, timeout=30).json()
        by_id = {t["trial_id"]: t for t in run["trials"]}
        assert {t["trial_id"] for t in issued} == {
            t for t, v in by_id.items() if v["status"] in ("running", "completed")
        }
        for tid, metrics in acked.items():
            assert by_id[tid]["status"] == "completed"
            for m, v in metrics.items():
                assert by_id[tid]["metrics"][m]["mean"] == v["mean"]
        # replaying an acknowledged report after the restart changes nothing
        tid = next(iter(acked))
        r = httpx.post(
            f"{base}/v1/runs/{run_id}/trials/{tid}/results",
            json={"metrics": acked[tid]},
            headers={**AUTH, "Idempotency-Key": f"r{tid}"},
            timeout=30,
        )
        assert r.json()["replayed"] is True
        # the one trial never issued is still handed out, once
        rest = httpx.post(
            f"{base}/v1/runs/{run_id}/next-batch", json={"size": 4}, headers=AUTH, timeout=30
        ).json()["trials"]
        assert [t["trial_id"] for t in rest] == [3]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _postgres_available():
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url():
    if not _postgres_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    import sqlalchemy as sa

    name = f"pex_svc_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_protocol_postgresql(pg_url, offline_dir):
    client, service = _client(pg_url)
    run_id = _protocol(client, service, offline_dir)
    service.store.dispose()
    client2, service2 = _client(pg_url)
    assert client2.get(f"/v1/runs/{run_id}", headers=AUTH).json()["counts"]["completed"] == 3
    service2.store.dispose()


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker")
def test_generation_worker_dies_with_a_killed_server(tmp_path, offline_dir):
    """A server killed by SIGKILL (no shutdown hooks) leaves no orphaned generation worker."""
    import httpx

    sim = OnlineSimulator(design_seed=0, random_state=2)
    from pex_tuner.tuning.online import OnlineTuner

    local = OnlineTuner.from_offline(offline_dir, n_candidates=2, objectives=OBJECTIVES)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(f"sqlite:///{tmp_path / 'w.db'}", port, offline_dir.parent)
    try:
        run_id = httpx.post(
            f"{base}/v1/runs",
            json={"tuner_dir": str(offline_dir), "n_candidates": 2, "objectives": OBJECTIVES},
            headers=AUTH,
            timeout=60,
        ).json()["run_id"]
        trials = httpx.post(
            f"{base}/v1/runs/{run_id}/next-batch", json={"size": 2}, headers=AUTH, timeout=30
        ).json()["trials"]
        for t in trials:  # the last report starts a generation in the worker process
            r = httpx.post(
                f"{base}/v1/runs/{run_id}/trials/{t['trial_id']}/results",
                json={"metrics": _metrics(sim, local.assigner(t["trial_id"]))},
                headers={**AUTH, "Idempotency-Key": uuid.uuid4().hex},
                timeout=30,
            )
            assert r.status_code == 200
        for _ in range(100):
            workers = _children(proc.pid)
            if workers:
                break
            time.sleep(0.1)
        assert workers, "no generation worker was started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")]
    for w in alive:  # do not leak it even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not alive, f"orphaned worker(s) {alive} outlived the killed server"
