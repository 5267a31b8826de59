"""Run the emulator with uvicorn: in a background thread (tests, benchmarks, `demo`) or in the
foreground (`claresia-sync emulator`).

The listening socket is bound before uvicorn starts, so port 0 works and `base_url` holds the
real port. uvicorn's HTTP protocol is subclassed only to publish each connection's transport to
the app (`CURRENT_TRANSPORT`), which lets the "connection reset" fault send a real TCP RST.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from claresia_sync.emulator.app import CURRENT_TRANSPORT, EmulatorApp, build_app
from claresia_sync.emulator.faults import CallStats, FaultConfig, Faults
from claresia_sync.emulator.state import EmulatorState, Seed

log = logging.getLogger(__name__)


def _protocol_class() -> type[asyncio.Protocol]:
    base: type[asyncio.Protocol]
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol

    class TransportAwareProtocol(base):  # type: ignore[valid-type,misc]
        def data_received(self, data: bytes) -> None:
            # The request task created below copies this context, and with it the transport.
            CURRENT_TRANSPORT.set(self.transport)
            super().data_received(data)

    return TransportAwareProtocol


class EmulatorServer:
    """`with EmulatorServer(seed) as srv: srv.base_url, srv.state, srv.faults, srv.stats`."""

    def __init__(
        self,
        seed: str | Path | Mapping[str, Any] | Seed,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.state = EmulatorState(seed)
        self.faults = Faults()
        self.stats = CallStats()
        self.app: EmulatorApp = build_app(self.state, self.faults, self.stats)
        self.host = host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app.asgi(),
                http=_protocol_class(),
                loop="auto",
                lifespan="off",
                log_level=log_level,
                access_log=False,
                timeout_graceful_shutdown=1,
                backlog=2048,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a daemon thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name=f"emulator:{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._sock.close()

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM (uvicorn installs the handlers)."""
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def reset(self) -> None:
        """Back to the seed, no faults, no stats (what `POST /_emulator/reset` does)."""
        self.state.reset()
        self.faults.clear()
        self.stats.reset()

    def set_faults(self, **config: Any) -> FaultConfig:
        cfg = FaultConfig.model_validate(config)
        self.faults.configure(cfg)
        return cfg

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
