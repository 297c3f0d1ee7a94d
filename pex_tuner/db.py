"""Database engines: SQLite by default, PostgreSQL (or any SQLAlchemy URL) for production.

One place opens engines for saved tuners and for the online service, so both get the same
error for a bad URL and the same SQLite settings.
"""

from __future__ import annotations

from typing import Any

from pex_tuner.errors import InputDataError

__all__ = ["open_engine"]


def open_engine(url: str, *, concurrent: bool = False) -> Any:
    """A SQLAlchemy engine for ``url``; InputDataError naming the URL when it cannot be opened.

    ``concurrent=True`` (the online service) makes SQLite usable from many threads: WAL (readers
    never block the writer), ``synchronous=FULL`` (a committed transaction survives a crash of
    the process and of the machine) and a 30 s busy timeout; other databases get a larger pool.
    """
    import sqlalchemy as sa

    try:
        if not concurrent:
            return sa.create_engine(url)
        if not url.startswith("sqlite"):
            return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InputDataError(f"cannot open database URL '{url}': {exc}") from exc

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _: Any) -> None:  # pragma: no cover - driver hook
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine
