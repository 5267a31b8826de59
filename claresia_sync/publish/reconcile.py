"""One reconciliation run: desired state -> plan per organisation -> applied items -> records.

Organisations are pipelined: each one's gate, remote listing and items run as soon as they can,
all under one bound on API calls in flight, over one shared HTTP connection pool. Database work
(desired state, recording batches) runs in worker threads so the event loop keeps the API busy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx2
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.api.client import DEFAULT_TIMEOUT_S, CallCounter, make_http_pool
from claresia_sync.api.connect import ConnectionKeyError
from claresia_sync.api.retry import org_requests
from claresia_sync.logs import log_context
from claresia_sync.publish.applier import (
    DEFAULT_CONCURRENCY,
    OUTCOMES,
    Applier,
    CallBounds,
    ItemResult,
    ItemStopped,
)
from claresia_sync.publish.desired import OrgDesired, desired_state
from claresia_sync.publish.planner import (
    WRITE_OPS,
    LivePublication,
    OrgPlan,
    Plan,
    PlanItem,
    load_live,
    needs_access_check,
    only_disabled,
    plan_org,
)
from claresia_sync.publish.records import PublicationState, record_publications
from claresia_sync.publish.targets import PublishTarget

log = logging.getLogger(__name__)

RECORD_BATCH = 500


@dataclass
class RunResult:
    plan: Plan
    results: list[ItemResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    """org_id -> why nothing was done there."""
    calls: CallCounter = field(default_factory=CallCounter)

    def __repr__(self) -> str:
        return f"RunResult({self.counts()}, refused={sorted(self.refused)})"

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for r in self.results:
            out[r.outcome] += 1
        for org in self.plan.orgs:
            if org.refused:
                out["failed"] += len(org.org.skills) or 1
        return out

    def errors(self) -> list[dict[str, str | None]]:
        out: list[dict[str, str | None]] = [
            {"org_id": org_id, "tenant": None, "skill_id": None, "name": None, "error": why}
            for org_id, why in sorted(self.refused.items())
        ]
        out += [
            {
                "org_id": r.item.org_id,
                "tenant": r.item.tenant_slug,
                "skill_id": r.item.skill_id,
                "name": r.item.name,
                "error": r.error,
            }
            for r in self.results
            if r.error
        ]
        return out

    @property
    def last_live_at(self) -> dt.datetime | None:
        times = [r.live_at for r in self.results if r.live_at is not None]
        return max(times) if times else None


ProgressFn = Callable[[int, int], None]
"""Called with (items done, items known so far) as the run advances."""


class _Recorder:
    """Batches publication rows and writes them in a thread, off the event loop."""

    def __init__(self, engine: Engine, job_id: int | None) -> None:
        self._engine = engine
        self._job_id = job_id
        self._pending: list[PublicationState] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, state: PublicationState | None) -> None:
        if state is None:
            return
        self._pending.append(state)
        if len(self._pending) >= RECORD_BATCH:
            self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._tasks.append(
                asyncio.create_task(
                    asyncio.to_thread(record_publications, self._engine, batch, self._job_id)
                )
            )

    async def close(self) -> None:
        self._flush()
        await asyncio.gather(*self._tasks)


def _desired_and_live(
    engine: Engine, tenant_slug: str | None
) -> tuple[list[OrgDesired], dict[str, list[LivePublication]]]:
    with Session(engine) as session:
        orgs = desired_state(session, tenant_slug)
        return orgs, load_live(session, orgs)


async def _plan_one(
    org: OrgDesired,
    live: list[LivePublication],
    target: PublishTarget,
    applier: Applier,
    check_remote: bool,
    kill_only: bool = False,
) -> OrgPlan:
    def cut(plan: OrgPlan) -> OrgPlan:
        return only_disabled(plan) if kill_only else plan

    # Without the target's list the plan is known before any call: one that writes no access
    # (a no-op) needs no pre-flight, so the gate skips the reads only the pre-flight uses.
    planned = None if check_remote else cut(plan_org(org, live))
    checks = planned is None or needs_access_check(planned)
    org_id = org.org_id
    refusal = await applier.call(lambda: target.gate(checks_access=checks), org_id)
    if refusal is not None:
        return OrgPlan(org, refused=refusal)
    if planned is not None and not checks:
        return planned
    check = await applier.call(target.access_check, org_id)
    remote = None
    if check_remote:
        try:
            remote = await applier.call(target.list_ours, org_id)
        except Exception as exc:  # an API error here stops this organisation only
            return OrgPlan(org, refused=f"organisation {org.label}: cannot list skills: {exc}")
    return cut(plan_org(org, live, remote, check))


async def reconcile(
    engine: Engine,
    tenant_slug: str | None = None,
    *,
    check_remote: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    job_id: int | None = None,
    http: httpx2.AsyncClient | None = None,
    api_timeout: float = DEFAULT_TIMEOUT_S,
    progress: ProgressFn | None = None,
    stop: Callable[[], bool] | None = None,
    bounds: CallBounds | None = None,
    kill_only: bool = False,
) -> RunResult:
    """Plan (and unless `dry_run`, apply and record) every organisation in scope.

    `http`: a shared pool (it carries its timeout); without one, a pool of this run with
    `api_timeout` (the entry point's CLARESIA_API_TIMEOUT_S).

    `stop()` is asked before each item starts and when its first call gets its slot: once it
    says True, no further item calls (items that have called finish and are recorded); the
    skipped ones are left out of the results.

    `bounds`: the API calls in flight at most, in all and per organisation, shared with other
    runs (the replica's); without it, `concurrency` for this run alone.

    `kill_only`: only the items of skills the kill switch disabled (the kill-switch job's)."""
    orgs, live = await asyncio.to_thread(_desired_and_live, engine, tenant_slug)
    applier = Applier(bounds=bounds or CallBounds(concurrency))
    bounds = applier.bounds
    plan = Plan([], check_remote)
    run = RunResult(plan)
    recorder = _Recorder(engine, job_id)
    done = 0
    known = sum(len(o.skills) for o in orgs)

    def noted(org_plan: OrgPlan) -> bool:
        """Add the plan of one organisation to the run; False if it was refused."""
        nonlocal done, known
        plan.orgs.append(org_plan)
        known += len(org_plan.items) - len(org_plan.org.skills)
        if org_plan.refused is not None:
            run.refused[org_plan.org.label] = org_plan.refused
            done += len(org_plan.org.skills)
        if progress:  # a planned organisation makes its items known before the first is done
            progress(done, known)
        return org_plan.refused is None

    async def one_item(target: PublishTarget, item: PlanItem) -> None:
        nonlocal done
        # Items start when they can call, not before (`CallBounds.start`: the replica's bound and
        # the organisation's, so that one organisation's waiting items block no other's).
        async with bounds.start(item.org_id):
            if stop is not None and stop():
                return
            try:
                result = await applier.apply(target, item, stop=stop)
            except ItemStopped:
                return
        run.results.append(result)
        recorder.add(result.state())
        done += 1
        if progress:
            progress(done, known)

    async def one_org(org: OrgDesired, http: httpx2.AsyncClient) -> None:
        # Every line about this organisation (and its item tasks) carries org_id and tenant keys.
        # ... and every request of its calls holds a slot of its bound (its rate limit).
        with (
            log_context(org_id=org.org_id, tenant=org.connection.root_slug),
            org_requests(bounds.requests(org.org_id)),
        ):
            await _one_org(org, http)

    async def _one_org(org: OrgDesired, http: httpx2.AsyncClient) -> None:
        try:
            target = org.kind.open(org.connection, http=http, counter=run.calls)
        except ConnectionKeyError as exc:
            noted(OrgPlan(org, refused=str(exc)))
            return
        try:
            org_plan = await _planned(org, target)
            if not noted(org_plan) or dry_run:
                return
            for item in org_plan.items:
                if item.op not in WRITE_OPS:  # no API call: no task (a no-op run has 10,000s)
                    await one_item(target, item)
            writes = [i for i in org_plan.items if i.op in WRITE_OPS]
            await asyncio.gather(*(one_item(target, item) for item in writes))
        finally:
            await target.aclose()

    async def _planned(org: OrgDesired, target: PublishTarget) -> OrgPlan:
        try:
            return await _plan_one(org, live[org.key], target, applier, check_remote, kill_only)
        except Exception as exc:  # a bug must cost one organisation, not the run
            log.exception("planning organisation %s failed unexpectedly", org.org_id)
            return OrgPlan(org, refused=f"organisation {org.label}: unexpected {exc!r}")

    async with AsyncExitStack() as stack:
        if http is None:
            pool = make_http_pool(max_connections=bounds.concurrency + 4, timeout=api_timeout)
            http = await stack.enter_async_context(pool)
        await asyncio.gather(*(one_org(org, http) for org in orgs))
        await recorder.close()
    plan.orgs.sort(key=lambda o: (o.org.root_slug, o.org.key))
    return run
