"""Benchmark: the online service under concurrent pollers and reporters, SQLite and PostgreSQL,
with one and with several server processes.

Setting (issue 14): ``--workers`` (50) concurrent pollers/reporters on loopback for
``--duration`` (60) seconds against ``python -m pex_tuner.cli serve --workers N`` for each N in
``--processes`` (1 4), once per backend: a SQLite file in a temporary folder, and a fresh
PostgreSQL database ``pex_bench_<random>`` created at ``--pg-url``'s server (dropped afterwards;
skipped with a printed reason when the server is unreachable). The server runs as configured in
production: JSON request logs at info level (to a file), a tokens file (one token, every
scope, no rate limit: the 50 pollers share it), the runs root set to the tuner's folder.

Per backend: a small saved offline tuner (``make_synthetic(3000)``, 12 evaluations) backs
``--runs`` runs with ``n_candidates = batch_size = --batch-size``, so trials keep coming: once
every trial of a run has results, the server process that wins the run's generation lease
generates the next batch with qLogNParEGO in its generation worker process. Each worker is a
thread with its own ``httpx.Client``; in a loop it polls ``next-batch`` (size 1 or 2) on a
random run and reports results for every trial it is issued: all of the run's required metrics
(cheap precomputed values: this measures the service, not the simulator), split into ``--parts``
(2) partial reports, as a system that reports long-term metrics later would, each under a fresh
Idempotency-Key. After each report, with probability ``--replay`` (5%) it replays it with the
same key (must be 200 with ``replayed: true``) and with probability ``--conflict`` (2%) sends a
conflicting value under a new key (must be 409: a deliberate conflict). A poll that gets no
trials waits ``min(retry_after_s, --idle-wait)`` (0.25 s, far more eager than the service's 5-30
s Retry-After) before polling again.

Latency is measured by the client around each call (so it includes the client's own queueing
for the GIL: client and server share the machine). Errors: any non-2xx answer other than the
deliberate 409s, any unexpected body, any exception (timeouts included), and a trial issued to
two pollers. After the run the server is stopped (SIGTERM) and the database is opened directly
with SQLAlchemy: every acknowledged report (200, not replayed) must have its Idempotency-Key in
``pex_online_reports`` and its metrics in its trial's row, which must be completed.

Besides the client's latencies, the server's own p99 per route is read from ``/metrics`` (the
upper bound of its histogram bucket), to tell the server's time from the client's queueing.

Usage:
    python benchmarks/bench_service.py [--duration 60] [--workers 50] [--processes 1 4]
        [--backends sqlite postgresql] [--runs 10] [--batch-size 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa
from bench_service_report import markdown

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}


# ---------------------------------------------------------------------------- setup
def make_offline_tuner(folder: Path) -> Path:
    from pex_tuner.datasets import make_synthetic
    from pex_tuner.tuning import OfflineTuner

    exp = make_synthetic(3000, random_state=5)
    tuner = OfflineTuner(
        exp.data, batch_size=4, init_trials=6, n_folds=2, random_state=0, progress=False
    )
    tuner.run(12)
    path = folder / "tuner"
    tuner.save(str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    db_url: str, port: int, log: Path, processes: int, runs_root: Path, tokens: Path
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pex_tuner.cli", "serve", "--db", db_url, "--port", str(port)]
    cmd += ["--workers", str(processes), "--runs-root", str(runs_root)]
    cmd += ["--tokens-file", str(tokens)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    for _ in range(1200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
    proc.kill()
    raise RuntimeError("server did not start")


def write_tokens(folder: Path) -> Path:
    """The benchmark's token (every scope; no rate limit: 50 pollers share it)."""
    path = folder / "tokens.json"
    entry = {"name": "bench", "token": TOKEN, "scopes": ["admin"], "rate_per_s": None}
    path.write_text(json.dumps({"tokens": [entry]}))
    return path


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc): uvicorn's workers and generation pools."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its living descendants."""
    return float(np.nansum([cpu_seconds(p) for p in process_tree(pid)]))


def server_quantile(metrics: str, route: str, q: float = 0.99) -> float:
    """The server-side latency quantile of a route (ms, the upper bound of its histogram
    bucket) from the /metrics text: where the time goes, client excluded."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith("pex_http_request_duration_seconds_bucket{") and route in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    if not buckets:
        return float("nan")
    total = buckets[float("inf")]
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return bound * 1000
    return float("inf")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def pg_database(admin_url: str) -> tuple[str | None, str]:
    """Create a fresh database; returns (its URL or None, server version or skip reason)."""
    try:
        admin = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        name = f"pex_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as c:
            server = c.execute(sa.text("SHOW server_version")).scalar()
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:  # unreachable, no rights, no driver
        return None, f"PostgreSQL is not usable at {admin_url}: {type(exc).__name__}: {exc}"
    return admin_url.rsplit("/", 1)[0] + "/" + name, f"PostgreSQL {server}"


def drop_pg_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# ---------------------------------------------------------------------------- load
def metrics_for(run_id: str, trial_id: int, required: list[str]) -> dict:
    """Deterministic per trial, so a replay sends the very same body."""
    rnd = random.Random(f"{run_id}:{trial_id}")
    return {m: {"mean": rnd.gauss(1.0, 0.1), "sem": 0.01, "n": 5000} for m in required}


@dataclass
class Tally:
    poll_ms: list[float] = field(default_factory=list)
    report_ms: list[float] = field(default_factory=list)
    issued: list[tuple[str, int]] = field(default_factory=list)
    acked: list[tuple[str, int, str, dict]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    empty_polls: int = 0
    replays: int = 0
    conflicts: int = 0


def worker(
    seed: int, base: str, runs: dict[str, list[str]], deadline: float, args, tally: Tally
) -> None:
    rng = random.Random(seed)
    run_ids = sorted(runs)

    def call(path: str, body: dict, key: str | None, into: list[float]) -> httpx.Response | None:
        headers = {"Idempotency-Key": key} if key else None
        t0 = time.perf_counter()
        try:
            r = client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            tally.errors.append(f"{path}: {type(exc).__name__}: {exc}")
            return None
        finally:
            into.append((time.perf_counter() - t0) * 1000)
        return r

    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
        while time.monotonic() < deadline:
            run_id = rng.choice(run_ids)
            path = f"/v1/runs/{run_id}/next-batch"
            r = call(path, {"size": rng.randint(1, 2), "poller": f"w{seed}"}, None, tally.poll_ms)
            if r is None:
                continue
            if r.status_code != 200:
                tally.errors.append(f"next-batch {r.status_code}: {r.text[:300]}")
                continue
            body = r.json()
            if not body["trials"]:
                tally.empty_polls += 1
                time.sleep(min(float(body["retry_after_s"]), args.idle_wait))
                continue
            for trial in body["trials"]:
                tid = trial["trial_id"]
                tally.issued.append((run_id, tid))
                metrics = metrics_for(run_id, tid, runs[run_id])
                names = sorted(metrics)
                path = f"/v1/runs/{run_id}/trials/{tid}/results"
                for i in range(args.parts):  # partial reports, e.g. long-term metrics later
                    part = {m: metrics[m] for m in names[i :: args.parts]}
                    key = uuid.uuid4().hex
                    r = call(path, {"metrics": part}, key, tally.report_ms)
                    if r is None:
                        break
                    if r.status_code != 200 or r.json()["replayed"]:
                        tally.errors.append(f"report {r.status_code}: {r.text[:300]}")
                        break
                    done = r.json()["status"] == "completed"
                    if done != (i == args.parts - 1):
                        tally.errors.append(f"report {i + 1}/{args.parts}: {r.text[:300]}")
                    tally.acked.append((run_id, tid, key, part))
                    if rng.random() < args.replay:
                        tally.replays += 1
                        r = call(path, {"metrics": part}, key, tally.report_ms)
                        if r is not None and (r.status_code != 200 or not r.json()["replayed"]):
                            tally.errors.append(f"replay {r.status_code}: {r.text[:300]}")
                    if rng.random() < args.conflict:
                        tally.conflicts += 1
                        m = rng.choice(sorted(part))
                        moved = {m: {**part[m], "mean": part[m]["mean"] + 1.0}}
                        r = call(path, {"metrics": moved}, uuid.uuid4().hex, tally.report_ms)
                        if r is not None and r.status_code != 409:
                            tally.errors.append(f"conflict {r.status_code}: {r.text[:300]}")


# ---------------------------------------------------------------------------- one backend
def verify(
    db_url: str, acked: list[tuple[str, int, str, dict]], runs: dict[str, list[str]]
) -> tuple[int, list[str]]:
    """Every acknowledged report's key and metrics in the database; complete trials completed."""
    from pex_tuner.service.store import reports, trials

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        keys = {(r.run_id, r.idempotency_key): r.trial_id for r in conn.execute(sa.select(reports))}
        rows = {(r.run_id, r.trial_id): r for r in conn.execute(sa.select(trials))}
    engine.dispose()
    missing, reported = [], {}
    for run_id, tid, key, metrics in acked:
        row = rows.get((run_id, tid))
        stored = json.loads(row.metrics) if row is not None else {}
        reported.setdefault((run_id, tid), set()).update(metrics)
        if keys.get((run_id, key)) != tid:
            missing.append(f"report {run_id}:{key} (trial {tid}) not in pex_online_reports")
        elif any(
            stored.get(m, {}).get(f) != v[f] for m, v in metrics.items() for f in ("mean", "sem")
        ):
            missing.append(f"trial {run_id}:{tid} lacks reported metrics {metrics}: {stored}")
    for (run_id, tid), names in reported.items():
        if names >= set(runs[run_id]) and rows[(run_id, tid)].status != "completed":
            missing.append(f"trial {run_id}:{tid} has all its results but is not completed")
    return len(acked), missing


def create_runs(base: str, tuner_dir: Path, args) -> dict[str, list[str]]:
    """``--runs`` runs of the tuner; run id -> its required metrics."""
    runs: dict[str, list[str]] = {}
    with httpx.Client(base_url=base, headers=AUTH, timeout=120) as c:
        for _ in range(args.runs):
            body = {"tuner_dir": str(tuner_dir), "n_candidates": args.batch_size}
            body.update(batch_size=args.batch_size, objectives=OBJECTIVES)
            run_id = c.post("/v1/runs", json=body).raise_for_status().json()["run_id"]
            info = c.get(f"/v1/runs/{run_id}").raise_for_status().json()
            runs[run_id] = [*info["objectives"], *info["constraints"]]
    return runs


def run_load(pid: int, base: str, runs: dict[str, list[str]], args) -> tuple[Tally, float, float]:
    """The workers' merged tally, the elapsed seconds and the server's CPU seconds."""
    tallies = [Tally() for _ in range(args.workers)]
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    deadline = t0 + args.duration
    threads = [
        threading.Thread(target=worker, args=(i, base, runs, deadline, args, tallies[i]))
        for i in range(args.workers)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed, server_cpu = time.monotonic() - t0, tree_cpu_seconds(pid) - cpu0
    t = Tally()
    for x in tallies:
        for f in ("poll_ms", "report_ms", "issued", "acked", "errors"):
            getattr(t, f).extend(getattr(x, f))
        t.empty_polls, t.replays = t.empty_polls + x.empty_polls, t.replays + x.replays
        t.conflicts += x.conflicts
    dup = len(t.issued) - len(set(t.issued))
    if dup:
        t.errors.append(f"{dup} trials were issued to more than one poller")
    return t, elapsed, server_cpu


def bench_backend(name: str, db_url: str, tuner_dir: Path, tmp: Path, args, processes: int) -> dict:
    """One backend with ``processes`` server processes: load, then check the database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / f"server_{name.split(',')[0]}_{processes}.log"
    proc = start_server(db_url, port, log, processes, tuner_dir.parent, write_tokens(tmp))
    try:
        runs = create_runs(base, tuner_dir, args)
        print(f"[{name}] server on {base}, {len(runs)} runs; {args.workers} workers ...")
        t, elapsed, server_cpu = run_load(proc.pid, base, runs, args)
        generated, gen_errors = 0, []
        with httpx.Client(base_url=base, headers=AUTH, timeout=120) as c:
            scraped = c.get("/metrics").text  # one process's view (all of them, multiprocess)
            for run_id in runs:
                info = c.get(f"/v1/runs/{run_id}").raise_for_status().json()
                generated += (len(info["trials"]) - args.batch_size) // args.batch_size
                if info["generation_error"]:
                    gen_errors.append(info["generation_error"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    checked, missing = verify(db_url, t.acked, runs)
    server_log = log.read_text(errors="replace")
    tracebacks = server_log.count("Traceback")
    n = len(t.poll_ms) + len(t.report_ms)
    print(
        f"[{name}] {n} requests in {elapsed:.1f} s ({n / elapsed:.0f}/s); errors "
        f"{len(t.errors)}; acknowledged {checked}, missing {len(missing)}; batches {generated}"
    )
    for e in [*t.errors[:10], *missing[:10]]:
        print(f"  {e}")
    server_p99 = {k: server_quantile(scraped, k) for k in ("next-batch", "/results")}
    return {
        **dict(name=name, elapsed=elapsed, server_cpu=server_cpu, tally=t, generated=generated),
        **dict(gen_errors=gen_errors, checked=checked, missing=missing, tracebacks=tracebacks),
        **dict(processes=processes, server_p99=server_p99),
        "log_tail": server_log[-3000:] if tracebacks else "",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=50)
    p.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    p.add_argument(
        "--processes", type=int, nargs="+", default=[1, 4], help="server processes (--workers)"
    )
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--parts", type=int, default=2, help="reports per trial (metrics split)")
    p.add_argument("--replay", type=float, default=0.05)
    p.add_argument("--conflict", type=float, default=0.02)
    p.add_argument("--idle-wait", type=float, default=0.25)
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    start = time.monotonic()
    env = {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "Python": platform.python_version(),
        **{
            pkg: version(pkg)
            for pkg in ("fastapi", "uvicorn", "sqlalchemy", "httpx", "psycopg", "prometheus_client")
        },
        "SQLite": __import__("sqlite3").sqlite_version,
    }
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="pex_bench_") as d:
        tmp = Path(d)
        print("preparing the offline tuner ...")
        tuner_dir = make_offline_tuner(tmp)
        for backend in args.backends:
            for n in args.processes:
                label = f"{'SQLite' if backend == 'sqlite' else 'PostgreSQL'}, {n} process(es)"
                if backend == "sqlite":
                    url = f"sqlite:///{tmp / f'svc_{n}.db'}"
                    results.append(bench_backend(label, url, tuner_dir, tmp, args, n))
                    continue
                if backend != "postgresql":
                    p.error(f"unknown backend {backend!r}")
                url, info = pg_database(args.pg_url)
                if url is None:
                    print(f"skipping PostgreSQL: {info}")
                    skipped[label] = info
                    continue
                env["PostgreSQL server"] = info.split()[1]
                try:
                    results.append(bench_backend(label, url, tuner_dir, tmp, args, n))
                finally:
                    drop_pg_database(args.pg_url, url)
    text = markdown(results, skipped, env, args, time.monotonic() - start)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    bad = any(r["tally"].errors or r["missing"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
