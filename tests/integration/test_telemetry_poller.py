"""The audit-log poller against the emulator and a real PostgreSQL: exact counts under
duplicate delivery, checkpoints, quarantine, sub-tenant attribution, footers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from claresia_sync.db.models import (
    CatalogSkill,
    OrgConnection,
    Publication,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry.poller import PollResult, poll_once
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.fixtures.daemon import wait_until
from tests.fixtures.emulator import ACME_ORG, DAINESE_KEY, DAINESE_ORG

HASH = "sha256:" + "0" * 64
ENG_SKILL = "claresia-dainese-eng-incident-postmortem"
CORP_SKILL = "claresia-dainese-corp-prd-review"
SALES_SKILL = "claresia-dainese-meeting-summary"
TITLES = {
    "incident-postmortem": "Incident Postmortem",
    "prd-review": "PRD Review",
    "meeting-summary": "Meeting Summary",
}


def demo_tenants(engine: Engine, base_url: str) -> None:
    """The fixed demo tenants (as deploy/tenants.example.yaml), pointing at the emulator, and
    publications of three skills (as the publisher records them)."""
    with Session(engine) as s:
        for skill_id, title in TITLES.items():
            s.add(
                CatalogSkill(skill_id=skill_id, version="1.0.0", title=title, ir={}, ir_hash=HASH)
            )
        dainese = Tenant(slug="dainese", display_name="Dainese S.p.A.")
        eng = Tenant(slug="dainese-eng", display_name="Dainese Engineering", parent=dainese)
        corp = Tenant(slug="dainese-corp", display_name="Dainese Corporate", parent=dainese)
        acme = Tenant(slug="acme", display_name="Acme Corp")
        s.add_all([dainese, eng, corp, acme])
        s.flush()
        s.add_all(
            [
                OrgConnection(
                    tenant_id=dainese.id,
                    org_id=DAINESE_ORG,
                    admin_key_ref="env:CLARESIA_DAINESE_ADMIN_KEY",
                    base_url=base_url,
                ),
                OrgConnection(
                    tenant_id=acme.id,
                    org_id=ACME_ORG,
                    admin_key_ref="env:CLARESIA_ACME_ADMIN_KEY",
                    base_url=base_url,
                ),
            ]
        )
        s.flush()
        for org, ws, tenant in [
            (DAINESE_ORG, "wrkspc_dainese_sales", dainese),
            (DAINESE_ORG, "wrkspc_dainese_eng", eng),
            (DAINESE_ORG, "wrkspc_dainese_corp", corp),
            (ACME_ORG, "wrkspc_acme_default", acme),
        ]:
            s.add(WorkspaceMapping(org_id=org, workspace_id=ws, tenant_id=tenant.id))
        for tenant, skill_id, name in [
            (eng, "incident-postmortem", ENG_SKILL),
            (corp, "prd-review", CORP_SKILL),
            (dainese, "meeting-summary", SALES_SKILL),
        ]:
            s.add(
                Publication(
                    tenant_id=tenant.id, skill_id=skill_id, published_name=name, status="published"
                )
            )
        s.commit()


def publish_in_emulator(
    emulator: EmulatorServer,
    skills: Iterable[tuple[str, str, str]] = (
        (ENG_SKILL, "wrkspc_dainese_eng", "rbac_group_dainese_engineers"),
        (CORP_SKILL, "wrkspc_dainese_corp", "rbac_group_dainese_product"),
        (SALES_SKILL, "wrkspc_dainese_sales", "rbac_group_dainese_sales"),
    ),
    org: str = DAINESE_ORG,
    key: str = DAINESE_KEY,
) -> dict[str, str]:
    """Prime skills with their ACLs in the emulator; name -> remote id."""
    state = emulator.state
    principal = state.key(key)
    assert principal is not None
    ids = {}
    for name, ws, group in skills:
        (remote,) = state.bulk_add_skills(org, [name])
        state.set_access(org, remote, [ws], [group], principal)
        ids[name] = remote
    return ids


# Every poll of these tests is bounded: a poller that never reaches the end of the log (its
# checkpoint not written, so it re-reads pages forever) fails the test instead of hanging it.
POLL_BOUND_S = 60


def poll(engine: Engine, **kw: Any) -> list[PollResult]:
    kw.setdefault("client_options", {"max_attempts": 2, "timeout": 10.0})
    return asyncio.run(asyncio.wait_for(poll_once(engine, **kw), POLL_BOUND_S))


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture
def world(engine: Engine, emulator_env: EmulatorServer) -> EmulatorServer:
    demo_tenants(engine, emulator_env.base_url)
    publish_in_emulator(emulator_env)
    return emulator_env


def test_duplicate_delivery_gives_exactly_n_rows_and_second_poll_adds_none(
    engine: Engine, world: EmulatorServer
) -> None:
    first, last = world.state.generate_invocations(DAINESE_ORG, 600, failure_rate=0.2, seed=7)
    world.set_faults(
        duplicate_rate=1.0, duplicate_count=25, routes=["/v1/organizations/{org_id}/audit_logs"]
    )
    (dainese, acme) = sorted(poll(engine, page_size=50), key=lambda r: r.org_id != DAINESE_ORG)
    assert dainese.error is None and acme.error is None
    assert dainese.pages == 12 and dainese.inserted == 600
    assert dainese.received == 600 + 11 * 25 and dainese.duplicates == 11 * 25
    assert scalar(engine, "SELECT count(*) FROM telemetry_event") == 600
    assert scalar(engine, "SELECT count(DISTINCT event_id) FROM telemetry_event") == 600
    assert scalar(engine, "SELECT min(event_id) FROM telemetry_event") == first
    checkpoint = "SELECT after_id FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == last == dainese.checkpoint

    (again,) = poll(engine, tenant="dainese-eng")  # a sub-tenant polls its parent's org
    assert again.org_id == DAINESE_ORG and again.inserted == 0
    assert scalar(engine, "SELECT count(*) FROM telemetry_event") == 600
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == last
    status = "SELECT last_poll_status FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, status, o=DAINESE_ORG) == "ok"


CHECKPOINT = "SELECT after_id FROM audit_checkpoint WHERE org_id = :o"
AUDIT_ROUTE = "/v1/organizations/{org_id}/audit_logs"


def test_each_page_moves_the_checkpoint_once(engine: Engine, world: EmulatorServer) -> None:
    """The checkpoint is where the next poll starts: after one page it is that page's last
    event, and a poll of several pages reads each page once."""
    only = world.state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=11)[-1]
    (result,) = poll(engine, org_id=DAINESE_ORG)
    assert (result.pages, result.inserted, result.checkpoint) == (1, 1, only)
    assert scalar(engine, CHECKPOINT, o=DAINESE_ORG) == only

    _, last = world.state.generate_invocations(DAINESE_ORG, 120, skill=ENG_SKILL, seed=12)
    world.stats.reset()
    (result,) = poll(engine, org_id=DAINESE_ORG, page_size=50)
    assert (result.pages, result.inserted, result.duplicates) == (3, 120, 0)
    assert scalar(engine, CHECKPOINT, o=DAINESE_ORG) == last == result.checkpoint
    assert world.stats.count("GET", AUDIT_ROUTE) == 3  # no page read twice

    (idle,) = poll(engine, org_id=DAINESE_ORG)
    assert (idle.pages, idle.received, idle.checkpoint) == (0, 0, last)


def waiting_on_a_lock(engine: Engine) -> int:
    return int(
        scalar(
            engine,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


def test_a_page_overtaken_by_another_poller_is_dropped(
    engine: Engine, world: EmulatorServer
) -> None:
    """Two pollers of one organisation: while this one writes a page fetched from the stored
    checkpoint, another (here, the test) moves the checkpoint past it. The page is dropped, the
    poll resumes from the stored checkpoint, and the checkpoint never moves back."""
    world.state.generate_invocations(DAINESE_ORG, 100, skill=ENG_SKILL, seed=13)
    _, last = world.state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=14)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_checkpoint (org_id) VALUES (:o)"), {"o": DAINESE_ORG})
    with engine.connect() as other, ThreadPoolExecutor(1) as pool:
        holding = other.begin()  # the other poller's page transaction
        other.execute(text(CHECKPOINT + " FOR UPDATE"), {"o": DAINESE_ORG})
        polling = pool.submit(poll, engine, org_id=DAINESE_ORG, page_size=50)
        try:
            wait_until(lambda: waiting_on_a_lock(engine) > 0, 30, "the poller's page write")
            other.execute(
                text("UPDATE audit_checkpoint SET after_id = :a WHERE org_id = :o"),
                {"a": last, "o": DAINESE_ORG},
            )
        finally:
            holding.commit()
        (result,) = polling.result(timeout=POLL_BOUND_S)
    assert result.error is None and result.pages >= 1 and result.received >= 50
    assert result.inserted == 0, "a page another poller had passed was written"
    assert scalar(engine, "SELECT count(*) FROM telemetry_event") == 0
    assert scalar(engine, CHECKPOINT, o=DAINESE_ORG) == last == result.checkpoint


def test_attribution_subtenant_parent_footer_and_record(
    engine: Engine, world: EmulatorServer
) -> None:
    state = world.state
    state.generate_invocations(DAINESE_ORG, 40, failure_rate=0.5, skill=ENG_SKILL, seed=1)
    state.generate_invocations(DAINESE_ORG, 10, skill=SALES_SKILL, seed=2)
    (result,) = poll(engine, tenant="dainese")
    assert result.inserted == 50 and result.quarantined == 0
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tenant_slug, parent_tenant_slug, skill_id, status, error_type, footer_md,"
                " record_id, event_id, cost_usd, raw, actor_email, skill_name, remote_skill_id"
                " FROM telemetry_event"
            )
        ).all()
    eng = [r for r in rows if r.skill_name == ENG_SKILL]
    sales = [r for r in rows if r.skill_name == SALES_SKILL]
    assert len(eng) == 40 and len(sales) == 10
    assert {(r.tenant_slug, r.parent_tenant_slug, r.skill_id) for r in eng} == {
        ("dainese-eng", "dainese", "incident-postmortem")
    }
    assert {(r.tenant_slug, r.parent_tenant_slug, r.skill_id) for r in sales} == {
        ("dainese", None, "meeting-summary")
    }
    failed = [r for r in eng if r.status == "failed"]
    assert failed and all(r.error_type for r in failed)
    for r in failed:
        assert f" · failed ({r.error_type}) · " in r.footer_md
        assert "$" not in r.footer_md
    for r in rows:
        assert r.record_id == "rec_" + r.event_id.removeprefix("evt_")
        assert r.footer_md.startswith("*Claresia · ") and r.footer_md.endswith(
            f"[View record](https://hub.dainese.claresia.com/records/{r.record_id})*"
        )
        assert r.raw["id"] == r.event_id and isinstance(r.cost_usd, Decimal)
        assert r.cost_usd == Decimal(r.raw["invocation"]["cost_usd"])
        assert r.actor_email is None  # emails are dropped unless configured
        assert r.remote_skill_id == r.raw["skill"]["id"]
    ok = next(r for r in sales if r.status == "succeeded")
    assert ok.footer_md.startswith("*Claresia · Meeting Summary · $")


def test_quarantine_skips_and_emails(engine: Engine, world: EmulatorServer) -> None:
    state = world.state
    (good,) = state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=3)[:1]
    template = json.loads(state.audit_page(DAINESE_ORG, 1, None, None))["data"][0]
    template = {k: v for k, v in template.items() if k not in ("id", "created_at")}
    unknown_ws, no_time, vendor, bad_cost = state.append_events(
        DAINESE_ORG,
        [
            {**template, "workspace_id": "wrkspc_mystery"},
            {**template, "created_at": "yesterday"},
            {**template, "skill": {"id": "skill_x", "name": "acme-vendor-tool"}},
            {**template, "invocation": {**template["invocation"], "cost_usd": "lots"}},
        ],
    )
    settings = TelemetrySettings(store_emails=True)
    (result,) = poll(engine, tenant="dainese", settings=settings)
    assert (result.inserted, result.quarantined, result.skipped_outside_namespace) == (1, 3, 0 + 1)
    with engine.connect() as conn:
        reasons = {
            e: r for e, r in conn.execute(text("SELECT event_id, reason FROM telemetry_quarantine"))
        }
        email = conn.execute(text("SELECT actor_email FROM telemetry_event")).scalar_one()
        raw = conn.execute(
            text("SELECT raw FROM telemetry_quarantine WHERE event_id = :e"), {"e": unknown_ws}
        ).scalar_one()
    assert set(reasons) == {unknown_ws, no_time, bad_cost}
    assert "unknown workspace 'wrkspc_mystery'" in reasons[unknown_ws]
    assert "created_at" in reasons[no_time] and "cost_usd" in reasons[bad_cost]
    assert raw["workspace_id"] == "wrkspc_mystery"
    assert email and email.endswith("@dainese.com")
    # The checkpoint passed the quarantined and skipped events; a redelivery adds nothing.
    checkpoint = "SELECT after_id FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == bad_cost > vendor > good
    world.set_faults(duplicate_rate=1.0, duplicate_count=5)
    state.generate_invocations(DAINESE_ORG, 1, skill=ENG_SKILL, seed=4)
    (again,) = poll(engine, tenant="dainese")
    assert again.inserted == 1 and again.quarantined == 3  # re-served, stored once
    assert scalar(engine, "SELECT count(*) FROM telemetry_quarantine") == 3


def test_telemetry_rows_are_append_only(engine: Engine, world: EmulatorServer) -> None:
    world.state.generate_invocations(DAINESE_ORG, 3, skill=ENG_SKILL, seed=5)
    poll(engine, tenant="dainese")
    for sql in (
        "UPDATE telemetry_event SET cost_usd = 0",
        "DELETE FROM telemetry_event",
        "UPDATE telemetry_event_id SET occurred_at = occurred_at",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))
    assert scalar(engine, "SELECT count(*) FROM telemetry_event WHERE cost_usd > 0") == 3


def test_bad_key_reference_is_reported_per_connection(
    engine: Engine, world: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLARESIA_ACME_ADMIN_KEY")
    world.state.generate_invocations(DAINESE_ORG, 5, skill=ENG_SKILL, seed=6)
    results = {r.org_id: r for r in poll(engine)}
    assert results[DAINESE_ORG].inserted == 5 and results[DAINESE_ORG].error is None
    assert "CLARESIA_ACME_ADMIN_KEY" in (results[ACME_ORG].error or "")
    status = "SELECT last_poll_status FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, status, o=ACME_ORG) == "error"
