"""JSON answers and the error envelope of the emulator's routes:
`{"type":"error","error":{"type","message",...},"request_id"}` plus a `request-id` header (added
by the app's middleware) and the error's own headers (`x-should-retry`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from claresia_sync.emulator.common import EmulatorError, bad_request

RID = "emulator.request_id"  # scope key of the request id
Handler = Callable[[Request], Awaitable[Response]]


def request_key(headers: Mapping[str, str]) -> str | None:
    """The API key of a request: `x-api-key`, else an `Authorization: Bearer` token (the
    official SDK 2.14 sends its `api_key` so)."""
    value = headers.get("x-api-key")
    if value:
        return value
    auth = headers.get("authorization", "")
    return auth[7:] if auth[:7].lower() == "bearer " else None


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")


def error_body(status: int, error_type: str, message: str, request_id: str, **extra: Any) -> bytes:
    error = {"type": error_type, "message": message, **extra}
    return json.dumps(
        {"type": "error", "error": error, "request_id": request_id}, separators=(",", ":")
    ).encode()


def error_response(request: Request, exc: EmulatorError) -> Response:
    rid = request.scope.get(RID, "")
    body = error_body(exc.status, exc.error_type, exc.message, rid, **exc.extra)
    return Response(body, exc.status, headers=exc.headers, media_type="application/json")


def guard(fn: Handler) -> Handler:
    """A handler whose `EmulatorError`s become error answers."""

    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except EmulatorError as exc:
            return error_response(request, exc)

    wrapped.__name__ = fn.__name__
    return wrapped


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; 400 if it is not one."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body
