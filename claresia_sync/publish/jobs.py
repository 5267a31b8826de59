"""The publish-job queue (`publish_job`): enqueue, claim, run, finish.

A job is any row: `INSERT INTO publish_job DEFAULT VALUES` asks for "publish every tenant",
`INSERT INTO publish_job (tenant_id) VALUES (...)` for one tenant (and its sub-tenants), with
`force = true` for a check against the organisation's own skill list. Workers claim with
`FOR UPDATE SKIP LOCKED`, so several may share the queue. Status: queued -> running ->
succeeded | partial (some skills failed) | failed (nothing could be done).

Lag: `lag_seconds` (a generated column) is requested -> finished; `stats.publish_lag_s` is
requested -> the last skill live with its ACL, the figure the publish-lag SLO is about.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from claresia_sync.db.engine import is_unavailable
from claresia_sync.db.models import PublishJob, Tenant
from claresia_sync.publish.applier import DEFAULT_CONCURRENCY
from claresia_sync.publish.reconcile import ProgressFn, RunResult, reconcile
from claresia_sync.tenancy.lookup import require_tenant

log = logging.getLogger(__name__)

MAX_RECORDED_ERRORS = 1000
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")

_CLAIM = """
UPDATE publish_job j SET status = 'running', started_at = now(), heartbeat_at = now(),
       claimed_by = :worker
  FROM (SELECT id FROM publish_job
         WHERE status = 'queued' {only}
         ORDER BY requested_at, id
         LIMIT 1
         FOR UPDATE SKIP LOCKED) q
 WHERE j.id = q.id
RETURNING j.id, j.tenant_id, j.force, j.requested_at
"""


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    tenant_slug: str | None
    force: bool
    requested_at: dt.datetime


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: str
    stats: dict[str, Any]
    errors: list[dict[str, Any]]
    run: RunResult | None


def enqueue(session: Session, tenant_slug: str | None = None, *, force: bool = False) -> int:
    """Queue a job (in the caller's transaction: commit to make it visible); its id."""
    tenant_id = None
    if tenant_slug is not None:
        tenant_id = require_tenant(session, tenant_slug).id
    job = PublishJob(tenant_id=tenant_id, force=force)
    session.add(job)
    session.flush()
    return job.id


def claim(engine: Engine, worker: str, job_id: int | None = None) -> ClaimedJob | None:
    """Take the oldest queued job (or job `job_id` if still queued); None if there is none."""
    sql = _CLAIM.format(only="AND id = :job_id" if job_id is not None else "")
    params: dict[str, Any] = {"worker": worker}
    if job_id is not None:
        params["job_id"] = job_id
    with Session(engine) as session, session.begin():
        row = session.execute(text(sql), params).one_or_none()
        if row is None:
            return None
        slug = session.scalar(select(Tenant.slug).where(Tenant.id == row.tenant_id))
        return ClaimedJob(row.id, slug, row.force, row.requested_at)


def _status(run: RunResult) -> str:
    counts = run.counts()
    if not counts["failed"]:
        return "succeeded"
    ok = sum(n for k, n in counts.items() if k != "failed")
    return "partial" if ok else "failed"


def _stats(run: RunResult, job: ClaimedJob) -> dict[str, Any]:
    stats: dict[str, Any] = dict(run.counts())
    stats["api_calls"] = run.calls.total()
    stats["api_writes"] = sum(run.calls.total(method=m) for m in WRITE_METHODS)
    stats["check_remote"] = run.plan.check_remote
    last = run.last_live_at
    stats["publish_lag_s"] = (
        round((last - job.requested_at).total_seconds(), 3) if last is not None else None
    )
    return stats


def finish(
    engine: Engine, job_id: int, status: str, stats: dict[str, Any], errors: list[Any]
) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(PublishJob)
            .where(PublishJob.id == job_id)
            .values(
                status=status,
                stats=stats,
                errors=errors[:MAX_RECORDED_ERRORS],
                finished_at=func.now(),
                heartbeat_at=func.now(),
            )
        )


async def run_job(
    engine: Engine,
    job: ClaimedJob,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    http: httpx2.AsyncClient | None = None,
    progress: ProgressFn | None = None,
) -> JobOutcome:
    """Run a claimed job to its end and record it; a crash inside marks the job failed."""
    try:
        run = await reconcile(
            engine,
            job.tenant_slug,
            check_remote=job.force,
            concurrency=concurrency,
            job_id=job.id,
            http=http,
            progress=progress,
        )
    except Exception as exc:
        if is_unavailable(exc):
            # Not the job's fault: it stays claimed, and the daemon queues it again once the
            # database is back (skills it created meanwhile are adopted, never created twice).
            raise
        log.exception("publish job %d failed", job.id)
        errors: list[dict[str, Any]] = [{"error": f"{type(exc).__name__}: {exc}"}]
        await asyncio.to_thread(finish, engine, job.id, "failed", {}, errors)
        return JobOutcome(job.id, "failed", {}, errors, None)
    status, stats = _status(run), _stats(run, job)
    recorded: list[dict[str, Any]] = list(run.errors())
    await asyncio.to_thread(finish, engine, job.id, status, stats, recorded)
    return JobOutcome(job.id, status, stats, recorded, run)


async def run_next_job(
    engine: Engine,
    *,
    worker: str = "daemon",
    concurrency: int = DEFAULT_CONCURRENCY,
    http: httpx2.AsyncClient | None = None,
    progress: ProgressFn | None = None,
) -> JobOutcome | None:
    """Claim and run the oldest queued job; None when the queue is empty."""
    job = await asyncio.to_thread(claim, engine, worker)
    if job is None:
        return None
    return await run_job(engine, job, concurrency=concurrency, http=http, progress=progress)


def job_row(session: Session, job_id: int) -> PublishJob | None:
    return session.get(PublishJob, job_id)
