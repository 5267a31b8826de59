"""Running one claimed publish job, the one way every runner does it (the daemon, `publish
--wait`, `republish`, the demo, the benchmarks), so that no run of a tenant ever runs beside
another run of it, whoever started either:

1. one heartbeat, from the claim to the end (the wait for locks included), which also notices
   a cancel request, and a job of higher priority on its tenants (the kill switch): the run then
   yields, i.e. stops at its next item, lets go of its locks and goes back to the queue
   (`jobs.requeue_yielded`, outcome status `queued`), to resume once that job is done;
2. the advisory locks of the job's root tenants (`db.locks`, sorted: no deadlock), waited for;
3. `jobs.mark_started` (the wait is not work);
4. reconcile rounds for the job's scope, then the Claude Code settings step (the kill switch's
   job: the items of its disabled skills only, `ClaimedJob.kill_only`);
5. `jobs.finish` with the merged outcome.

A job over every tenant is split into one unit per root tenant (`publish.job_units`): its
runner splits it and runs its units here (`run_units`), beside any replica that claims them
too, and reports the split job's outcome once its last unit has ended.

Two runs side by side would both list a workspace before either creates, and the Skills API
does not refuse a second skill of one name: a twin of every skill (issue 21).

Retries: a skill that failed with a retryable error (429, 5xx, no answer) is tried again after a
backoff, by running reconcile for the job's scope again: reconcile is idempotent, so a new round
plans only what is still missing. Rounds stop when nothing retryable is left, at
`RetryPolicy.rounds` (`CLARESIA_JOB_RETRY_ROUNDS`), or on cancel; the job then records what
still fails and why (`errors`, with `retryable` and the number of attempts, and
`stats.still_failing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.api.client import DEFAULT_TIMEOUT_S, make_http_pool
from claresia_sync.db.engine import is_unavailable
from claresia_sync.db.locks import advisory_locks
from claresia_sync.db.models import JobStatus
from claresia_sync.logs import log_context
from claresia_sync.publish import jobs, unit_sweep
from claresia_sync.publish.applier import DEFAULT_CONCURRENCY, CallBounds
from claresia_sync.publish.claude_code_settings import ConfigureResult, configure_for_job
from claresia_sync.publish.job_outcome import Rounds, status_of
from claresia_sync.publish.reconcile import ProgressFn, RunResult, reconcile
from claresia_sync.tenancy.lookup import root_slugs

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 1.0  # seconds; a beat also tells the run whether a cancel was asked
UNITS_AT_ONCE = 8  # units of a split job one process runs at once (`run_units`)
STALE_AFTER = 30.0  # seconds: CLARESIA_JOB_STALE_AFTER_S's default


@dataclass(frozen=True)
class RetryPolicy:
    """Rounds of a job at most (the first run included), and the waits between them.
    The entry point hands down `RetryPolicy(rounds=CLARESIA_JOB_RETRY_ROUNDS)`."""

    rounds: int = 4
    first_delay: float = 2.0
    factor: float = 3.0
    max_delay: float = 60.0

    def delay(self, after_round: int) -> float:
        return min(self.max_delay, self.first_delay * self.factor ** (after_round - 1))


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: JobStatus
    stats: dict[str, Any]
    errors: list[dict[str, Any]]
    run: RunResult | None
    split_ended: JobStatus | None = None
    """A unit's: the status its split job ended with, if this unit was its last."""


class _Beat:
    """Heartbeats a running job and notices a cancel request or a request to yield."""

    def __init__(self, engine: Engine, job_id: int, every: float) -> None:
        self.engine, self.job_id, self.every = engine, job_id, every
        self.cancelled = asyncio.Event()
        self.yielding = asyncio.Event()
        self.stop = asyncio.Event()  # either: the run stops at its next item
        self.progress: tuple[int, int] | None = None  # (done, known) of the current round

    def tracking(self, progress: ProgressFn | None) -> ProgressFn:
        """A progress callback that the next beat records, then passes on to `progress`."""

        def note(done: int, known: int) -> None:
            self.progress = (done, known)
            if progress is not None:
                progress(done, known)

        return note

    async def check(self) -> None:
        with contextlib.suppress(Exception):  # a missed beat is retried at the next one
            told = await asyncio.to_thread(jobs.beat, self.engine, self.job_id, self.progress)
            if told.cancel:
                self.cancelled.set()
            elif told.must_yield:
                self.yielding.set()
            if told.cancel or told.must_yield:
                self.stop.set()

    @property
    def yields(self) -> bool:
        """Stopped to give way, not cancelled: the job goes back to the queue."""
        return self.yielding.is_set() and not self.cancelled.is_set()

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.check()


@asynccontextmanager
async def _beating(engine: Engine, job_id: int, every: float) -> AsyncIterator[_Beat]:
    beat = _Beat(engine, job_id, every)
    await beat.check()
    task = asyncio.create_task(beat.loop(), name=f"heartbeat-{job_id}")
    try:
        yield beat
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _rounds(
    engine: Engine,
    job: jobs.ClaimedJob,
    beat: _Beat,
    *,
    concurrency: int,
    http: httpx2.AsyncClient | None,
    api_timeout: float,
    progress: ProgressFn | None,
    retry: RetryPolicy,
    bounds: CallBounds | None,
) -> Rounds:
    rounds = Rounds()
    while not beat.stop.is_set():
        run = await reconcile(
            engine,
            job.tenant_slug,
            check_remote=job.force,
            concurrency=concurrency,
            job_id=job.id,
            http=http,
            api_timeout=api_timeout,
            progress=beat.tracking(progress),
            stop=beat.stop.is_set,
            bounds=bounds,
            kill_only=job.kill_only,
        )
        rounds.add(run)
        pending = rounds.retryable()
        if not pending or len(rounds.runs) >= retry.rounds:
            break
        delay = retry.delay(len(rounds.runs))
        log.info(
            "publish job %d: %d skill(s) failed for a passing reason; round %d in %.0fs",
            job.id,
            len(pending),
            len(rounds.runs) + 1,
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(beat.stop.wait(), delay)
    return rounds


def _roots(engine: Engine, tenant_slug: str | None) -> list[str]:
    with Session(engine) as session:
        return root_slugs(session, tenant_slug)


WaitingFn = Callable[[list[str]], None]
"""Called with the root tenants a job waits for, when another run holds one of them."""


async def run_job(
    engine: Engine,
    job: jobs.ClaimedJob,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    http: httpx2.AsyncClient | None = None,
    api_timeout: float = DEFAULT_TIMEOUT_S,
    progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    heartbeat_every: float = HEARTBEAT_EVERY,
    waiting: WaitingFn | None = None,
    bounds: CallBounds | None = None,
    units_at_once: int = UNITS_AT_ONCE,
    worker: str = "daemon",
) -> JobOutcome:
    """Run a claimed job to its end, alone on its root tenants, and record it (the module
    doc). A crash inside marks the job failed; a cancel asked while it waits for its tenants
    ends it `cancelled` before any round. `retry` and `api_timeout` (used without `http`) are
    the entry point's settings; `bounds` the replica's bounds of API calls (shared with its
    other runs), else `concurrency` for this run. A job over every tenant is split and its
    units run here, `units_at_once` at a time (`run_units`), claimed by `worker`."""
    if job.splits:
        await asyncio.to_thread(jobs.split, engine, job.id)
        return await run_units(
            engine,
            job.id,
            sweep=not job.force,
            bounds=bounds or CallBounds(concurrency),
            units_at_once=units_at_once,
            worker=worker,
            http=http,
            api_timeout=api_timeout,
            progress=progress,
            retry=retry,
            heartbeat_every=heartbeat_every,
        )
    async with _beating(engine, job.id, heartbeat_every) as beat:
        roots = await asyncio.to_thread(_roots, engine, job.tenant_slug)
        async with advisory_locks(
            engine,
            "publish-tenant",
            roots,
            wait=True,
            stop=beat.stop.is_set,
            waiting=None if waiting is None else lambda: waiting(roots),
        ) as locked:
            # Finished while the locks are held: the next run of these tenants starts after.
            if not locked:
                if beat.yields:
                    return await _requeued(engine, job.id)
                return await _finished(engine, job.id, JobStatus.CANCELLED, {}, [])
            try:
                await asyncio.to_thread(jobs.mark_started, engine, job.id)
                rounds = await _rounds(
                    engine,
                    job,
                    beat,
                    concurrency=concurrency,
                    http=http,
                    api_timeout=api_timeout,
                    progress=progress,
                    retry=retry or RetryPolicy(),
                    bounds=bounds,
                )
                # The opt-in of docs/claude-code.md, with the plugins: the command's function
                # (not the kill switch's job, which does the kill only).
                claude_code = None
                if not beat.stop.is_set() and not job.kill_only:
                    claude_code = await configure_for_job(engine, job.tenant_slug, http=http)
            except Exception as exc:
                if is_unavailable(exc):
                    # Not the job's fault: it stays claimed, and the daemon queues it again
                    # once the database is back (skills it created meanwhile are adopted,
                    # never created twice).
                    raise
                log.exception("publish job %d failed", job.id)
                errors: list[dict[str, Any]] = [{"error": f"{type(exc).__name__}: {exc}"}]
                return await _finished(engine, job.id, JobStatus.FAILED, {}, errors)
            if beat.yields:  # what it did is recorded per item; the rest is done when it resumes
                return await _requeued(engine, job.id)
            if not rounds.runs:  # cancelled before its first round
                return await _finished(engine, job.id, JobStatus.CANCELLED, {}, [])
            return await _record(engine, job, rounds, beat.cancelled.is_set(), claude_code)


async def _requeued(engine: Engine, job_id: int) -> JobOutcome:
    """The job gave way to one of higher priority: back in the queue, its locks let go."""
    if await asyncio.to_thread(jobs.requeue_yielded, engine, job_id):
        log.info("publish job %d yielded to a job of higher priority: queued again", job_id)
    return JobOutcome(job_id, JobStatus.QUEUED, {}, [], None)


async def _finished(
    engine: Engine,
    job_id: int,
    status: JobStatus,
    stats: dict[str, Any],
    errors: list[dict[str, Any]],
    run: RunResult | None = None,
) -> JobOutcome:
    ended = await asyncio.to_thread(jobs.finish, engine, job_id, status, stats, errors)
    return JobOutcome(job_id, status, stats, errors, run, ended)


async def _record(
    engine: Engine,
    job: jobs.ClaimedJob,
    rounds: Rounds,
    cancelled: bool,
    claude_code: ConfigureResult | None,
) -> JobOutcome:
    merged = rounds.merged()
    status, stats, errors = status_of(merged, cancelled), rounds.stats(job), rounds.errors()
    if claude_code is not None and (claude_code.lines or claude_code.errors):
        stats["claude_code_settings"] = {
            "written": claude_code.written,
            "failed": len(claude_code.errors),
        }
        errors += claude_code.errors
        if claude_code.errors and status is JobStatus.SUCCEEDED:
            status = JobStatus.PARTIAL
    return await _finished(engine, job.id, status, stats, errors, merged)


async def run_units(
    engine: Engine,
    job_id: int,
    *,
    bounds: CallBounds,
    sweep: bool = True,
    units_at_once: int = UNITS_AT_ONCE,
    worker: str = "daemon",
    http: httpx2.AsyncClient | None = None,
    api_timeout: float = DEFAULT_TIMEOUT_S,
    progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    heartbeat_every: float = HEARTBEAT_EVERY,
    stale_after: float = STALE_AFTER,
) -> JobOutcome:
    """Run the units of split job `job_id` in this process, `units_at_once` at a time within
    `bounds`, beside any replica that claims some too; then wait for those still running
    elsewhere (queuing again, as a daemon would, the ones whose replica died); the split job's
    outcome. `progress` gets (units ended, units). With `sweep` (not for a force job), the
    units with nothing to do are first ended in bulk (`unit_sweep`)."""
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            pool = make_http_pool(max_connections=bounds.concurrency + 4, timeout=api_timeout)
            http = await stack.enter_async_context(pool)

        async def report() -> None:
            if progress is not None:
                counts = (await asyncio.to_thread(jobs.get_job, engine, job_id)).stats
                units = counts.get("units") or {}
                ended = sum(units.get(str(s), 0) for s in jobs.FINISHED)
                progress(ended, int(units.get("total", 0)))

        if sweep:
            await sweep_logged(engine, job_id, worker=worker, http=http, bounds=bounds)
            await report()

        async def one_worker() -> None:
            while unit := await asyncio.to_thread(jobs.claim, engine, worker, parent=job_id):
                with log_context(job_id=unit.id, tenant=unit.tenant_slug):
                    await run_job(
                        engine,
                        unit,
                        http=http,
                        bounds=bounds,
                        retry=retry,
                        heartbeat_every=heartbeat_every,
                    )
                await report()

        while True:
            await asyncio.gather(*(one_worker() for _ in range(units_at_once)))
            view = await asyncio.to_thread(jobs.parent_outcome, engine, job_id)
            if view is not None:
                return JobOutcome(job_id, view.status, view.stats, view.errors, None)
            await asyncio.sleep(min(1.0, heartbeat_every))
            await asyncio.to_thread(jobs.requeue_stale, engine, stale_after, parent=job_id)


async def sweep_logged(
    engine: Engine, job_id: int, *, worker: str, http: httpx2.AsyncClient, bounds: CallBounds
) -> None:
    """`unit_sweep.sweep_units` of split job `job_id`, logged; a failure is logged and left to
    the units' own runs (a unit it held is queued again when its heartbeat is stale)."""
    try:
        swept = await unit_sweep.sweep_units(
            engine, job_id, worker=f"{worker}/sweep", http=http, bounds=bounds
        )
    except Exception as exc:
        if is_unavailable(exc):
            raise
        log.exception("publish job %d: the sweep of its units failed; they run one by one", job_id)
        return
    log.info(
        "publish job %d: %d unit(s) with nothing to do ended at once, %d to run",
        job_id,
        swept.ended,
        swept.returned,
    )


async def run_next_job(
    engine: Engine,
    *,
    worker: str = "daemon",
    concurrency: int = DEFAULT_CONCURRENCY,
    http: httpx2.AsyncClient | None = None,
    progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    bounds: CallBounds | None = None,
) -> JobOutcome | None:
    """Claim and run the oldest queued job (`run_job`; a job over every tenant: all its units,
    here and on any replica that helps); None when the queue is empty."""
    job = await asyncio.to_thread(jobs.claim, engine, worker)
    if job is None:
        return None
    return await run_job(
        engine,
        job,
        concurrency=concurrency,
        http=http,
        progress=progress,
        retry=retry,
        bounds=bounds,
        worker=worker,
    )
