"""The fast lane (issue 14): tests here need neither PostgreSQL nor sockets, and prove it: any
attempt to open a network connection fails the test. Client edge cases use an in-process ASGI
transport (httpx2.ASGITransport) instead of a server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

# Registers the `mutmut` Hypothesis profile before pytest's configure may load it.
from tests.unit import hypothesis_profiles  # noqa: F401


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkUsed(f"a unit test opened a network connection {args[1:] or ''}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield
