"""The daemon's operations endpoints: /healthz, /readyz, /metrics (Starlette on uvicorn).

They share the daemon's event loop, so a loop that is stuck stops answering /healthz too, which is
what a liveness probe should see.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from claresia_sync.daemon.metrics import Metrics

READY_DB_WITHIN = 30.0  # seconds: how recent the last good database check must be


@dataclass
class Health:
    """What the probes report; the daemon updates it."""

    replica: str
    started_at: float = field(default_factory=time.monotonic)
    draining: bool = False
    db_ok_at: float | None = None
    db_error: str | None = None
    api_errors: dict[str, str] = field(
        default_factory=dict
    )  # org_id -> last error, cleared on success

    def db_ok(self) -> None:
        self.db_ok_at, self.db_error = time.monotonic(), None

    def db_failed(self, reason: str) -> None:
        self.db_error = reason

    def readiness(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining: shutting down"
        if (
            self.db_error is not None
            or self.db_ok_at is None
            or time.monotonic() - self.db_ok_at > READY_DB_WITHIN
        ):
            return False, f"database unavailable: {self.db_error or 'not checked yet'}"
        return True, "ok"


def ops_app(health: Health, metrics: Metrics) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "replica": health.replica})

    async def readyz(_: Request) -> Response:
        ready, reason = health.readiness()
        body = {
            "ready": ready,
            "reason": reason,
            "replica": health.replica,
            "api_errors": health.api_errors,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )


class OpsServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def ops_server(health: Health, metrics: Metrics, host: str, port: int) -> OpsServer:
    config = uvicorn.Config(
        ops_app(health, metrics),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    return OpsServer(config)
