"""Durable storage of online tuning runs (SQLAlchemy Core: SQLite by default, PostgreSQL by URL).

The database is the only source of truth for trials, their ids and statuses, idempotency
records and batch generation, so any number of server processes can serve the same runs; their
in-memory tuners are caches refreshed when a run's ``version`` moves. Every change the service
acknowledges is committed before the response is sent: a server killed with SIGKILL loses
nothing it answered for.

Tables::

    pex_online_runs     run_id, created_at, tuner_dir, config (OnlineTuner.config_state JSON),
                        launch (JSON or NULL), version (bumped by every change to the run's
                        trials), next_trial_id (id allocation), lease_owner / lease_expires (who
                        generates the next batch, until when), generation_error, batches
    pex_online_trials   (run_id, trial_id), parameters, source, status, metrics, offline (JSON),
                        issued_at, poller, updated_at
    pex_online_reports  (run_id, idempotency_key) unique, trial_id, body_sha256, response,
                        received_at
    pex_online_models   sha256, data (the CATE model file the run's policies act on)

Every change is one write transaction that reads what it decides on and locks it
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, whose writers are also
serialized per process by a mutex so threads never sleep in SQLite's busy handler). Issuing
pending trials uses ``FOR UPDATE SKIP LOCKED``, so two pollers, in any processes, never receive
the same trial. A report's idempotency check and insert are one transaction guarded by the
unique key. New trial ids come from ``next_trial_id``. Generation is claimed by a lease: a
conditional update that only succeeds when the run needs a batch and nobody holds an unexpired
lease; the holder renews it while it generates, and a batch is stored only while its generator
still holds the lease, so an expired holder's late batch is discarded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa

from pex_tuner.db import open_engine
from pex_tuner.service.tables import (
    WRITE,
    add_new_columns,
    bump,
    immediate_writes,
    metadata,
    models,
    reports,
    runs,
    status_counts,
    trial_record,
    trial_row,
    trials,
)

__all__ = ["DEFAULT_URL", "Store", "UnknownTrialError"]

DEFAULT_URL = "sqlite:///pex_tuner_service.db"


class UnknownTrialError(LookupError):
    """The run has no trial with this id (HTTP 404)."""


class Store:
    """Runs, trials, idempotent reports and generation leases in a SQL database.

    Args:
        url: SQLAlchemy URL (``sqlite:///FILE`` by default; ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine = open_engine(url, concurrent=True)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if self.sqlite else None
        if self.sqlite:
            immediate_writes(self.engine)
        self._create_schema()

    def _create_schema(self) -> None:
        """Create the tables (several processes may start at once) and add new columns."""
        for attempt in range(6):
            try:
                with self._write() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(742016)"))
                    metadata.create_all(conn)
                    add_new_columns(conn)
                return
            except sa.exc.DBAPIError:  # another process created them first: look again
                if attempt == 5:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def dispose(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction (BEGIN IMMEDIATE on SQLite, one writer per process at a time)."""
        with self._write_lock or nullcontext(), self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    def ping(self) -> None:
        """Raise when the database cannot answer (readiness probe)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        run_id: str,
        tuner_dir: str,
        config: dict[str, Any],
        trial_records: Iterable[dict[str, Any]],
        model: tuple[str, bytes] | None,
    ) -> None:
        """Insert a run with its initial trials (and its model, once per hash) atomically."""
        now = time.time()
        rows = [trial_row(run_id, t, now) for t in trial_records]
        with self._write() as conn:
            if model is not None:
                sha, data = model
                have = conn.execute(sa.select(models.c.sha256).where(models.c.sha256 == sha))
                if have.first() is None:
                    conn.execute(models.insert().values(sha256=sha, data=data))
            conn.execute(
                runs.insert().values(
                    run_id=run_id,
                    created_at=now,
                    tuner_dir=tuner_dir,
                    config=json.dumps(config),
                    launch=None,
                    version=0,
                    next_trial_id=max((r["trial_id"] for r in rows), default=-1) + 1,
                    batches=0,
                )
            )
            if rows:
                conn.execute(trials.insert(), rows)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's row (config and launch decoded), or None if there is no such run."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        if row is None:
            return None
        return {
            "run_id": row.run_id,
            "created_at": row.created_at,
            "tuner_dir": row.tuner_dir,
            "config": json.loads(row.config),
            "launch": None if row.launch is None else json.loads(row.launch),
            "version": int(row.version),
            "lease_owner": row.lease_owner,
            "lease_expires": row.lease_expires,
            "generation_error": row.generation_error,
            "batches": int(row.batches),
        }

    def run_state(self, run_id: str) -> dict[str, Any] | None:
        """The run's version, lease, last generation error and trial counts per status (what
        ``next-batch`` answers from), or None if there is no such run."""
        cols = [runs.c.version, runs.c.lease_owner, runs.c.lease_expires, runs.c.generation_error]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*cols).where(runs.c.run_id == run_id)).first()
            if row is None:
                return None
            by_status = status_counts(conn, run_id)
        return {**row._asdict(), "counts": by_status}

    def run_version(self, run_id: str) -> int | None:
        """The run's version (moves with every change to its trials), or None."""
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(runs.c.version).where(runs.c.run_id == run_id)).scalar()
        return None if v is None else int(v)

    def set_launch(self, run_id: str, launch: dict[str, Any]) -> None:
        """Record the run's launch document."""
        with self._write() as conn:
            conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(launch=json.dumps(launch))
            )

    def model_bytes(self, sha256: str) -> bytes | None:
        """The stored model file with this SHA-256, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models.c.data).where(models.c.sha256 == sha256)).first()
        return None if row is None else bytes(row.data)

    def trial_counts(self) -> list[tuple[str, str, int]]:
        """(run id, status, number of trials) over every run (for /metrics)."""
        q = sa.select(trials.c.run_id, trials.c.status, sa.func.count()).group_by(
            trials.c.run_id, trials.c.status
        )
        with self.engine.connect() as conn:
            return [(r, s, int(n)) for r, s, n in conn.execute(q)]

    # ------------------------------------------------------------------ trials
    def trials(self, run_id: str) -> list[dict[str, Any]]:
        """The run's trial records, by trial id."""
        return self.snapshot(run_id)[1]

    def snapshot(self, run_id: str) -> tuple[int, list[dict[str, Any]]]:
        """The run's version and its trial records as of that version or later."""
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(runs.c.version).where(runs.c.run_id == run_id)).scalar()
            rows = conn.execute(
                sa.select(trials).where(trials.c.run_id == run_id).order_by(trials.c.trial_id)
            )
            return int(v or 0), [trial_record(r) for r in rows]

    def claim(self, run_id: str, size: int, poller: str | None) -> list[dict[str, Any]]:
        """Issue up to ``size`` pending trials (lowest ids first) to ``poller``: the records of
        the trials this caller got, now ``running``."""
        now = time.time()
        with self._write() as conn:
            rows = conn.execute(
                sa.select(trials)
                .where(trials.c.run_id == run_id, trials.c.status == "pending")
                .order_by(trials.c.trial_id)
                .limit(int(size))
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            ids = [int(r.trial_id) for r in rows]
            conn.execute(
                trials.update()
                .where(
                    trials.c.run_id == run_id,
                    trials.c.trial_id.in_(ids),
                    trials.c.status == "pending",
                )
                .values(status="running", issued_at=now, poller=poller, updated_at=now)
            )
            conn.execute(bump(run_id))
        return [{**trial_record(r), "status": "running", "poller": poller} for r in rows]

    def _locked_trial(self, conn: Any, run_id: str, trial_id: int) -> dict[str, Any]:
        row = conn.execute(
            sa.select(trials)
            .where(trials.c.run_id == run_id, trials.c.trial_id == int(trial_id))
            .with_for_update()
        ).first()
        if row is None:
            raise UnknownTrialError(f"no trial {trial_id} in run '{run_id}'")
        return trial_record(row)

    def change_status(
        self,
        run_id: str,
        trial_id: int,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Apply ``change`` (trial record -> new record, or None for no change; it may raise)
        to the locked trial row and store the result; returns the new record or None."""
        with self._write() as conn:
            new = change(self._locked_trial(conn, run_id, trial_id))
            if new is None:
                return None
            conn.execute(
                trials.update()
                .where(trials.c.run_id == run_id, trials.c.trial_id == int(trial_id))
                .values(status=new["status"], updated_at=time.time())
            )
            conn.execute(bump(run_id))
        return new

    # ------------------------------------------------------------------ reports
    def report(
        self,
        run_id: str,
        trial_id: int,
        key: str,
        body_sha256: str,
        apply: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]],
    ) -> tuple[dict[str, Any], bool]:
        """Store a report idempotently: one transaction checks the Idempotency-Key, locks the
        trial, applies ``apply`` (record -> (new record, response); it may raise), and stores
        both. Returns (response, replayed); a key already stored answers its first response
        (a different body under it is a ResultConflictError).
        """
        for attempt in range(3):
            try:
                with self._write() as conn:
                    seen = conn.execute(
                        sa.select(reports.c.body_sha256, reports.c.response).where(
                            reports.c.run_id == run_id, reports.c.idempotency_key == key
                        )
                    ).first()
                    if seen is not None:
                        return _replay(key, seen, body_sha256), True
                    record, response = apply(self._locked_trial(conn, run_id, trial_id))
                    now = time.time()
                    conn.execute(
                        trials.update()
                        .where(trials.c.run_id == run_id, trials.c.trial_id == int(trial_id))
                        .values(
                            metrics=json.dumps(record["metrics"]),
                            status=record["status"],
                            updated_at=now,
                        )
                    )
                    conn.execute(bump(run_id))
                    conn.execute(
                        reports.insert().values(
                            run_id=run_id,
                            idempotency_key=key,
                            trial_id=int(trial_id),
                            body_sha256=body_sha256,
                            response=json.dumps(response),
                            received_at=now,
                        )
                    )
                return response, False
            except sa.exc.IntegrityError:  # the same key committed by another process meanwhile
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def find_report(self, run_id: str, key: str) -> dict[str, Any] | None:
        """The report stored under an Idempotency-Key (trial, body hash, response), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(reports).where(
                    reports.c.run_id == run_id, reports.c.idempotency_key == key
                )
            ).first()
        if row is None:
            return None
        return {
            "trial_id": row.trial_id,
            "body_sha256": row.body_sha256,
            "response": json.loads(row.response),
        }

    # ------------------------------------------------------------------ generation leases
    def acquire_lease(
        self,
        run_id: str,
        owner: str,
        ttl_s: float,
        blocker: Callable[[dict[str, int]], str | None],
    ) -> bool:
        """Claim the generation of the run's next batch for ``owner`` for ``ttl_s`` seconds:
        True when the run needs a batch (``blocker(counts)`` is None) and no other holder has
        an unexpired lease (an expired one is taken over)."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                sa.select(runs.c.lease_owner, runs.c.lease_expires)
                .where(runs.c.run_id == run_id)
                .with_for_update()
            ).first()
            if row is None or (row.lease_owner is not None and (row.lease_expires or 0) > now):
                return False
            if blocker(status_counts(conn, run_id)) is not None:
                return False
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(lease_owner=owner, lease_expires=now + ttl_s)
            )
        return True

    def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> bool:
        """Extend ``owner``'s lease; False when it no longer holds it."""
        with self._write() as conn:
            res = conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.lease_owner == owner)
                .values(lease_expires=time.time() + ttl_s)
            )
        return res.rowcount == 1

    def release_lease(self, run_id: str, owner: str, error: str | None = None) -> None:
        """Give up ``owner``'s lease, recording why generation failed (``error``)."""
        with self._write() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None, generation_error=error)
            )

    def add_batch(self, run_id: str, owner: str, records: list[dict[str, Any]]) -> list[int]:
        """Store a generated batch under ids allocated from the run's counter and release the
        lease, if ``owner`` still holds it; returns the new ids ([] when the lease was lost:
        the batch is discarded)."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                sa.select(runs.c.lease_owner, runs.c.next_trial_id)
                .where(runs.c.run_id == run_id)
                .with_for_update()
            ).first()
            if row is None or row.lease_owner != owner:
                return []
            first = int(row.next_trial_id)
            ids = list(range(first, first + len(records)))
            rows = [
                trial_row(run_id, {**t, "trial_id": tid, "status": "pending"}, now)
                for tid, t in zip(ids, records, strict=True)
            ]
            if rows:
                conn.execute(trials.insert(), rows)
            conn.execute(
                bump(
                    run_id,
                    next_trial_id=first + len(records),
                    batches=runs.c.batches + 1,
                    lease_owner=None,
                    lease_expires=None,
                    generation_error=None,
                )
            )
        return ids


def _replay(key: str, seen: Any, body_sha256: str) -> dict[str, Any]:
    from pex_tuner.errors import ResultConflictError

    if seen.body_sha256 != body_sha256:
        raise ResultConflictError(
            f"Idempotency-Key '{key}' was already used for a different report; use a new key "
            "for a new report"
        )
    return {**json.loads(seen.response), "changed": False}
