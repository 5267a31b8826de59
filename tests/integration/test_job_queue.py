"""Each transition of the publish-job queue (`publish.jobs`), on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.db.models import JobStatus, Tenant
from claresia_sync.publish import jobs
from claresia_sync.tenancy.lookup import UnknownTenantError


def _enqueue(engine: Engine, tenant: str | None = None, **kw: object) -> int:
    with Session(engine) as session:
        job_id = jobs.enqueue(session, tenant, **kw)  # type: ignore[arg-type]
        session.commit()
    return job_id


def _row(engine: Engine, job_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM publish_job WHERE id = :i"), {"i": job_id}).one()
    return dict(row._mapping)


def _tenant(engine: Engine, slug: str = "dainese") -> None:
    with Session(engine) as session:
        session.add(Tenant(slug=slug, display_name=slug.title()))
        session.commit()


def test_enqueue_then_claim_oldest_first_and_each_job_once(engine: Engine) -> None:
    _tenant(engine)
    first, second = _enqueue(engine), _enqueue(engine, "dainese", force=True)
    assert _row(engine, first)["status"] == JobStatus.QUEUED

    a = jobs.claim(engine, "replica-a")
    b = jobs.claim(engine, "replica-b")
    assert a is not None and b is not None
    assert (a.id, a.tenant_slug, a.force) == (first, None, False)
    assert (b.id, b.tenant_slug, b.force) == (second, "dainese", True)
    assert jobs.claim(engine, "replica-c") is None  # nothing left
    row = _row(engine, first)
    assert row["status"] == JobStatus.RUNNING and row["claimed_by"] == "replica-a"
    assert row["started_at"] is not None and row["heartbeat_at"] is not None


def test_claim_by_id_takes_only_that_job_while_queued(engine: Engine) -> None:
    first, second = _enqueue(engine), _enqueue(engine)
    job = jobs.claim(engine, "cli", second)
    assert job is not None and job.id == second
    assert jobs.claim(engine, "cli", second) is None  # already running
    assert _row(engine, first)["status"] == JobStatus.QUEUED


def test_enqueue_for_an_unknown_tenant_names_the_known_ones(engine: Engine) -> None:
    _tenant(engine, "acme")
    with Session(engine) as session, pytest.raises(UnknownTenantError, match="known: acme"):
        jobs.enqueue(session, "nobody")


def test_a_job_born_claimed_is_never_claimed_by_another_worker(engine: Engine) -> None:
    job_id = _enqueue(engine, claimed_by="cli-host-1")
    row = _row(engine, job_id)
    assert row["status"] == JobStatus.RUNNING and row["claimed_by"] == "cli-host-1"
    assert jobs.claim(engine, "daemon") is None
    assert jobs.claimed(engine, job_id).id == job_id


def test_heartbeat_then_stale_jobs_are_requeued(engine: Engine) -> None:
    alive, dead = _enqueue(engine), _enqueue(engine)
    assert jobs.claim(engine, "a") is not None and jobs.claim(engine, "b") is not None
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE publish_job SET heartbeat_at = now() - interval '1 minute'"),
        )
    assert jobs.heartbeat(engine, alive) is False  # fresh again, no cancel asked
    assert jobs.requeue_stale(engine, 30) == [(dead, "b")]
    row = _row(engine, dead)
    assert row["status"] == JobStatus.QUEUED and row["claimed_by"] is None
    assert _row(engine, alive)["status"] == JobStatus.RUNNING
    again = jobs.claim(engine, "c")
    assert again is not None and again.id == dead  # another replica takes it over


def test_requeue_lost_spares_the_jobs_still_running_here(engine: Engine) -> None:
    running, lost, other = _enqueue(engine), _enqueue(engine), _enqueue(engine)
    for worker in ("me", "me", "them"):
        assert jobs.claim(engine, worker) is not None
    assert jobs.requeue_lost(engine, "me", [running]) == [lost]
    assert _row(engine, running)["status"] == JobStatus.RUNNING
    assert _row(engine, lost)["status"] == JobStatus.QUEUED
    assert _row(engine, other)["status"] == JobStatus.RUNNING


def test_finish_records_status_stats_and_bounded_errors(engine: Engine) -> None:
    job_id = _enqueue(engine)
    assert jobs.claim(engine, "a") is not None
    errors = [{"error": f"e{i}"} for i in range(jobs.MAX_RECORDED_ERRORS + 5)]
    jobs.finish(engine, job_id, JobStatus.PARTIAL, {"failed": 1}, errors)
    row = _row(engine, job_id)
    assert row["status"] == JobStatus.PARTIAL and row["stats"] == {"failed": 1}
    assert len(row["errors"]) == jobs.MAX_RECORDED_ERRORS  # type: ignore[arg-type]
    assert row["finished_at"] is not None and row["lag_seconds"] is not None


def test_cancel_a_queued_job_ends_it_at_once(engine: Engine) -> None:
    job_id = _enqueue(engine)
    assert jobs.cancel(engine, job_id) == JobStatus.CANCELLED
    row = _row(engine, job_id)
    assert row["status"] == JobStatus.CANCELLED and row["finished_at"] is not None
    assert jobs.claim(engine, "a") is None


def test_cancel_a_running_job_is_seen_by_its_heartbeat(engine: Engine) -> None:
    job_id = _enqueue(engine)
    assert jobs.claim(engine, "a") is not None
    assert jobs.heartbeat(engine, job_id) is False
    assert jobs.cancel(engine, job_id) == JobStatus.RUNNING  # it stops itself
    assert jobs.heartbeat(engine, job_id) is True
    assert jobs.get_job(engine, job_id).cancel_requested


def test_a_finished_job_cannot_be_cancelled(engine: Engine) -> None:
    job_id = _enqueue(engine)
    assert jobs.claim(engine, "a") is not None
    jobs.finish(engine, job_id, JobStatus.SUCCEEDED, {}, [])
    with pytest.raises(jobs.JobStateError, match="already ended succeeded"):
        jobs.cancel(engine, job_id)
    with pytest.raises(jobs.JobStateError, match="does not exist"):
        jobs.cancel(engine, 999)


def test_retry_queues_a_new_job_with_the_same_scope(engine: Engine) -> None:
    _tenant(engine)
    job_id = _enqueue(engine, "dainese", force=True)
    assert jobs.claim(engine, "a") is not None
    with pytest.raises(jobs.JobStateError, match="only a partial, failed or cancelled"):
        jobs.retry(engine, job_id)  # still running
    jobs.finish(engine, job_id, JobStatus.PARTIAL, {"failed": 2}, [])
    new_id = jobs.retry(engine, job_id)
    view = jobs.get_job(engine, new_id)
    assert (view.status, view.tenant, view.force, view.retry_of) == (
        JobStatus.QUEUED,
        "dainese",
        True,
        job_id,
    )


def test_prune_deletes_only_old_finished_jobs(engine: Engine) -> None:
    old_done, old_queued, new_done = _enqueue(engine), _enqueue(engine), _enqueue(engine)
    for job_id in (old_done, new_done):
        assert jobs.claim(engine, "a", job_id) is not None
        jobs.finish(engine, job_id, JobStatus.SUCCEEDED, {}, [])
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE publish_job SET requested_at = now() - interval '40 days', "
                "finished_at = CASE WHEN finished_at IS NULL THEN NULL "
                "ELSE now() - interval '40 days' END WHERE id = ANY(:ids)"
            ),
            {"ids": [old_done, old_queued]},
        )
    assert jobs.prune(engine, dt.timedelta(days=30)) == 1
    with engine.connect() as conn:
        left = set(conn.execute(text("SELECT id FROM publish_job")).scalars())
    assert left == {old_queued, new_done}


def test_a_drift_check_is_queued_once_while_one_waits(engine: Engine) -> None:
    first = jobs.enqueue_drift_check(engine)
    assert first is not None
    assert jobs.enqueue_drift_check(engine) is None
    view = jobs.get_job(engine, first)
    assert view.force and view.tenant is None and view.requested_by == "drift-check"


def test_a_dedupe_key_queues_one_job_even_from_two_transactions_at_once(engine: Engine) -> None:
    """procrastinate's `queueing_lock`: the partial unique index decides, not a look first."""
    _tenant(engine)
    first, second = Session(engine), Session(engine)
    try:
        a = jobs.enqueue_once(first, "dainese", force=True)
        # The second waits on the first's uncommitted row, then finds it queued.
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(jobs.enqueue_once, second, "dainese", force=True)
            first.commit()
            b = later.result(timeout=10)
        second.commit()
    finally:
        first.close()
        second.close()
    assert a[1] and b == (a[0], False)
    assert _enqueue(engine, "dainese", force=False) != a[0]  # another scope: its own job
    assert _enqueue(engine, "dainese", dedupe_key=jobs.scope_key(None, False)) != a[0]
    claimed = jobs.claim(engine, "replica-a", a[0])
    assert claimed is not None  # claimed: it leaves the index, and a new one may queue behind
    with Session(engine) as session:
        c = jobs.enqueue_once(session, "dainese", force=True)
        session.commit()
    assert c[1] and c[0] != a[0]


def test_counts_and_list(engine: Engine) -> None:
    _tenant(engine)
    a, b = _enqueue(engine), _enqueue(engine, "dainese")
    jobs.cancel(engine, a)
    counts = jobs.counts(engine)
    assert counts[JobStatus.CANCELLED] == 1 and counts[JobStatus.QUEUED] == 1
    assert set(counts) == set(JobStatus)
    assert [v.id for v in jobs.list_jobs(engine)] == [b, a]  # newest first
    assert [v.id for v in jobs.list_jobs(engine, status=JobStatus.CANCELLED)] == [a]
    assert [v.id for v in jobs.list_jobs(engine, tenant_slug="dainese")] == [b]
