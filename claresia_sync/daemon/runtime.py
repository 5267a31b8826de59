"""The daemon's real work: the publisher's job queue and the audit poller, made replica-safe.

- A job over every tenant is split by the replica that claims it into one unit per root tenant
  (`publish.job_units`): the units are claimed like any job, by every replica's workers, and the
  last one ends the split job.
- Every run of a replica shares one bound of API calls in flight, in all and per organisation
  (`publish.applier.CallBounds`: CLARESIA_PUBLISH_CONCURRENCY, CLARESIA_ORG_CONCURRENCY).
- A job is claimed by one replica (`publish.jobs.claim`, `FOR UPDATE SKIP LOCKED`); while it
  waits for its tenants and while it runs, its heartbeat is refreshed; a job whose heartbeat went
  stale (its replica died) is put back in the queue by the `requeue` step, for any replica to take.
- One tenant is published by one run at a time, whoever runs it (a replica, a command):
  `publish.job_run.run_job` holds the advisory lock of every root tenant a job covers, taken in
  sorted order so that two jobs can never deadlock.
- A job this replica claimed but no longer runs (its run or its claim was cut off by a database
  outage) is queued again by this replica as soon as the database is back, without waiting for
  the heartbeat to go stale.
- One organisation is polled by one replica at a time (advisory lock per org id); retention, the
  drift check and the pruning of old jobs run on one replica at a time too.
- The telemetry sources of each Claude Enterprise organisation (skills analytics, the activity
  feed) are read on their own schedules, one replica per source and organisation.
- Connections and keys are read afresh for every poll and job: tenant changes and rotated keys
  take effect on the next call, and no key is kept in memory between calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator

import httpx2
import uvicorn
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.api.client import CallCounter, make_http_pool
from claresia_sync.api.connect import TenantConnection
from claresia_sync.config import Settings, default_of
from claresia_sync.daemon.metrics import Metrics
from claresia_sync.daemon.ops import OpsServer
from claresia_sync.daemon.service import Daemon, DaemonConfig, WorkFailed, bind_port
from claresia_sync.db.locks import advisory_locks
from claresia_sync.db.models import JobStatus
from claresia_sync.logs import log_context
from claresia_sync.publish import job_run, jobs, kill_switch
from claresia_sync.publish.applier import CallBounds
from claresia_sync.rollout import advance
from claresia_sync.rollout.state import active_rollout
from claresia_sync.telemetry import seam
from claresia_sync.telemetry.otlp_receiver import OtlpReceiver, Outcome
from claresia_sync.telemetry.poller import PollResult, poll_connection, poll_targets
from claresia_sync.telemetry.retention import apply_retention
from claresia_sync.telemetry.settings import TelemetrySettings
from claresia_sync.telemetry.sources import (
    CLAUDE_CODE_OTLP,
    SourceSettings,
    SourceState,
    source_states,
)

log = logging.getLogger(__name__)

REASONS_LOGGED = 5  # the first reasons of a partial or failed job go into its warning
READS_AT_ONCE = 4  # telemetry polls and source reads one replica runs at once (see LiveWork)

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
        job_keep: dt.timedelta | None = None,
        sources: SourceSettings | None = None,
        retry: job_run.RetryPolicy | None = None,
        bounds: CallBounds | None = None,
    ) -> None:
        self.engine = engine
        self.http = http
        self.calls = calls
        self.metrics = metrics
        self.replica = replica
        self.telemetry = telemetry
        # seconds without heartbeat after which a job's replica is presumed dead
        self.stale_after = stale_after
        self.heartbeat_every = min(job_run.HEARTBEAT_EVERY, self.stale_after / 3)
        # finished jobs older than this are pruned (default: the setting's default)
        self.job_keep = job_keep or dt.timedelta(days=default_of("job_keep_days"))
        self.sources = sources or SourceSettings()
        self.retry = retry or job_run.RetryPolicy()  # CLARESIA_JOB_RETRY_ROUNDS
        # The replica's bounds of API calls, shared by all its runs (CLARESIA_PUBLISH_CONCURRENCY,
        # CLARESIA_ORG_CONCURRENCY).
        self.bounds = bounds or CallBounds()
        self._running: set[int] = set()  # ids of the jobs this replica runs right now
        # Held from a claim until its job is in `_running`, and while lost jobs are requeued, so
        # that a job just claimed is never taken for a lost one.
        self._claiming = asyncio.Lock()
        # Telemetry reads under way at once. At start every organisation's poll is due at once,
        # and each holds two database connections (its lock's and its page's): unbounded, a
        # thousand of them took the whole pool, and every read and publish job of the replica
        # timed out waiting for a connection (30 s) and took it for a database outage.
        self._reads = asyncio.Semaphore(READS_AT_ONCE)

    # --- polling ------------------------------------------------------------------------------

    def organisations(self) -> list[str]:
        with Session(self.engine) as session:
            return sorted({t.org_id for t in poll_targets(session)})

    async def poll(self, org_id: str) -> None:
        async with (
            self._reads,
            advisory_locks(self.engine, "poll-org", [org_id], wait=False) as held,
        ):
            if not held:
                log.debug("poll of %s skipped: another replica is polling it", org_id)
                return
            target = await asyncio.to_thread(self._target, org_id)
            if target is None:
                return  # the connection was removed since the schedule was made
            with log_context(tenant=target.root_slug):
                # The key is resolved afresh (a rotated key is used now); a failure is recorded.
                result = await poll_connection(
                    self.engine,
                    target,
                    settings=self.telemetry,
                    client_options={"http": self.http, "counter": self.calls},
                )
                self._polled(org_id, result)

    def _polled(self, org_id: str, result: PollResult) -> None:
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
        self.metrics.poll_last_success.labels(org_id).set_to_current_time()

    def _target(self, org_id: str) -> TenantConnection | None:
        with Session(self.engine) as session:
            return next((t for t in poll_targets(session) if t.org_id == org_id), None)

    # --- telemetry sources of Claude Enterprise organisations ---------------------------------

    def source_organisations(self) -> dict[str, list[str]]:
        """The organisations of every registered telemetry source (telemetry/seam.py)."""
        with Session(self.engine) as session:
            return {
                name: sorted({c.org_id for c in kind.connections(session)})
                for name, kind in seam.kinds().items()
            }

    async def ingest(self, source: str, org_id: str) -> None:
        """One run of `source` for `org_id` on this replica alone (an advisory lock each)."""
        lock = f"{source}:{org_id}"
        async with (
            self._reads,
            advisory_locks(self.engine, "telemetry-source", [lock], wait=False) as held,
        ):
            if not held:
                log.debug("%s of %s skipped: another replica reads it", source, org_id)
                return
            kind = seam.kinds().get(source)
            target = await asyncio.to_thread(self._source_target, source, org_id)
            if kind is None or target is None:
                return  # the target was removed since the schedule was made
            with log_context(tenant=target.root_slug):
                ran = await seam.ingest_connection(
                    self.engine,
                    kind,
                    target,
                    seam.RunOptions(http=self.http, counter=self.calls, sources=self.sources),
                )
        if ran.rows or ran.quarantined:
            log.info(
                "%s of %s: %d new row(s), %d updated, %d quarantined%s",
                source,
                org_id,
                ran.inserted,
                ran.updated,
                ran.quarantined,
                "".join(f"; {k.replace('_', ' ')} {v}" for k, v in ran.recorded.items()),
            )
        self.metrics.source_rows.labels(source, org_id).inc(ran.rows)
        if ran.error:
            raise WorkFailed(ran.error)

    def _source_target(self, source: str, org_id: str) -> TenantConnection | None:
        with Session(self.engine) as session:
            found = seam.kinds()[source].connections(session)
            return next((c for c in found if c.org_id == org_id), None)

    # --- publish jobs ---------------------------------------------------------------------------

    async def run_next_job(self) -> bool:
        async with self._claiming:
            job = await asyncio.to_thread(jobs.claim, self.engine, self.replica)
            if job is None:
                return False
            if job.splits:  # its units are queued for every replica; the split job needs no run
                units = await asyncio.to_thread(jobs.split, self.engine, job.id)
                log.info("publish job %d (all tenants) split into %d unit(s)", job.id, units)
            else:
                self._running.add(job.id)
        if job.splits:
            if not job.force:  # those with nothing to do end at once, here (`unit_sweep`)
                await job_run.sweep_logged(
                    self.engine, job.id, worker=self.replica, http=self.http, bounds=self.bounds
                )
            return True
        # Every line logged for this job (here, in the publisher, in its threads) carries these.
        with log_context(job_id=job.id, tenant=job.tenant_slug):
            try:  # the whole protocol (locks of its tenants, heartbeat, rounds): job_run's
                outcome = await job_run.run_job(
                    self.engine,
                    job,
                    http=self.http,
                    retry=self.retry,
                    heartbeat_every=self.heartbeat_every,
                    bounds=self.bounds,
                )
            finally:
                self._running.discard(job.id)
            self._record(job, outcome)
        return True

    def _record(self, job: jobs.ClaimedJob, outcome: job_run.JobOutcome) -> None:
        if outcome.status == JobStatus.QUEUED:  # yielded to the kill switch: not finished
            return
        self.metrics.jobs_finished.labels(outcome.status).inc()
        if outcome.status == JobStatus.SUCCEEDED:
            self.metrics.job_last_success.labels(job.tenant_slug or "all").set_to_current_time()
        lag = outcome.stats.get("publish_lag_s")
        if lag is not None:
            self.metrics.publish_lag.observe(lag)
        counts = {k: v for k, v in outcome.stats.items() if v}
        scope = job.tenant_slug or "all tenants"
        if outcome.status in (JobStatus.PARTIAL, JobStatus.FAILED):
            reasons = "; ".join(str(e.get("error")) for e in outcome.errors[:REASONS_LOGGED])
            more = len(outcome.errors) - REASONS_LOGGED
            log.warning(
                "publish job %d (%s) %s: %s; %s%s",
                job.id,
                scope,
                outcome.status,
                counts,
                reasons,
                f" (and {more} more: `claresia-sync jobs show {job.id}`)" if more > 0 else "",
            )
        else:
            log.info("publish job %d (%s) %s: %s", job.id, scope, outcome.status, counts)
        if outcome.split_ended is not None:  # this unit was the last of a job over all tenants
            self.metrics.jobs_finished.labels(outcome.split_ended).inc()
            if outcome.split_ended == JobStatus.SUCCEEDED:
                self.metrics.job_last_success.labels("all").set_to_current_time()
            log.info(
                "publish job %d (all tenants) %s with its last unit, job %d",
                job.parent_id,
                outcome.split_ended,
                job.id,
            )

    # --- housekeeping ---------------------------------------------------------------------------

    async def drift_check(self) -> None:
        """Queue a forced republish-all (remote lists compared with publications) unless one
        is already waiting: the publisher repairs what drifted."""
        async with advisory_locks(self.engine, "drift-check", ["all"], wait=False) as held:
            if held:
                job_id = await asyncio.to_thread(jobs.enqueue_drift_check, self.engine)
                if job_id is not None:
                    log.info("drift check: queued forced republish job %s", job_id)

    async def advance_rollouts(self) -> None:
        step = await asyncio.to_thread(advance.advance, self.engine)
        if step is None:
            return
        if step.event == "halted":
            log.warning("%s", step.message)
        elif step.event != "waiting":
            log.info("%s", step.message)
        await asyncio.to_thread(self._rollout_gauges)

    def _rollout_gauges(self) -> None:
        with Session(self.engine) as session:
            active = active_rollout(session)
        self.metrics.rollout_halted.clear()
        self.metrics.rollout_wave.clear()
        if active is not None:
            labels = (str(active.id), str(active.release))
            self.metrics.rollout_halted.labels(*labels).set(active.status == "halted")
            self.metrics.rollout_wave.labels(*labels).set(active.wave)

    async def retention(self) -> None:
        async with advisory_locks(self.engine, "retention", ["telemetry"], wait=False) as held:
            if held:
                result = await asyncio.to_thread(
                    functools.partial(
                        apply_retention,
                        self.engine,
                        self.telemetry.retention_days,
                        usage_wait_hours=self.telemetry.otlp_usage_wait_hours,
                    )
                )
                swept = result.claude_code
                if result.dropped_partitions or result.deleted_ids or swept.unmatched:
                    log.info(
                        "retention (%d days): dropped %s, %d ids removed, %d Claude Code "
                        "prompt(s) without activation after %d h removed",
                        self.telemetry.retention_days,
                        result.dropped_partitions,
                        result.deleted_ids,
                        swept.unmatched,
                        self.telemetry.otlp_usage_wait_hours,
                    )

    async def prune_jobs(self) -> None:
        async with advisory_locks(self.engine, "job-prune", ["all"], wait=False) as held:
            if held:
                pruned = await asyncio.to_thread(jobs.prune, self.engine, self.job_keep)
                if pruned:
                    log.info(
                        "pruned %d publish job(s) finished more than %s ago", pruned, self.job_keep
                    )

    async def recover(self) -> None:
        async with self._claiming:
            lost = await asyncio.to_thread(
                jobs.requeue_lost, self.engine, self.replica, sorted(self._running)
            )
        for job_id in lost:
            log.warning(
                "publish job %s, claimed here, ended without recording its result (database "
                "connection lost): queued again; skills it already created are adopted, not "
                "created twice",
                job_id,
            )

    async def requeue(self) -> None:
        """Queue again the jobs of a dead replica (stale heartbeat), and this replica's own
        jobs lost without it noticing an outage."""
        await self.recover()
        requeued = await asyncio.to_thread(jobs.requeue_stale, self.engine, self.stale_after)
        for job_id, owner in requeued:
            log.warning(
                "publish job %s of %s had no heartbeat for %ss: queued again for takeover",
                job_id,
                owner,
                self.stale_after,
            )

    async def refresh_gauges(self) -> None:
        for status, n in (await asyncio.to_thread(jobs.counts, self.engine)).items():
            self.metrics.jobs.labels(status).set(n)
        self.metrics.skills_disabled.set(await asyncio.to_thread(self._disabled))
        for state in await asyncio.to_thread(self._source_states):
            labels = (state.source, state.org_id)
            if state.last_success_at is not None:
                success = state.last_success_at.timestamp()
                self.metrics.source_last_success.labels(*labels).set(success)
            if state.lag_seconds is not None:
                self.metrics.source_lag.labels(*labels).set(state.lag_seconds)
        await asyncio.to_thread(self._rollout_gauges)
        for org_id, age in await asyncio.to_thread(self._checkpoint_ages):
            if age is not None:
                self.metrics.checkpoint_age.labels(org_id).set(age)

    def _disabled(self) -> int:
        with Session(self.engine) as session:
            return kill_switch.disabled_count(session)

    def _source_states(self) -> list[SourceState]:
        with self.engine.connect() as conn:
            return source_states(conn)

    def _checkpoint_ages(self) -> list[tuple[str, float | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(_CHECKPOINT_AGES).all()
        return [(str(org), None if age is None else float(age)) for org, age in rows]


async def run_daemon(engine: Engine, config: DaemonConfig, settings: Settings) -> None:
    calls = CallCounter()
    metrics = Metrics()  # API calls: counted by the pool's transport, for every caller
    url = engine.url.render_as_string(hide_password=False)
    async with make_http_pool(timeout=settings.api_timeout_s) as http:
        work = LiveWork(
            engine,
            http,
            calls,
            metrics,
            config.replica,
            settings.telemetry,
            stale_after=settings.job_stale_after_s,
            job_keep=dt.timedelta(days=settings.job_keep_days),
            sources=settings.sources,
            retry=job_run.RetryPolicy(rounds=settings.job_retry_rounds),
            bounds=CallBounds(settings.publish_concurrency, settings.org_concurrency),
        )
        # A dead replica's job is requeued within about 1.5 stale periods, not one interval later.
        requeue = min(config.requeue_interval, work.stale_after / 2)
        config = dataclasses.replace(config, requeue_interval=requeue)
        async with otlp_receiver(engine, settings, metrics):
            await Daemon(work, url, engine, metrics, config).run()


@contextlib.asynccontextmanager
async def otlp_receiver(
    engine: Engine, settings: Settings, metrics: Metrics
) -> AsyncIterator[None]:
    """Claude Code's OTLP/HTTP logs receiver on its own port while the daemon runs (none with
    `otlp_port` 0); it keeps answering while the daemon drains, and stops after."""
    if not settings.otlp_port:
        yield
        return

    def count(outcome: Outcome) -> None:
        metrics.otlp_requests.labels(str(outcome.status)).inc()
        if outcome.tenant is not None and outcome.stored:
            metrics.source_rows.labels(CLAUDE_CODE_OTLP, outcome.tenant).inc(outcome.stored)

    receiver = OtlpReceiver(
        engine,
        settings.telemetry,
        max_body_bytes=settings.otlp_max_body_bytes,
        on_outcome=count,
    )
    where = (settings.otlp_host, settings.otlp_port)
    sock = bind_port(*where, "the OTLP/HTTP logs receiver", "CLARESIA_OTLP_PORT")
    server = OpsServer(
        uvicorn.Config(receiver.app(), log_level="warning", lifespan="off", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="otlp-receiver")
    log.info("OTLP/HTTP logs receiver on %s:%s/v1/logs", settings.otlp_host, settings.otlp_port)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
