"""The daemon's real work: the publisher's job queue and the audit poller, made replica-safe.

- A job is claimed by one replica (`FOR UPDATE SKIP LOCKED` in `publish.jobs.claim`); while it
  runs, its heartbeat is refreshed, and a job whose heartbeat went stale (its replica died) is
  put back in the queue for another replica to take over.
- One tenant is published by one replica at a time: a job holds the advisory lock of every root
  tenant it covers, taken in sorted order so that two jobs can never deadlock.
- A job this replica claimed but no longer runs (its run or its claim was cut off by a database
  outage) is queued again by this replica as soon as the database is back, without waiting for
  the heartbeat to go stale.
- One organisation is polled by one replica at a time (advisory lock per org id).
- Connections and keys are read afresh for every poll and job: tenant changes and rotated keys
  take effect on the next call, and no key is kept in memory between calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx2
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session

from claresia_sync.api.client import CallCounter, make_http_pool
from claresia_sync.api.connect import TenantConnection
from claresia_sync.config import Settings
from claresia_sync.daemon.locks import NAMESPACES
from claresia_sync.daemon.metrics import Metrics
from claresia_sync.daemon.service import Daemon, DaemonConfig, WorkFailed
from claresia_sync.db.models import Tenant
from claresia_sync.publish import jobs
from claresia_sync.telemetry.poller import poll_connection, poll_targets
from claresia_sync.telemetry.retention import apply_retention
from claresia_sync.telemetry.settings import TelemetrySettings

log = logging.getLogger(__name__)

LOCK_RETRY = 0.2

_REQUEUE_STALE = text("""
UPDATE publish_job SET status = 'queued', claimed_by = NULL, started_at = NULL
 WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :stale)
RETURNING id, claimed_by
""")
_REQUEUE_MINE = text("""
UPDATE publish_job SET status = 'queued', claimed_by = NULL, started_at = NULL
 WHERE status = 'running' AND claimed_by = :me AND NOT (id = ANY(CAST(:running AS bigint[])))
RETURNING id
""")
_STARTED = text("UPDATE publish_job SET started_at = now(), heartbeat_at = now() WHERE id = :id")
_HEARTBEAT = text("UPDATE publish_job SET heartbeat_at = now() WHERE id = :id")
_ENQUEUE_DRIFT = text("""
INSERT INTO publish_job (force, requested_by)
SELECT true, 'drift-check'
 WHERE NOT EXISTS (SELECT 1 FROM publish_job
                    WHERE status IN ('queued', 'running') AND force AND tenant_id IS NULL)
RETURNING id
""")
_JOB_COUNTS = text("SELECT status, count(*) FROM publish_job GROUP BY status")
_CHECKPOINT_AGES = text("""
SELECT c.org_id, EXTRACT(EPOCH FROM now() - coalesce(cp.last_polled_at, cp.updated_at))
  FROM org_connection c LEFT JOIN audit_checkpoint cp ON cp.org_id = c.org_id
""")


class LiveWork:
    """`service.Work` on the real database, publisher and poller."""

    def __init__(
        self,
        engine: Engine,
        http: httpx2.AsyncClient,
        calls: CallCounter,
        metrics: Metrics,
        replica: str,
        telemetry: TelemetrySettings,
        stale_after: float,
    ) -> None:
        self.engine = engine
        self.http = http
        self.calls = calls
        self.metrics = metrics
        self.replica = replica
        self.telemetry = telemetry
        # seconds without heartbeat after which a job's replica is presumed dead
        self.stale_after = stale_after
        self.heartbeat_every = min(5.0, self.stale_after / 3)
        self._running: set[int] = set()  # ids of the jobs this replica runs right now
        # Held from a claim until its job is in `_running`, and while lost jobs are requeued, so
        # that a job just claimed is never taken for a lost one.
        self._claiming = asyncio.Lock()

    # --- polling ------------------------------------------------------------------------------

    def organisations(self) -> list[str]:
        with Session(self.engine) as session:
            return sorted({t.org_id for t in poll_targets(session)})

    async def poll(self, org_id: str) -> None:
        async with self._locks("poll-org", [org_id], wait=False) as held:
            if not held:
                log.debug("poll of %s skipped: another replica is polling it", org_id)
                return
            target = await asyncio.to_thread(self._target, org_id)
            if target is None:
                return  # the connection was removed since the schedule was made
            # The key is resolved afresh (a rotated key is used now); a failure is recorded.
            result = await poll_connection(
                self.engine,
                target,
                settings=self.telemetry,
                client_options={"http": self.http, "counter": self.calls},
            )
        self.metrics.events_ingested.labels(org_id).inc(result.inserted)
        self.metrics.events_quarantined.labels(org_id).inc(result.quarantined)
        if result.inserted or result.quarantined:
            log.info(
                "polled %s: %d new event(s), %d quarantined, checkpoint %s",
                org_id,
                result.inserted,
                result.quarantined,
                result.checkpoint,
            )
        if result.error:
            raise WorkFailed(result.error)

    def _target(self, org_id: str) -> TenantConnection | None:
        with Session(self.engine) as session:
            return next((t for t in poll_targets(session) if t.org_id == org_id), None)

    # --- publish jobs ---------------------------------------------------------------------------

    async def run_next_job(self) -> bool:
        async with self._claiming:
            job = await asyncio.to_thread(jobs.claim, self.engine, self.replica)
            if job is None:
                return False
            self._running.add(job.id)
        beating = asyncio.create_task(self._heartbeat(job.id))
        try:
            roots = await asyncio.to_thread(self._roots, job.tenant_slug)
            async with self._locks("publish-tenant", roots, wait=True):
                # started = the tenants are ours; the wait for another replica is not work
                await asyncio.to_thread(self._execute, _STARTED, {"id": job.id})
                outcome = await jobs.run_job(self.engine, job, http=self.http)
        finally:
            beating.cancel()
            self._running.discard(job.id)
        self.metrics.jobs_finished.labels(outcome.status).inc()
        lag = outcome.stats.get("publish_lag_s")
        if lag is not None:
            self.metrics.publish_lag.observe(lag)
        log.info(
            "publish job %d (%s) %s: %s",
            job.id,
            job.tenant_slug or "all tenants",
            outcome.status,
            {k: v for k, v in outcome.stats.items() if v},
        )
        return True

    def _roots(self, tenant_slug: str | None) -> list[str]:
        """Root tenant slugs a job touches (a sub-tenant's job locks its root)."""
        with Session(self.engine) as session:
            if tenant_slug is None:
                return sorted(
                    session.scalars(select(Tenant.slug).where(Tenant.parent_id.is_(None)))
                )
            tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
            if tenant is None:
                return []
            return [(tenant.parent or tenant).slug]

    async def _heartbeat(self, job_id: int) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_every)
            with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                await asyncio.to_thread(self._execute, _HEARTBEAT, {"id": job_id})

    def _execute(self, stmt: object, params: dict[str, object]) -> list[tuple[object, ...]]:
        with self.engine.begin() as conn:
            result = conn.execute(stmt, params)  # type: ignore[call-overload]
            return [tuple(r) for r in result] if result.returns_rows else []

    # --- housekeeping ---------------------------------------------------------------------------

    async def drift_check(self) -> None:
        """Queue a forced republish-all (remote lists compared with publications) unless one
        is already waiting: the publisher repairs what drifted."""
        async with self._locks("drift-check", ["all"], wait=False) as held:
            if held:
                rows = await asyncio.to_thread(self._execute, _ENQUEUE_DRIFT, {})
                if rows:
                    log.info("drift check: queued forced republish job %s", rows[0][0])

    async def retention(self) -> None:
        async with self._locks("retention", ["telemetry"], wait=False) as held:
            if held:
                result = await asyncio.to_thread(
                    apply_retention, self.engine, self.telemetry.retention_days
                )
                if result.dropped_partitions or result.deleted_ids:
                    log.info(
                        "retention (%d days): dropped %s, %d ids removed",
                        self.telemetry.retention_days,
                        result.dropped_partitions,
                        result.deleted_ids,
                    )

    async def recover(self) -> None:
        async with self._claiming:
            params: dict[str, object] = {"me": self.replica, "running": sorted(self._running)}
            lost = await asyncio.to_thread(self._execute, _REQUEUE_MINE, params)
        for (job_id,) in lost:
            log.warning(
                "publish job %s, claimed here, ended without recording its result (database "
                "connection lost): queued again; skills it already created are adopted, not "
                "created twice",
                job_id,
            )

    async def refresh_gauges(self) -> None:
        await self.recover()  # in case a job was lost without the daemon seeing an outage
        requeued = await asyncio.to_thread(
            self._execute, _REQUEUE_STALE, {"stale": self.stale_after}
        )
        for job_id, owner in requeued:
            log.warning(
                "publish job %s of %s had no heartbeat for %ss: queued again for takeover",
                job_id,
                owner,
                self.stale_after,
            )
        counts = {str(k): v for k, v in await asyncio.to_thread(self._execute, _JOB_COUNTS, {})}
        for status in ("queued", "running", "succeeded", "partial", "failed"):
            self.metrics.jobs.labels(status).set(float(str(counts.get(status, 0))))
        for org_id, age in await asyncio.to_thread(self._execute, _CHECKPOINT_AGES, {}):
            if age is not None:
                self.metrics.checkpoint_age.labels(org_id).set(float(age))  # type: ignore[arg-type]

    # --- locks ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def _locks(self, kind: str, names: Sequence[str], *, wait: bool) -> AsyncIterator[bool]:
        """Advisory locks on one connection held for the block; yields whether all are held.

        `wait=True` retries until they are free, in sorted order (no deadlock between jobs),
        without ever blocking a thread inside PostgreSQL (shutdown must not wait for it)."""
        conn = await asyncio.to_thread(self.engine.connect)
        held: list[str] = []
        try:
            for name in sorted(set(names)):
                got = await asyncio.to_thread(_try_lock, conn, kind, name)
                while not got and wait:
                    await asyncio.sleep(LOCK_RETRY)
                    got = await asyncio.to_thread(_try_lock, conn, kind, name)
                if not got:
                    break
                held.append(name)
            yield len(held) == len(set(names))
        finally:
            await asyncio.to_thread(_release, conn, kind, held)


def _try_lock(conn: Connection, kind: str, name: str) -> bool:
    params = {"ns": NAMESPACES[kind], "name": name}
    got = conn.execute(text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))"), params)
    held = bool(got.scalar_one())
    conn.commit()
    return held


def _release(conn: Connection, kind: str, names: list[str]) -> None:
    try:
        for name in names:
            conn.execute(
                text("SELECT pg_advisory_unlock(:ns, hashtext(:name))"),
                {"ns": NAMESPACES[kind], "name": name},
            )
        conn.commit()
    except Exception:  # the connection is gone: so are its locks
        log.debug("lock release failed; the session's end releases them", exc_info=True)
    finally:
        conn.close()


async def run_daemon(engine: Engine, config: DaemonConfig, settings: Settings) -> None:
    calls = CallCounter()
    metrics = Metrics(calls)
    url = engine.url.render_as_string(hide_password=False)
    async with make_http_pool() as http:
        work = LiveWork(
            engine,
            http,
            calls,
            metrics,
            config.replica,
            settings.telemetry,
            stale_after=settings.job_stale_after_s,
        )
        await Daemon(work, url, engine, metrics, config).run()
