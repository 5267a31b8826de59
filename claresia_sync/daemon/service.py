"""`claresia-sync run`: one process that keeps every organisation polled and every job served.

- APScheduler 3 runs one poll job per organisation (interval with jitter, never two at once in
  this process; an advisory lock keeps other replicas off the same org), the refresh of the
  organisation list (tenant changes need no restart), a drift check, the requeue of a dead
  replica's jobs, telemetry retention and the pruning of old jobs (both at start, then daily),
  and the gauges. Its own chatter ("Running job ...") is logged at debug (logs.py).
- Publish jobs are picked up the moment they are inserted (LISTEN on `claresia_publish_job`),
  with a slow poll as the fallback when notifications are lost or the listener is down.
- SIGTERM/SIGINT: stop taking work, wait for the work still running (at most a grace period),
  cancel what is left, exit. An idle worker is not waited for. Cancelled work is safe to
  abandon: a claimed job is taken over once its heartbeat goes stale.
- Database outages (a restart, a crash, a network cut): the first piece of work that loses the
  database logs one warning and marks the daemon not ready; scheduled work is skipped and the
  workers wait while a watcher probes every second; when the database answers again, the
  daemon is ready, the jobs this replica had claimed but lost go back to the queue, the
  listener reconnects and the workers resume, without a restart of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from claresia_sync.api import sdk
from claresia_sync.config import Settings
from claresia_sync.daemon.metrics import Metrics
from claresia_sync.daemon.ops import Health, ops_server
from claresia_sync.db.engine import is_unavailable
from claresia_sync.db.migrate import require_schema
from claresia_sync.errors import UserError
from claresia_sync.logs import SCHEDULER_LOGGER, log_context
from claresia_sync.telemetry import seam

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "claresia_publish_job"
DB_RETRY = 1.0  # seconds between probes while the database is unavailable
GAUGES_INTERVAL = 15.0  # seconds between two refreshes of the gauges read from the database


class _DropSkippedRuns(logging.Filter):
    """A poll still running at its next tick is skipped by design (one at a time per org);
    APScheduler warns about each skip, which a long backlog would repeat every interval."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_scheduler_log = logging.getLogger(SCHEDULER_LOGGER)  # its INFO lines go to DEBUG
_scheduler_log.addFilter(_DropSkippedRuns())


@dataclass(frozen=True)
class DaemonConfig:
    """The daemon's schedule and endpoints: the settings' values (`of`) and the fixed rest."""

    poll_interval: float
    poll_jitter: float
    job_fallback_interval: float
    publish_workers: int
    drift_interval: float
    rollout_interval: float  # the running rollout's step (rollout/advance.py)
    analytics_interval: float  # skills analytics of each Claude Enterprise organisation
    activity_interval: float  # its Compliance activity feed
    ops_host: str
    ops_port: int
    retention_interval: float = 86400.0  # telemetry retention: at start, then this often
    prune_interval: float = 86400.0  # pruning of old finished jobs: at start, then this often
    requeue_interval: float = 10.0  # requeue of the jobs of a dead replica (stale heartbeat)
    refresh_interval: float = 30.0
    db_check_interval: float = 5.0
    grace_seconds: float = 7.0  # SIGTERM -> exit within 10 s, with room for cleanup
    replica: str = f"{socket.gethostname()}-{os.getpid()}"

    @classmethod
    def of(cls, settings: Settings) -> DaemonConfig:
        """The schedule and endpoints of the settings `run` read."""
        return cls(
            poll_interval=settings.poll_interval,
            poll_jitter=min(5.0, settings.poll_interval / 10),
            job_fallback_interval=settings.job_fallback_interval,
            publish_workers=settings.publish_workers,
            drift_interval=settings.drift_interval,
            rollout_interval=settings.rollout_interval,
            analytics_interval=settings.analytics_interval,
            activity_interval=settings.activity_interval,
            ops_host=settings.ops_host,
            ops_port=settings.ops_port,
        )


class WorkFailed(Exception):
    """An expected failure of one unit of work (API down, bad key): logged without traceback."""


class Work(Protocol):
    """What the daemon runs. Each call opens its own sessions and reads fresh configuration."""

    def organisations(self) -> list[str]:
        """Org ids of every configured connection (read from the database each call)."""

    async def poll(self, org_id: str) -> None:
        """Ingest the org's new audit events, unless another replica polls it right now."""

    async def run_next_job(self) -> bool:
        """Claim and run one queued publish job; False when none was waiting."""

    async def drift_check(self) -> None:
        """Compare remote state with the publications and queue repairs."""

    async def advance_rollouts(self) -> None:
        """Advance the running rollout by what its jobs, soak and guardrails allow."""

    async def refresh_gauges(self) -> None:
        """Update the gauges read from the database (jobs by status, checkpoint ages)."""

    async def requeue(self) -> None:
        """Queue again the jobs whose replica died (stale heartbeat) or that this one lost."""

    async def retention(self) -> None:
        """Remove telemetry older than the retention period (one replica at a time)."""

    async def prune_jobs(self) -> None:
        """Delete finished jobs older than the configured age (one replica at a time)."""

    async def recover(self) -> None:
        """After a database outage: queue again the jobs this replica claimed but lost."""

    def source_organisations(self) -> dict[str, list[str]]:
        """Org ids to read, per telemetry source of real organisations (issue 16)."""

    async def ingest(self, source: str, org_id: str) -> None:
        """One run of a telemetry source for one organisation, unless another replica runs it."""


class Daemon:
    def __init__(
        self,
        work: Work,
        database_url: str,
        engine: Engine,
        metrics: Metrics,
        config: DaemonConfig,
    ) -> None:
        self.work = work
        self.config = config
        self.engine = engine
        self.libpq_url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.metrics = metrics
        self.health = Health(replica=self.config.replica)
        self._stopping = asyncio.Event()
        self._wake = _Wakes()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self.ops_port: int | None = None
        self._probe = asyncio.Event()  # check the database now (work just lost it)
        self._db_back = asyncio.Event()  # set, then replaced, each time the database returns
        self._down_since: float | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stop requested: draining")
            self._stopping.set()
            self._wake.set()

    async def run(self) -> None:
        # What is loaded by now (modules, classes, settings) lives as long as the process: out of
        # the cyclic collector's way, its collections scan only what the work allocates (an
        # audit page is thousands of dicts: ~15% of the poller's CPU, bench/RESULTS.md).
        sdk.preload()  # before readiness, and frozen with the rest
        gc.freeze()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        sock = self._bind_ops()
        self.ops_port = sock.getsockname()[1]
        server = ops_server(self.health, self.metrics, self.config.ops_host, self.ops_port)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="ops-server")
        log.info(
            "daemon %s started; ops on %s:%s",
            self.config.replica,
            self.config.ops_host,
            self.ops_port,
        )

        await self._check_db()
        scheduler = self._start_scheduler()
        await self._refresh_orgs()
        watcher = asyncio.create_task(self._watch_db(), name="db-watch")
        listener = asyncio.create_task(self._listen(), name="listen")
        workers = [
            asyncio.create_task(self._job_worker(i), name=f"jobs-{i}")
            for i in range(self.config.publish_workers)
        ]
        self.metrics.up.set(1)
        await self._stopping.wait()

        # Draining: no new work; what still runs gets the grace period, then is cancelled.
        # Idle workers see `_stopping` and end at once, so only running work is waited for.
        self.health.draining = True
        self.metrics.up.set(0)
        scheduler.shutdown(wait=False)
        listener.cancel()  # holds no work; it would otherwise wait for the next NOTIFY
        watcher.cancel()
        running = [t for t in (*workers, *self._tasks) if not t.done()]
        _, pending = (
            await asyncio.wait(running, timeout=self.config.grace_seconds)
            if running
            else (set(), set())
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(listener, watcher, *pending, return_exceptions=True)
        if pending:
            log.warning(
                "cancelled work still running after the %.0fs grace period: %s (a publish job "
                "is taken over by another replica once its heartbeat is stale)",
                self.config.grace_seconds,
                ", ".join(sorted(t.get_name() for t in pending)),
            )
        server.should_exit = True
        await serving
        log.info("daemon %s stopped", self.config.replica)

    def _bind_ops(self) -> socket.socket:
        return bind_port(
            self.config.ops_host,
            self.config.ops_port,
            "/healthz, /readyz and /metrics",
            "--ops-port",
        )

    # --- scheduling ---------------------------------------------------------------------------

    def _start_scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1}, logger=_scheduler_log
        )
        cfg = self.config
        # (name, step, every seconds, jittered, also at start). Daily steps run at start too: a
        # daemon restarted more often than daily (a rollout, a crash loop) would never run them.
        steps: list[tuple[str, Callable[[], Awaitable[None]], float, bool, bool]] = [
            ("refresh", self._refresh_orgs, cfg.refresh_interval, False, False),
            ("drift", self.work.drift_check, cfg.drift_interval, True, False),
            ("rollout", self.work.advance_rollouts, cfg.rollout_interval, False, False),
            ("requeue", self.work.requeue, cfg.requeue_interval, False, False),
            ("retention", self.work.retention, cfg.retention_interval, True, True),
            ("prune-jobs", self.work.prune_jobs, cfg.prune_interval, True, True),
            ("gauges", self.work.refresh_gauges, GAUGES_INTERVAL, False, False),
        ]
        for name, step, seconds, jittered, at_start in steps:
            start: dict[str, Any] = {"next_run_time": _now_utc()} if at_start else {}
            scheduler.add_job(
                self._tracked(name, step),
                IntervalTrigger(seconds=seconds, jitter=cfg.poll_jitter if jittered else None),
                id=name,
                **start,
            )
        scheduler.start()
        # One line that says what runs how often (docs/deployment.md, "Scheduled work", lists the
        # same steps; tests/test_docs_promises.py holds the two together).
        log.info(
            "scheduled: %s; per organisation: poll every %gs; per Claude Enterprise "
            "organisation: skills-analytics every %gs, activity-feed every %gs",
            ", ".join(f"{name} every {seconds:g}s" for name, _, seconds, _, _ in steps),
            cfg.poll_interval,
            cfg.analytics_interval,
            cfg.activity_interval,
        )
        self._scheduler = scheduler
        return scheduler

    def _tracked(
        self,
        name: str,
        fn: Callable[..., Awaitable[None]],
        *args: Any,
        org_id: str | None = None,
    ) -> Callable[[], Awaitable[None]]:
        """Wrap a job so that shutdown can wait for it and one failure never kills the loop.

        While the database is unavailable the job is skipped: it would fail on its first query.
        `org_id` goes into every line the job logs, its failure included."""

        async def job() -> None:
            if self._stopping.is_set() or self.health.db_error is not None:
                return
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                with log_context(org_id=org_id):
                    await self._logged(name, fn, *args)
            finally:
                self._tasks.discard(task)

        job.__name__ = job.__qualname__ = name
        return job

    async def _logged(self, name: str, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run `fn`; its failure is a log line (and a database outage a pause), never raised."""
        try:
            await fn(*args)
        except asyncio.CancelledError:
            raise
        except WorkFailed as exc:
            log.warning("%s failed: %s; it runs again at its next interval", name, exc)
        except Exception as exc:
            if is_unavailable(exc):
                self._db_lost(exc)
                log.debug("%s stopped: the database is unavailable", name)
            else:
                log.exception("%s failed; it runs again at its next interval", name)

    async def _refresh_orgs(self) -> None:
        """Keep one poll job per configured organisation, added and removed as config changes."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        try:
            orgs = set(await asyncio.to_thread(self.work.organisations))
        except Exception as exc:
            if is_unavailable(exc):
                self._db_lost(exc)
            else:
                log.warning("cannot read the organisation list: %s", _oneline(exc))
            return
        current = {
            j.id.removeprefix("poll:") for j in scheduler.get_jobs() if j.id.startswith("poll:")
        }
        for org_id in sorted(orgs - current):
            scheduler.add_job(
                self._tracked(f"poll {org_id}", self._poll, org_id, org_id=org_id),
                IntervalTrigger(seconds=self.config.poll_interval, jitter=self.config.poll_jitter),
                id=f"poll:{org_id}",
                next_run_time=_now_utc(),  # first poll right away, then on the interval
                misfire_grace_time=int(self.config.poll_interval),
            )
            log.info("polling %s every %ss", org_id, self.config.poll_interval)
        for org_id in sorted(current - orgs):
            scheduler.remove_job(f"poll:{org_id}")
            log.info("stopped polling %s: its connection was removed", org_id)
        await self._refresh_sources(scheduler)

    async def _refresh_sources(self, scheduler: AsyncIOScheduler) -> None:
        """One job per telemetry source and Claude Enterprise organisation (`source:org`)."""
        try:
            wanted = await asyncio.to_thread(self.work.source_organisations)
        except Exception as exc:
            if is_unavailable(exc):
                self._db_lost(exc)
            else:
                log.warning("cannot read the telemetry sources: %s", _oneline(exc))
            return
        intervals = {  # every registered source (telemetry/seam.py)
            name: float(getattr(self.config, kind.interval_setting, 60.0))
            for name, kind in seam.kinds().items()
        }
        want = {f"{source}:{org}" for source, orgs in wanted.items() for org in orgs}
        have = {j.id for j in scheduler.get_jobs() if j.id.split(":", 1)[0] in intervals}
        for job_id in sorted(want - have):
            source, org_id = job_id.split(":", 1)
            every = intervals[source]
            scheduler.add_job(
                self._tracked(f"{source} {org_id}", self._ingest, source, org_id, org_id=org_id),
                IntervalTrigger(seconds=every, jitter=min(self.config.poll_jitter, every / 10)),
                id=job_id,
                next_run_time=_now_utc(),
                misfire_grace_time=int(every),
            )
            log.info("reading %s of %s every %ss", source, org_id, every)
        for job_id in sorted(have - want):
            scheduler.remove_job(job_id)
            log.info("stopped reading %s: its target was removed", job_id.replace(":", " of ", 1))

    async def _ingest(self, source: str, org_id: str) -> None:
        key = f"{source} {org_id}"
        try:
            await self.work.ingest(source, org_id)
            self.health.api_errors.pop(key, None)
        except Exception as exc:
            self.metrics.source_errors.labels(source, org_id).inc()
            if not is_unavailable(exc):  # /readyz reports the database apart
                self.health.api_errors[key] = str(exc)
            raise

    async def _poll(self, org_id: str) -> None:
        started = time.monotonic()
        try:
            await self.work.poll(org_id)
            self.health.api_errors.pop(org_id, None)
        except Exception as exc:
            self.metrics.poll_errors.labels(org_id).inc()
            if not is_unavailable(exc):  # /readyz reports the database apart
                self.health.api_errors[org_id] = str(exc)
            raise
        finally:
            self.metrics.poll_duration.labels(org_id).observe(time.monotonic() - started)

    # --- database outages ---------------------------------------------------------------------

    def _db_lost(self, exc: BaseException) -> None:
        """Work found the database unavailable: not ready, and one warning per outage."""
        reason = _oneline(exc)
        if self.health.db_error is None:
            self._down_since = time.monotonic()
            log.warning(
                "database unavailable: %s; work pauses and resumes by itself when it answers",
                reason,
            )
        self.health.db_failed(reason)
        self._probe.set()

    async def _check_db(self) -> bool:
        def ping() -> None:  # ready means: the database answers and holds our schema
            with self.engine.connect() as conn:
                require_schema(conn)

        try:
            await asyncio.to_thread(ping)
        except Exception as exc:
            self._db_lost(exc)
            return False
        if self.health.db_error is not None:
            down = time.monotonic() - (self._down_since or time.monotonic())
            log.info("database available again after %.1fs: resuming work", down)
            self.health.db_ok()
            self._db_back.set()  # cuts short the backoff of the workers and the listener
            self._db_back = asyncio.Event()
            recovery = asyncio.create_task(self._after_outage(), name="db-recovered")
            self._tasks.add(recovery)
            recovery.add_done_callback(self._tasks.discard)
        else:
            self.health.db_ok()
        return True

    async def _after_outage(self) -> None:
        await self._tracked("requeue lost jobs", self.work.recover)()
        self._wake.set()  # a requeued job sends no NOTIFY
        await self._tracked("refresh", self._refresh_orgs)()

    async def _watch_db(self) -> None:
        """Check the database every `db_check_interval`, at once when work lost it, and every
        `DB_RETRY` seconds while it is unavailable."""
        while not self._stopping.is_set():
            self._probe.clear()
            if await self._check_db():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._probe.wait(), self.config.db_check_interval)
            else:
                await _sleep_unless(self._stopping, DB_RETRY)

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short by shutdown or by the database coming back."""
        back = asyncio.ensure_future(self._db_back.wait())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({back, stop}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            back.cancel()
            stop.cancel()

    # --- publish jobs -------------------------------------------------------------------------

    async def _job_worker(self, index: int) -> None:
        """Run queued jobs until none is left, then sleep until NOTIFY or the fallback tick."""
        backoff = 1.0
        wake = self._wake.new()
        while not self._stopping.is_set():
            # Cleared before the queue is read, not after: a NOTIFY that arrives while a claim
            # finds nothing (a split's units, committed a moment later) must not be lost.
            wake.clear()
            try:
                while not self._stopping.is_set() and await self.work.run_next_job():
                    pass
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    self._db_lost(exc)
                    await self._pause(30.0)  # until the database is back
                    continue
                log.warning("publish worker %d: %s (retrying in %.0fs)", index, exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.config.job_fallback_interval)

    async def _listen(self) -> None:
        """LISTEN for new jobs; reconnect with backoff when the database goes away."""
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.libpq_url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    log.debug("listening on %s", NOTIFY_CHANNEL)
                    backoff = 1.0
                    self._wake.set()  # catch up on what was queued while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
                        if self._stopping.is_set():
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    self._db_lost(exc)
                else:
                    log.warning("job listener: %s; retrying in %.0fs", _oneline(exc), backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)


class _Wakes:
    """One event per job worker: a NOTIFY (or a requeue, or stop) wakes every worker, and each
    clears only its own, before it reads the queue, so none loses a wake another consumed."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    def new(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def set(self) -> None:
        for event in self._events:
            event.set()


def bind_port(host: str, port: int, what: str, remedy: str) -> socket.socket:
    """Bind a port here, so that a taken port is one clear error (uvicorn would exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot serve {what} on {host}:{port}: {exc.strerror}; choose another {remedy}"
        ) from None
    sock.set_inheritable(True)
    return sock


def _oneline(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
