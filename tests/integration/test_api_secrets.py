"""A canary admin key must never reach a log line (ours or httpx2's/httpcore2's at DEBUG), an
exception's text, repr or traceback, or a repr of the client or its results."""

from __future__ import annotations

import logging
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable

import pytest

from claresia_sync.api import APIError, OrgClient, collect
from claresia_sync.emulator import EmulatorServer
from claresia_sync.secrets import AdminKey
from tests.fixtures.emulator import DAINESE_ORG, set_faults, skill_payload

pytestmark = pytest.mark.anyio


def _texts_of(exc: BaseException) -> list[str]:
    """str, repr and formatted traceback of an exception and of everything chained to it."""
    out = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return out


async def test_canary_key_never_leaks(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"sk-ant-admin01-CANARY-{uuid.uuid4().hex}"
    unknown = f"sk-ant-admin01-CANARY-{uuid.uuid4().hex}"
    emulator.state.add_admin_key(DAINESE_ORG, canary, scopes=["skills:read"])
    for name in ("", "httpx2", "httpcore2", "aiohttp", "claresia_sync"):
        caplog.set_level(logging.DEBUG, logger=name)

    texts: list[str] = []
    key = AdminKey(canary, "env:CANARY")
    async with OrgClient(emulator.base_url, key, max_attempts=2, backoff=0.001) as client:
        texts += [repr(client), str(client), repr(key), str(key)]
        org = await client.get_organization()  # the key did reach the server
        texts += [repr(org), repr(await collect(client.list_skills(DAINESE_ORG)))]
        set_faults(emulator, script=[503, 503, "reset", "reset"])
        calls: list[Callable[[], Awaitable[object]]] = [
            client.get_organization,  # 503 twice: retried, logged, then raised
            client.get_organization,  # a reset connection, twice
            lambda: client.create_skill(DAINESE_ORG, skill_payload()),  # 403 missing scope
            lambda: collect(client.list_workspaces()),  # 403 missing scope
            lambda: client.get_skill(DAINESE_ORG, "skill_01nope"),  # 404
        ]
        for call in calls:
            with pytest.raises(APIError) as failed:
                await call()
            texts += _texts_of(failed.value)
        texts += [repr(client.calls.samples())]
    async with OrgClient(emulator.base_url, AdminKey(unknown, "env:X"), max_attempts=1) as other:
        with pytest.raises(APIError) as refused:
            await other.get_organization()  # 401
        texts += _texts_of(refused.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with OrgClient(dead, key, max_attempts=2, backoff=0.001) as nowhere:
        with pytest.raises(APIError) as unreachable:
            await nowhere.get_organization()
        texts += _texts_of(unreachable.value)

    assert org.id == DAINESE_ORG
    # DEBUG logging was really on: httpx2 logs each request (aiohttp, under it, says little).
    assert any(r.name.startswith("httpx2") for r in caplog.records)
    assert any("retrying" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "".join(
        str(r.args) + str(r.__dict__) + r.getMessage() for r in caplog.records
    )
    for secret in (canary, unknown):
        assert secret not in logged
        assert secret[-12:] not in logged  # not even a long tail of it
        leaks = [t for t in texts if secret in t]
        assert leaks == []
    assert str(key) == f"…{canary[-4:]}"
