"""The daemon's scheduled steps and its drain, as a real process (PostgreSQL, emulator):
retention and job pruning run by themselves, a dead replica's job is requeued by its own step,
SIGTERM waits only for work still running, failed jobs are warnings with their reasons, and
APScheduler's per-run chatter stays at debug."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, text

from claresia_sync.db.models import JobStatus
from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish import jobs
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.world import FINISHED, job_status, scalar

CREATE = "POST /v1/organizations/{org_id}/skills"


def _insert(engine: Engine, sql: str) -> int:
    with engine.begin() as conn:
        return int(conn.execute(text(sql + " RETURNING id")).scalar_one())


def _messages(daemon: DaemonProcess, level: str | None = None) -> list[str]:
    return [str(r["event"]) for r in daemon.logs() if level is None or r.get("level") == level]


def test_retention_and_job_pruning_run_in_the_daemon_by_themselves(
    start_daemon: Callable[..., DaemonProcess], engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("SELECT telemetry_event_ensure_partition('2020-01-15T00:00:00Z')"))
    old = _insert(
        engine,
        "INSERT INTO publish_job (status, requested_at, finished_at) "
        "VALUES ('succeeded', now() - interval '40 days', now() - interval '40 days')",
    )
    recent = _insert(
        engine, "INSERT INTO publish_job (status, finished_at) VALUES ('failed', now())"
    )
    assert scalar(engine, "SELECT to_regclass('telemetry_event_2020_01') IS NOT NULL")

    daemon = start_daemon(env={"CLARESIA_TELEMETRY_RETENTION_DAYS": "365"})
    wait_until(
        lambda: scalar(engine, "SELECT to_regclass('telemetry_event_2020_01') IS NULL"),
        20,
        "the daemon to drop the expired monthly partition",
    )
    wait_until(
        lambda: not scalar(engine, "SELECT count(*) FROM publish_job WHERE id = :i", i=old),
        20,
        "the daemon to prune the 40-day-old job",
    )
    assert scalar(engine, "SELECT count(*) FROM publish_job WHERE id = :i", i=recent) == 1
    wait_until(
        lambda: any("dropped ['telemetry_event_2020_01']" in m for m in _messages(daemon)),
        5,
        "the retention log line",
    )
    assert daemon.stop()[0] == 0


def test_sigterm_waits_only_for_the_job_still_running(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    # Idle workers wake on the queue only every 60 s: the drain must not wait for that.
    daemon = start_daemon("--job-fallback-interval", "60")
    wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness")
    emulator.set_faults(latency_ms=400, routes=[CREATE])  # the job runs for a second or so
    job_id = _insert(engine, "INSERT INTO publish_job DEFAULT VALUES")
    wait_until(lambda: job_status(engine, job_id) == "running", 5, "the job to start")
    code, took = daemon.stop()
    assert code == 0
    assert job_status(engine, job_id) == "succeeded"  # finished during the drain
    assert took < 5, took  # not the whole 7 s grace
    assert not any("cancel" in m for m in _messages(daemon)), _messages(daemon)[-5:]


def test_a_dead_replicas_job_is_requeued_and_taken_over(
    start_daemon: Callable[..., DaemonProcess], engine: Engine
) -> None:
    job_id = _insert(
        engine,
        "INSERT INTO publish_job (status, claimed_by, started_at, heartbeat_at) "
        "VALUES ('running', 'ghost-1', now() - interval '1 minute', now() - interval '1 minute')",
    )
    daemon = start_daemon(env={"CLARESIA_JOB_STALE_AFTER_S": "2"})
    wait_until(lambda: job_status(engine, job_id) in FINISHED, 20, "the takeover")
    assert job_status(engine, job_id) == "succeeded"
    warnings = _messages(daemon, "warning")
    assert any("of ghost-1 had no heartbeat" in m for m in warnings), warnings
    assert daemon.stop()[0] == 0


def test_failed_jobs_are_warnings_with_reasons_and_scheduler_chatter_is_debug(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    emulator.set_faults(script=[403] * 5, routes=[CREATE])  # acme's 5 skills: not retryable
    daemon = start_daemon()
    job_id = _insert(
        engine, "INSERT INTO publish_job (tenant_id) SELECT id FROM tenant WHERE slug = 'acme'"
    )
    wait_until(lambda: job_status(engine, job_id) in FINISHED, 20, "the job")
    assert job_status(engine, job_id) == "failed"
    wait_until(lambda: bool(_messages(daemon, "warning")), 5, "the warning")
    record = next(
        r
        for r in daemon.logs()
        if r.get("level") == "warning" and f"publish job {job_id}" in str(r["event"])
    )
    assert "failed" in str(record["event"]) and "403 permission_error" in str(record["event"])
    assert (record["job_id"], record["tenant"]) == (job_id, "acme")  # JSON keys, not just text
    infos = _messages(daemon, "info")
    assert not [m for m in infos if "Running job" in m or "executed successfully" in m], infos
    assert daemon.stop()[0] == 0


def test_a_job_the_daemon_runs_honours_a_cancel(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    # 18 org-skills creates (slow), 5 plugin and 2 claude-api creates (fast) share 16 slots:
    # whichever order the organisations take them in, at least 2 slow creates still wait for a
    # slot when the cancel is seen (within a heartbeat, well inside the 5 s of the first slow
    # ones), and never start.
    daemon = start_daemon()
    emulator.set_faults(latency_ms=5000, routes=[CREATE])
    job_id = _insert(engine, "INSERT INTO publish_job DEFAULT VALUES")
    wait_until(lambda: job_status(engine, job_id) == "running", 10, "the job to start")
    time.sleep(1.0)  # its first slow creates are in flight; the rest wait for a slot
    assert jobs.cancel(engine, job_id) == JobStatus.RUNNING
    wait_until(lambda: job_status(engine, job_id) in jobs.FINISHED, 30, "the job to stop")
    view = jobs.get_job(engine, job_id)
    assert view.status == JobStatus.CANCELLED, view.errors
    created = int(view.stats["created"])
    orgs = emulator.state.orgs.values()
    skills = sum(len(o.skills) for o in orgs)
    fast = sum(len(o.plugins.plugins) for o in orgs if o.plugins is not None)
    fast += sum(len(w.skills) for o in orgs for w in o.workspace_skills.values())
    assert 0 < skills < 18, view.stats
    # What started finished and was recorded; nothing else was written.
    assert created == skills + fast, (view.stats, skills, fast)
    assert daemon.stop()[0] == 0
