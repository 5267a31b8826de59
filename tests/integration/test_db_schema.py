"""The constraints that matter, against a real PostgreSQL (fixtures in tests/fixtures/db.py)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    OrgConnection,
    Publication,
    PublishJob,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.telemetry.load import ensure_partitions, insert_events

HASH = "sha256:" + "0" * 64


def _tenant(session: Session, slug: str = "dainese", parent: Tenant | None = None) -> Tenant:
    tenant = Tenant(slug=slug, display_name=slug.title(), parent=parent)
    session.add(tenant)
    session.flush()
    return tenant


def _skill(session: Session, skill_id: str = "prd-review") -> CatalogSkill:
    skill = CatalogSkill(
        skill_id=skill_id,
        version="1.0.0",
        title="PRD Review",
        ir={"skill_id": skill_id},
        ir_hash=HASH,
    )
    session.add(skill)
    session.flush()
    return skill


def _fails(session: Session, obj: Any) -> IntegrityError:
    session.add(obj)
    with pytest.raises(IntegrityError) as caught:
        session.flush()
    session.rollback()
    return caught.value


def test_one_publication_per_tenant_and_skill(session: Session) -> None:
    tenant, skill = _tenant(session), _skill(session)
    name = "claresia-dainese-prd-review"
    session.add(Publication(tenant_id=tenant.id, skill_id=skill.skill_id, published_name=name))
    session.flush()
    pub = session.query(Publication).one()
    assert pub.status == "pending"
    assert pub.acl == {"workspace_ids": [], "rbac_group_ids": []}
    err = _fails(
        session, Publication(tenant_id=tenant.id, skill_id=skill.skill_id, published_name=name)
    )
    assert "uq_publication_tenant_id_skill_id_target" in str(err)


def test_publication_status_is_checked(session: Session) -> None:
    tenant, skill = _tenant(session), _skill(session)
    pub = Publication(
        tenant_id=tenant.id, skill_id=skill.skill_id, published_name="x", status="live"
    )
    assert "ck_publication_status" in str(_fails(session, pub))


def test_grants_only_to_known_archetypes_and_skills(session: Session) -> None:
    tenant, skill = _tenant(session), _skill(session)
    archetype = Archetype(tenant_id=tenant.id, slug="engineer", rbac_group_id="rbac_group_x")
    session.add(archetype)
    session.flush()
    session.add(SkillGrant(archetype_id=archetype.id, skill_id=skill.skill_id))
    session.commit()

    err = _fails(session, SkillGrant(archetype_id=archetype.id, skill_id="no-such-skill"))
    assert "fk_skill_grant_skill_id_catalog_skill" in str(err)
    err = _fails(session, SkillGrant(archetype_id=archetype.id + 1000, skill_id="prd-review"))
    assert "fk_skill_grant_archetype_id_archetype" in str(err)
    err = _fails(session, SkillGrant(archetype_id=archetype.id, skill_id="prd-review"))
    assert "pk_skill_grant" in str(err)
    # A granted skill cannot leave the catalog.
    session.delete(session.get(CatalogSkill, "prd-review"))
    with pytest.raises(IntegrityError):
        session.flush()


@pytest.mark.parametrize("slug", ["claude-team", "my-anthropic", "Dainese", "a--b", "-a", ""])
def test_tenant_slug_refused_by_the_database(session: Session, slug: str) -> None:
    assert "ck_tenant_slug" in str(_fails(session, Tenant(slug=slug, display_name="x")))


def test_skill_id_with_reserved_word_refused(session: Session) -> None:
    skill = CatalogSkill(skill_id="claude-helper", version="1", title="t", ir={}, ir_hash=HASH)
    assert "ck_catalog_skill_skill_id" in str(_fails(session, skill))


def test_tenant_slug_unique(session: Session) -> None:
    _tenant(session)
    assert "uq_tenant_slug" in str(_fails(session, Tenant(slug="dainese", display_name="x")))


def test_connection_stores_a_reference_never_a_key(session: Session) -> None:
    tenant = _tenant(session)
    session.add(OrgConnection(tenant_id=tenant.id, org_id="org_d", admin_key_ref="env:KEY"))
    session.commit()
    other = _tenant(session, "acme")
    pasted = OrgConnection(tenant_id=other.id, org_id="org_a", admin_key_ref="sk-ant-admin01-x")
    assert "ck_org_connection_key_is_reference" in str(_fails(session, pasted))
    other = _tenant(session, "acme")
    dup_org = OrgConnection(tenant_id=other.id, org_id="org_d", admin_key_ref="env:K")
    assert "uq_org_connection_org_id" in str(_fails(session, dup_org))


def test_workspace_mapped_once_per_org(session: Session) -> None:
    root = _tenant(session)
    sub = _tenant(session, "dainese-eng", parent=root)
    session.add(OrgConnection(tenant_id=root.id, org_id="org_d", admin_key_ref="env:KEY"))
    session.add(WorkspaceMapping(org_id="org_d", workspace_id="wrkspc_1", tenant_id=root.id))
    session.commit()
    again = WorkspaceMapping(org_id="org_d", workspace_id="wrkspc_1", tenant_id=sub.id)
    assert "uq_workspace_mapping_org_id_workspace_id" in str(_fails(session, again))
    # No foreign key to org_connection since migration 0005: a tenant on claude-api alone
    # maps workspaces of an organisation it reaches without an org-skills connection.


def test_plain_insert_enqueues_a_job_and_notifies(engine: Engine, database_url: str) -> None:
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute("LISTEN claresia_publish_job")
        with engine.begin() as conn:
            job_id = conn.execute(
                text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")
            ).scalar_one()
        notes = listener.notifies(timeout=10, stop_after=1)
        payloads = [n.payload for n in notes]
    assert payloads == [str(job_id)]
    with Session(engine) as session:
        job = session.get_one(PublishJob, job_id)
        assert (job.status, job.tenant_id, job.force) == ("queued", None, False)
        assert job.requested_by == session.execute(text("SELECT current_user")).scalar_one()
        assert job.lag_seconds is None
        job.finished_at = job.requested_at + dt.timedelta(seconds=42)
        session.commit()
        session.refresh(job)
        assert job.lag_seconds == pytest.approx(42)


def _event(event_id: str, at: dt.datetime, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "record_id": "rec_" + event_id.removeprefix("evt_"),
        "event_id": event_id,
        "event_type": "skill.invoked",
        "status": "succeeded",
        "occurred_at": at,
        "org_id": "org_dainese",
        "workspace_id": "wrkspc_dainese_eng",
        "tenant_slug": "dainese-eng",
        "parent_tenant_slug": "dainese",
        "skill_id": "incident-postmortem",
        "cost_usd": Decimal("0.04"),
        "duration_ms": 2300,
        "raw": {"id": event_id},
    }
    row.update(over)
    return row


AT = dt.datetime(2026, 11, 21, 9, 14, 3, tzinfo=dt.UTC)


def test_event_id_unique_even_across_months(session: Session) -> None:
    assert insert_events(session, [_event("evt_1", AT), _event("evt_2", AT)]) == 2
    assert insert_events(session, [_event("evt_1", AT), _event("evt_3", AT)]) == 1  # redelivery
    session.commit()
    # The same id with another time would land in another partition: the id table refuses it.
    with pytest.raises(IntegrityError):
        session.execute(
            text("INSERT INTO telemetry_event_id VALUES ('evt_1', '2020-01-01T00:00:00Z')")
        )
    session.rollback()
    with pytest.raises(IntegrityError):  # and a row cannot bypass the id table
        session.execute(
            text(
                "INSERT INTO telemetry_event (record_id, event_id, event_type, status, "
                "occurred_at, org_id, tenant_slug, raw) VALUES ('rec_1', 'evt_1', 'skill.invoked',"
                " 'succeeded', '2020-01-01T00:00:00Z', 'org_d', 'd', '{}')"
            )
        )
    session.rollback()
    ids = session.execute(text("SELECT event_id FROM telemetry_event ORDER BY 1")).scalars()
    assert list(ids) == ["evt_1", "evt_2", "evt_3"]


def test_of_one_id_in_a_batch_the_first_row_is_written_once(session: Session) -> None:
    """A batch that repeats an id, or holds one already stored, writes each new id once, the
    first of its rows, and says how many were new."""
    assert insert_events(session, [_event("evt_stored", AT)]) == 1
    batch = [
        _event("evt_twice", AT, model="first"),
        _event("evt_stored", AT, model="again"),
        _event("evt_once", AT),
        _event("evt_twice", AT, model="second"),
    ]
    assert insert_events(session, batch) == 2
    stored = dict(
        session.execute(text("SELECT event_id, coalesce(model, '-') FROM telemetry_event")).all()
    )
    assert stored == {"evt_stored": "-", "evt_twice": "first", "evt_once": "-"}


def test_rows_land_in_their_month_and_move_out_of_default(session: Session) -> None:
    old = dt.datetime(2019, 5, 17, 12, tzinfo=dt.UTC)
    # Bypass insert_events (which would make the partition first): the row goes to default.
    session.execute(
        text("INSERT INTO telemetry_event_id VALUES (:e, :t)"), {"e": "evt_old", "t": old}
    )
    session.execute(
        text(
            "INSERT INTO telemetry_event (record_id, event_id, event_type, status, occurred_at,"
            " org_id, tenant_slug, raw) VALUES ('rec_old', 'evt_old', 'skill.failed', 'failed',"
            " :t, 'org_d', 'dainese', '{}')"
        ),
        {"t": old},
    )
    where = text("SELECT tableoid::regclass::text FROM telemetry_event WHERE event_id = 'evt_old'")
    assert session.execute(where).scalar_one() == "telemetry_event_default"
    assert ensure_partitions(session, [old, old.replace(day=30)]) == ["telemetry_event_2019_05"]
    assert session.execute(where).scalar_one() == "telemetry_event_2019_05"
    # Month bounds are UTC: 23:30 on 31 May in UTC-2 is June in UTC.
    late = dt.datetime(2019, 5, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    insert_events(session, [_event("evt_late", late)])
    row = text("SELECT tableoid::regclass::text FROM telemetry_event WHERE event_id = 'evt_late'")
    assert session.execute(row).scalar_one() == "telemetry_event_2019_06"
    session.commit()


def test_daily_view(session: Session) -> None:
    rows = [
        _event(f"evt_{i}", AT + dt.timedelta(minutes=i), duration_ms=100 * (i + 1))
        for i in range(10)
    ]
    rows[0].update(status="failed", event_type="skill.failed", cost_usd=None, error_type="timeout")
    rows.append(_event("evt_other", AT, skill_id="prd-review", duration_ms=7))
    insert_events(session, rows)
    session.commit()
    view = session.execute(
        text(
            "SELECT invocations, failures, failure_rate, cost_usd, p50_duration_ms, "
            "p95_duration_ms FROM telemetry_daily WHERE day = '2026-11-21' AND "
            "tenant_slug = 'dainese-eng' AND skill_id = 'incident-postmortem'"
        )
    ).one()
    assert view.invocations == 10 and view.failures == 1
    assert view.failure_rate == Decimal("0.1000")
    assert view.cost_usd == Decimal("0.36")
    assert view.p50_duration_ms == pytest.approx(550)
    assert view.p95_duration_ms == pytest.approx(955)


def test_analyst_role_reads_telemetry_only(engine: Engine) -> None:
    with engine.connect() as conn:
        role = conn.execute(
            text("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'claresia_analyst'")
        ).one()
        assert role.rolcanlogin is False

        def can(table: str, privilege: str) -> bool:
            return bool(
                conn.execute(
                    text("SELECT has_table_privilege('claresia_analyst', :t, :p)"),
                    {"t": table, "p": privilege},
                ).scalar_one()
            )

        for table in ("telemetry_event", "telemetry_daily", "telemetry_quarantine"):
            assert can(table, "SELECT")
            assert not can(table, "INSERT")
        for table in ("tenant", "org_connection", "publication", "publish_job"):
            assert not can(table, "SELECT")
        # The role works for real: as claresia_analyst, telemetry reads and tenants do not.
        conn.execute(text("SET ROLE claresia_analyst"))
        conn.execute(text("SELECT count(*) FROM telemetry_daily")).scalar_one()
        with pytest.raises(Exception, match="permission denied"):
            conn.execute(text("SELECT count(*) FROM tenant"))
        conn.rollback()


def test_quarantine_keeps_a_redelivered_event_once(session: Session) -> None:
    insert = text(
        "INSERT INTO telemetry_quarantine (org_id, event_id, reason, raw) "
        "VALUES ('org_d', :e, 'unknown workspace', CAST(:raw AS jsonb)) ON CONFLICT DO NOTHING"
    )
    raw = json.dumps({"id": "evt_q"})
    for _ in range(2):
        session.execute(insert, {"e": "evt_q", "raw": raw})
    session.execute(insert, {"e": None, "raw": "42"})
    session.execute(insert, {"e": None, "raw": "42"})
    session.commit()
    count = session.execute(text("SELECT count(*) FROM telemetry_quarantine")).scalar_one()
    assert count == 3
