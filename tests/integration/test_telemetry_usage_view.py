"""`skill_usage_by_source` (issue 16): the daily skills analytics and Claude Code's per-event
rows of one tenant, skill and day side by side, read as the analyst role."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.claude_code import Prompt, export_request
from claresia_sync.telemetry.analytics_reader import enterprise_connections, ingest_connection
from claresia_sync.tenancy import apply_tenants, parse_tenants
from tests.fixtures.otlp import TOKEN, TOKEN_ENV, receiver_url
from tests.fixtures.real_api import ENTERPRISE_KEY
from tests.fixtures.sources import KEY_ENV, TENANTS, make_plugin, use_skills

SKILL = "claresia-ferretti-prd-review"
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def test_daily_and_per_event_rows_side_by_side(
    engine: Engine, session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx2

    monkeypatch.setenv(KEY_ENV, ENTERPRISE_KEY)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    data: dict[str, Any] = yaml.safe_load(TENANTS)
    data["tenants"][0]["targets"]["claude-enterprise"]["base_url"] = emulator.base_url
    data["tenants"][0]["otlp_token"] = f"env:{TOKEN_ENV}"
    apply_tenants(session, parse_tenants(yaml.safe_dump(data), "t.yaml"), source="t.yaml")
    session.commit()
    make_plugin(emulator, SKILL)
    use_skills(emulator, YESTERDAY, 12, skill=SKILL, seed=1)
    with Session(engine) as s:
        (conn,) = enterprise_connections(s)
    assert asyncio.run(ingest_connection(engine, conn, backfill_days=2)).error is None

    # Three activations in Claude Code yesterday (its telemetry, seconds old at the time).
    request = export_request([Prompt(SKILL)] * 3, seed=2)
    noon = dt.datetime.combine(YESTERDAY, dt.time(12), dt.UTC)
    for i, record in enumerate(request.resource_logs[0].scope_logs[0].log_records):
        record.time_unix_nano = int(noon.timestamp() * 1e9) + i * 1000
    with receiver_url(engine) as url:
        answer = httpx2.post(
            url,
            content=request.SerializeToString(),
            headers={
                "content-type": "application/x-protobuf",
                "authorization": f"Bearer {TOKEN}",
            },
        )
    assert answer.status_code == 200

    with engine.connect() as c:
        c.execute(text("SET ROLE claresia_analyst"))
        row = c.execute(
            text(
                "SELECT * FROM skill_usage_by_source "
                "WHERE tenant_slug = 'ferretti' AND skill_id = 'prd-review' AND day = :d"
            ),
            {"d": YESTERDAY},
        ).one()
    assert row.daily_invocations == 12 and row.daily_revisions == 0
    assert row.daily_overage_spend_usd is not None
    assert row.claude_code_activations == 3 and row.claude_code_cost_usd > 0
    assert row.audit_invocations == 0
