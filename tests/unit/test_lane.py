"""The unit lane's guard holds: a connection attempt fails the test."""

from __future__ import annotations

import socket

import pytest

from tests.unit.conftest import NetworkUsed


def test_the_unit_lane_refuses_the_network() -> None:
    with pytest.raises(NetworkUsed), socket.socket() as s:
        s.connect(("127.0.0.1", 5432))
