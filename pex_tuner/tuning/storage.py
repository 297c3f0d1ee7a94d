"""Saved tuners: a directory with JSON, or a row of a SQL database.

A saved tuner is three pieces (:class:`SavedTuner`): the tuner's own state (a JSON dict:
configuration, split, policy space, evaluation records, a fingerprint of the data), the Ax
client's JSON snapshot (experiment and generation strategy) and the fitted CATE model. This
module reads and writes the pieces; ``OfflineTuner.save`` / ``OfflineTuner.load`` make and
assemble them. Loading with different data is refused (:func:`check_state`). A reloaded tuner
continues generating where it stopped.

Directory layout (written to a temporary sibling and moved into place, so an interrupted save
never leaves a half-written directory)::

    DIR/tuner.json       configuration, split indices, space, records, fingerprint
    DIR/ax_client.json   Ax experiment + generation strategy (Ax's JSON store)
    DIR/effects.joblib   the fitted CateModel

SQL: one row per tuner name in the table ``pex_tuner_state`` (the same three pieces), written
in a single transaction. SQLite by default (``sqlite:///pex_tuner.db``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). The Ax experiment is stored as Ax's JSON: Ax's
relational SQL schema is MySQL/SQLite-only (it declares ``TEXT(4294967295)``, which PostgreSQL
rejects), while one JSON row works on every SQLAlchemy backend and is written atomically.

Security note: the CATE model is pickled (joblib). Load only tuners you saved yourself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pex_tuner.data import ExperimentData
from pex_tuner.db import open_engine
from pex_tuner.effects import fingerprint
from pex_tuner.errors import InputDataError
from pex_tuner.files import MODEL_FILE, atomic_directory

__all__ = [
    "AX_FILE",
    "STATE_FILE",
    "STATE_VERSION",
    "SavedTuner",
    "check_state",
    "data_fingerprint",
    "read_database",
    "read_directory",
    "read_offline_state",
    "write_database",
    "write_directory",
]

STATE_VERSION = 1
STATE_FILE = "tuner.json"
AX_FILE = "ax_client.json"
TABLE = "pex_tuner_state"


@dataclass(frozen=True)
class SavedTuner:
    """The pieces of a saved tuner: its state dict, the Ax client's JSON, the CATE model."""

    state: dict[str, Any]
    ax_json: str
    model: Any


def data_fingerprint(data: ExperimentData) -> str:
    """Hash of features, arms and outcomes: a saved tuner refuses different data."""
    h = hashlib.blake2b(digest_size=16)
    h.update(fingerprint(data.X, data.treatment).encode())
    h.update(np.ascontiguousarray(data.Y).tobytes())
    h.update(repr((data.arms, data.outcomes, data.directions)).encode())
    return h.hexdigest()


def check_state(state: dict[str, Any], data: ExperimentData) -> None:
    """Raise InputDataError unless ``state`` has this version and was saved with ``data``."""
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


# ---------------------------------------------------------------------------- directory
def write_directory(directory: str | os.PathLike[str], saved: SavedTuner) -> None:
    """Write the pieces to ``directory`` (replacing a previous save there atomically)."""
    import joblib

    with atomic_directory(directory) as tmp:
        (tmp / STATE_FILE).write_text(json.dumps(saved.state, indent=1))
        (tmp / AX_FILE).write_text(saved.ax_json)
        joblib.dump(saved.model, tmp / MODEL_FILE)


def read_directory(directory: str | os.PathLike[str]) -> SavedTuner:
    """The pieces saved in ``directory`` by :func:`write_directory`."""
    import joblib

    path = Path(directory)
    for f in (STATE_FILE, AX_FILE, MODEL_FILE):
        if not (path / f).exists():
            raise InputDataError(f"'{path}' is not a saved tuner: '{f}' is missing")
    return SavedTuner(
        state=json.loads((path / STATE_FILE).read_text()),
        ax_json=(path / AX_FILE).read_text(),
        model=joblib.load(path / MODEL_FILE),
    )


def read_offline_state(tuner_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The directory and state dict of a saved offline tuner, for an online run (which needs
    neither the data nor Ax's JSON). ``tuner_dir`` may also be the output folder of
    ``pex-tuner tune`` (the tuner is in its ``tuner`` folder)."""
    path = Path(tuner_dir)
    if (path / "tuner" / STATE_FILE).exists():  # the output folder of `pex-tuner tune`
        path = path / "tuner"
    for f in (STATE_FILE, MODEL_FILE):
        if not (path / f).exists():
            raise InputDataError(
                f"'{tuner_dir}' is not a saved offline tuner: '{f}' is missing (save one with "
                "OfflineTuner.save(DIR) or `pex-tuner tune --out DIR`)"
            )
    state = json.loads((path / STATE_FILE).read_text())
    for key in ("feature_schema", "reference_point"):
        if key not in state:
            raise InputDataError(
                f"the saved tuner in '{path}' predates online tuning (no '{key}'); load it with "
                "OfflineTuner.load(DIR, data) and save it again"
            )
    return path, state


# ---------------------------------------------------------------------------- SQL
def _state_table(metadata: Any) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        TABLE,
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("ax_client", sa.Text, nullable=False),
        sa.Column("effects", sa.LargeBinary, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )


def write_database(url: str, name: str, saved: SavedTuner) -> None:
    """Save the pieces as the row ``name`` of ``pex_tuner_state`` (replaced in one
    transaction; the table is created when missing)."""
    import datetime as dt

    import joblib
    import sqlalchemy as sa

    buf = io.BytesIO()
    joblib.dump(saved.model, buf)
    engine = open_engine(url)
    metadata = sa.MetaData()
    table = _state_table(metadata)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:  # the row is replaced, or left as it was
            conn.execute(table.delete().where(table.c.name == name))
            conn.execute(
                table.insert().values(
                    name=name,
                    version=STATE_VERSION,
                    state=json.dumps(saved.state),
                    ax_client=saved.ax_json,
                    effects=buf.getvalue(),
                    fingerprint=saved.state["fingerprint"],
                    saved_at=dt.datetime.now(dt.UTC),
                )
            )
    finally:
        engine.dispose()


def read_database(url: str, name: str) -> SavedTuner:
    """The pieces saved as the row ``name`` by :func:`write_database`."""
    import joblib
    import sqlalchemy as sa

    engine = open_engine(url)
    table = _state_table(sa.MetaData())
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE):
                raise InputDataError(f"no saved tuners in database '{url}'")
            row = conn.execute(sa.select(table).where(table.c.name == name)).first()
    finally:
        engine.dispose()
    if row is None:
        raise InputDataError(f"no tuner named '{name}' in database '{url}'")
    return SavedTuner(
        state=json.loads(row.state),
        ax_json=row.ax_client,
        model=joblib.load(io.BytesIO(row.effects)),
    )
