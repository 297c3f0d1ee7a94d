"""Saving and loading an OfflineTuner: a directory with JSON, or a SQL database.

A saved tuner holds the Ax experiment and generation-strategy state, the fitted CATE model,
the tuner's own state (configuration, split, policy space, evaluation records) and a fingerprint
of the data; loading it with different data is refused. A reloaded tuner continues generating
where it stopped.

Directory layout (written to a temporary sibling and moved into place, so an interrupted save
never leaves a half-written directory)::

    DIR/tuner.json       configuration, split indices, space, records, fingerprint
    DIR/ax_client.json   Ax experiment + generation strategy (Ax's JSON store)
    DIR/effects.joblib   the fitted CateModel

SQL: one row per tuner name in the table ``pex_tuner_state`` (the same three parts: state JSON,
Ax JSON, model bytes), written in a single transaction. SQLite by default
(``sqlite:///pex_tuner.db``), PostgreSQL by URL (``postgresql+psycopg://user@host/db``).

Security note: the CATE model is pickled (joblib). Load only tuners you saved yourself.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pex_tuner.db import open_engine
from pex_tuner.errors import InputDataError
from pex_tuner.files import MODEL_FILE, atomic_directory
from pex_tuner.tuning.space import PolicySpace

__all__ = ["load_database", "load_directory", "save_database", "save_directory"]

STATE_VERSION = 1


def _state(tuner: Any) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "config": tuner.config,
        "fingerprint": tuner.fingerprint,
        "split_indices": {k: v.tolist() for k, v in tuner.split_indices.items()},
        "space": tuner.space.to_dict(),
        # lets an online run (pex_tuner.tuning.online) write artifacts without the data
        "feature_schema": tuner.data.schema.to_dict(),
        "reference_point": [float(v) for v in tuner.reference_point],
        "guardrail_bounds": dict(tuner.guardrail_bounds),
        "records": tuner.records,
        "extra_arms": {
            name: p.to_dict() for name, p in tuner.extra_arms.items() if hasattr(p, "to_dict")
        },
    }


def _restore(cls: Any, state: dict[str, Any], data: Any, effects: Any) -> Any:
    from pex_tuner.tuning.tuner import data_fingerprint

    if state.get("version") != STATE_VERSION:
        raise InputDataError(
            f"saved tuner has state version {state.get('version')!r}; this pex-tuner reads "
            f"version {STATE_VERSION}"
        )
    if data_fingerprint(data) != state["fingerprint"]:
        raise InputDataError(
            "the experiment data differs from the data this tuner was saved with (fingerprint "
            "mismatch); load it with the same ExperimentData"
        )
    tuner = cls.__new__(cls)
    tuner.data = data
    tuner.config = state["config"]
    tuner.base_learner = None
    tuner.progress = None
    tuner.fingerprint = state["fingerprint"]
    tuner.split_indices = {
        k: np.asarray(v, dtype=np.int64) for k, v in state["split_indices"].items()
    }
    tuner.effects = effects
    tuner.records = state["records"]
    tuner.extra_arms = {}
    tuner._client = None
    tuner._setup()
    tuner.space = PolicySpace.from_dict(state["space"])
    for name, doc in state.get("extra_arms", {}).items():
        tuner.extra_arms[name] = _policy_from_dict(doc)
    return tuner


def _policy_from_dict(doc: dict[str, Any]) -> Any:
    from pex_tuner.policies.linear import LinearUtilityPolicy

    if doc.get("kind") == "linear_utility":
        return LinearUtilityPolicy.from_dict(doc)
    from pex_tuner.policies import load_policy_document

    return load_policy_document(doc)


# ---------------------------------------------------------------------------- directory
def save_directory(tuner: Any, directory: str | os.PathLike[str]) -> None:
    """Write the tuner to ``directory`` (replacing a previous save there atomically)."""
    import joblib

    with atomic_directory(directory) as tmp:
        (tmp / "tuner.json").write_text(json.dumps(_state(tuner), indent=1))
        tuner.client.save_to_json_file(str(tmp / "ax_client.json"))
        joblib.dump(tuner.effects, tmp / MODEL_FILE)


def load_directory(cls: Any, directory: str | os.PathLike[str], data: Any) -> Any:
    import joblib

    from pex_tuner.tuning.tuner import import_ax_quietly

    import_ax_quietly()
    from ax.api.client import Client

    path = Path(directory)
    for f in ("tuner.json", "ax_client.json", MODEL_FILE):
        if not (path / f).exists():
            raise InputDataError(f"'{path}' is not a saved tuner: '{f}' is missing")
    state = json.loads((path / "tuner.json").read_text())
    tuner = _restore(cls, state, data, joblib.load(path / MODEL_FILE))
    from pex_tuner.tuning.tuner import _quiet_ax

    with _quiet_ax():
        tuner._client = Client.load_from_json_file(str(path / "ax_client.json"))
    return tuner


# ---------------------------------------------------------------------------- SQL
def _state_table(metadata: Any) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        "pex_tuner_state",
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("ax_client", sa.Text, nullable=False),
        sa.Column("effects", sa.LargeBinary, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )


def save_database(tuner: Any, url: str) -> None:
    """Save the tuner as one row of ``pex_tuner_state`` (replaced in one transaction).

    The Ax experiment and generation strategy are stored as Ax's JSON: Ax's relational SQL
    schema is MySQL/SQLite-only (it declares ``TEXT(4294967295)``, which PostgreSQL rejects),
    while one JSON row works on every SQLAlchemy backend and is written atomically.
    """
    import datetime as dt

    import joblib

    buf = io.BytesIO()
    joblib.dump(tuner.effects, buf)
    with tempfile.TemporaryDirectory() as tmp:
        ax_path = Path(tmp) / "ax_client.json"
        tuner.client.save_to_json_file(str(ax_path))
        ax_json = ax_path.read_text()
    engine = open_engine(url)
    metadata = __import__("sqlalchemy").MetaData()
    table = _state_table(metadata)
    name = tuner.config["name"]
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:  # the row is replaced, or left as it was
            conn.execute(table.delete().where(table.c.name == name))
            conn.execute(
                table.insert().values(
                    name=name,
                    version=STATE_VERSION,
                    state=json.dumps(_state(tuner)),
                    ax_client=ax_json,
                    effects=buf.getvalue(),
                    fingerprint=tuner.fingerprint,
                    saved_at=dt.datetime.now(dt.UTC),
                )
            )
    finally:
        engine.dispose()


def load_database(cls: Any, url: str, name: str, data: Any) -> Any:
    import joblib
    import sqlalchemy as sa

    from pex_tuner.tuning.tuner import _quiet_ax, import_ax_quietly

    import_ax_quietly()
    from ax.api.client import Client

    engine = open_engine(url)
    table = _state_table(sa.MetaData())
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("pex_tuner_state"):
                raise InputDataError(f"no saved tuners in database '{url}'")
            row = conn.execute(sa.select(table).where(table.c.name == name)).first()
    finally:
        engine.dispose()
    if row is None:
        raise InputDataError(f"no tuner named '{name}' in database '{url}'")
    tuner = _restore(cls, json.loads(row.state), data, joblib.load(io.BytesIO(row.effects)))
    with tempfile.TemporaryDirectory() as tmp, _quiet_ax():
        ax_path = Path(tmp) / "ax_client.json"
        ax_path.write_text(row.ax_client)
        tuner._client = Client.load_from_json_file(str(ax_path))
    return tuner
