"""Request bodies are read as JSON whatever their ``Content-Type`` header says.

``curl -d '{...}'`` sends ``Content-Type: application/x-www-form-urlencoded``, and many clients
send no content type at all. FastAPI parses a body as JSON only under a JSON content type (and,
since 0.132, never without one), so such requests failed validation with a 422 that did not say
what was wrong. Here:

- :class:`JSONBodyRoute` (the router's route class) reads a body sent under another content type,
  or none, as JSON when it is valid JSON, and marks it when it is not;
- :func:`require_json_body` (a dependency placed after ``auth``) answers such a marked request
  with 415 and a message naming the header to send.

A body sent as ``application/json`` that does not parse, or JSON that fails validation, is still
a 422. Reading JSON without the header opens no cross-site request forgery hole of the kind
FastAPI's strict check guards against: every endpoint with a body needs a bearer token, and a
browser cannot attach an ``Authorization`` header without a CORS preflight.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

__all__ = ["JSON_TYPE", "JSONBodyRoute", "as_json_request", "is_json_type", "require_json_body"]

JSON_TYPE = "application/json"
#: Request-scope key: how a body that is not JSON was sent (set by JSONBodyRoute).
NOT_JSON = "pex_tuner.body_not_json"
_UNSUPPORTED = (
    f"the request body is not valid JSON; send a JSON object with the header "
    f"'Content-Type: {JSON_TYPE}'"
)


def is_json_type(content_type: str | None) -> bool:
    """Whether a Content-Type header value names JSON (``application/json``, ``...+json``)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime == JSON_TYPE or (mime.startswith("application/") and mime.endswith("+json"))


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the parser
        return False
    return True


async def as_json_request(request: Request) -> Request:
    """The request, with its content type set to JSON when its body is JSON sent under another
    content type (or none); a body that is not JSON is marked for :func:`require_json_body`."""
    content_type = request.headers.get("content-type")
    if is_json_type(content_type):
        return request
    body = await request.body()
    if not body:
        return request
    if not _parses(body):
        request.scope[NOT_JSON] = f"as {content_type!r}" if content_type else "with no Content-Type"
        return request
    scope = dict(request.scope)
    scope["headers"] = [
        (k, v) for k, v in request.scope["headers"] if k.lower() != b"content-type"
    ] + [(b"content-type", JSON_TYPE.encode())]
    rewritten = Request(scope, request.receive)
    rewritten._body = body  # already read from the stream (as FastAPI's custom-request docs do)
    return rewritten


class JSONBodyRoute(APIRoute):
    """An APIRoute whose body is read as JSON whatever its content type (see the module
    docstring); its OpenAPI operation documents the 415 answer."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            self.responses = {**self.responses, 415: {"description": _UNSUPPORTED}}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def read_json_body(request: Request) -> Response:
            return await handler(await as_json_request(request))

        return read_json_body


async def require_json_body(request: Request) -> None:
    """Dependency: 415 for a body that is not JSON and was not sent as JSON (after auth, so an
    unauthenticated request is still a 401)."""
    sent = request.scope.get(NOT_JSON)
    if sent is not None:
        raise HTTPException(415, f"{_UNSUPPORTED} (it was sent {sent})")
