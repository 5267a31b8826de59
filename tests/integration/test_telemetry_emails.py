"""Emails are not stored unless configured (docs/interfaces.md section 4; issue 13 item 2): not in
the rows' raw event, not in the quarantine, not readable by the analyst role; migration 0003 removes
those stored before, and the append-only guard stays in force afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, text

from claresia_sync.db.engine import make_engine
from claresia_sync.db.migrate import upgrade
from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.fixtures.emulator import DAINESE_ORG
from tests.integration.test_telemetry_poller import ENG_SKILL, poll, world

__all__ = ["world"]  # the fixture, shared with the poller tests

# Every relation the analyst role may read, whole rows as text.
_ANALYST_READS = ("telemetry_event", "telemetry_quarantine", "telemetry_invocation")


def _with_email(conn: Connection, relation: str) -> tuple[int, int]:
    """(rows, rows holding an '@' anywhere), read as claresia_analyst."""
    rows, emails = conn.execute(
        text(f"SELECT count(*), count(*) FILTER (WHERE strpos(r::text, '@') > 0) FROM {relation} r")
    ).one()
    return rows, emails


def _as_analyst(engine: Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        conn.execute(text("SET ROLE claresia_analyst"))
        seen = {r: _with_email(conn, r) for r in _ANALYST_READS}
        conn.rollback()
    return seen


def _events_with_emails(world: EmulatorServer) -> None:
    """50 attributable events and 5 of an unmapped workspace, all with the actor's email."""
    state = world.state
    state.generate_invocations(DAINESE_ORG, 50, failure_rate=0.2, skill=ENG_SKILL, seed=5)
    template = json.loads(state.audit_page(DAINESE_ORG, 1, None, None))["data"][0]
    assert "@" in template["actor"]["email"]
    template = {k: v for k, v in template.items() if k not in ("id", "created_at")}
    state.append_events(DAINESE_ORG, [{**template, "workspace_id": "wrkspc_mystery"}] * 5)


def test_analysts_read_no_email_after_a_poll(engine: Engine, world: EmulatorServer) -> None:
    _events_with_emails(world)
    (result,) = poll(engine, tenant="dainese", settings=TelemetrySettings())
    assert (result.inserted, result.quarantined) == (50, 5)
    seen = _as_analyst(engine)
    assert seen == {
        "telemetry_event": (50, 0),
        "telemetry_quarantine": (5, 0),
        "telemetry_invocation": (50, 0),
    }
    with engine.connect() as conn:  # only the email went: the user id and the rest stay
        actor = conn.execute(text("SELECT raw -> 'actor' FROM telemetry_event LIMIT 1")).scalar()
    assert actor is not None and actor["user_id"] and "email" not in actor


def test_emails_are_kept_where_configured(engine: Engine, world: EmulatorServer) -> None:
    _events_with_emails(world)
    poll(engine, tenant="dainese", settings=TelemetrySettings(store_emails=True))
    seen = _as_analyst(engine)
    assert seen["telemetry_event"] == (50, 50) and seen["telemetry_quarantine"] == (5, 5)
    assert seen["telemetry_invocation"] == (50, 0)  # the view never shows emails


_EVENT = """
INSERT INTO telemetry_event_id (event_id, occurred_at) VALUES (:id, '2026-11-02T10:00:00Z');
INSERT INTO telemetry_event (record_id, event_id, event_type, status, occurred_at, org_id,
                             tenant_slug, actor_email, raw)
VALUES ('rec_' || :id, :id, 'skill.invoked', 'succeeded', '2026-11-02T10:00:00Z', 'org_x',
        'dainese', :email, CAST(:raw AS jsonb));
"""


def _raw(event_id: str, email: str) -> str:
    return json.dumps({"id": event_id, "actor": {"type": "user", "user_id": "u1", "email": email}})


def test_migration_0003_scrubs_stored_emails_and_keeps_the_guard(
    make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLARESIA_TELEMETRY_STORE_EMAILS", raising=False)
    engine = make_engine(make_database())
    try:
        upgrade(engine, "0002")
        with engine.begin() as conn:
            conn.execute(text("SELECT telemetry_event_ensure_partition('2026-11-01T00:00:00Z')"))
            for event_id, email in (("evt_a", None), ("evt_b", None), ("evt_c", "c@x.example")):
                params = {"id": event_id, "email": email, "raw": _raw(event_id, "c@x.example")}
                for statement in _EVENT.strip().split(";\n"):
                    conn.execute(text(statement), params)
            conn.execute(
                text(
                    "INSERT INTO telemetry_quarantine (org_id, event_id, reason, raw) "
                    "VALUES ('org_x', 'evt_q', 'unknown workspace', CAST(:raw AS jsonb)), "
                    "('org_x', 'evt_list', 'malformed', '[1, \"q@x.example\"]')"
                ),
                {"raw": _raw("evt_q", "q@x.example")},
            )
        assert _as_analyst(engine)["telemetry_event"] == (3, 3)

        assert [r.id for r in upgrade(engine, "0003").applied] == ["0003"]

        with engine.connect() as conn:
            kept = (
                conn.execute(
                    text("SELECT event_id FROM telemetry_event WHERE strpos(raw::text, '@') > 0")
                )
                .scalars()
                .all()
            )
            quarantine = dict(
                conn.execute(text("SELECT event_id, raw FROM telemetry_quarantine")).all()
            )
        assert kept == ["evt_c"]  # ingested with emails configured (actor_email set): kept
        assert quarantine["evt_q"]["actor"] == {"type": "user", "user_id": "u1"}
        assert quarantine["evt_list"] == [1, "q@x.example"]  # not an event's actor: untouched
        # The guard is back, for the owner too, on the table and every partition.
        with engine.connect() as conn:
            states = (
                conn.execute(
                    text(
                        "SELECT DISTINCT tgenabled FROM pg_trigger "
                        "WHERE tgname = 'telemetry_event_no_update'"
                    )
                )
                .scalars()
                .all()
            )
            assert states == ["O"]
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text("UPDATE telemetry_event SET model = 'x'"))
            conn.rollback()
            conn.execute(text("SET ROLE claresia_analyst"))
            with pytest.raises(Exception, match="permission denied"):
                conn.execute(text("UPDATE telemetry_quarantine SET reason = 'x'"))
            conn.rollback()
    finally:
        engine.dispose()
