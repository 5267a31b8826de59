"""`republish` beside a running daemon, `republish --dry-run [--json]` exit codes, and the
operator verbs `jobs list | show | retry | cancel | prune`, run as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from claresia_sync.config import Settings
from claresia_sync.emulator import EmulatorServer
from claresia_sync.errors import ExitCode
from tests.cli import run_cli
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.world import scalar
from tests.integration.test_publish_cli import cli
from tests.integration.test_publish_e2e import world  # noqa: F401  (fixture)


def test_republish_runs_its_job_itself_while_a_daemon_runs(
    start_daemon: Callable[..., DaemonProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
) -> None:
    daemon = start_daemon("--job-fallback-interval", "0.2")
    wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness")
    # The operator's shell lacks acme's key; the daemon has it. The daemon must not take the job
    # (it would succeed), and the command must report its own run: acme refused, exit 3.
    shell = {k: v for k, v in daemon_env.items() if k != "CLARESIA_ACME_ADMIN_KEY"}
    result = run_cli("republish", "--tenant", "acme", "--concurrency", "2", env=shell)
    assert result.returncode == ExitCode.FAILURES, (result.stdout, result.stderr)
    assert "publish job 1: failed" in result.stdout
    assert "CLARESIA_ACME_ADMIN_KEY" in result.stderr
    claimed_by = scalar(engine, "SELECT claimed_by FROM publish_job WHERE id = 1")
    assert str(claimed_by).startswith("cli-"), claimed_by
    assert not emulator.state.org("org_acme").skills  # nothing published by the daemon
    assert daemon.stop()[0] == 0


def test_a_dry_run_that_refuses_an_organisation_exits_3_and_says_so_in_json(
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    clean = cli(db_settings, "republish", "--all", "--dry-run", "--json")
    assert clean.returncode == 0, clean.stderr
    plan = json.loads(clean.stdout)
    assert plan["counts"]["create"] == 25 and plan["refused"] == []
    assert {i["action"] for i in plan["items"]} == {"create"}

    emulator.state.set_zero_data_retention("org_acme", False)
    refused = cli(db_settings, "republish", "--all", "--dry-run", "--json")
    assert refused.returncode == ExitCode.FAILURES, refused.stderr
    plan = json.loads(refused.stdout)
    assert [r["org_id"] for r in plan["refused"]] == ["org_acme"]
    assert "zero-retention" in plan["refused"][0]["why"]
    table = cli(db_settings, "republish", "--tenant", "acme", "--dry-run")
    assert table.returncode == ExitCode.FAILURES
    assert "REFUSED" in table.stdout
    assert table.stderr.strip().splitlines()[-1].startswith("claresia-sync: error: the plan has")
    wrong = cli(db_settings, "republish", "--all", "--json")
    assert wrong.returncode == ExitCode.ERROR and "--json goes with --dry-run" in wrong.stderr


def test_jobs_list_show_cancel_retry_prune(
    engine: Engine,
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    queued = cli(db_settings, "publish", "--tenant", "acme")
    assert queued.returncode == 0, queued.stderr
    listed = json.loads(cli(db_settings, "jobs", "list", "--json").stdout)
    assert [(j["id"], j["status"], j["tenant"]) for j in listed] == [(1, "queued", "acme")]

    cancelled = cli(db_settings, "jobs", "cancel", "1")
    assert cancelled.returncode == 0 and "publish job 1 cancelled" in cancelled.stdout
    again = cli(db_settings, "jobs", "cancel", "1")
    assert again.returncode == ExitCode.ERROR
    assert again.stderr.strip() == (
        "claresia-sync: error: publish job 1 already ended cancelled: nothing to cancel"
    )

    retried = cli(db_settings, "jobs", "retry", "1")
    assert retried.returncode == 0 and "queued publish job 2 (retry of job 1)" in retried.stdout
    shown = cli(db_settings, "jobs", "show", "2")
    assert "publish job 2: queued" in shown.stdout and "retry of job 1" in shown.stdout
    by_status = cli(db_settings, "jobs", "list", "--status", "cancelled")
    assert by_status.returncode == 0 and "cancelled" in by_status.stdout
    missing = cli(db_settings, "jobs", "show", "99")
    assert missing.returncode == ExitCode.ERROR
    assert "publish job 99 does not exist" in missing.stderr.strip().splitlines()[-1]

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE publish_job SET finished_at = now() - interval '3 days' WHERE id = 1")
        )
    kept = cli(db_settings, "jobs", "prune")  # the default keeps 30 days
    assert "pruned 0" in kept.stdout
    pruned = cli(db_settings, "jobs", "prune", "--older-than-days", "2")
    assert pruned.returncode == 0 and "pruned 1 " in pruned.stdout
    assert scalar(engine, "SELECT array_agg(id ORDER BY id) FROM publish_job") == [2]
    assert scalar(engine, "SELECT retry_of FROM publish_job WHERE id = 2") is None


def test_jobs_show_a_running_job_s_progress(
    engine: Engine,
    db_settings: Settings,
    world: dict[str, Any],  # noqa: F811
) -> None:
    from sqlalchemy.orm import Session

    from claresia_sync.publish import jobs

    with Session(engine) as session:
        job_id = jobs.enqueue(session, "acme")
        session.commit()
    assert jobs.claim(engine, "elsewhere", job_id) is not None
    jobs.heartbeat(engine, job_id, (2, 5))  # what a running job's heartbeat records
    shown = cli(db_settings, "jobs", "show", str(job_id))
    assert shown.returncode == 0, shown.stderr
    assert f"publish job {job_id}: running" in shown.stdout
    assert "progress: 2 of 5 skill(s) done" in shown.stdout
    assert "rounds:" not in shown.stdout  # a running job has no final counts yet
