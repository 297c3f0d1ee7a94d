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

SQL: Ax's own tables (``ax.storage.sqa_store``) hold the experiment and generation strategy;
the table ``pex_tuner_state`` holds the rest, one row per tuner name. SQLite by default
(``sqlite:///pex_tuner.db``), PostgreSQL by URL.

Security note: the CATE model is pickled (joblib). Load only tuners you saved yourself.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pex_tuner.errors import InputDataError
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

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / "tuner.json").write_text(json.dumps(_state(tuner), indent=1))
        tuner.client.save_to_json_file(str(tmp / "ax_client.json"))
        joblib.dump(tuner.effects, tmp / "effects.joblib")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_directory(cls: Any, directory: str | os.PathLike[str], data: Any) -> Any:
    import joblib
    from ax.api.client import Client

    path = Path(directory)
    for f in ("tuner.json", "ax_client.json", "effects.joblib"):
        if not (path / f).exists():
            raise InputDataError(f"'{path}' is not a saved tuner: '{f}' is missing")
    state = json.loads((path / "tuner.json").read_text())
    tuner = _restore(cls, state, data, joblib.load(path / "effects.joblib"))
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
        sa.Column("effects", sa.LargeBinary, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )


def _init_ax_db(url: str) -> None:
    from ax.storage.sqa_store.db import (
        create_all_tables,
        get_engine,
        init_engine_and_session_factory,
    )

    init_engine_and_session_factory(url=url, force_init=True)
    create_all_tables(get_engine())


def save_database(tuner: Any, url: str) -> None:
    """Save the Ax experiment + generation strategy and the tuner state to ``url``."""
    import joblib
    import sqlalchemy as sa
    from ax.storage.sqa_store.save import save_experiment, save_generation_strategy

    from pex_tuner.tuning.tuner import _quiet_ax

    buf = io.BytesIO()
    joblib.dump(tuner.effects, buf)
    state = json.dumps(_state(tuner))
    with _quiet_ax():
        _init_ax_db(url)
        save_experiment(tuner.client._experiment)
        save_generation_strategy(tuner.client._generation_strategy)
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    table = _state_table(metadata)
    metadata.create_all(engine)
    name = tuner.config["name"]
    with engine.begin() as conn:  # one transaction: the row is replaced or left as it was
        conn.execute(table.delete().where(table.c.name == name))
        conn.execute(
            table.insert().values(
                name=name,
                version=STATE_VERSION,
                state=state,
                effects=buf.getvalue(),
                fingerprint=tuner.fingerprint,
            )
        )
    engine.dispose()


def load_database(cls: Any, url: str, name: str, data: Any) -> Any:
    import joblib
    import sqlalchemy as sa
    from ax.api.client import Client
    from ax.storage.sqa_store.load import (
        load_experiment,
        load_generation_strategy_by_experiment_name,
    )

    from pex_tuner.tuning.tuner import _quiet_ax

    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    table = _state_table(metadata)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.name == name)).first()
    except sa.exc.OperationalError as exc:
        raise InputDataError(f"no saved tuners in database '{url}' ({exc.orig})") from exc
    finally:
        engine.dispose()
    if row is None:
        raise InputDataError(f"no tuner named '{name}' in database '{url}'")
    state = json.loads(row.state)
    tuner = _restore(cls, state, data, joblib.load(io.BytesIO(row.effects)))
    with _quiet_ax():
        _init_ax_db(url)
        experiment = load_experiment(name)
        gs = load_generation_strategy_by_experiment_name(name, experiment=experiment)
        client = Client()
        client.set_experiment(experiment)
        client.set_generation_strategy(gs)
    tuner._client = client
    return tuner
