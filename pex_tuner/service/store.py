"""Durable storage of online tuning runs (SQLAlchemy Core: SQLite by default, PostgreSQL by URL).

The database is the source of truth; the service's in-memory tuners and Ax models are caches
rebuilt from it after a restart. Every change the service acknowledges is committed before the
response is sent: a server killed with SIGKILL loses nothing it answered for.

Tables::

    pex_online_runs     run_id, created_at, tuner_dir, config (OnlineTuner.config_state JSON),
                        launch (JSON or NULL)
    pex_online_trials   (run_id, trial_id), parameters, source, status, metrics, offline (JSON),
                        issued_at, poller, updated_at
    pex_online_reports  (run_id, idempotency_key), trial_id, body_sha256, response, received_at
    pex_online_models   sha256, data (the CATE model file the run's policies act on)

Issuing a pending trial is a conditional update (``... WHERE status = 'pending'``) whose row
count says whether this caller got it, so two pollers, even in two processes, never receive the
same trial.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from pex_tuner.db import open_engine

__all__ = ["DEFAULT_URL", "Store"]

DEFAULT_URL = "sqlite:///pex_tuner_service.db"

metadata = sa.MetaData()
runs = sa.Table(
    "pex_online_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("tuner_dir", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("launch", sa.Text, nullable=True),
)
trials = sa.Table(
    "pex_online_trials",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("pex_online_runs.run_id"), primary_key=True),
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("offline", sa.Text, nullable=False),
    sa.Column("issued_at", sa.Float, nullable=True),
    sa.Column("poller", sa.String(200), nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)
reports = sa.Table(
    "pex_online_reports",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("trial_id", sa.Integer, nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)
models = sa.Table(
    "pex_online_models",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def _trial_row(run_id: str, t: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "trial_id": int(t["trial_id"]),
        "parameters": json.dumps(t["parameters"]),
        "source": str(t["source"]),
        "status": t["status"],
        "metrics": json.dumps(t["metrics"]),
        "offline": json.dumps(t["offline"]),
        "issued_at": t.get("issued_at"),
        "poller": t.get("poller"),
        "updated_at": now,
    }


def _trial_record(row: Any) -> dict[str, Any]:
    return {
        "trial_id": int(row.trial_id),
        "parameters": json.loads(row.parameters),
        "source": row.source,
        "status": row.status,
        "metrics": json.loads(row.metrics),
        "offline": json.loads(row.offline),
        "issued_at": row.issued_at,
        "poller": row.poller,
    }


class Store:
    """Runs, trials and idempotent reports in a SQL database.

    Args:
        url: SQLAlchemy URL (``sqlite:///FILE`` by default; ``postgresql+psycopg://...``).
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine = open_engine(url, concurrent=True)
        metadata.create_all(self.engine)

    def dispose(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

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
        with self.engine.begin() as conn:
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
                )
            )
            rows = [_trial_row(run_id, t, now) for t in trial_records]
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
        }

    def set_launch(self, run_id: str, launch: dict[str, Any]) -> None:
        """Record the run's launch document."""
        with self.engine.begin() as conn:
            conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(launch=json.dumps(launch))
            )

    def model_bytes(self, sha256: str) -> bytes | None:
        """The stored model file with this SHA-256, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models.c.data).where(models.c.sha256 == sha256)).first()
        return None if row is None else bytes(row.data)

    # ------------------------------------------------------------------ trials
    def trials(self, run_id: str) -> list[dict[str, Any]]:
        """The run's trial records, by trial id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(trials).where(trials.c.run_id == run_id).order_by(trials.c.trial_id)
            )
            return [_trial_record(r) for r in rows]

    def add_trials(self, run_id: str, records: Iterable[dict[str, Any]]) -> None:
        """Insert newly generated trials."""
        now = time.time()
        rows = [_trial_row(run_id, t, now) for t in records]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(trials.insert(), rows)

    def claim(self, run_id: str, trial_ids: Iterable[int], poller: str | None) -> list[int]:
        """Issue pending trials: returns the ids this caller got (conditional update)."""
        got: list[int] = []
        now = time.time()
        with self.engine.begin() as conn:
            for tid in trial_ids:
                res = conn.execute(
                    trials.update()
                    .where(
                        trials.c.run_id == run_id,
                        trials.c.trial_id == int(tid),
                        trials.c.status == "pending",
                    )
                    .values(status="running", issued_at=now, poller=poller, updated_at=now)
                )
                if res.rowcount == 1:
                    got.append(int(tid))
        return got

    def set_status(self, run_id: str, trial_id: int, status: str) -> None:
        """Set a trial's status."""
        with self.engine.begin() as conn:
            conn.execute(
                trials.update()
                .where(trials.c.run_id == run_id, trials.c.trial_id == int(trial_id))
                .values(status=status, updated_at=time.time())
            )

    # ------------------------------------------------------------------ reports
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

    def record_report(
        self,
        run_id: str,
        key: str,
        trial: dict[str, Any],
        body_sha256: str,
        response: dict[str, Any],
    ) -> None:
        """Store the trial's merged metrics and status and the report, in one transaction."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                trials.update()
                .where(trials.c.run_id == run_id, trials.c.trial_id == int(trial["trial_id"]))
                .values(
                    metrics=json.dumps(trial["metrics"]), status=trial["status"], updated_at=now
                )
            )
            conn.execute(
                reports.insert().values(
                    run_id=run_id,
                    idempotency_key=key,
                    trial_id=int(trial["trial_id"]),
                    body_sha256=body_sha256,
                    response=json.dumps(response),
                    received_at=now,
                )
            )
