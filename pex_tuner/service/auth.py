"""Who may do what: bearer tokens with scopes, a per-token rate limit, and the runs root.

Scopes (each includes the ones before it)::

    read     GET a run, its Pareto frontier, calibration and model file
    report   poll next-batch, report results, mark trials failed / abandoned
    admin    create runs (POST /v1/runs) and launch policies

Tokens are configured as JSON, in a file (``--tokens-file`` / ``PEX_TUNER_TOKENS_FILE``) or in
the ``PEX_TUNER_TOKENS`` environment variable::

    {"tokens": [
      {"name": "pollers", "token": "s3cret", "scopes": ["report"], "rate_per_s": 50},
      {"name": "ops", "sha256": "<hex SHA-256 of the token>", "scopes": ["admin"]}
    ]}

``sha256`` keeps the secret itself out of the file. A token given the old way (``--token`` or
``PEX_TUNER_TOKEN``, comma-separated for several) has every scope. A missing or unknown token
is 401; a token without the scope an endpoint needs is 403. Presented tokens are hashed and
compared with every configured hash in constant time.

Rate limit: a token bucket per token and server process (``rate_per_s``, default
:data:`DEFAULT_RATE_PER_S`; ``burst``, default twice the rate; ``null`` for none). With N server
processes behind a load balancer a token gets up to N times the rate. Over the limit: 429 with
``Retry-After`` (whole seconds until a request would be accepted).

Runs root: ``POST /v1/runs`` reads a tuner directory on the server, so the operator names the
folder runs may come from (``--runs-root``); a relative ``tuner_dir`` is taken inside it, and a
path with ``..``, outside it, or leading out of it through a symlink is 403.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pex_tuner.errors import ConfigurationError

__all__ = [
    "DEFAULT_RATE_PER_S",
    "RUNS_ROOT_ENV",
    "SCOPES",
    "TOKENS_ENV",
    "TOKENS_FILE_ENV",
    "TOKEN_ENV",
    "RateLimiter",
    "Token",
    "check_tuner_dir",
    "find_token",
    "load_tokens",
]

#: Environment variables: plain token(s) with every scope; token JSON; a file of token JSON.
TOKEN_ENV = "PEX_TUNER_TOKEN"
TOKENS_ENV = "PEX_TUNER_TOKENS"
TOKENS_FILE_ENV = "PEX_TUNER_TOKENS_FILE"
RUNS_ROOT_ENV = "PEX_TUNER_RUNS_ROOT"
SCOPES = ("read", "report", "admin")
DEFAULT_RATE_PER_S = 200.0


@dataclass(frozen=True)
class Token:
    """A configured token: its name (for logs), SHA-256, scopes and rate limit."""

    name: str
    sha256: bytes
    scopes: frozenset[str]
    rate_per_s: float | None = DEFAULT_RATE_PER_S
    burst: float | None = None

    def allows(self, scope: str) -> bool:
        """Whether this token has ``scope`` (scopes include the ones below them)."""
        return any(SCOPES.index(s) >= SCOPES.index(scope) for s in self.scopes)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _entry(i: int, e: Any) -> Token:
    """A Token from one entry of the JSON configuration (ConfigurationError naming it)."""
    where = f"token entry {i}"
    if not isinstance(e, Mapping):
        raise ConfigurationError(f"{where} must be an object with 'token' or 'sha256', 'scopes'")
    unknown = sorted(set(e) - {"name", "token", "sha256", "scopes", "rate_per_s", "burst"})
    if unknown:
        raise ConfigurationError(f"{where} has unknown field(s) {unknown}")
    name = str(e.get("name") or f"token-{i}")
    if bool(e.get("token")) == bool(e.get("sha256")):
        raise ConfigurationError(f"{where} ('{name}') needs exactly one of 'token' and 'sha256'")
    try:
        digest = _digest(str(e["token"])) if e.get("token") else bytes.fromhex(e["sha256"])
    except (TypeError, ValueError):
        digest = b""
    if len(digest) != 32:
        raise ConfigurationError(f"{where} ('{name}'): 'sha256' must be 64 hex digits")
    scopes = e.get("scopes")
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= set(SCOPES):
        raise ConfigurationError(
            f"{where} ('{name}'): 'scopes' must be a non-empty list of {list(SCOPES)}; "
            f"got {scopes!r}"
        )
    rate = e.get("rate_per_s", DEFAULT_RATE_PER_S)
    burst = e.get("burst")
    for field, v in (("rate_per_s", rate), ("burst", burst)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            raise ConfigurationError(f"{where} ('{name}'): '{field}' must be > 0 or null")
    return Token(name, digest, frozenset(scopes), rate, burst)


def _parse_json(text: str, source: str) -> list[Token]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None
    entries = doc.get("tokens") if isinstance(doc, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(f'{source} must be {{"tokens": [{{...}}, ...]}}')
    return [_entry(i, e) for i, e in enumerate(entries)]


def load_tokens(
    tokens: Sequence[str] | str | Mapping[str, Any] | None = None,
    tokens_file: str | Path | None = None,
) -> list[Token]:
    """The configured tokens.

    Args:
        tokens: plain token(s) with every scope (a string, comma-separated for several, or a
            list), or the JSON configuration as a dict; default: the environment
            (``PEX_TUNER_TOKENS``, else ``PEX_TUNER_TOKEN``).
        tokens_file: a JSON configuration file; default ``PEX_TUNER_TOKENS_FILE``.

    Raises ConfigurationError when nothing is configured or the configuration is invalid.
    """
    out: list[Token] = []
    tokens_file = tokens_file or os.environ.get(TOKENS_FILE_ENV) or None
    if tokens_file is not None:
        path = Path(tokens_file)
        if not path.is_file():
            raise ConfigurationError(f"the tokens file '{path}' does not exist")
        out += _parse_json(path.read_text(encoding="utf-8"), f"the tokens file '{path}'")
    if isinstance(tokens, Mapping):
        out += _parse_json(json.dumps(tokens), "the token configuration")
        tokens = []
    elif tokens is None and os.environ.get(TOKENS_ENV):
        out += _parse_json(os.environ[TOKENS_ENV], TOKENS_ENV)
        tokens = []
    elif tokens is None:
        tokens = os.environ.get(TOKEN_ENV, "")
    if isinstance(tokens, str):
        tokens = tokens.split(",")
    plain = [t.strip() for t in tokens if t and t.strip()]
    out += [Token(f"token-{i}", _digest(t), frozenset(SCOPES)) for i, t in enumerate(plain)]
    if not out:
        raise ConfigurationError(
            f"the service needs a bearer token: pass --token or --tokens-file, or set "
            f"{TOKEN_ENV}, {TOKENS_ENV} or {TOKENS_FILE_ENV}"
        )
    return out


def find_token(presented: str, tokens: Sequence[Token]) -> Token | None:
    """The configured token equal to ``presented``: every configured hash is compared, in
    constant time, whatever matches."""
    digest = _digest(presented)
    found = None
    for t in tokens:
        if secrets.compare_digest(digest, t.sha256):
            found = t
    return found


class RateLimiter:
    """Token buckets per token name, in this process (see the module docstring)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens left, at)
        self._lock = threading.Lock()

    def retry_after(self, token: Token) -> int:
        """0 when ``token`` may make a request now (and counts it), else seconds to wait."""
        if token.rate_per_s is None:
            return 0
        burst = token.burst or 2 * token.rate_per_s
        now = time.monotonic()
        with self._lock:
            left, at = self._buckets.get(token.name, (burst, now))
            left = min(burst, left + (now - at) * token.rate_per_s)
            if left >= 1:
                self._buckets[token.name] = (left - 1, now)
                return 0
            self._buckets[token.name] = (left, now)
        return max(1, math.ceil((1 - left) / token.rate_per_s))


def check_tuner_dir(tuner_dir: str, root: Path | None) -> Path:
    """The tuner directory to read, inside ``root`` (None: anywhere, for in-process use).

    Raises PermissionError with the reason for ``..``, a path outside the root, or a symlink
    leading out of it.
    """
    path = Path(tuner_dir)
    if root is None:
        return path
    if ".." in path.parts:
        raise PermissionError(f"'tuner_dir' may not contain '..'; got '{tuner_dir}'")
    root = root.resolve()
    full = path if path.is_absolute() else root / path
    if not full.is_relative_to(root):
        raise PermissionError(
            f"'tuner_dir' '{tuner_dir}' is outside the runs root of this server ('{root}'); "
            "give a path inside it (relative paths are taken inside it)"
        )
    if not full.resolve().is_relative_to(root):
        raise PermissionError(
            f"'tuner_dir' '{tuner_dir}' leads out of the runs root ('{root}') through a "
            "symbolic link"
        )
    return full
