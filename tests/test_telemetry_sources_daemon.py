"""The sources of Claude Enterprise organisations in a real daemon process (issue 16): a plugin
deleted in claude.ai (the emulator's administrator route) queues its repair within a minute,
and /metrics and /readyz cover each source."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.emulator import EmulatorServer
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.real_api import ENTERPRISE_KEY
from tests.fixtures.sources import KEY_ENV, ORG, apply_ferretti, make_plugin

SKILL = "claresia-ferretti-prd-review"


def _repair(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT a.activity_id, a.repair_job_id, j.force, t.slug FROM org_activity a "
                "JOIN publish_job j ON j.id = a.repair_job_id JOIN tenant t ON t.id = j.tenant_id "
                "WHERE a.activity_type = 'claude_plugin_deleted'"
            )
        ).one_or_none()


def test_a_plugin_deleted_in_claude_ai_is_queued_for_repair_within_a_minute(
    engine: Engine,
    session: Session,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    plugin_id = make_plugin(emulator, SKILL)
    daemon = start_daemon(env={KEY_ENV: ENTERPRISE_KEY, "CLARESIA_ACTIVITY_INTERVAL": "2"})
    metrics_url = f"http://127.0.0.1:{daemon.port}/metrics"
    feed = 'claresia_source_rows_total{org_id="org_ferretti",source="activity-feed"} 1.0'
    wait_until(lambda: feed in httpx2.get(metrics_url).text, 30, "the feed's first read")

    deleted = time.monotonic()
    answer = httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/{ORG}/admin",
        json={"action": "delete_plugin", "plugin_id": plugin_id},
    )
    assert answer.status_code == 201
    took = wait_until(lambda: _repair(engine) is not None, 60, "the repair job")
    assert time.monotonic() - deleted < 60 and took < 60
    repair = _repair(engine)
    assert repair.force and repair.slug == "ferretti"

    ready = httpx2.get(f"http://127.0.0.1:{daemon.port}/readyz").json()
    assert ready["ready"] is True
    assert not any(k.startswith("activity-feed") for k in ready["api_errors"])
    # the analytics ran too (nothing to read yet: still a success)
    text_ = httpx2.get(metrics_url).text
    assert 'claresia_source_rows_total{org_id="org_ferretti",source="skills-analytics"}' in text_
    assert daemon.stop()[0] == 0
