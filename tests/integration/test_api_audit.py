"""The audit log through the real client: paging past 1,000, type filter, at-least-once
delivery, and lenient parsing of events of other types or odd shapes."""

from __future__ import annotations

import pytest

from claresia_sync.api import OrgClient
from claresia_sync.emulator import EmulatorServer
from tests.fixtures.emulator import DAINESE_ORG, api_client, set_faults, skill_payload

pytestmark = pytest.mark.anyio


async def publish(client: OrgClient, name: str = "claresia-dainese-incident-postmortem") -> str:
    skill = await client.create_skill(DAINESE_ORG, skill_payload(name))
    await client.set_skill_access(
        DAINESE_ORG, skill.id, ["wrkspc_dainese_eng"], ["rbac_group_dainese_engineers"]
    )
    return skill.id


async def test_pages_past_1000_in_id_order(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        skill_id = await publish(client)
        emulator.state.generate_invocations(DAINESE_ORG, 2500, failure_rate=0.2, seed=1)
        first = await client.audit_events(DAINESE_ORG, limit=1000)
        events, page = list(first.data), first
        while page.has_more:
            page = await client.audit_events(DAINESE_ORG, page.last_id, limit=1000)
            events += page.data
    assert first.has_more and len(first.data) == 1000
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id
    ids = [e.id for e in events]
    assert len(ids) == 2500 and ids == sorted(ids) and len(set(ids)) == 2500
    assert all(i.startswith("evt_") for i in ids)
    assert emulator.stats.count(route="/v1/organizations/{org_id}/audit_logs") == 3
    sample = events[0].view
    assert events[0].problem is None and sample.skill and sample.skill.id == skill_id
    assert sample.actor and sample.actor.user_id in {"user_dainese_ana", "user_dainese_marco"}
    assert sample.workspace_id == "wrkspc_dainese_eng"
    assert sample.invocation and sample.invocation.usage and sample.invocation.model
    assert events[0].raw["id"] == sample.id == events[0].id
    failed = [e.view for e in events if e.type == "skill.failed"]
    assert 300 < len(failed) < 700 and all(e.error and e.error.type for e in failed)
    assert all(e.view.error is None for e in events if e.type == "skill.invoked")


async def test_after_id_need_not_exist_and_last_page_is_empty(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        await publish(client)
        emulator.state.generate_invocations(DAINESE_ORG, 10, seed=2)
        page = await client.audit_events(DAINESE_ORG, limit=4)
        # A cursor between two ids (no such event) resumes just after it.
        cursor = page.data[1].id + "0"
        after = await client.audit_events(DAINESE_ORG, after_id=cursor, limit=100)
        end = await client.audit_events(DAINESE_ORG, after_id=after.last_id)
    assert [e.id for e in after.data] == [e.id for e in page.data[2:]] + [
        e.id for e in after.data[2:]
    ]
    assert len(after.data) == 8
    assert not after.has_more
    assert end.data == [] and end.first_id is None and end.last_id is None and not end.has_more


async def test_event_type_filter_and_lenient_parsing(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        await publish(client)
        emulator.state.generate_invocations(DAINESE_ORG, 3, seed=3)
        emulator.state.append_events(
            DAINESE_ORG,
            [
                {"type": "user.login", "actor": {"type": "user", "user_id": "user_x"}},
                {"type": "skill.invoked", "skill": "not-an-object", "mystery": 1},
            ],
        )
        emulator.state.generate_invocations(DAINESE_ORG, 2, seed=4)
        skills_only = await client.audit_events(DAINESE_ORG)
        everything = await client.audit_events(DAINESE_ORG, event_types=None)
    assert len(skills_only.data) == 6
    assert [e.type for e in everything.data].count("user.login") == 1
    odd = next(e for e in skills_only.data if e.raw.get("mystery") == 1)
    assert odd.problem and "skill" in odd.problem and odd.id.startswith("evt_")
    assert odd.raw["skill"] == "not-an-object"


async def test_duplicate_delivery_re_serves_seen_events(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        await publish(client)
        emulator.state.generate_invocations(DAINESE_ORG, 50, seed=5)
        set_faults(emulator, duplicate_rate=1.0, duplicate_count=3)
        first = await client.audit_events(DAINESE_ORG, limit=10)
        second = await client.audit_events(DAINESE_ORG, after_id=first.last_id, limit=10)
    seen = {e.id for e in first.data}
    again = [e.id for e in second.data if e.id in seen]
    assert again == [e.id for e in first.data[-3:]]
    assert len(second.data) == 13 and second.last_id and second.last_id > (first.last_id or "")
