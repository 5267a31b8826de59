"""Bad input at the API door (issue 8): 200 answers that are truncated, not JSON, of the wrong
types, missing fields, huge, or with a lying cursor. The real client, poller, publisher and
daemon against the emulator's corrupt-answer faults: a clear error naming the call, nothing past
the checkpoint that is not stored, malformed events quarantined with a reason, and convergence
(every event exactly once, no twin skill) once the faults clear."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from claresia_sync.api import OrgClient, UnexpectedResponseError, collect
from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.faults import AUDIT_ROUTE
from claresia_sync.telemetry.poller import PollResult, poll_once
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.emulator import DAINESE_KEY, DAINESE_ORG, admin_key, api_client, skill_payload
from tests.integration.test_chaos import generate_usage, publish_until_succeeded
from tests.integration.test_publish_e2e import catalog_and_tenants, publish
from tests.integration.test_telemetry_poller import ENG_SKILL, demo_tenants, publish_in_emulator

SKILLS = "/v1/organizations/{org_id}/skills"
CREATE = f"POST {SKILLS}"
AUDIT_PATH = f"GET /v1/organizations/{DAINESE_ORG}/audit_logs"
PAGE_MODES = ["truncated", "not_json", "huge_page", "bad_cursor"]
EVENT_MODES = ["wrong_types", "missing_fields"]
# What the error says, by mode, for a page of skills (page_size 5 of 30).
LIST_ERRORS = {
    "truncated": "not JSON (application/json",
    "not_json": "not JSON (text/html",
    "wrong_types": "does not match Page[Skill]: 6 problem(s)",  # 5 ids and has_more
    "missing_fields": "data",
    "huge_page": "the page holds 30 items but limit=5",
    "bad_cursor": "is not the id of the page's last item",
}


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def poll(engine: Engine, attempts: int = 1) -> PollResult:
    (result,) = asyncio.run(
        poll_once(
            engine,
            tenant="dainese",
            page_size=50,
            client_options={"max_attempts": attempts, "timeout": 10.0, "backoff": 0.001},
        )
    )
    return result


# -- the client -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", sorted(LIST_ERRORS))
async def test_a_corrupt_list_page_is_refused_naming_the_call(
    emulator: EmulatorServer, mode: str
) -> None:
    emulator.state.bulk_add_skills(DAINESE_ORG, [f"claresia-dainese-s{i:02}" for i in range(30)])
    emulator.set_faults(script=[f"corrupt:{mode}"])
    client, _ = api_client(emulator, max_attempts=1)
    async with client:
        with pytest.raises(UnexpectedResponseError) as caught:
            await collect(client.list_skills(DAINESE_ORG, page_size=5))
    message = str(caught.value)
    assert f"GET /v1/organizations/{DAINESE_ORG}/skills" in message
    assert LIST_ERRORS[mode] in message, message
    assert DAINESE_KEY not in message and DAINESE_KEY[-20:] not in repr(caught.value)
    assert "base_url" in caught.value.hint
    assert emulator.faults.corrupted[(mode, SKILLS)] == 1


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["truncated", "not_json", "wrong_types", "missing_fields"])
async def test_a_corrupt_get_is_retried_and_a_corrupt_write_is_not(
    emulator: EmulatorServer, mode: str
) -> None:
    client, sleeps = api_client(emulator, max_attempts=3)
    async with client:
        emulator.set_faults(script=[f"corrupt:{mode}"])
        org = await client.get_organization()
        assert org.id == DAINESE_ORG and len(sleeps) == 1  # one retry, then the real answer
        emulator.set_faults(script=[f"corrupt:{mode}"])
        with pytest.raises(UnexpectedResponseError, match=f"POST /v1/organizations/{DAINESE_ORG}"):
            await client.create_skill(DAINESE_ORG, skill_payload("claresia-dainese-one"))
        # The POST happened: the skill exists once and was not posted again.
        assert emulator.stats.count(method="POST") == 1
        names = [s.name for s in await collect(client.list_skills(DAINESE_ORG))]
    assert names == ["claresia-dainese-one"]


@pytest.mark.anyio
async def test_a_body_over_the_cap_is_refused_unread(emulator: EmulatorServer) -> None:
    emulator.set_faults(script=["corrupt:huge_page"], huge_body_bytes=2_000_000)
    client, _ = api_client(emulator, max_attempts=1, max_body_bytes=64 * 1024)
    async with client:
        with pytest.raises(UnexpectedResponseError, match="larger than max_body_bytes=65536"):
            await client.get_organization()
        assert (await client.get_organization()).id == DAINESE_ORG  # an ordinary answer fits
    with pytest.raises(ValueError, match="max_body_bytes"):
        OrgClient(emulator.base_url, admin_key(), max_body_bytes=0)


def test_emulator_fault_configuration_of_corrupt_answers(emulator: EmulatorServer) -> None:
    config = emulator.set_faults(rate_corrupt=0.5)
    assert set(config.corrupt_modes) == set(LIST_ERRORS)
    with pytest.raises(ValueError, match="corrupt_modes"):
        emulator.set_faults(rate_corrupt=0.5, corrupt_modes=["gibberish"])
    with pytest.raises(ValueError, match="script"):
        emulator.set_faults(script=["corrupt:gibberish"])


# -- the poller -------------------------------------------------------------------------------


@pytest.fixture
def world(engine: Engine, emulator_env: EmulatorServer) -> EmulatorServer:
    demo_tenants(engine, emulator_env.base_url)
    publish_in_emulator(emulator_env)
    return emulator_env


@pytest.mark.parametrize("mode", PAGE_MODES)
def test_a_corrupt_audit_page_stops_the_poll_at_the_last_stored_page(
    engine: Engine, world: EmulatorServer, mode: str
) -> None:
    first, last = world.state.generate_invocations(DAINESE_ORG, 120, skill=ENG_SKILL, seed=3)
    world.set_faults(script=["pass", f"corrupt:{mode}"], routes=[AUDIT_ROUTE])
    failed = poll(engine)
    assert failed.error is not None and AUDIT_PATH in failed.error, failed.error
    assert failed.inserted == 50 and failed.pages == 1
    stored = scalar(engine, "SELECT max(event_id) FROM telemetry_event")
    checkpoint = "SELECT after_id FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == stored == failed.checkpoint
    assert (
        scalar(
            engine, "SELECT last_poll_status FROM audit_checkpoint WHERE org_id = :o", o=DAINESE_ORG
        )
        == "error"
    )

    world.set_faults()
    again = poll(engine)
    assert again.error is None and again.inserted == 70
    assert scalar(engine, "SELECT count(*) FROM telemetry_event") == 120
    assert scalar(engine, "SELECT count(DISTINCT event_id) FROM telemetry_event") == 120
    assert scalar(engine, "SELECT min(event_id) FROM telemetry_event") == first
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == last


@pytest.mark.parametrize("mode", PAGE_MODES)
def test_a_corrupt_audit_page_is_fetched_again(
    engine: Engine, world: EmulatorServer, mode: str
) -> None:
    world.state.generate_invocations(DAINESE_ORG, 120, skill=ENG_SKILL, seed=3)
    world.set_faults(script=["pass", f"corrupt:{mode}"], routes=[AUDIT_ROUTE])
    result = poll(engine, attempts=2)
    assert result.error is None and result.inserted == 120 and result.quarantined == 0
    assert scalar(engine, "SELECT count(DISTINCT event_id) FROM telemetry_event") == 120


@pytest.mark.parametrize("mode", EVENT_MODES)
def test_malformed_events_in_a_page_are_quarantined_with_a_reason(
    engine: Engine, world: EmulatorServer, mode: str
) -> None:
    world.state.generate_invocations(DAINESE_ORG, 12, skill=ENG_SKILL, seed=4)
    world.set_faults(script=[f"corrupt:{mode}"], routes=[AUDIT_ROUTE])
    result = poll(engine)
    assert result.error is None
    assert result.inserted == 6 and result.quarantined == 6  # every other event was spoiled
    with engine.connect() as conn:
        reasons = conn.execute(
            text("SELECT event_id, reason FROM telemetry_quarantine ORDER BY id")
        ).all()
    assert all(reason for _, reason in reasons)
    if mode == "wrong_types":
        assert all(eid and "created_at" in r and "workspace_id" in r for eid, r in reasons)
    else:
        assert sum(eid is None for eid, _ in reasons) == 2  # ids removed: kept, with no id
        assert any("no id or no type" in r for _, r in reasons)
        assert any("created_at: missing" in r for _, r in reasons)
    assert_each_invocation_once(engine, world, 12)
    checkpoint = "SELECT after_id FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == world.state.orgs[DAINESE_ORG].event_ids[-1]

    world.set_faults()
    assert poll(engine).inserted == 0  # nothing comes back twice
    assert_each_invocation_once(engine, world, 12)


def invocations(engine: Engine) -> Counter[tuple[str, str]]:
    """(org, invocation id) of stored and quarantined events: the one id every served event
    keeps (a spoiled event may have lost its event id)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT org_id, invocation_id FROM telemetry_event UNION ALL "
                "SELECT org_id, raw #>> '{invocation,id}' FROM telemetry_quarantine"
            )
        ).all()
    return Counter((org, inv) for org, inv in rows)


def emitted_invocations(emulator: EmulatorServer) -> set[tuple[str, str]]:
    state = emulator.state
    with state.lock:
        return {
            (org.id, json.loads(raw)["invocation"]["id"])
            for org in state.orgs.values()
            for raw, kind in zip(org.event_json, org.event_types, strict=True)
            if kind in ("skill.invoked", "skill.failed")
        }


def assert_each_invocation_once(engine: Engine, emulator: EmulatorServer, total: int) -> None:
    seen = invocations(engine)
    assert all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n > 1]
    assert set(seen) == emitted_invocations(emulator) and len(seen) == total


# -- the publisher ----------------------------------------------------------------------------


@pytest.fixture
def catalog_world(engine: Engine, emulator_env: EmulatorServer) -> dict[str, Any]:
    return catalog_and_tenants(engine, emulator_env)


@pytest.mark.parametrize("mode", ["truncated", "not_json", "wrong_types", "huge_page"])
def test_a_corrupt_create_answer_fails_that_skill_only_and_makes_no_twin(
    engine: Engine, emulator: EmulatorServer, catalog_world: dict[str, Any], mode: str
) -> None:
    emulator.set_faults(script=[f"corrupt:{mode}"], routes=[CREATE])
    first = publish(engine, "dainese")
    assert first.status == "partial", first.errors
    assert first.stats["created"] == 12 and first.stats["failed"] == 1
    (error,) = first.errors
    assert f"POST /v1/organizations/{DAINESE_ORG}/skills" in error["error"]
    assert error["name"] and error["name"] in error["error"]

    again = publish(engine, "dainese")
    assert again.status == "succeeded", again.errors
    assert again.stats["created"] == 1  # the one that failed: adopted (409), not posted twice
    assert emulator.stats.count(method="POST", route=SKILLS, status=409) == 1
    assert not twins(emulator)
    assert len(emulator.state.orgs[DAINESE_ORG].skills) == 13
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status, count(*) FROM publication GROUP BY 1"))
        assert {s: n for s, n in statuses} == {"published": 13}


# -- the daemon -------------------------------------------------------------------------------


def twins(emulator: EmulatorServer) -> list[tuple[str, str]]:
    """(org, name) held by more than one remote skill."""
    state = emulator.state
    with state.lock:
        names = Counter((o.id, s.name) for o in state.orgs.values() for s in o.skills.values())
    return [k for k, n in names.items() if n > 1]


def run_job(engine: Engine) -> str:
    """Queue a publish job for every tenant and wait for the daemon to finish it; its status."""
    with engine.begin() as conn:
        job = conn.execute(text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")).scalar()
    query = "SELECT status FROM publish_job WHERE id = :j"
    finished = ("succeeded", "partial", "failed")
    wait_until(lambda: scalar(engine, query, j=job) in finished, 60, f"publish job {job}")
    return str(scalar(engine, query, j=job))


def test_daemon_stays_up_under_corrupt_answers_and_converges_after(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    daemon = start_daemon()
    emulator.set_faults(rate_corrupt=0.3, huge_body_bytes=1_000_000, seed=21)
    for _ in range(2):  # under faults a job may fail some skills: the promise is convergence
        run_job(engine)
    total = generate_usage(emulator, 10)

    def held(n: int) -> Callable[[], bool]:
        return lambda: sum(invocations(engine).values()) >= n

    for batch in range(4):  # several polls with events in them, so some are spoiled
        emulator.state.generate_invocations(DAINESE_ORG, 30, seed=100 + batch)
        total += 30
        wait_until(held(total), 60, f"{total} events stored or quarantined")
    audit = sum(n for (_, route), n in emulator.faults.corrupted.items() if route == AUDIT_ROUTE)
    assert audit > 0, "no audit page was corrupted: the test proved nothing"
    assert daemon.get("/healthz") == 200
    quarantined = scalar(engine, "SELECT count(*) FROM telemetry_quarantine")
    print(f"corrupted answers: {dict(emulator.faults.corrupted)}; quarantined {quarantined}")

    emulator.set_faults()
    publish_until_succeeded(engine, rounds=2)
    emulator.state.generate_invocations(DAINESE_ORG, 50, seed=99)
    wait_until(held(total + 50), 30, "the new events")
    assert not twins(emulator)
    assert_each_invocation_once(engine, emulator, total + 50)
    # Once the faults cleared nothing more was quarantined: only spoiled events were.
    assert scalar(engine, "SELECT count(*) FROM telemetry_quarantine") == quarantined
    assert daemon.stop(timeout=15)[0] == 0
