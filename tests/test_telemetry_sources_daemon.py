"""The sources of Claude Enterprise organisations in a real daemon process (issue 16): a plugin
deleted in claude.ai (the emulator's administrator route) queues its repair within a minute,
and /metrics and /readyz cover each source."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_the_daemon_receives_claude_code_exports_on_its_own_port(
    engine: Engine,
    session: Session,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    import yaml

    from claresia_sync.tenancy import apply_tenants, parse_tenants
    from tests.fixtures.daemon import ROOT, free_port
    from tests.fixtures.otlp import TOKEN, TOKEN_ENV
    from tests.fixtures.sources import TENANTS

    data: dict[str, Any] = yaml.safe_load(TENANTS)
    data["tenants"][0]["otlp_token"] = f"env:{TOKEN_ENV}"
    apply_tenants(session, parse_tenants(yaml.safe_dump(data), "t.yaml"), source="t.yaml")
    session.commit()
    port = free_port()
    env = {TOKEN_ENV: TOKEN, "CLARESIA_OTLP_PORT": str(port), "CLARESIA_OTLP_HOST": "127.0.0.1"}
    daemon = start_daemon(env=env)
    command = [
        sys.executable,
        "-m",
        "claresia_sync",
        "emulator-claude-code",
        "--endpoint",
        f"http://127.0.0.1:{port}/v1/logs",
        "--token-ref",
        f"env:{TOKEN_ENV}",
        "--skill",
        SKILL,
        "--prompts",
        "25",
        "--batch",
        "10",
    ]
    done = subprocess.run(
        command, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "HTTP 200, 200, 200" in done.stdout
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT count(*) FROM telemetry_event "
                "WHERE event_type = 'claude_code.skill_activated' AND model IS NOT NULL"
            )
        ).scalar_one()
    assert stored == 25
    metrics = httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics").text
    assert 'claresia_otlp_requests_total{status="200"} 3.0' in metrics
    assert 'claresia_source_rows_total{org_id="ferretti",source="claude-code-otlp"} 25.0' in metrics
    assert daemon.stop()[0] == 0
