"""The online service: an HTTP API (FastAPI) that online experiment systems poll for candidate
policies and report results to, with durable storage (SQLAlchemy: SQLite or PostgreSQL).

Modules: ``app`` (the ``create_app`` factory and the protocol), ``routes`` (the endpoints),
``schemas`` (request and response bodies), ``auth`` (tokens, scopes, rate limit, runs root),
``observe`` (metrics, JSON logs, request ids), ``runs`` (run cache, generation pool and leases),
``store`` (the database, the only source of truth). Nothing else in pex_tuner imports this
package; FastAPI loads only when it is used.
"""

from pex_tuner.service.app import TOKEN_ENV, app_from_env, create_app
from pex_tuner.service.auth import SCOPES, load_tokens
from pex_tuner.service.runs import RunCache
from pex_tuner.service.store import DEFAULT_URL, Store

__all__ = [
    "DEFAULT_URL",
    "SCOPES",
    "TOKEN_ENV",
    "RunCache",
    "Store",
    "app_from_env",
    "create_app",
    "load_tokens",
]
