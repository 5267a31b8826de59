"""`publish` and `republish` as an operator runs them (subprocess, real database, emulator)."""

from __future__ import annotations

import subprocess
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from claresia_sync.config import Settings
from claresia_sync.db.models import Publication, PublishJob
from claresia_sync.emulator import EmulatorServer
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import (
    ACME_KEY,
    DAINESE_KEY,
    FERRETTI_ENTERPRISE_KEY,
    VESPUCCI_API_KEY,
)
from tests.integration.test_publish_e2e import world  # noqa: F401  (fixture)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    keys = {
        "CLARESIA_DAINESE_ADMIN_KEY": DAINESE_KEY,
        "CLARESIA_ACME_ADMIN_KEY": ACME_KEY,
        "CLARESIA_FERRETTI_ENTERPRISE_KEY": FERRETTI_ENTERPRISE_KEY,
        "CLARESIA_VESPUCCI_SUPPORT_API_KEY": VESPUCCI_API_KEY,
    }
    return run_cli(*args, env=clean_env(settings, **keys))


def count(engine: Engine, model: Any) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_dry_run_prints_the_plan_and_writes_nothing(
    engine: Engine,
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    result = cli(db_settings, "republish", "--all", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "claresia-dainese-eng-incident-postmortem" in result.stdout
    assert "claresia-acme-okr-drafting" in result.stdout
    assert "plan: 25 create, 0 update, 0 acl, 0 delete, 0 unchanged, 0 failed" in result.stdout
    assert emulator.stats.writes() == 0
    assert count(engine, Publication) == 0 and count(engine, PublishJob) == 0


def test_publish_wait_then_republish_all(
    engine: Engine,
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    queued = cli(db_settings, "publish", "--tenant", "acme")
    assert queued.returncode == 0, queued.stderr
    assert "queued publish job 1 for tenant acme" in queued.stdout
    with Session(engine) as s:
        job = s.get(PublishJob, 1)
        assert job is not None and job.status == "queued"

    waited = cli(db_settings, "publish", "--tenant", "dainese", "--wait")
    assert waited.returncode == 0, waited.stderr
    assert "publish job 2: succeeded" in waited.stdout
    assert count(engine, Publication) == 13  # job 1 is still queued for a daemon

    again = cli(db_settings, "republish", "--all")
    assert again.returncode == 0, again.stderr
    assert "publish job 3: succeeded" in again.stdout
    assert count(engine, Publication) == 25  # ferretti's 5 plugins and vespucci's 2 skills too


def test_operator_errors_are_one_line(
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    both = cli(db_settings, "republish", "--all", "--tenant", "acme")
    assert both.returncode != 0
    assert both.stderr.strip() == (
        "claresia-sync: error: republish needs exactly one of --all or --tenant T"
    )
    unknown = cli(db_settings, "publish", "--tenant", "nobody")
    assert unknown.returncode != 0
    assert "unknown tenant 'nobody'" in unknown.stderr.strip().splitlines()[-1]

    emulator.state.set_zero_data_retention("org_acme", False)
    refused = cli(db_settings, "republish", "--tenant", "acme")
    assert refused.returncode != 0
    assert "Enable zero-retention in Anthropic Console" in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("claresia-sync: error: publish job 1 failed")
    )
