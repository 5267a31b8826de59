"""The sources of Claude Enterprise organisations in a real daemon process (issue 16): a plugin
deleted in claude.ai (the emulator's administrator route) or through the API with another admin
key of the organisation is published again within a minute, our own repairs queue no more, and
/metrics and /readyz cover each source."""

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
from claresia_sync.emulator.state import ENTERPRISE_SCOPES
from claresia_sync.publish.jobs import enqueue
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.real_api import client
from tests.fixtures.sources import ORG

SKILL = "claresia-ferretti-prd-review"
OPENED = "claresia-ferretti-standup-notes"  # set `available` to everyone by another key
OTHER_KEY = "sk-ant-api01-ferretti-OTHER-0000000000000000000000000000000000000000000000000"


def _repair(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT a.activity_id, a.repair_job_id, j.force, t.slug FROM org_activity a "
                "JOIN publish_job j ON j.id = a.repair_job_id JOIN tenant t ON t.id = j.tenant_id "
                "WHERE a.activity_type = 'claude_plugin_deleted'"
            )
        ).one_or_none()


def _plugins(emulator: EmulatorServer) -> dict[str, str]:
    with emulator.state.lock:
        catalog = emulator.state.orgs[ORG].plugins
        assert catalog is not None
        return {p.name: p.id for p in catalog.plugins.values()}


def test_a_plugin_deleted_in_claude_ai_is_repaired_within_a_minute(
    engine: Engine, emulator: EmulatorServer, start_daemon: Callable[..., DaemonProcess]
) -> None:
    # daemon_env: the catalog and the example tenants, ferretti on claude-enterprise (emulator)
    daemon = start_daemon(env={"CLARESIA_ACTIVITY_INTERVAL": "2"})
    with Session(engine) as session:
        enqueue(session, "ferretti")
        session.commit()
    wait_until(lambda: len(_plugins(emulator)) == 5, 60, "ferretti's first publish")
    metrics_url = f"http://127.0.0.1:{daemon.port}/metrics"
    seen = 'claresia_source_rows_total{org_id="org_ferretti",source="activity-feed"}'
    wait_until(lambda: seen in httpx2.get(metrics_url).text, 30, "the feed's first read")

    deleted = time.monotonic()
    answer = httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/{ORG}/admin",
        json={"action": "delete_plugin", "plugin_id": _plugins(emulator)[SKILL]},
    )
    assert answer.status_code == 201 and SKILL not in _plugins(emulator)
    wait_until(lambda: SKILL in _plugins(emulator), 60, "the deleted plugin published again")
    took = time.monotonic() - deleted
    assert took < 60, took
    print(f"plugin deleted in claude.ai published again after {took:.1f}s")
    repair = _repair(engine)
    assert repair is not None and repair.force and repair.slug == "ferretti"
    # our own re-creation shows in the feed too, and is not taken for drift
    wait_until(lambda: _created_again(engine), 30, "the re-creation in the feed")
    with engine.connect() as conn:
        repairs = conn.execute(
            text("SELECT count(DISTINCT repair_job_id) FROM org_activity")
        ).scalar_one()
    assert repairs == 1

    # The same through the API with another admin key of the organisation (not claresia-sync's):
    # a plugin deleted and another one made `available` to everyone are repaired as fast.
    emulator.state.add_admin_key(ORG, OTHER_KEY, ENTERPRISE_SCOPES)
    other = client(emulator, key=OTHER_KEY)
    changed = time.monotonic()
    other.beta.organization.plugins.delete(_plugins(emulator)[SKILL])
    other.beta.organization.plugins.installation_settings.set(
        "organization", plugin_id=_plugins(emulator)[OPENED], installation_preference="available"
    )
    wait_until(
        lambda: SKILL in _plugins(emulator) and _org_setting(emulator, OPENED) == "not_available",
        60,
        "the other key's changes repaired",
    )
    took = time.monotonic() - changed
    assert took < 60, took
    print(f"changes made with another admin key repaired after {took:.1f}s")
    # Our repairs are our own writes: no further repair, whatever the feed reads meanwhile.
    wait_until(lambda: _created(engine) == 3, 30, "the second re-creation in the feed")
    time.sleep(5)  # two more feed runs
    with engine.connect() as conn:
        repairs = conn.execute(
            text("SELECT count(DISTINCT repair_job_id) FROM org_activity")
        ).scalar_one()
        waiting = conn.execute(
            text("SELECT count(*) FROM publish_job WHERE status IN ('queued', 'running')")
        ).scalar_one()
    assert (repairs, waiting) == (2, 0)

    ready = httpx2.get(f"http://127.0.0.1:{daemon.port}/readyz").json()
    assert ready["ready"] is True
    assert not any(k.startswith("activity-feed") for k in ready["api_errors"])
    analytics = 'claresia_source_rows_total{org_id="org_ferretti",source="skills-analytics"}'
    assert analytics in httpx2.get(metrics_url).text  # it ran too (nothing to read yet)
    assert daemon.stop()[0] == 0


def _created(engine: Engine) -> int:
    """How many times the feed shows SKILL's plugin created."""
    with engine.connect() as conn:
        found: int = conn.execute(
            text(
                "SELECT count(*) FROM org_activity WHERE activity_type = "
                "'claude_plugin_created' AND subject_name = :n"
            ),
            {"n": SKILL},
        ).scalar_one()
    return found


def _created_again(engine: Engine) -> bool:
    return _created(engine) == 2


def _org_setting(emulator: EmulatorServer, name: str) -> str | None:
    with client(emulator) as sdk:
        plugin = sdk.beta.organization.plugins.retrieve(_plugins(emulator)[name])
    return plugin.organization_installation_preference


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
        "--interval",
        "0.5",
    ]
    done = subprocess.run(
        command, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    statuses = done.stdout.strip().rsplit("HTTP ", 1)[1].split(", ")
    exports = len(statuses)  # batches on the interval: the usage comes after the activations
    assert exports >= 3 and set(statuses) == {"200"}, done.stdout
    assert f"in {exports} export(s)" in done.stdout
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT count(*) FROM telemetry_invocation "
                "WHERE event_type = 'claude_code.skill_activated' AND cost_usd > 0"
            )
        ).scalar_one()
    assert stored == 25
    metrics = httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics").text
    assert f'claresia_otlp_requests_total{{status="200"}} {exports:.1f}' in metrics
    assert 'claresia_source_rows_total{org_id="ferretti",source="claude-code-otlp"} 25.0' in metrics
    assert daemon.stop()[0] == 0
