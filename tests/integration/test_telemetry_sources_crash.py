"""SIGKILL during each ingester of issue 16 loses and duplicates nothing: a real process reading
the skills analytics, then the activity feed, killed at random moments and restarted; and a
real daemon receiving OTLP exports, killed while exporters send and retry."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import httpx2
import pytest
import yaml
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.claude_code import Prompt, encode, export_batches
from claresia_sync.telemetry import otlp
from claresia_sync.tenancy import apply_tenants, parse_tenants
from tests.fixtures.daemon import ROOT, DaemonProcess, free_port, wait_until
from tests.fixtures.otlp import TOKEN, TOKEN_ENV
from tests.fixtures.real_api import ENTERPRISE_KEY
from tests.fixtures.sources import KEY_ENV, ORG, TENANTS, apply_ferretti, make_plugin

# SIGKILLs during each real source: up to 3 minutes a test at load 9 (-n 0).
pytestmark = pytest.mark.timeout(900)

SKILL = "claresia-ferretti-prd-review"
KILLS = 4
TODAY = dt.datetime.now(dt.UTC).date()


def _runner(database_url: str, source: str, limit: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    env.update(CLARESIA_DATABASE_URL=database_url, **{KEY_ENV: ENTERPRISE_KEY})
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.source_runner", source, str(limit)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _kill_and_finish(
    engine: Engine, database_url: str, source: str, limit: int, progress: str, seed: int
) -> int:
    """Start the runner, SIGKILL it once its rows flow, `KILLS` times; then let one finish.
    How many kills landed before the work was done."""
    rng = random.Random(seed)
    landed = 0
    for _ in range(KILLS):
        before = _count(engine, progress)
        proc = _runner(database_url, source, limit)
        deadline = time.monotonic() + 30
        while _count(engine, progress) == before and proc.poll() is None:
            assert time.monotonic() < deadline, "the runner made no progress"
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        proc.wait(10)
    final = _runner(database_url, source, limit)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    return landed


def test_sigkill_during_the_skills_analytics_backfill(
    engine: Engine,
    session: Session,
    database_url: str,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    make_plugin(emulator, SKILL)
    make_plugin(emulator, "acme-travel-helper")
    for days_ago in range(1, 31):
        day = (TODAY - dt.timedelta(days=days_ago)).isoformat()
        for skill, count in ((SKILL, 40), ("acme-travel-helper", 5)):
            answer = httpx2.post(
                f"{emulator.base_url}/_emulator/invocations",
                json={"org_id": ORG, "count": count, "day": day, "skill": skill, "seed": days_ago},
            )
            assert answer.status_code == 201
    emulator.set_faults(latency_ms=15)

    landed = _kill_and_finish(
        engine, database_url, "analytics", 2, "SELECT count(*) FROM skill_usage_daily", seed=16
    )
    assert landed >= 2  # most kills hit a run that was still reading

    with engine.connect() as conn:
        per_day: dict[dt.date, int] = dict(
            conn.execute(
                text(
                    "SELECT day, sum(invocation_count) FROM skill_usage_daily "
                    "WHERE breakdown = :b GROUP BY day"
                ),
                {"b": "skill"},
            ).all()
        )
        by_user: dict[dt.date, int] = dict(
            conn.execute(
                text(
                    "SELECT day, sum(invocation_count) FROM skill_usage_daily "
                    "WHERE breakdown = 'user' GROUP BY day"
                )
            ).all()
        )
        revised = conn.execute(
            text("SELECT count(*) FROM skill_usage_daily WHERE revision_count > 0")
        ).scalar_one()
        cursor = conn.execute(
            text("SELECT cursor_day FROM telemetry_source WHERE source = 'skills-analytics'")
        ).scalar_one()
    expected = {TODAY - dt.timedelta(days=n): 40 for n in range(1, 31)}
    assert per_day == expected  # every day, once: nothing lost, nothing twice
    assert by_user == expected
    assert revised == 0  # a killed day was rolled back whole, never half-written and revised
    assert cursor == TODAY - dt.timedelta(days=1)


def test_sigkill_while_paging_the_activity_feed(
    engine: Engine,
    session: Session,
    database_url: str,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply_ferretti(session, emulator, monkeypatch)
    actor = {"type": "api_actor", "api_key_id": "apikey_x"}
    for i in range(300):
        emulator.state.record_activity(
            ORG, "claude_plugin_created", actor, plugin_id=f"plugin_{i}", plugin_name=f"p-{i}"
        )
    emulator.set_faults(latency_ms=10)
    landed = _kill_and_finish(
        engine, database_url, "activity", 5, "SELECT count(*) FROM org_activity", seed=17
    )
    assert landed >= 2
    # More while it was down: the next run pages forward to them.
    for i in range(300, 340):
        emulator.state.record_activity(
            ORG, "claude_plugin_created", actor, plugin_id=f"plugin_{i}", plugin_name=f"p-{i}"
        )
    _kill_and_finish(engine, database_url, "activity", 5, "SELECT count(*) FROM org_activity", 18)
    with engine.connect() as conn:
        stored = list(
            conn.execute(text("SELECT activity_id FROM org_activity ORDER BY 1")).scalars()
        )
    assert stored == sorted(emulator.state.orgs[ORG].activity.ids)  # each once, none missing


def test_sigkill_of_the_daemon_while_claude_code_exports(
    engine: Engine,
    session: Session,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    data = yaml.safe_load(TENANTS)
    data["tenants"][0]["otlp_token"] = f"env:{TOKEN_ENV}"
    apply_tenants(session, parse_tenants(yaml.safe_dump(data), "t.yaml"), source="t.yaml")
    session.commit()
    port = free_port()
    env = {TOKEN_ENV: TOKEN, "CLARESIA_OTLP_PORT": str(port), "CLARESIA_OTLP_HOST": "127.0.0.1"}
    url = f"http://127.0.0.1:{port}/v1/logs"
    # As Claude Code exports: batches on an interval, a prompt's usage one or two later.
    requests = export_batches([Prompt(SKILL)] * 3000, seed=100, interval_s=12.5)
    batches = [encode(request, "http/protobuf", True) for request in requests]
    usage = [
        Decimal(repr(otlp.attributes(r.attributes)["cost_usd"]))
        for request in requests
        for r in request.resource_logs[0].scope_logs[0].log_records
        if otlp.event_name(r) == otlp.API_REQUEST
    ]
    assert len(batches) >= 60
    statuses: Counter[str] = Counter()

    def send(body: bytes, headers: dict[str, str]) -> bool:
        try:
            answer = httpx2.post(
                url,
                content=body,
                headers={**headers, "authorization": f"Bearer {TOKEN}"},
                timeout=5,
            )
        except httpx2.HTTPError as exc:
            statuses[type(exc).__name__] += 1
            return False
        statuses[str(answer.status_code)] += 1
        return answer.status_code == 200

    daemon = start_daemon(env=env)
    wait_until(lambda: _answers(url), 30, "the OTLP receiver")
    unsent = []
    for i, (body, headers) in enumerate(batches):
        if i == 25:
            daemon.kill()  # SIGKILL mid-stream: some exports fail, one may be cut mid-write
        if not send(body, headers):
            unsent.append((body, headers))
    assert unsent  # the kill was felt
    start_daemon(env=env)
    wait_until(lambda: _answers(url), 30, "the restarted OTLP receiver")
    for body, headers in unsent:  # what Claude Code's exporter retries
        assert send(body, headers)
    for body, headers in batches[:30]:  # and retries of exports that did arrive
        assert send(body, headers)
    stored = _count(
        engine,
        "SELECT count(*) FROM telemetry_event WHERE event_type = 'claude_code.skill_activated'",
    )
    distinct = _count(
        engine,
        "SELECT count(DISTINCT invocation_id) FROM telemetry_event "
        "WHERE event_type = 'claude_code.skill_activated'",
    )
    assert stored == distinct == 3000, statuses
    # Every request's usage counted once, on its prompt's activation, whatever the export.
    costed = "SELECT sum(cost_usd), sum(claude_code_requests) FROM telemetry_invocation"
    with engine.connect() as conn:
        cost, counted = conn.execute(text(costed)).one()
    assert (cost, counted) == (sum(usage), len(usage))


def _answers(url: str) -> bool:
    try:
        return httpx2.post(url, content=b"", timeout=1).status_code == 401
    except httpx2.HTTPError:
        return False
