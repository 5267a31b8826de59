"""The Compliance activity feed into `org_activity` (issue 16): real PostgreSQL, the emulator's
`/v1/compliance/activities` over loopback, activities made by the writes it receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.api.connect import open_client
from claresia_sync.api.sdk import SdkCaller
from claresia_sync.config import Settings
from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.activity import COMMON, SHAPES
from claresia_sync.emulator.state import ENTERPRISE_SCOPES
from claresia_sync.telemetry.activity import (
    ActivityResult,
    PluginUploaders,
    ingest_connection,
    ingest_feed,
)
from claresia_sync.telemetry.analytics_reader import enterprise_connections
from tests.cli import clean_env, run_cli
from tests.fixtures.real_api import ENGINEERS, ENTERPRISE_KEY, client
from tests.fixtures.sources import ORG, apply_ferretti, make_plugin
from tests.integration.test_publish_e2e import publish
from tests.integration.test_publish_e2e import world as world  # the fixture

SKILL = "claresia-ferretti-prd-review"


def _run(engine: Engine, **kw: Any) -> ActivityResult:
    """One feed run of org_ferretti, learning our key as the daemon does."""
    with Session(engine) as session:
        (conn,) = [c for c in enterprise_connections(session) if c.org_id == ORG]

    async def go() -> ActivityResult:
        caller = SdkCaller(conn, http=None, counter=None, hints=lambda *_: "")
        async with open_client(conn) as api:
            try:
                return await ingest_feed(engine, api, ORG, uploader=PluginUploaders(caller), **kw)
            finally:
                await caller.aclose()

    return asyncio.run(go())


def _stored(engine: Engine) -> Sequence[Any]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT activity_id, activity_type, actor_type, tenant_slug, repair_job_id "
                "FROM org_activity ORDER BY activity_id"
            )
        ).all()


def _feed(emulator: EmulatorServer) -> list[str]:
    return list(emulator.state.orgs[ORG].activity.ids)


def _admin(emulator: EmulatorServer, **body: Any) -> None:
    answer = httpx2.post(f"{emulator.base_url}/_emulator/orgs/{ORG}/admin", json=body)
    assert answer.status_code == 201, answer.text


def _jobs(engine: Engine) -> Sequence[Any]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT j.id, t.slug, j.force, j.status FROM publish_job j "
                "JOIN tenant t ON t.id = j.tenant_id ORDER BY j.id"
            )
        ).all()


def test_the_feed_is_paged_forward_across_restarts(
    engine: Engine, session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    sdk = client(emulator)
    for i in range(5):
        make_plugin(emulator, f"claresia-ferretti-s{i}")
    assert len(_feed(emulator)) == 5

    first = _run(engine, page_size=2)
    assert first.error is None and first.inserted == 5 and first.backfilled
    assert [r.activity_id for r in _stored(engine)] == sorted(_feed(emulator))

    # More writes while "down", then several runs each stopped after one page (a restart
    # between pages): every activity once, in the end.
    more = [make_plugin(emulator, f"claresia-ferretti-t{i}") for i in range(7)]
    sdk.beta.organization.plugins.delete(more[0])
    runs = []
    for _ in range(10):
        runs.append(_run(engine, page_size=2, max_pages=1))
        if len(_stored(engine)) == len(_feed(emulator)):
            break
    assert len(runs) >= 3  # it took several restarts
    stored = _stored(engine)
    assert [r.activity_id for r in stored] == sorted(_feed(emulator))
    assert sum(r.inserted for r in runs) == 8
    assert {r.actor_type for r in stored} == {"api_actor"}
    with engine.connect() as conn:
        cursor = conn.execute(
            text("SELECT cursor FROM telemetry_source WHERE source = 'activity-feed'")
        ).scalar_one()
    assert cursor == max(_feed(emulator))

    again = _run(engine, page_size=2)
    assert again.inserted == 0 and again.error is None


def test_a_plugin_deleted_in_claude_ai_queues_one_repair(
    engine: Engine, session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    ours = make_plugin(emulator, SKILL)
    foreign = make_plugin(emulator, "acme-travel-helper")
    assert _run(engine).inserted == 2 and _jobs(engine) == []

    _admin(emulator, action="delete_plugin", plugin_id=foreign)  # not ours: nothing to repair
    _admin(
        emulator,
        action="set_installation",
        plugin_id=ours,
        target=ENGINEERS,
        installation_preference="not_available",
        user_id="user_ferretti_anna",
    )
    _admin(emulator, action="delete_plugin", plugin_id=ours)
    result = _run(engine)
    assert result.inserted == 3
    jobs = _jobs(engine)
    assert [(j.slug, j.force, j.status) for j in jobs] == [("ferretti", True, "queued")]
    assert result.repairs == [jobs[0].id]
    by_type = {(r.activity_type, r.tenant_slug): r for r in _stored(engine)[2:]}
    assert by_type[("claude_plugin_deleted", "ferretti")].repair_job_id == jobs[0].id
    assert by_type[("plugin_installation_preference_updated", "ferretti")].repair_job_id == (
        jobs[0].id
    )
    assert by_type[("claude_plugin_deleted", None)].repair_job_id is None
    assert by_type[("claude_plugin_deleted", "ferretti")].actor_type == "user_actor"

    # Read again (a restart): the same activities queue nothing more.
    assert _run(engine).inserted == 0
    assert len(_jobs(engine)) == 1


def test_a_malformed_activity_is_quarantined_and_a_bad_key_recorded(
    engine: Engine,
    session: Session,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    db_settings: Settings,
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    make_plugin(emulator, SKILL)
    feed = emulator.state.orgs[ORG].activity
    with emulator.state.lock:
        feed.add({"id": "activity_zzz", "type": "claude_plugin_updated", "created_at": "yesterday"})
    result = _run(engine)
    assert result.inserted == 1 and result.quarantined == 1
    with engine.connect() as conn:
        reason = conn.execute(
            text("SELECT reason FROM telemetry_quarantine WHERE event_id = 'activity:activity_zzz'")
        ).scalar_one()
    assert "created_at 'yesterday'" in reason

    monkeypatch.delenv("FERRETTI_ENTERPRISE_KEY")
    with Session(engine) as s:
        (target,) = enterprise_connections(s)
    failed = asyncio.run(ingest_connection(engine, target))
    assert failed.error is not None and "FERRETTI_ENTERPRISE_KEY" in failed.error
    with engine.connect() as c:
        state = c.execute(
            text(
                "SELECT last_error, errors_total FROM telemetry_source "
                "WHERE source = 'activity-feed'"
            )
        ).one()
    assert state.last_error == failed.error and state.errors_total == 1

    # `status` shows the source failing, with its error, and exits 3.
    shown = run_cli("status", "--json", env=clean_env(db_settings))
    assert shown.returncode == 3, shown.stderr
    (feed,) = [x for x in json.loads(shown.stdout)["sources"] if x["source"] == "activity-feed"]
    assert feed["failing"] and feed["last_error"] == failed.error and feed["org_id"] == ORG
    table = run_cli("status", env=clean_env(db_settings)).stdout
    assert "Telemetry sources" in table and "FERRETTI_ENTERPRISE_KEY" in table


# Another admin key of the same organisation (a colleague's script, another tool).
OTHER_KEY = "sk-ant-api01-ferretti-OTHER-0000000000000000000000000000000000000000000000000"


def _plugin_ids(emulator: EmulatorServer) -> dict[str, str]:
    with emulator.state.lock:
        catalog = emulator.state.orgs[ORG].plugins
        assert catalog is not None
        return {p.name: p.id for p in catalog.plugins.values()}


def test_our_writes_are_told_from_another_admin_keys_by_the_key_id(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    ours = _run(engine)
    # Our publish (5 plugins, their settings) shows in the feed, as an api_actor: no repair.
    assert ours.error is None and ours.inserted >= 10 and ours.repairs == []
    own_key = emulator.state.key(ENTERPRISE_KEY)
    assert own_key is not None
    with engine.connect() as conn:
        actors = set(conn.execute(text("SELECT actor_id FROM org_activity")).scalars())
    assert actors == {own_key.key_id}
    for activity in emulator.state.orgs[ORG].activity.items:  # exactly the documented shape
        assert list(activity) == [*COMMON, *SHAPES[activity["type"]]], activity
        assert set(activity["actor"]) == {"type", "api_key_id", "ip_address", "user_agent"}

    # The same kind of writes, with another admin key of the organisation: drift.
    other = emulator.state.add_admin_key(ORG, OTHER_KEY, ENTERPRISE_SCOPES)
    ids = _plugin_ids(emulator)
    with client(emulator, key=OTHER_KEY) as sdk:
        sdk.beta.organization.plugins.delete(ids[SKILL])
        sdk.beta.organization.plugins.installation_settings.set(
            "organization",
            plugin_id=ids["claresia-ferretti-standup-notes"],
            installation_preference="available",
        )
    theirs = _run(engine)
    assert theirs.inserted == 2 and len(theirs.repairs) == 1
    with engine.connect() as conn:
        drift = conn.execute(
            text(
                "SELECT activity_type, actor_type, actor_id, subject_name, repair_job_id "
                "FROM org_activity WHERE actor_id = :k ORDER BY activity_id"
            ),
            {"k": other.key_id},
        ).all()
    assert [(d.activity_type, d.actor_type, d.subject_name) for d in drift] == [
        ("claude_plugin_deleted", "api_actor", SKILL),
        ("plugin_installation_preference_updated", "api_actor", "claresia-ferretti-standup-notes"),
    ]
    assert {d.repair_job_id for d in drift} == set(theirs.repairs)

    # The repair (our writes again: a new plugin, its settings) is no drift: no loop.
    repaired = publish(engine, "ferretti", force=True)
    assert repaired.status == "succeeded", repaired.errors
    assert SKILL in _plugin_ids(emulator)
    after = _run(engine)
    assert after.inserted >= 2 and after.repairs == []
