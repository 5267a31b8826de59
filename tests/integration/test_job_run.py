"""Running one publish job (`publish.job_run`): retries of what failed for a passing reason,
and a cancel honoured between items; real PostgreSQL and the emulator's fault injection."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.config import Settings
from claresia_sync.db.locks import advisory_locks
from claresia_sync.db.models import JobStatus
from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish import jobs
from claresia_sync.publish.job_run import JobOutcome, RetryPolicy, run_job
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import ACME_KEY, DAINESE_KEY
from tests.integration.test_publish_e2e import world  # noqa: F401  (fixture)

ACME_SKILLS = 5
CREATE = "POST /v1/organizations/{org_id}/skills"
FAST = RetryPolicy(rounds=3, first_delay=0.1, factor=1.0)


def _claimed(engine: Engine, tenant: str) -> jobs.ClaimedJob:
    with Session(engine) as session:
        job_id = jobs.enqueue(session, tenant)
        session.commit()
    job = jobs.claim(engine, "test", job_id)
    assert job is not None
    return job


def _acme(emulator: EmulatorServer) -> set[str]:
    return {s.name for s in emulator.state.org("org_acme").skills.values()}


def test_a_transient_fault_is_retried_within_the_job(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    # Every attempt of every create answers 503 (5 skills x the client's 5 attempts): the first
    # round fails them all; the job's second round publishes them, without waiting for a drift
    # check an hour later.
    emulator.set_faults(script=[503] * (ACME_SKILLS * 5), routes=[CREATE])
    outcome = asyncio.run(run_job(engine, _claimed(engine, "acme"), retry=FAST))
    assert outcome.status == JobStatus.SUCCEEDED, outcome.errors
    assert outcome.stats["rounds"] == 2
    assert outcome.stats["created"] == ACME_SKILLS and outcome.stats["failed"] == 0
    assert outcome.stats["retried"] == ACME_SKILLS and outcome.stats["still_failing"] == 0
    assert len(_acme(emulator)) == ACME_SKILLS  # no twin from the failed round


def test_retries_stop_at_the_bound_and_the_job_says_what_still_fails_and_why(
    engine: Engine,
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    emulator.set_faults(rate_503=1.0, routes=[CREATE])
    outcome: JobOutcome = asyncio.run(
        run_job(engine, _claimed(engine, "acme"), retry=RetryPolicy(rounds=2, first_delay=0.1))
    )
    assert outcome.status == JobStatus.FAILED
    assert outcome.stats["rounds"] == 2 and outcome.stats["still_failing"] == ACME_SKILLS
    assert len(outcome.errors) == ACME_SKILLS
    for error in outcome.errors:
        assert error["retryable"] is True and error["attempts"] == 2
        assert "503" in error["error"] and error["tenant"] == "acme"
    assert _acme(emulator) == set()

    env = clean_env(db_settings)
    shown = run_cli("jobs", "show", str(outcome.job_id), env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"publish job {outcome.job_id}: failed" in shown.stdout
    assert f"rounds: 2, skills retried: {ACME_SKILLS}, still failing: {ACME_SKILLS}" in shown.stdout
    assert "claresia-acme-okr-drafting" in shown.stdout and "503" in shown.stdout


def test_a_permanent_failure_is_not_retried(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    emulator.set_faults(script=[403] * ACME_SKILLS, routes=[CREATE])
    outcome = asyncio.run(run_job(engine, _claimed(engine, "acme"), retry=FAST))
    assert outcome.status == JobStatus.FAILED
    assert outcome.stats["rounds"] == 1
    assert all(e["retryable"] is False for e in outcome.errors)


def test_a_running_job_stops_at_the_next_item_when_cancelled(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    emulator.set_faults(latency_ms=300, routes=[CREATE])
    job = _claimed(engine, "acme")

    def progress(done: int, known: int) -> None:
        if done == 1:
            assert jobs.cancel(engine, job.id) == JobStatus.RUNNING

    outcome = asyncio.run(
        run_job(engine, job, concurrency=1, progress=progress, heartbeat_every=0.05)
    )
    assert outcome.status == JobStatus.CANCELLED
    created = outcome.stats["created"]
    assert 1 <= created < ACME_SKILLS, outcome.stats  # started items finish, no new one starts
    assert len(_acme(emulator)) == created  # what was done is recorded and nothing more
    assert jobs.get_job(engine, job.id).status == JobStatus.CANCELLED

    emulator.set_faults()  # none
    retried = jobs.retry(engine, job.id)
    again = jobs.claim(engine, "test", retried)
    assert again is not None
    done = asyncio.run(run_job(engine, again))
    assert done.status == JobStatus.SUCCEEDED
    assert done.stats["created"] == ACME_SKILLS - created  # only what the cancel left out


def test_a_job_cancelled_before_it_starts_does_nothing(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    job = _claimed(engine, "acme")
    jobs.cancel(engine, job.id)
    outcome = asyncio.run(run_job(engine, job))
    assert outcome.status == JobStatus.CANCELLED
    assert _acme(emulator) == set() and emulator.stats.writes() == 0


def test_the_rounds_come_from_the_setting_the_command_hands_down(
    engine: Engine,
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """`republish` reads CLARESIA_JOB_RETRY_ROUNDS and hands it to the run (nothing below the
    command reads the environment): 1 round, where the default would retry after 2 s."""
    emulator.set_faults(script=[503] * (ACME_SKILLS * 5), routes=[CREATE])
    keys = {"CLARESIA_ACME_ADMIN_KEY": ACME_KEY, "CLARESIA_DAINESE_ADMIN_KEY": DAINESE_KEY}
    env = clean_env(db_settings, CLARESIA_JOB_RETRY_ROUNDS="1", **keys)
    done = run_cli("republish", "--tenant", "acme", env=env)
    assert done.returncode == 3, done.stderr
    job_id = int(done.stdout.split("publish job ")[1].split()[0].rstrip(":"))
    view = jobs.get_job(engine, job_id)
    assert view.status == JobStatus.FAILED and view.stats["rounds"] == 1
    assert all(e["retryable"] and e["attempts"] == 1 for e in view.errors)


def test_a_running_job_reports_its_progress(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """The heartbeat records (done, total) in the running job's stats, for `jobs show` and the
    console's progress bar (issue 17: jobs with progress)."""
    emulator.set_faults(latency_ms=150)  # slow calls: the job runs a while
    job = _claimed(engine, "acme")
    seen: list[dict[str, int]] = []

    async def run_and_watch() -> JobOutcome:
        # One call in flight: the skills are done one after another.
        task = asyncio.create_task(run_job(engine, job, concurrency=1, heartbeat_every=0.1))
        while not task.done():
            stats = await asyncio.to_thread(lambda: jobs.get_job(engine, job.id).stats)
            if "progress" in stats:
                seen.append(stats["progress"])
            await asyncio.sleep(0.05)
        return await task

    outcome = asyncio.run(run_and_watch())
    assert outcome.status == JobStatus.SUCCEEDED, outcome.errors
    assert seen and all(p["total"] >= ACME_SKILLS for p in seen), (seen, outcome.stats)
    assert any(0 < p["done"] < p["total"] for p in seen), seen  # seen part-way through
    final = jobs.get_job(engine, job.id).stats
    assert "progress" not in final and final["created"] == ACME_SKILLS  # finish replaced it


def test_a_job_waits_for_another_run_of_its_tenant_heartbeating_and_a_cancel_ends_the_wait(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """The one protocol (issue 21): while another run holds the tenant, a job waits, beating,
    says it waits, and starts nothing; a cancel during the wait ends it without a round."""
    job = _claimed(engine, "acme")
    waited: list[list[str]] = []

    async def scenario() -> JobOutcome:
        async with advisory_locks(engine, "publish-tenant", ["acme"], wait=False) as held:
            assert held  # another run of acme is under way
            task = asyncio.create_task(
                run_job(engine, job, heartbeat_every=0.05, waiting=waited.append)
            )
            await asyncio.sleep(0.3)
            before = await asyncio.to_thread(_heartbeat_at, engine, job.id)
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(_heartbeat_at, engine, job.id) > before  # beating
            view = await asyncio.to_thread(jobs.get_job, engine, job.id)
            assert not task.done() and view.status == JobStatus.RUNNING
            assert emulator.stats.count() == 0  # not one call while it waits
            await asyncio.to_thread(jobs.cancel, engine, job.id)
            return await asyncio.wait_for(task, 5)

    outcome = asyncio.run(scenario())
    assert waited == [["acme"]]
    assert (outcome.status, outcome.run) == (JobStatus.CANCELLED, None)
    assert _acme(emulator) == set() and emulator.stats.writes() == 0


def _heartbeat_at(engine: Engine, job_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT heartbeat_at FROM publish_job WHERE id = :i"), {"i": job_id}
        ).scalar_one()
