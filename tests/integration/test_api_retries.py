"""Retries under injected faults: retryable statuses, resets and timeouts are retried with
backoff or the server's retry-after-ms / retry-after, a bounded number of times; other 4xx never
are; a write that may have been acted on is not sent again. One transport under both clients:
`OrgClient` and the SDK targets' `SdkCaller` (observed by the emulator's call counts, the waits
asked for and the transport's log lines, not by the transport's internals)."""

from __future__ import annotations

import logging
import socket

import httpx2
import pytest

from claresia_sync.api import (
    APIConnectionError,
    APITimeoutError,
    InternalServerError,
    OrgClient,
    OverloadedError,
    RateLimitError,
    UnexpectedResponseError,
    collect,
    make_http_pool,
)
from claresia_sync.api.call_metrics import API_CALLS
from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.sdk import SdkCaller, SdkFailure
from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish import targets  # noqa: F401  (registers the kinds an SdkCaller opens)
from tests.fixtures.emulator import (
    ACME_KEY,
    DAINESE_ORG,
    RecordedSleeps,
    admin_key,
    api_client,
    set_faults,
    skill_payload,
)
from tests.fixtures.real_api import ENTERPRISE_KEY
from tests.fixtures.real_api import plugin_files as files

pytestmark = pytest.mark.anyio

ME = "/v1/organizations/me"


async def test_two_503s_and_a_429_still_succeed(emulator: EmulatorServer) -> None:
    set_faults(emulator, script=[503, 503, 429], retry_after_s=7)
    client, sleeps = api_client(emulator, backoff=0.5, backoff_max=4)
    async with client:
        org = await client.get_organization()
    assert org.id == DAINESE_ORG
    assert [emulator.stats.count(route=ME, status=s) for s in (503, 429, 200)] == [2, 1, 1]
    assert len(sleeps) == 3
    assert all(0 <= s <= 4 for s in sleeps[:2])  # jittered exponential backoff, capped
    assert sleeps[2] == 7  # the 429's retry-after, honoured
    assert {(s["status"], n) for s, n in client.calls.samples()} == {
        ("503", 2),
        ("429", 1),
        ("200", 1),
    }


async def test_401_fails_at_once_without_retries(emulator: EmulatorServer) -> None:
    client, sleeps = api_client(emulator, "sk-ant-admin01-wrong-00000000000000000000000000000")
    async with client:
        with pytest.raises(Exception) as refused:
            await client.get_organization()
    assert refused.value.status == 401  # type: ignore[attr-defined]
    assert sleeps == [] and emulator.stats.count(route=ME) == 1


async def test_attempts_are_bounded(emulator: EmulatorServer) -> None:
    set_faults(emulator, script=[503] * 10)
    client, sleeps = api_client(emulator, max_attempts=3)
    async with client:
        with pytest.raises(InternalServerError) as failed:
            await client.get_organization()
    assert failed.value.status == 503 and failed.value.request_id
    assert emulator.stats.count(route=ME) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(429, RateLimitError), (529, OverloadedError), (500, InternalServerError)]
)
async def test_each_retryable_status_maps_to_its_error(
    emulator: EmulatorServer, status: int, error: type[Exception]
) -> None:
    set_faults(emulator, script=[status] * 2, retry_after_s=3)
    client, sleeps = api_client(emulator, max_attempts=2)
    async with client:
        with pytest.raises(error) as failed:
            await client.get_organization()
    assert failed.value.status == status  # type: ignore[attr-defined]
    if status == 429:
        assert failed.value.retry_after == 3  # type: ignore[attr-defined]
        assert sleeps == [3]


async def test_connection_reset_is_retried(emulator: EmulatorServer) -> None:
    set_faults(emulator, script=["reset", "reset"])
    client, sleeps = api_client(emulator)
    async with client:
        workspaces = await collect(client.list_workspaces())
    assert len(workspaces) == 3 and len(sleeps) == 2
    assert dict((s["status"], n) for s, n in client.calls.samples()) == {
        "connection_error": 2,
        "200": 1,
    }


async def test_read_timeout_is_retried(emulator: EmulatorServer) -> None:
    set_faults(emulator, script=["timeout"], timeout_s=30)
    client, sleeps = api_client(emulator, timeout=0.5)
    async with client:
        org = await client.get_organization()
    assert org.id == DAINESE_ORG and len(sleeps) == 1
    assert ("timeout", 1) in {(s["status"], n) for s, n in client.calls.samples()}


async def test_timeouts_exhausted_raise_timeout_error(emulator: EmulatorServer) -> None:
    set_faults(emulator, script=["timeout", "timeout"], timeout_s=30)
    client, _ = api_client(emulator, timeout=0.3, max_attempts=2)
    async with client:
        with pytest.raises(APITimeoutError) as failed:
            await client.get_organization()
    assert failed.value.status == 0 and "timeout" in failed.value.type


async def test_refused_connection_raises_connection_error() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []

    async def record(s: float) -> None:
        sleeps.append(s)

    async with OrgClient(
        f"http://127.0.0.1:{port}", admin_key(), max_attempts=2, sleep=record
    ) as client:
        with pytest.raises(APIConnectionError) as failed:
            await client.get_organization()
    assert "cannot reach" in failed.value.hint and len(sleeps) == 1


async def test_write_retried_after_503_creates_once(emulator: EmulatorServer) -> None:
    set_faults(emulator, script=[503], routes=["POST /v1/organizations/{org_id}/skills"])
    client, sleeps = api_client(emulator)
    async with client:
        await client.get_organization()  # not a faulted route: the script waits for the POST
        skill = await client.create_skill(DAINESE_ORG, skill_payload())
        listed = await collect(client.list_skills(DAINESE_ORG))
    assert [s.id for s in listed] == [skill.id] and len(sleeps) == 1


async def test_rate_limit_per_key(emulator: EmulatorServer) -> None:
    set_faults(emulator, rate_limit_rps=0.01)  # a burst of one, then one per 100 s
    limited, _ = api_client(emulator, max_attempts=1)
    other, _ = api_client(emulator, ACME_KEY)
    async with limited, other:
        await limited.get_organization()
        with pytest.raises(RateLimitError) as refused:
            await limited.get_organization()
        await other.get_organization()  # another key has its own bucket
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1


async def test_retry_after_ms_is_read_before_retry_after(emulator: EmulatorServer) -> None:
    """As the official SDK reads them: `retry-after-ms` first, `retry-after` only without it."""
    set_faults(emulator, script=[429, 429], retry_after_s=7, retry_after_ms=250)
    client, sleeps = api_client(emulator)
    async with client:
        assert (await client.get_organization()).id == DAINESE_ORG
    assert sleeps == [0.25, 0.25]
    assert [emulator.stats.count(route=ME, status=s) for s in (429, 200)] == [2, 1]


# The SDK targets' caller (api/sdk.py): the same policy over the official SDK.
PLUGINS = "/v1/organizations/plugins"
SETTING = PLUGINS + "/{plugin_id}/installation_settings/{target}"


def sdk_caller(
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    http: httpx2.AsyncClient | None = None,
) -> tuple[SdkCaller, RecordedSleeps]:
    monkeypatch.setenv("T_ENTERPRISE_KEY", ENTERPRISE_KEY)
    conn = TenantConnection(
        "ferretti",
        "ferretti",
        "org_ferretti",
        "env:T_ENTERPRISE_KEY",
        emulator.base_url,
        target="claude-enterprise",
    )
    sleeps = RecordedSleeps()
    return SdkCaller(conn, http=http, counter=None, hints=lambda *_: "", sleep=sleeps), sleeps


async def test_the_sdk_caller_waits_retry_after_ms_first(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller, sleeps = sdk_caller(emulator, monkeypatch)
    plugins = caller.sdk.beta.organization.plugins
    set_faults(emulator, script=[429], retry_after_s=30, retry_after_ms=250)
    await caller.call("GET", PLUGINS, "GET", lambda: plugins.list())
    assert sleeps == [0.25]
    assert [emulator.stats.count("GET", PLUGINS, s) for s in (429, 200)] == [1, 1]

    # A busy setting write (503, x-should-retry: true) that says when, in milliseconds.
    plugin = await caller.call("POST", PLUGINS, "POST", lambda: plugins.create(files=files()))
    set_faults(
        emulator, script=["settings_busy"], code_headers={"settings_busy": {"retry-after-ms": "80"}}
    )
    await caller.call(
        "POST",
        SETTING,
        "POST",
        lambda: plugins.installation_settings.set(
            "organization", plugin_id=plugin.id, installation_preference="required"
        ),
    )
    assert sleeps == [0.25, 0.08]
    assert [emulator.stats.count("POST", SETTING, s) for s in (503, 200)] == [1, 1]
    await caller.aclose()


async def test_the_sdk_caller_never_retries_registration_pending(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the 503 says: the SDK's docstring forbids creating the stored plugin again."""
    caller, sleeps = sdk_caller(emulator, monkeypatch)
    plugins = caller.sdk.beta.organization.plugins
    set_faults(
        emulator,
        script=["registration_pending"],
        code_headers={"registration_pending": {"x-should-retry": "true", "retry-after-ms": "0"}},
    )
    with pytest.raises(SdkFailure) as pending:
        await caller.call("POST", PLUGINS, "POST", lambda: plugins.create(files=files()))
    assert pending.value.code == "registration_pending" and not pending.value.retryable
    assert sleeps == [] and emulator.stats.count("POST", PLUGINS) == 1
    await caller.aclose()


async def test_one_transport_retries_both_clients_and_counts_each_attempt(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One pool (`make_http_pool`) under an `OrgClient` and an SDK caller: a 429 with
    `retry-after-ms` is retried once for each by the pool's transport, which logs the retry
    and counts every attempt, in the process's count and in each client's own."""
    caplog.set_level(logging.WARNING, logger="claresia_sync.api.retry")
    before = {
        (r, s): API_CALLS.total(route=r, status=s) for r in (ME, PLUGINS) for s in ("429", "200")
    }
    async with make_http_pool() as pool:
        client = OrgClient(
            emulator.base_url, admin_key(), http=pool, sleep=(org_sleeps := RecordedSleeps())
        )
        caller, sdk_sleeps = sdk_caller(emulator, monkeypatch, http=pool)
        set_faults(emulator, script=[429], retry_after_s=30, retry_after_ms=250)
        assert (await client.get_organization()).id == DAINESE_ORG
        set_faults(emulator, script=[429], retry_after_s=30, retry_after_ms=250)
        plugins = caller.sdk.beta.organization.plugins
        await caller.call("GET", PLUGINS, "GET", lambda: plugins.list())
        await caller.aclose()  # a shared pool stays open
        await client.aclose()
        assert not pool.is_closed

    assert org_sleeps == [0.25] and sdk_sleeps == [0.25]
    for route, method in ((ME, "GET"), (PLUGINS, "GET")):
        assert [emulator.stats.count(method, route, s) for s in (429, 200)] == [1, 1]
        assert [
            API_CALLS.total(route=route, status=s) - before[(route, s)] for s in ("429", "200")
        ] == [1, 1]
    assert {(s["route"], s["status"], n) for s, n in client.calls.samples()} == {
        (ME, "429", 1),
        (ME, "200", 1),
    }
    assert {(s["route"], s["status"], n) for s, n in caller.counter.samples()} == {
        (PLUGINS, "429", 1),
        (PLUGINS, "200", 1),
    }
    retried = [r.getMessage() for r in caplog.records if r.name == "claresia_sync.api.retry"]
    assert [m.split(" (")[0] for m in retried] == [f"retrying GET {ME}", f"retrying GET {PLUGINS}"]
    assert all("attempt 2 of 5, in 0.25s) after HTTP 429" in m for m in retried), retried


CREATE = "POST /v1/organizations/{org_id}/skills"


async def test_a_write_that_may_have_been_acted_on_is_not_sent_again(
    emulator: EmulatorServer,
) -> None:
    """A create whose answer was lost (the write happened, a gateway answered 504) or whose
    connection was reset once sent is not posted again by the transport: one skill, one POST.
    One refused before any work (503) is (test_write_retried_after_503_creates_once)."""
    client, sleeps = api_client(emulator)
    async with client:
        set_faults(emulator, script=["lost"], routes=[CREATE])
        with pytest.raises(InternalServerError) as lost:
            await client.create_skill(DAINESE_ORG, skill_payload())
        set_faults(emulator, script=["reset"], routes=[CREATE])
        with pytest.raises(APIConnectionError):
            await client.create_skill(DAINESE_ORG, skill_payload("claresia-dainese-other"))
        listed = await collect(client.list_skills(DAINESE_ORG))
    assert lost.value.status == 504 and sleeps == []
    assert emulator.stats.count("POST", "/v1/organizations/{org_id}/skills") == 2
    assert [s.name for s in listed] == ["claresia-dainese-incident-postmortem"]


async def test_a_get_retried_for_its_body_shares_the_attempts_of_the_transport(
    emulator: EmulatorServer,
) -> None:
    """A 503 retried by the transport, then a 2xx that is not JSON: with 2 attempts in all the
    GET is not tried a third time (the client's retry of an unreadable answer counts the
    transport's attempts); with 3 it is, and succeeds."""
    for attempts, calls in ((2, 2), (3, 3)):
        emulator.stats.reset()
        set_faults(emulator, script=[503, "corrupt:not_json"])
        client, sleeps = api_client(emulator, max_attempts=attempts)
        async with client:
            if attempts == 2:
                with pytest.raises(UnexpectedResponseError, match="not JSON"):
                    await client.get_organization()
            else:
                assert (await client.get_organization()).id == DAINESE_ORG
        assert emulator.stats.count("GET", ME) == calls and len(sleeps) == calls - 1


async def test_a_proxy_of_the_environment_is_used_under_the_same_transport(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HTTP_PROXY` / `NO_PROXY` are read as httpx2 reads them, and a proxied request is retried
    and counted like any other: through a proxy that refuses, `localhost` fails after the
    retries (it would reach the emulator without the proxy); 127.0.0.1, in `NO_PROXY`, goes
    direct."""
    with socket.socket() as probe:  # a proxy that nothing listens on
        probe.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    port = emulator.base_url.rsplit(":", 1)[1]
    refused_before = API_CALLS.total(route=ME, status="connection_error")
    async with make_http_pool() as pool:
        direct, _ = api_client(emulator, http=pool)
        assert (await direct.get_organization()).id == DAINESE_ORG
        sleeps = RecordedSleeps()
        proxied = OrgClient(
            f"http://localhost:{port}", admin_key(), http=pool, max_attempts=3, sleep=sleeps
        )
        with pytest.raises(APIConnectionError):
            await proxied.get_organization()
    assert len(sleeps) == 2
    assert API_CALLS.total(route=ME, status="connection_error") - refused_before == 3
    assert {(s["status"], n) for s, n in proxied.calls.samples()} == {("connection_error", 3)}
