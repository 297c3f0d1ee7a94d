"""The online service: an HTTP API (FastAPI) that online experiment systems poll for candidate
policies and report results to, with durable storage (SQLAlchemy: SQLite or PostgreSQL).

Nothing else in pex_tuner imports this package; FastAPI loads only when it is used.
"""

from pex_tuner.service.app import TOKEN_ENV, create_app
from pex_tuner.service.store import DEFAULT_URL, Store

__all__ = ["DEFAULT_URL", "TOKEN_ENV", "Store", "create_app"]
