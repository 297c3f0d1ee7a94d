"""The service's runs in memory, and the worker process that generates their batches.

The database (:mod:`pex_tuner.service.store`) is the source of truth; :class:`RunCache` keeps
one :class:`Run` (an ``OnlineTuner`` and a lock) per run it has served, rebuilt from the
database after a restart. When a run needs its next batch, the cache hands a snapshot of the
tuner to one worker process (:func:`_generate_batch`), stores the trials it returns, and only
then merges them into the cached tuner, so no poller can be issued a trial that is not durable.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from pex_tuner.service.store import Store

__all__ = ["Run", "RunCache"]

log = logging.getLogger(__name__)


class Run:
    """In-memory cache of one run: its tuner, a lock, and the background generation."""

    def __init__(self, tuner: Any) -> None:
        self.tuner = tuner
        self.lock = threading.Lock()
        self.generating = False
        self.generation_error: str | None = None


class RunCache:
    """The runs a service process has served, and their batch generation.

    Args:
        store: the database the runs live in.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runs: dict[str, Run] = {}
        self.lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self.pending: list[Future[Any]] = []  # generation futures not yet done
        self.done = threading.Event()

    def add(self, run_id: str, tuner: Any) -> Run:
        """Cache a run just created (its rows already stored)."""
        run = Run(tuner)
        with self.lock:
            self.runs[run_id] = run
        return run

    def get(self, run_id: str) -> Run | None:
        """The run ``run_id`` (from the cache, else from the database), or None if unknown.

        A run loaded from the database that crashed while generating resumes its generation.
        """
        from pex_tuner.tuning.online import OnlineTuner

        with self.lock:
            cached = self.runs.get(run_id)
            if cached is not None:
                return cached
            row = self.store.get_run(run_id)
            if row is None:
                return None
            state = {**row["config"], "trials": self.store.trials(run_id)}
            run = Run(OnlineTuner.from_state(state))
            self.runs[run_id] = run
        if run.tuner.generation_blocker() is None:  # crashed while generating: resume
            self.start_generation(run_id, run)
        return run

    # -------------------------------------------------------------- generation
    @property
    def executor(self) -> ProcessPoolExecutor:
        """One worker process for Ax generation (started on first use).

        Generation is seconds of CPU-bound GP fitting and acquisition optimization. In a thread
        it would hold the GIL against request handling (measured under 50 pollers: no batch
        generated in 60 s, next-batch p50 up 10x). One process, one generation at a time:
        batches queue instead of competing for the cores. The worker keeps each run's Ax
        model between batches."""
        with self.lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._executor

    def start_generation(self, run_id: str, run: Run) -> None:
        """Generate the run's next batch in the worker, unless it is blocked or under way."""
        with run.lock:
            if run.generating or run.tuner.generation_blocker() is not None:
                return
            run.generating = True
            run.generation_error = None
            snapshot = run.tuner.to_state()
        future = self.executor.submit(_generate_batch, run_id, snapshot)
        with self.lock:
            self.pending = [f for f in self.pending if not f.done()] + [future]
        future.add_done_callback(lambda f: self._store_batch(run_id, run, f))

    def _store_batch(self, run_id: str, run: Run, future: Future[Any]) -> None:
        try:
            records = future.result()
            self.store.add_trials(run_id, records)  # durable before anyone can claim them
            with run.lock:
                run.tuner.update_trials(records)
                run.generating = False
        except Exception as exc:  # reported to pollers; the next poll retries
            log.error("generation failed for run %s: %s", run_id, exc)
            with run.lock:
                run.generation_error = f"{type(exc).__name__}: {exc}"
                run.generating = False
        finally:
            self.done.set()

    def shutdown(self) -> None:
        """Stop the worker process, cancelling queued generations."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def wait_idle(self, timeout: float = 300.0) -> None:
        """Wait until no generation is queued or running (tests, in-process demos)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = [f for f in self.pending if not f.done()]
                generating = any(r.generating for r in self.runs.values())
            if not busy and not generating:
                return
            self.done.wait(0.05)
            self.done.clear()


# ---------------------------------------------------------------------------- worker process
_WORKER_TUNERS: dict[str, Any] = {}


def _generate_batch(run_id: str, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate the next batch of a run (in the worker process; Ax models cached per run)."""
    from pex_tuner.tuning.online import OnlineTuner

    tuner = _WORKER_TUNERS.get(run_id)
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
    """Worker initializer: end the worker when the server dies (even by SIGKILL, which skips
    every shutdown hook); otherwise an orphaned worker would sleep forever holding its memory."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="pex-parent-watch").start()
