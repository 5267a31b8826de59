"""Every failure is recorded with its whole one-line cause and shown by `status` (issue 13 item
3): a poll whose key reference cannot be resolved (in the daemon too), a publish job refused for
zero retention; `status --json`, no truncation off a terminal, exit code 3 while failing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session

from claresia_sync.api.client import CallCounter, make_http_pool
from claresia_sync.config import Settings
from claresia_sync.daemon.metrics import Metrics
from claresia_sync.daemon.runtime import LiveWork
from claresia_sync.daemon.service import WorkFailed
from claresia_sync.db.models import OrgConnection
from claresia_sync.emulator import EmulatorServer
from claresia_sync.errors import ExitCode
from claresia_sync.status import tenant_status
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import ACME_KEY, ACME_ORG, DAINESE_KEY, DAINESE_ORG
from tests.integration.test_publish_e2e import publish, world

__all__ = ["world"]  # the fixture: catalog imported, demo tenants applied on the emulator


async def _daemon_poll(engine: Engine, org_id: str) -> None:
    calls = CallCounter()
    async with make_http_pool() as http:
        work = LiveWork(engine, http, calls, Metrics(calls), "test", TelemetrySettings(), 30.0)
        await work.poll(org_id)


def _last_poll(engine: Engine, org_id: str) -> tuple[str | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT last_poll_status, last_poll_error FROM audit_checkpoint WHERE org_id = :o"
            ),
            {"o": org_id},
        ).one_or_none()
    return (row.last_poll_status, row.last_poll_error) if row else (None, None)


def _status(settings: Settings, *args: str) -> tuple[int, str]:
    keys = {"CLARESIA_DAINESE_ADMIN_KEY": DAINESE_KEY, "CLARESIA_ACME_ADMIN_KEY": ACME_KEY}
    done = run_cli("status", *args, env=clean_env(settings, **keys))
    assert not done.stderr.strip(), done.stderr
    return done.returncode, done.stdout


@pytest.mark.parametrize(
    ("ref", "cause"),
    [
        ("env:CLARESIA_ACME_ADMIN_KEY", "environment variable CLARESIA_ACME_ADMIN_KEY"),
        ("file:/nonexistent/acme.key", "cannot read the admin key file /nonexistent/acme.key"),
    ],
)
def test_daemon_poll_records_a_key_that_cannot_be_resolved(
    engine: Engine,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    ref: str,
    cause: str,
) -> None:
    monkeypatch.delenv("CLARESIA_ACME_ADMIN_KEY")
    with Session(engine) as s:
        s.execute(
            update(OrgConnection).where(OrgConnection.org_id == ACME_ORG).values(admin_key_ref=ref)
        )
        s.commit()
    asyncio.run(_daemon_poll(engine, DAINESE_ORG))
    assert _last_poll(engine, DAINESE_ORG) == ("ok", None)
    with pytest.raises(WorkFailed, match=cause):
        asyncio.run(_daemon_poll(engine, ACME_ORG))
    status, error = _last_poll(engine, ACME_ORG)
    assert status == "error" and error is not None
    assert cause in error and ACME_ORG in error and "\n" not in error


def test_status_shows_the_whole_poll_error_and_exits_3(
    engine: Engine, world: dict[str, Any], db_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLARESIA_ACME_ADMIN_KEY")
    with pytest.raises(WorkFailed):
        asyncio.run(_daemon_poll(engine, ACME_ORG))
    _, error = _last_poll(engine, ACME_ORG)
    assert error is not None and len(error) > 100  # longer than status used to show

    code, out = _status(db_settings)  # captured: not a terminal
    assert code == ExitCode.FAILURES
    assert error in out, out  # whole, on one line
    (acme_line,) = [line for line in out.splitlines() if line.count("│") > 3 and ACME_ORG in line]
    assert "error" in acme_line and error in acme_line

    code, out = _status(db_settings, "--json")
    assert code == ExitCode.FAILURES
    report = json.loads(out)
    orgs = {o["org_id"]: o for o in report["organisations"]}
    assert report["failing"] is True
    assert orgs[ACME_ORG]["failing"] and orgs[ACME_ORG]["last_poll_error"] == error
    assert orgs[ACME_ORG]["last_poll_status"] == "error"
    assert not orgs[DAINESE_ORG]["failing"]


def test_a_job_refused_for_zero_retention_shows_its_error(
    engine: Engine, world: dict[str, Any], emulator: EmulatorServer, db_settings: Settings
) -> None:
    emulator.state.set_zero_data_retention(DAINESE_ORG, False)
    outcome = publish(engine, "dainese")
    assert outcome.status == "failed"
    with engine.connect() as conn:
        tenants = {t.slug: t for t in tenant_status(conn)}
    for slug in ("dainese", "dainese-eng", "dainese-corp"):
        error = tenants[slug].last_error
        assert error and "zero-retention" in error and tenants[slug].failing, (slug, error)
    assert tenants["acme"].last_error is None and not tenants["acme"].failing

    code, out = _status(db_settings, "--json")
    assert code == ExitCode.FAILURES
    rows = {t["slug"]: t for t in json.loads(out)["tenants"]}
    assert rows["dainese"]["last_error"] == tenants["dainese"].last_error
    assert rows["dainese"]["last_job_status"] == "failed"


def test_status_exits_0_when_nothing_fails(
    engine: Engine, world: dict[str, Any], db_settings: Settings
) -> None:
    assert publish(engine, "acme").status == "succeeded"
    asyncio.run(_daemon_poll(engine, ACME_ORG))
    code, out = _status(db_settings, "--json")
    assert code == ExitCode.OK, out
    report = json.loads(out)
    assert report["failing"] is False
    acme = next(t for t in report["tenants"] if t["slug"] == "acme")
    assert acme["live"] > 0 and acme["last_error"] is None
