"""Skills analytics into `skill_usage_daily` (issue 16): the real PostgreSQL, the emulator's
`/v1/organizations/analytics/skills` over loopback through the official SDK."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry.analytics import AnalyticsResult, days_to_read
from claresia_sync.telemetry.analytics_reader import enterprise_connections, ingest_connection
from tests.fixtures.sources import ORG, apply_ferretti, make_plugin, set_lag, use_skills

TODAY = dt.datetime.now(dt.UTC).date()
DAY = dt.timedelta(days=1)
SKILL = "claresia-ferretti-prd-review"


def _run(engine: Engine, **kw: object) -> AnalyticsResult:
    with Session(engine) as session:
        (conn,) = enterprise_connections(session)
    return asyncio.run(ingest_connection(engine, conn, **kw))  # type: ignore[arg-type]


def _rows(engine: Engine, breakdown: str = "skill") -> dict[tuple[dt.date, str, str], Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT day, user_id, rbac_group_id, invocation_count, revision_count, "
                "tenant_slug, archetype_slug, estimated_overage_spend_usd, raw "
                "FROM skill_usage_daily WHERE breakdown = :b"
            ),
            {"b": breakdown},
        ).all()
    return {(r.day, r.user_id, r.rbac_group_id): tuple(r) for r in rows}


def test_days_to_read() -> None:
    today = dt.date(2026, 11, 30)
    assert days_to_read(None, today, window_days=7, backfill_days=3) == [
        dt.date(2026, 11, 27),
        dt.date(2026, 11, 28),
        dt.date(2026, 11, 29),
    ]
    # caught up: the trailing window only
    window = days_to_read(dt.date(2026, 11, 29), today, window_days=2, backfill_days=30)
    assert window == [dt.date(2026, 11, 28), dt.date(2026, 11, 29)]
    # down for weeks: from the first day not read, not only the window
    assert days_to_read(dt.date(2026, 11, 1), today, window_days=2, backfill_days=30)[0] == (
        dt.date(2026, 11, 2)
    )


def test_revisions_are_upserted_without_duplicates(
    engine: Engine, session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    make_plugin(emulator, SKILL)
    make_plugin(emulator, "acme-travel-helper")  # an administrator's plugin: not ours
    use_skills(emulator, TODAY - 3 * DAY, 40, seed=1, skill=SKILL)
    use_skills(emulator, TODAY - 2 * DAY, 30, seed=2, skill=SKILL)
    use_skills(emulator, TODAY - 2 * DAY, 7, seed=5, skill="acme-travel-helper")

    first = _run(engine, backfill_days=5, window_days=2)
    assert first.error is None and first.days == 5 and first.not_ours > 0
    daily = _rows(engine)
    ours = {k[0]: v[3] for k, v in daily.items()}
    assert ours == {TODAY - 3 * DAY: 40, TODAY - 2 * DAY: 30}  # the foreign plugin: not stored
    users_before = _rows(engine, "user")
    assert sum(v[3] for k, v in users_before.items() if k[0] == TODAY - 2 * DAY) == 30

    # Late data for the day before yesterday: inside the trailing window, re-read and revised.
    use_skills(emulator, TODAY - 2 * DAY, 25, seed=3, skill=SKILL)
    second = _run(engine, backfill_days=5, window_days=2)
    assert second.error is None and second.days == 2  # the window only: the rest is read
    assert second.revised > 0
    revised = _rows(engine)
    assert revised[(TODAY - 2 * DAY, "", "")][3] == 30 + 25
    assert revised[(TODAY - 2 * DAY, "", "")][4] == 1  # changed once
    assert revised[(TODAY - 3 * DAY, "", "")][4] == 0  # outside the window: not re-read
    with engine.connect() as conn:
        dupes = conn.execute(
            text(
                "SELECT count(*) - count(DISTINCT (day, breakdown, skill_name, user_id, "
                "rbac_group_id)) FROM skill_usage_daily"
            )
        ).scalar_one()
    assert dupes == 0

    # Nothing new: every row seen again, none revised.
    third = _run(engine, backfill_days=5, window_days=2)
    assert third.revised == 0 and third.inserted == 0 and third.unchanged > 0
    assert _rows(engine)[(TODAY - 2 * DAY, "", "")][4] == 1


def test_attribution_money_and_a_day_not_available_yet(
    engine: Engine, session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    make_plugin(emulator, SKILL)
    use_skills(emulator, TODAY - 4 * DAY, 60, seed=4)
    set_lag(emulator, 3)  # the API has nothing after TODAY - 3

    result = _run(engine, backfill_days=5)
    assert result.error is None
    assert result.latest_available_day == TODAY - 3 * DAY
    with engine.connect() as conn:
        state = conn.execute(
            text(
                "SELECT cursor_day, latest_available_day, last_error, last_success_at "
                "FROM telemetry_source WHERE source = 'skills-analytics' AND org_id = :org"
            ),
            {"org": ORG},
        ).one()
    assert state.cursor_day == TODAY - 3 * DAY and state.last_error is None
    assert state.latest_available_day == TODAY - 3 * DAY and state.last_success_at is not None

    groups = _rows(engine, "rbac_group")
    by_group = {k[2]: v for k, v in groups.items() if k[0] == TODAY - 4 * DAY}
    # rbac group -> archetype, and through it the sub-tenant
    assert by_group["rbac_group_ferretti_sales"][5:7] == ("ferretti-data", "analyst")
    assert by_group["rbac_group_ferretti_engineers"][5:7] == ("ferretti", "engineer")
    for row in _rows(engine).values():
        # cents as a decimal string -> exact dollars (tests/unit/test_analytics_rest.py); every
        # field of the answer has a column, so `raw` keeps nothing
        assert row[7] is not None and row[7] > 0 and row[8] is None
        assert row[5] == "ferretti"


def test_a_passing_failure_is_retried_under_the_one_policy(
    engine: Engine, session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    make_plugin(emulator, SKILL)
    use_skills(emulator, TODAY - DAY, 9, skill=SKILL, seed=7)
    emulator.set_faults(script=[503, 429], retry_after_s=0, routes=[ANALYTICS])
    result = _run(engine, backfill_days=1)
    assert result.error is None and result.inserted > 0
    calls: Any = emulator.stats.to_json()["calls"]
    statuses = {c["status"] for c in calls if c["route"] == ANALYTICS.split(" ")[1]}
    assert {503, 429, 200} <= statuses  # failed twice, retried, then read
    assert _rows(engine)[(TODAY - DAY, "", "")][3] == 9


def test_a_key_answered_twice_is_stored_once(
    engine: Engine,
    session: Session,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    make_plugin(emulator, SKILL)
    use_skills(emulator, TODAY - DAY, 12, skill=SKILL, seed=8)
    answer = httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/{ORG}/analytics", json={"repeat_rows": 1}
    )
    assert answer.status_code == 200, answer.text
    # A new day is copied straight into the table: the repeated key breaks the unique key there,
    # and the day is read again through the stage, which keeps one row per key.
    with caplog.at_level(logging.INFO, logger="claresia_sync.telemetry"):
        first = _run(engine, backfill_days=1)
    assert first.error is None and first.days == 1
    assert "lists a key twice" in caplog.text
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*), max(revision_count) FROM skill_usage_daily")
        ).one()
    assert first.inserted == stored[0] and first.revised == 0 and stored[1] == 0
    assert _rows(engine)[(TODAY - DAY, "", "")][3] == 12
    assert sum(v[3] for v in _rows(engine, "user").values()) == 12

    # Read again (the window): the repeated row is the same answer, not a revision.
    again = _run(engine, backfill_days=1, window_days=1)
    assert again.error is None and again.revised == 0 and again.inserted == 0
    assert again.unchanged == first.inserted


ANALYTICS = "GET /v1/organizations/analytics/skills"
