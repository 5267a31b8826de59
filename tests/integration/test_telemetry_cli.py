"""`telemetry poll --once`, `telemetry report`, `telemetry retention` as an operator runs them, and
the report's figures and retention's effects checked in the database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from claresia_sync.config import Settings
from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry.load import insert_events
from claresia_sync.telemetry.report import parse_since, skill_report
from claresia_sync.telemetry.retention import apply_retention
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import DAINESE_ORG
from tests.integration.test_telemetry_poller import ENG_SKILL, SALES_SKILL, scalar, world

__all__ = ["world"]  # the fixture, shared with the poller tests


def cli(*args: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    keys = {k: os.environ[k] for k in ("CLARESIA_DAINESE_ADMIN_KEY", "CLARESIA_ACME_ADMIN_KEY")}
    return run_cli(*args, env=clean_env(settings, **keys))


def test_poll_once_then_report_in_every_format(
    engine: Engine, world: EmulatorServer, db_settings: Settings
) -> None:
    world.state.generate_invocations(DAINESE_ORG, 30, failure_rate=0.3, skill=ENG_SKILL, seed=9)
    world.state.generate_invocations(DAINESE_ORG, 5, skill=SALES_SKILL, seed=10)
    done = cli("telemetry", "poll", "--once", "--tenant", "dainese-eng", settings=db_settings)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("org_dainese (dainese): 35 new, 0 duplicate(s), 0 quarantined")
    again = cli("telemetry", "poll", "--once", settings=db_settings)
    assert again.returncode == 0, again.stderr
    assert (
        "org_dainese (dainese): 0 new" in again.stdout and "org_acme (acme): 0 new" in again.stdout
    )

    as_json = cli("telemetry", "report", "--format", "json", settings=db_settings)
    assert as_json.returncode == 0, as_json.stderr
    figures = {(f["tenant_slug"], f["skill_id"]): f for f in json.loads(as_json.stdout)}
    assert set(figures) == {("dainese-eng", "incident-postmortem"), ("dainese", "meeting-summary")}
    eng = figures[("dainese-eng", "incident-postmortem")]
    failures = scalar(
        engine,
        "SELECT count(*) FROM telemetry_event WHERE status = 'failed' "
        "AND tenant_slug = 'dainese-eng'",
    )
    assert eng["invocations"] == 30 and eng["failures"] == failures
    cost = scalar(
        engine, "SELECT sum(cost_usd) FROM telemetry_event WHERE tenant_slug = 'dainese-eng'"
    )
    assert Decimal(eng["cost_usd"]) == cost

    as_csv = cli(
        "telemetry",
        "report",
        "--tenant",
        "dainese-eng",
        "--since",
        "1d",
        "--format",
        "csv",
        settings=db_settings,
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["tenant"], r["skill"], r["invocations"]) for r in rows] == [
        ("dainese-eng", "incident-postmortem", "30")
    ]
    table = cli("telemetry", "report", "--tenant", "dainese", settings=db_settings)
    assert table.returncode == 0 and "meeting-summary" in table.stdout
    assert "incident-postmortem" in table.stdout  # a parent's report includes its sub-tenants
    bad = cli("telemetry", "report", "--since", "last tuesday", settings=db_settings)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "--since" in bad.stderr
    unknown = cli("telemetry", "poll", "--once", "--tenant", "nobody", settings=db_settings)
    assert unknown.returncode != 0 and "unknown tenant 'nobody'" in unknown.stderr


def _row(event_id: str, at: dt.datetime, **over: Any) -> dict[str, Any]:
    row = {
        "record_id": "rec_" + event_id,
        "event_id": event_id,
        "event_type": "skill.invoked",
        "status": "succeeded",
        "occurred_at": at,
        "org_id": DAINESE_ORG,
        "workspace_id": "wrkspc_dainese_eng",
        "tenant_slug": "dainese-eng",
        "parent_tenant_slug": "dainese",
        "skill_id": "incident-postmortem",
        "duration_ms": 1000,
        "cost_usd": Decimal("0.01"),
        "raw": {"id": event_id},
    }
    row.update(over)
    return row


def test_report_percentiles_over_the_period(engine: Engine) -> None:
    now = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    rows = [
        _row(f"evt_{i}", now - dt.timedelta(hours=i), duration_ms=100 * (i + 1)) for i in range(20)
    ]
    rows.append(_row("evt_old", now - dt.timedelta(days=30)))
    rows[3].update(status="failed", event_type="skill.failed", cost_usd=None)
    with engine.begin() as conn:
        insert_events(conn, rows)
        (fig,) = skill_report(conn, since=parse_since("7d", now), tenant="dainese")
    assert (fig.invocations, fig.failures, fig.failure_rate) == (20, 1, Decimal("0.0500"))
    assert fig.cost_usd == Decimal("0.19")
    assert fig.p50_duration_ms == pytest.approx(1050) and fig.p95_duration_ms == pytest.approx(1905)
    assert parse_since("2026-11-01", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_retention_drops_whole_old_months_and_their_ids(engine: Engine) -> None:
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    old = dt.datetime(2025, 3, 10, tzinfo=dt.UTC)  # more than a year before now
    edge = dt.datetime(2025, 11, 25, tzinfo=dt.UTC)  # within 365 days: its month stays
    with engine.begin() as conn:
        insert_events(conn, [_row(f"evt_old{i}", old) for i in range(5)])
        insert_events(conn, [_row("evt_edge", edge), _row("evt_new", now)])
    dry = apply_retention(engine, 365, now=now, dry_run=True)
    assert dry.dropped_partitions == ["telemetry_event_2025_03"] and dry.deleted_ids == 0
    assert scalar(engine, "SELECT count(*) FROM telemetry_event") == 7
    done = apply_retention(engine, 365, now=now, batch=2)
    assert done.dropped_partitions == ["telemetry_event_2025_03"] and done.deleted_ids == 5
    assert scalar(engine, "SELECT to_regclass('telemetry_event_2025_03')") is None
    with engine.connect() as conn:
        left = set(conn.execute(text("SELECT event_id FROM telemetry_event")).scalars())
        ids = set(conn.execute(text("SELECT event_id FROM telemetry_event_id")).scalars())
    assert left == ids == {"evt_edge", "evt_new"}
    assert apply_retention(engine, 365, now=now).dropped_partitions == []  # idempotent


def test_analyst_role_reads_the_views_and_nothing_else(engine: Engine) -> None:
    if not scalar(engine, "SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst'"):
        pytest.skip("the claresia_analyst role could not be created on this server")
    with engine.begin() as conn:
        insert_events(conn, [_row("evt_a", dt.datetime(2026, 11, 21, tzinfo=dt.UTC))])
    with engine.connect() as conn:
        conn.execute(text("SET ROLE claresia_analyst"))
        seen = conn.execute(text("SELECT record_id, root_tenant_slug FROM telemetry_invocation"))
        assert seen.one() == ("rec_evt_a", "dainese")
        assert conn.execute(text("SELECT count(*) FROM telemetry_daily")).scalar() == 1
        for sql in ("SELECT * FROM tenant", "UPDATE telemetry_event SET model = 'x'"):
            with pytest.raises(DBAPIError, match="permission denied"):
                conn.execute(text(sql))
            conn.rollback()
            conn.execute(text("SET ROLE claresia_analyst"))
