"""The service's tables (SQLAlchemy Core) and row helpers; see :mod:`pex_tuner.service.store`.

Also the SQLite setup the store needs (write transactions that ``BEGIN IMMEDIATE``) and the
migration that adds the columns of later releases to an older database.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

__all__ = [
    "WRITE",
    "add_new_columns",
    "bump",
    "immediate_writes",
    "metadata",
    "models",
    "reports",
    "runs",
    "status_counts",
    "trial_record",
    "trial_row",
    "trials",
]

WRITE = "pex_write"  # execution option: this transaction writes (BEGIN IMMEDIATE on SQLite)

metadata = sa.MetaData()
runs = sa.Table(
    "pex_online_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("tuner_dir", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("launch", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_trial_id", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires", sa.Float, nullable=True),
    sa.Column("generation_error", sa.Text, nullable=True),
    sa.Column("batches", sa.Integer, nullable=False, server_default="0"),
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
# columns added since the first release: (name, DDL type and default) for older databases
_NEW_RUN_COLUMNS = {
    "version": "INTEGER NOT NULL DEFAULT 0",
    "next_trial_id": "INTEGER NOT NULL DEFAULT 0",
    "lease_owner": "VARCHAR(200)",
    "lease_expires": "FLOAT",
    "generation_error": "TEXT",
    "batches": "INTEGER NOT NULL DEFAULT 0",
}


def trial_row(run_id: str, t: dict[str, Any], now: float) -> dict[str, Any]:
    """The row of a trial record (JSON columns encoded)."""
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


def trial_record(row: Any) -> dict[str, Any]:
    """The trial record of a row (JSON columns decoded)."""
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


def bump(run_id: str, **values: Any) -> Any:
    """UPDATE of the run that moves its version (every change to its trials does)."""
    return runs.update().where(runs.c.run_id == run_id).values(version=runs.c.version + 1, **values)


def status_counts(conn: Any, run_id: str) -> dict[str, int]:
    """Number of the run's trials per status (statuses without trials left out)."""
    rows = conn.execute(
        sa.select(trials.c.status, sa.func.count())
        .where(trials.c.run_id == run_id)
        .group_by(trials.c.status)
    )
    return {status: int(n) for status, n in rows}


def immediate_writes(engine: Any) -> None:
    """SQLite: let SQLAlchemy emit BEGIN itself, IMMEDIATE for write transactions, so a
    transaction that reads then writes takes the write lock first (never SQLITE_BUSY halfway)."""

    @sa.event.listens_for(engine, "connect")
    def _manual_begin(dbapi_conn: Any, _: Any) -> None:  # pragma: no cover - driver hook
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:  # pragma: no cover - driver hook
        write = conn.get_execution_options().get(WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def add_new_columns(conn: Any) -> None:
    """Bring a database made by an older release up to date (new run columns)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("pex_online_runs")}
    missing = [c for c in _NEW_RUN_COLUMNS if c not in have]
    for name in missing:
        conn.execute(
            sa.text(f"ALTER TABLE pex_online_runs ADD COLUMN {name} {_NEW_RUN_COLUMNS[name]}")
        )
    if "next_trial_id" in missing:
        conn.execute(
            sa.text(
                "UPDATE pex_online_runs SET next_trial_id = (SELECT COALESCE(MAX(t.trial_id) + 1, "
                "0) FROM pex_online_trials t WHERE t.run_id = pex_online_runs.run_id)"
            )
        )
