"""The online service: an HTTP API (FastAPI) that online experiment systems poll for candidate
policies and report results to, with durable storage (SQLAlchemy: SQLite or PostgreSQL).

Modules: ``app`` (the ``create_app`` factory and the protocol), ``routes`` (the endpoints),
``schemas`` (request and response bodies), ``runs`` (run cache, generation worker), ``store``
(the database). Nothing else in pex_tuner imports this package; FastAPI loads only when it is
used.
"""

from pex_tuner.service.app import TOKEN_ENV, create_app
from pex_tuner.service.runs import RunCache
from pex_tuner.service.store import DEFAULT_URL, Store

__all__ = ["DEFAULT_URL", "TOKEN_ENV", "RunCache", "Store", "create_app"]
