"""The service with several server processes on one database (issue 14): concurrent pollers and
reporters through three apps that share nothing but the database (SQLite and PostgreSQL), and
two real ``pex-tuner serve`` processes of which the one generating is killed with SIGKILL: no
trial issued twice, no id collision, no 5xx, every acknowledged result in the database, exactly
one generation per batch, the dead generator's lease taken over."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid

import pytest

fastapi = pytest.importorskip("fastapi")
import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_service import (  # noqa: E402
    AUTH,
    OBJECTIVES,
    TOKEN,
    _free_port,
    pg_url,  # noqa: F401 - a fixture
    serve,
)

from pex_tuner.service import create_app  # noqa: E402
from pex_tuner.service.tables import reports, runs, trials  # noqa: E402

REQUIRED = list(OBJECTIVES)


def _metrics(run_id, tid):
    rnd = random.Random(f"{run_id}:{tid}")
    return {m: {"mean": rnd.gauss(1.0, 0.1), "sem": 0.01, "n": 1000} for m in REQUIRED}


class Load:
    """Pollers that report every trial they are issued, in two parts, through random clients."""

    def __init__(self, clients, run_id, seed=0):
        self.clients, self.run_id = clients, run_id
        self.issued, self.acked, self.errors = [], [], []
        self.lock = threading.Lock()
        self.rng = random.Random(seed)

    def post(self, path, body, key=None):
        client = self.rng.choice(self.clients)
        headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
        try:
            r = client.post(f"/v1/runs/{self.run_id}{path}", json=body, headers=headers)
        except Exception as exc:  # a killed server: the caller retries elsewhere
            return exc
        if r.status_code >= 500 or r.status_code not in (200, 201):
            with self.lock:
                self.errors.append(f"{path} {r.status_code}: {r.text[:200]}")
        return r

    def report(self, tid, names):
        part = {m: _metrics(self.run_id, tid)[m] for m in names}
        key = uuid.uuid4().hex
        r = self.post(f"/trials/{tid}/results", {"metrics": part}, key)
        if not isinstance(r, Exception) and r.status_code == 200:
            with self.lock:
                self.acked.append((tid, key, part))
            if self.rng.random() < 0.3:  # a replay through any process answers the same
                again = self.post(f"/trials/{tid}/results", {"metrics": part}, key)
                if not isinstance(again, Exception) and not again.json().get("replayed"):
                    self.errors.append(f"replay of {key} not replayed: {again.text[:200]}")

    def poller(self, i, until, parts):
        while not until():
            r = self.post("/next-batch", {"size": 1 + i % 2, "poller": f"p{i}"})
            if isinstance(r, Exception) or r.status_code != 200:
                time.sleep(0.05)
                continue
            got = [t["trial_id"] for t in r.json()["trials"]]
            with self.lock:
                self.issued += got
            if not got:
                time.sleep(0.05)
            for tid in got:
                for names in parts:
                    self.report(tid, names)

    def run(self, n, until, parts):
        threads = [
            threading.Thread(target=self.poller, args=(i, until, parts), daemon=True)
            for i in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)


def check_database(url, run_id, load, initial, batch_size):
    """Every acknowledged report and its metrics stored; ids 0..n-1 allocated without gaps;
    exactly ``batch_size`` trials per generated batch (one generation per batch). Returns
    the run's row."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        keys = {
            r.idempotency_key: r.trial_id
            for r in conn.execute(sa.select(reports).where(reports.c.run_id == run_id))
        }
        rows = {
            r.trial_id: r for r in conn.execute(sa.select(trials).where(trials.c.run_id == run_id))
        }
        run = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).one()
    engine.dispose()
    assert sorted(rows) == list(range(run.next_trial_id))
    assert len(rows) == initial + run.batches * batch_size
    for tid, key, part in load.acked:
        assert keys.get(key) == tid, f"acknowledged report {key} of trial {tid} lost"
        stored = json.loads(rows[tid].metrics)
        assert all(stored[m]["mean"] == v["mean"] for m, v in part.items())
    assert len(load.issued) == len(set(load.issued)), "a trial was issued twice"
    return run


@pytest.mark.parametrize(
    "backend, generate",
    [
        ("sqlite", False),
        ("postgresql", False),
        pytest.param("sqlite", True, marks=pytest.mark.slow),
        pytest.param("postgresql", True, marks=pytest.mark.slow),
    ],
)
def test_three_processes_share_one_database(backend, generate, tmp_path, offline_dir, request):
    """Nine pollers through three apps on one database; with ``generate`` (slow: the model
    runs) they report whole results, so batches are generated while they poll."""
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    apps = [create_app(url, tokens=TOKEN, lease_s=5) for _ in range(3)]
    clients = [TestClient(a) for a in apps]
    k = 3 if generate else 8
    body = {"tuner_dir": str(offline_dir), "n_candidates": k, "objectives": OBJECTIVES}
    run_id = clients[0].post("/v1/runs", json=body, headers=AUTH).json()["run_id"]
    # the same report sent at once through two processes: stored once, one answer replayed
    first = clients[1].post(f"/v1/runs/{run_id}/next-batch", json={"size": 1}, headers=AUTH)
    assert first.json()["trials"][0]["trial_id"] == 0
    load = Load(clients, run_id)
    answers = []
    same = {"metrics": {"engagement": _metrics(run_id, 0)["engagement"]}}

    def send(client):
        h = {**AUTH, "Idempotency-Key": "same-key"}
        answers.append(client.post(f"/v1/runs/{run_id}/trials/0/results", json=same, headers=h))

    both = [threading.Thread(target=send, args=(c,)) for c in clients[:2]]
    [t.start() for t in both]
    [t.join() for t in both]
    assert sorted(a.json()["replayed"] for a in answers) == [False, True]
    load.issued.append(0)
    load.report(0, ["retention", "cost", "long_term"])
    # pollers on all three: the offline candidates (then, generating, one batch of 3)
    n = len(clients[0].get(f"/v1/runs/{run_id}", headers=AUTH).json()["trials"])
    n_issued = n + k if generate else n
    deadline = time.monotonic() + 180
    parts = [REQUIRED[:2], REQUIRED[2:]] if generate else [REQUIRED[:1], REQUIRED[1:2]]
    load.run(9, lambda: len(load.issued) >= n_issued or time.monotonic() > deadline, parts)
    for app in apps:
        app.state.service.wait_idle()
    assert not load.errors, load.errors[:5]
    assert sorted(load.issued) == list(range(n_issued))
    run = check_database(url, run_id, load, initial=n, batch_size=k)
    assert run.batches >= int(generate)
    view = clients[2].get(f"/v1/runs/{run_id}", headers=AUTH).json()  # refreshed by version
    assert [t["trial_id"] for t in view["trials"]] == list(range(run.next_trial_id))
    for app in apps:
        app.state.service.shutdown()
        app.state.service.store.dispose()


def _start(db, root, tmp_path, name):
    port = _free_port()
    proc = serve(db, port, root, "--lease-s", "3", log=tmp_path / f"{name}.log")
    import httpx

    return proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_of_the_generating_process(backend, tmp_path, offline_dir, request):
    """Two server processes; pollers on both; the process that holds the generation lease is
    killed: nothing acknowledged is lost and the other process takes the lease over."""
    db = f"sqlite:///{tmp_path / 'svc.db'}"
    if backend == "postgresql":
        db = request.getfixturevalue("pg_url")
    servers = {}
    starters = [
        threading.Thread(
            target=lambda n=n: servers.__setitem__(n, _start(db, offline_dir.parent, tmp_path, n))
        )
        for n in ("a", "b")
    ]
    [t.start() for t in starters]
    [t.join() for t in starters]
    (proc_a, a), (_, b) = servers["a"], servers["b"]
    try:
        body = {"tuner_dir": str(offline_dir), "n_candidates": 4, "objectives": OBJECTIVES}
        run_id = a.post("/v1/runs", json=body, headers=AUTH).json()["run_id"]
        load = Load([a, b], run_id)
        deadline = time.monotonic() + 120
        # first parts of every offline candidate's results, through both processes
        load.run(6, lambda: len(load.issued) >= 4 or time.monotonic() > deadline, [REQUIRED[:2]])
        assert sorted(load.issued) == [0, 1, 2, 3] and not load.errors, load.errors[:5]
        load.clients = [a]  # the rest through a: its last report makes a the generator
        for tid in range(4):
            load.report(tid, REQUIRED[2:])
        engine = sa.create_engine(db)
        with engine.connect() as conn:
            owner = conn.execute(sa.select(runs.c.lease_owner)).scalar()
        engine.dispose()
        assert owner is not None and f":{proc_a.pid}:" in owner
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait()
        # b answers "generating" while the dead lease is valid, then takes it over
        load.clients = [b]
        states, got = [], []
        deadline = time.monotonic() + 240
        while not got and time.monotonic() < deadline:
            r = b.post(f"/v1/runs/{run_id}/next-batch", json={"size": 8}, headers=AUTH)
            assert r.status_code == 200, r.text
            states.append(r.json()["state"])
            got = [t["trial_id"] for t in r.json()["trials"]]
            time.sleep(0.5)
        assert states[0] == "generating" and got == [4, 5, 6, 7], (states[-3:], got)
        load.issued += got
        assert not load.errors, load.errors[:5]
        assert check_database(db, run_id, load, initial=4, batch_size=4).batches == 1
        assert (tmp_path / "b.log").read_text().count("Traceback") == 0
    finally:
        for proc, client in servers.values():
            client.close()
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


def test_generation_lease_is_exclusive_and_taken_over_after_expiry(tmp_path, offline_dir):
    """The lease in the database: one holder at a time; a holder that stopped renewing (killed)
    loses it at expiry to the next process, and its late batch is discarded."""
    from pex_tuner.service import Store
    from pex_tuner.tuning.trials import generation_blocker

    url = f"sqlite:///{tmp_path / 'lease.db'}"
    app = create_app(url, tokens=TOKEN)
    client = TestClient(app)
    body = {"tuner_dir": str(offline_dir), "n_candidates": 2, "objectives": OBJECTIVES}
    run_id = client.post("/v1/runs", json=body, headers=AUTH).json()["run_id"]
    a, b = Store(url), Store(url)  # two processes' stores
    ready = lambda counts: generation_blocker(counts, 2)  # noqa: E731
    assert not a.acquire_lease(run_id, "a", 1.0, ready)  # trials pending: nothing to generate
    issued = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 2}, headers=AUTH).json()
    for t in issued["trials"]:
        assert a.acquire_lease(run_id, "x", 1.0, ready) is False  # still running
        r = client.post(
            f"/v1/runs/{run_id}/trials/{t['trial_id']}/status",
            json={"status": "abandoned"},
            headers=AUTH,
        )
        assert r.status_code == 200
    app.state.service.shutdown()  # this app does not generate here; the stores race instead
    assert a.acquire_lease(run_id, "a", 1.0, lambda counts: None)
    assert not b.acquire_lease(run_id, "b", 1.0, lambda counts: None)  # held
    r = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 1}, headers=AUTH).json()
    assert r["state"] == "generating"
    time.sleep(1.1)  # a was killed: no renewal
    assert b.acquire_lease(run_id, "b", 1.0, lambda counts: None)  # taken over
    assert not a.renew_lease(run_id, "a", 1.0)
    record = {"parameters": issued["trials"][0]["parameters"], "source": "x", "metrics": {}}
    record.update(offline={}, status="pending")
    assert a.add_batch(run_id, "a", [record]) == []  # the dead holder's late batch: discarded
    assert b.add_batch(run_id, "b", [record, dict(record)]) == [2, 3]  # ids from the database
    assert b.run_state(run_id)["lease_owner"] is None
    got = client.post(f"/v1/runs/{run_id}/next-batch", json={"size": 5}, headers=AUTH).json()
    assert [t["trial_id"] for t in got["trials"]] == [2, 3]
    for store in (a, b, app.state.service.store):
        store.dispose()


def test_a_dead_generation_worker_is_replaced(tmp_path):
    """A generation worker killed (out of memory, say) breaks its pool; the next generation
    gets a new pool instead of a 500 until restart."""
    import os

    app = create_app(f"sqlite:///{tmp_path / 'pool.db'}", tokens=TOKEN)
    cache = app.state.service
    try:
        pool, first = cache.submit(os.getpid)
        worker = first.result(timeout=120)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the pool notices its dead worker
            try:
                pool.submit(os.getpid).result(timeout=60)
            except Exception:
                break
            time.sleep(0.2)
        again, second = cache.submit(os.getpid)
        assert again is not pool and second.result(timeout=120) not in (worker, os.getpid())
    finally:
        cache.shutdown()
        cache.store.dispose()
