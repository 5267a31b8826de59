"""The Command Center's ASGI app and server: the API, its OpenAPI document, the console pages
and their static files, on one address of their own (loopback by default)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from claresia_sync.center.api import ApiError, api_routes, error_response
from claresia_sync.center.auth import Tokens
from claresia_sync.center.console import console_routes
from claresia_sync.center.context import Center
from claresia_sync.config import Settings
from claresia_sync.daemon.ops import OpsServer
from claresia_sync.daemon.service import bind_port
from claresia_sync.errors import UserError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Pages load nothing from elsewhere (no CDN: the console works offline) and run no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


def center_app(center: Center) -> Starlette:
    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if request.url.path.startswith("/api/"):
            code = "not_found" if status == 404 else "method_not_allowed"
            return error_response(ApiError(status, code, f"{request.method} {request.url.path}"))
        return Response("not found", status_code=status, media_type="text/plain")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("command center: %s %s failed", request.method, request.url.path)
        return error_response(ApiError(500, "internal", "an internal error; see the daemon log"))

    return Starlette(
        routes=[
            *api_routes(center),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            *console_routes(center),
        ],
        middleware=[Middleware(_SecurityHeaders)],
        exception_handlers={404: not_found, 405: not_found, 500: crashed},
    )


def make_center(engine: Engine, settings: Settings) -> Center:
    return Center(engine, settings, Tokens(settings.center_token_specs))


def bind(host: str, port: int) -> socket.socket:
    """The Command Center's socket, bound now so a taken port is one clear error."""
    return bind_port(host, port, "the Command Center", "CLARESIA_CENTER_PORT")


@contextlib.asynccontextmanager
async def serving(center: Center, sock: socket.socket) -> AsyncIterator[int]:
    """Serve the Command Center on `sock` for the block (the daemon's event loop); its port."""
    config = uvicorn.Config(
        center_app(center),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=30,  # browsers and clients reuse connections; 5 s races them
    )
    server = OpsServer(config)  # no signal handling of its own: the process owns SIGTERM
    task = asyncio.create_task(server.serve(sockets=[sock]), name="command-center")
    host, port = sock.getsockname()[:2]
    log.info("Command Center on http://%s:%s/ (OpenAPI: /api/v1/openapi.json)", host, port)
    try:
        yield int(port)
    finally:
        server.should_exit = True
        await task


async def with_center(engine: Engine, settings: Settings, work: Awaitable[None]) -> None:
    """Run `work` (the daemon) with the Command Center beside it when tokens are configured."""
    if not settings.center_token_specs:
        log.info("Command Center off: no CLARESIA_CENTER_TOKENS")
        await work
        return
    sock = bind(settings.center_host, settings.center_port)
    async with serving(make_center(engine, settings), sock):
        await work


async def serve_alone(engine: Engine, settings: Settings) -> None:
    """`claresia-sync center`: the Command Center without the daemon's work, until SIGTERM."""
    if not settings.center_token_specs:
        raise UserError(
            "no Command Center token: set CLARESIA_CENTER_TOKENS to NAME:ROLE:REF,... "
            "(e.g. alice:operator:env:CLARESIA_CENTER_TOKEN_ALICE)"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sock = bind(settings.center_host, settings.center_port)
    async with serving(make_center(engine, settings), sock):
        await stop.wait()
