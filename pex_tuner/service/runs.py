"""The runs a server process has loaded, and the generation of their batches.

The database (:mod:`pex_tuner.service.store`) is the only source of truth; any number of server
processes may serve the same runs. :class:`RunCache` keeps one :class:`Run` per run it has
served: an ``OnlineTuner`` built from the run's stored configuration (immutable) whose trials
are refreshed from the database whenever the run's ``version`` has moved. ``next-batch`` and
``results`` never read those trials: they work on database rows.

Generation: when a run needs its next batch, the first process to win the run's generation
lease (:meth:`Store.acquire_lease`) sends a snapshot of the run to its generation pool (worker
processes, ``generation_workers`` of them; model fitting never competes with requests for the
GIL), renews the lease while the worker runs, and stores the batch under ids allocated by the
database; the lease is released with the batch. A process that dies while generating leaves
its lease to expire, after which the next poll in any process takes it over. A worker process
that dies breaks its pool: the generation fails, is retried by the next poll, and the pool is
recreated.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pex_tuner.service import observe
from pex_tuner.service.store import Store

__all__ = ["DEFAULT_LEASE_S", "Run", "RunCache"]

log = logging.getLogger(__name__)

#: Seconds a generation lease lasts without renewal (its holder renews it every third of it).
DEFAULT_LEASE_S = 60.0


class Run:
    """One run in a process's memory: its tuner (trials as of ``version``) and a lock."""

    def __init__(self, tuner: Any, version: int) -> None:
        self.tuner = tuner
        self.version = version
        self.lock = threading.Lock()


class RunCache:
    """The runs a service process has served, and their batch generation.

    Args:
        store: the database the runs live in.
        generation_workers: worker processes generating batches (for many runs: more).
        lease_s: seconds a generation lease lasts without renewal.
    """

    def __init__(
        self, store: Store, *, generation_workers: int = 1, lease_s: float = DEFAULT_LEASE_S
    ) -> None:
        self.store = store
        self.generation_workers = int(generation_workers)
        self.lease_s = float(lease_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()  # guards the dicts below, never held during I/O
        self._loading: dict[str, threading.Lock] = {}
        self._executor: ProcessPoolExecutor | None = None
        self.active: dict[str, Future[Any]] = {}  # runs this process is generating
        self.done = threading.Event()
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def add(self, run_id: str, tuner: Any, version: int = 0) -> Run:
        """Cache a run just created (its rows already stored)."""
        run = Run(tuner, version)
        with self.lock:
            self.runs[run_id] = run
        return run

    def _load(self, run_id: str) -> Run | None:
        """The cached run, loading its configuration from the database on first use (a lock
        per run: loading one run never blocks requests for the others)."""
        from pex_tuner.tuning.online import OnlineTuner

        with self.lock:
            run = self.runs.get(run_id)
            if run is not None:
                return run
            loading = self._loading.setdefault(run_id, threading.Lock())
        with loading:
            with self.lock:
                run = self.runs.get(run_id)
            if run is not None:
                return run
            row = self.store.get_run(run_id)
            if row is None:
                return None
            run = Run(OnlineTuner.from_state(row["config"]), -1)
            with self.lock:
                self.runs[run_id] = run
                self._loading.pop(run_id, None)
            return run

    def config(self, run_id: str) -> Any | None:
        """The run's tuner for its configuration only (objectives, space, artifacts); its
        trials may be stale. None if there is no such run."""
        run = self._load(run_id)
        return None if run is None else run.tuner

    def get(self, run_id: str) -> Run | None:
        """The run with its trials as in the database now (reloaded when the run's version
        moved), or None if unknown. Read ``run.tuner.trials`` with ``run.lock`` held."""
        run = self._load(run_id)
        if run is None:
            return None
        with run.lock:
            if self.store.run_version(run_id) != run.version:
                version, records = self.store.snapshot(run_id)
                run.tuner.trials.clear()
                run.tuner.update_trials(records)
                run.version = version
        return run

    # -------------------------------------------------------------- generation
    @property
    def executor(self) -> ProcessPoolExecutor:
        """The generation pool (started on first use; recreated after a worker died).

        Generation is seconds of CPU-bound GP fitting and acquisition optimization. In a thread
        it would hold the GIL against request handling (measured under 50 pollers: no batch
        generated in 60 s, next-batch p50 up 10x), so it runs in worker processes. The workers
        keep each run's Ax model between batches."""
        with self.lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.generation_workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def _drop_executor(self, broken: ProcessPoolExecutor | None) -> None:
        with self.lock:
            if broken is not None and self._executor is broken:
                self._executor = None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def submit(self, fn: Any, *args: Any) -> tuple[ProcessPoolExecutor, Future[Any]]:
        """Run ``fn(*args)`` in the generation pool, recreating the pool when a worker died
        since its last use (BrokenProcessPool); returns the pool and the future."""
        pool = self.executor
        try:
            return pool, pool.submit(fn, *args)
        except BrokenProcessPool:
            self._drop_executor(pool)
            pool = self.executor
            return pool, pool.submit(fn, *args)

    def generating(self, state: dict[str, Any]) -> bool:
        """Whether a run state (``Store.run_state``) shows a generation under way."""
        return state["lease_owner"] is not None and (state["lease_expires"] or 0) > time.time()

    def maybe_generate(self, run_id: str, state: dict[str, Any] | None = None) -> bool:
        """Start generating the run's next batch here if it needs one and no process holds
        its lease (an expired lease is taken over). True when this call started it.
        ``state``: the run's state (``Store.run_state``) when the caller just read it."""
        from pex_tuner.tuning.trials import generation_blocker

        tuner = self.config(run_id)
        if tuner is None or self._closed.is_set():
            return False
        blocked = lambda counts: generation_blocker(counts, tuner.min_completed)  # noqa: E731
        state = state or self.store.run_state(run_id)  # a read first: most calls stop here
        if state is None or self.generating(state) or blocked(state["counts"]) is not None:
            return False
        if not self.store.acquire_lease(run_id, self.owner, self.lease_s, blocked):
            return False
        try:
            _, records = self.store.snapshot(run_id)
            snapshot = {**tuner.config_state(), "trials": records}
            pool, future = self.submit(_generate_batch, run_id, snapshot)
        except Exception as exc:
            self.store.release_lease(run_id, self.owner, f"{type(exc).__name__}: {exc}")
            raise
        with self.lock:
            self.active[run_id] = future
        self._start_heartbeat()
        t0 = time.perf_counter()
        future.add_done_callback(lambda f: self._finish(run_id, pool, f, t0))
        return True

    def _finish(
        self, run_id: str, pool: ProcessPoolExecutor, future: Future[Any], t0: float
    ) -> None:
        """Store a finished generation's batch (if this process still holds the lease)."""
        try:
            records = future.result()
            ids = self.store.add_batch(run_id, self.owner, records)
            seconds = time.perf_counter() - t0
            observe.GENERATION_SECONDS.observe(seconds)
            if ids:
                observe.BATCHES.inc()
                log.info(
                    "generated a batch",
                    extra={"run_id": run_id, "trials": ids, "seconds": round(seconds, 3)},
                )
            else:
                log.warning("generation lease lost; batch discarded", extra={"run_id": run_id})
        except Exception as exc:  # reported to pollers; the next poll retries
            observe.GENERATION_FAILURES.inc()
            if isinstance(exc, BrokenProcessPool):
                self._drop_executor(pool)
            log.error("generation failed: %s", exc, extra={"run_id": run_id})
            try:
                self.store.release_lease(run_id, self.owner, f"{type(exc).__name__}: {exc}")
            except Exception:  # the database is down: the lease expires by itself
                log.exception("could not release the generation lease of run %s", run_id)
        finally:
            with self.lock:
                self.active.pop(run_id, None)
            self.done.set()

    def _start_heartbeat(self) -> None:
        with self.lock:
            if self._heartbeat is not None and self._heartbeat.is_alive():
                return
            self._heartbeat = threading.Thread(
                target=self._renew_leases, daemon=True, name="pex-lease-heartbeat"
            )
            self._heartbeat.start()

    def _renew_leases(self) -> None:
        """Renew the leases of the runs generating here, every third of the lease."""
        while not self._closed.wait(self.lease_s / 3):
            with self.lock:
                active = list(self.active)
            for run_id in active:
                try:
                    self.store.renew_lease(run_id, self.owner, self.lease_s)
                except Exception:  # a database hiccup: try again next beat
                    log.exception("could not renew the generation lease of run %s", run_id)

    def shutdown(self) -> None:
        """Stop the workers (cancelling queued generations) and release this process's leases."""
        self._closed.set()
        with self.lock:
            executor, self._executor = self._executor, None
            active = list(self.active)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        for run_id in active:
            try:
                self.store.release_lease(run_id, self.owner, None)
            except Exception:
                log.exception("could not release the generation lease of run %s", run_id)

    def wait_idle(self, timeout: float = 300.0) -> None:
        """Wait until this process generates nothing (tests, in-process demos)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = bool(self.active)
            if not busy:
                return
            self.done.wait(0.05)
            self.done.clear()


# ---------------------------------------------------------------------------- worker process
_WORKER_TUNERS: dict[str, Any] = {}


def _generate_batch(run_id: str, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate the next batch of a run (in a worker process; Ax models cached per run and
    rebuilt when the database's trials are not what the cached model has seen)."""
    from pex_tuner.tuning.online import OnlineTuner

    tuner = _WORKER_TUNERS.get(run_id)
    stored = {int(t["trial_id"]): t for t in snapshot["trials"]}
    if tuner is not None and any(
        tid not in stored or stored[tid]["parameters"] != t["parameters"]
        for tid, t in tuner.trials.items()
    ):
        tuner = None  # a batch generated here was discarded, or ids moved: start afresh
    try:
        if tuner is None:
            tuner = _WORKER_TUNERS[run_id] = OnlineTuner.from_state(snapshot)
        else:
            tuner.update_trials(snapshot["trials"])
        return [tuner.trials[t] for t in tuner.generate()]
    except BaseException:
        _WORKER_TUNERS.pop(run_id, None)  # rebuild from the database's state next time
        raise


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: lower the worker's CPU priority (model fitting is background work:
    measured on 2 cores, generations at normal priority put request p99 above a second), and
    end the worker when the server dies (even by SIGKILL, which skips every shutdown hook);
    otherwise an orphaned worker would sleep forever holding its memory."""
    if hasattr(os, "nice"):
        os.nice(10)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="pex-parent-watch").start()
