"""The sweep of a split job: its units with nothing to do, found and ended in bulk.

A republish-all with nothing changed is a no-op in every organisation, but as units each of
them pays a whole run (its claim, heartbeat, desired state, records, finish: ~25 statements and
~37 ms of CPU, bench/RESULTS.md): 200 organisations took 5x the single run. The runner that
splits a job (`job_run.run_units`, the daemon) therefore sweeps its units first, a chunk at a
time (`CHUNK`):

1. claim a chunk of queued units at once (`jobs.claim_units`, the queue's own rules: a unit
   outranked by the kill switch is not taken; nor one of an organisation never published, which
   has work), heartbeated together while the chunk lasts;
2. one desired state and one read of the publication rows for the chunk's organisations, and
   each one's plan without the target's list (the plan a normal run makes first);
3. an organisation whose plan writes nothing and records nothing still gets its gate (the
   revoked key, the lost scope or plan must still refuse it), all at once within the replica's
   bounds;
4. one transaction: the units whose every organisation passed end `succeeded`, with the stats a
   normal run of theirs would record (`job_outcome.Rounds`); every other unit goes back to the
   queue untouched, for a normal run on any replica (which repeats its gate, and records what
   the gate refused).

A chunk in which no unit ended stops the sweep: a run with work in every organisation (a first
publish, a new release) would pay the sweep's reads for nothing. Force jobs (`--force`, drift
checks) are not swept: their plans need each target's list. A
sweep takes no advisory lock: it writes nothing but the units' rows, and a unit it leaves is run
under its locks as any other. Whatever goes wrong in a chunk (a database error, a bug) returns
the chunk's units to the queue: the sweep can only save work, never lose a unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass

import httpx2
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.api.call_metrics import CallCounter
from claresia_sync.api.retry import org_requests
from claresia_sync.logs import log_context
from claresia_sync.publish import jobs
from claresia_sync.publish.applier import Applier, CallBounds, ItemResult, Outcome
from claresia_sync.publish.claude_code_settings import managed_roots
from claresia_sync.publish.desired import OrgDesired, desired_state
from claresia_sync.publish.job_outcome import Rounds
from claresia_sync.publish.planner import LivePublication, Op, OrgPlan, Plan, load_live, plan_org
from claresia_sync.publish.reconcile import RunResult

log = logging.getLogger(__name__)

CHUNK = 100  # units claimed at once: a chunk's work units wait for its end to be queued again


@dataclass
class SweepResult:
    ended: int = 0
    """Units found with nothing to do, ended `succeeded`."""
    returned: int = 0
    """Units queued again for a run of their own."""


def _nothing_to_do(plan: OrgPlan) -> bool:
    """No call but the gate and no row to write: every item unchanged, none to record."""
    return plan.refused is None and all(
        item.op == Op.UNCHANGED and not item.reason for item in plan.items
    )


def _read(engine: Engine, roots: list[str]) -> tuple[list[OrgPlan], set[str]]:
    """The chunk's organisations planned without their targets' lists, and the root tenants
    whose Claude Code settings a run would manage (those are not swept)."""
    with Session(engine) as session:
        orgs = desired_state(session, roots=roots)
        live: dict[str, list[LivePublication]] = load_live(session, orgs)
    return [plan_org(org, live[org.key]) for org in orgs], set(managed_roots(engine, None))


async def _gate(
    org: OrgDesired, http: httpx2.AsyncClient, applier: Applier, calls: CallCounter
) -> bool:
    """Whether the organisation's gate lets it through (anything else: not swept)."""
    bounds = applier.bounds
    with (
        log_context(org_id=org.org_id, tenant=org.root_slug),
        org_requests(bounds.requests(org.org_id)),
    ):
        try:
            target = org.kind.open(org.connection, http=http, counter=calls)
        except Exception:  # a key that cannot be read: the unit's own run says so
            return False
        try:
            refused = await applier.call(lambda: target.gate(checks_access=False), org.org_id)
        except Exception:
            log.debug("sweep: gate of %s failed; its unit runs", org.org_id, exc_info=True)
            return False
        finally:
            await target.aclose()
        return refused is None


async def _chunk(
    engine: Engine,
    units: list[jobs.ClaimedJob],
    http: httpx2.AsyncClient,
    bounds: CallBounds,
) -> dict[int, dict[str, object]]:
    """The stats of the chunk's units with nothing to do, by unit id."""
    by_root = {u.tenant_slug: u for u in units if u.tenant_slug is not None}
    plans, managed = await asyncio.to_thread(_read, engine, sorted(by_root))
    of_root: dict[str, list[OrgPlan]] = defaultdict(list)
    for plan in plans:
        of_root[plan.org.root_slug].append(plan)
    candidates = [
        root
        for root, found in of_root.items()
        if root in by_root and root not in managed and all(_nothing_to_do(p) for p in found)
    ]
    applier = Applier(bounds=bounds)
    calls = {root: CallCounter() for root in candidates}
    passed = await asyncio.gather(
        *(
            asyncio.gather(*(_gate(p.org, http, applier, calls[root]) for p in of_root[root]))
            for root in candidates
        )
    )
    ended: dict[int, dict[str, object]] = {}
    for root, gates in zip(candidates, passed, strict=True):
        if not all(gates):
            continue
        unit = by_root[root]
        found = of_root[root]
        results = [ItemResult(i, Outcome.UNCHANGED, i.live) for p in found for i in p.items]
        rounds = Rounds()
        rounds.add(RunResult(Plan(found, False), results, {}, calls[root]))
        ended[unit.id] = rounds.stats(unit)
    return ended


async def _beating(engine: Engine, worker: str, ids: list[int], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):  # a missed beat is retried at the next one
            await asyncio.to_thread(jobs.beat_swept, engine, worker, ids)


async def sweep_units(
    engine: Engine,
    job_id: int,
    *,
    worker: str,
    http: httpx2.AsyncClient,
    bounds: CallBounds,
    heartbeat_every: float = 1.0,
    chunk: int = CHUNK,
) -> SweepResult:
    """Sweep the queued units of split job `job_id` (the module doc), claimed as `worker`
    (a name of the sweep's own, so that a replica's lost-job recovery does not take its
    units); how many ended and how many went back to the queue."""
    result = SweepResult()
    seen: set[int] = set()
    while units := await asyncio.to_thread(jobs.claim_units, engine, worker, job_id, chunk, seen):
        ids = [u.id for u in units]
        seen.update(ids)
        beat = asyncio.create_task(_beating(engine, worker, ids, heartbeat_every))
        try:
            ended = await _chunk(engine, units, http, bounds)
        except Exception:
            log.exception("publish job %d: sweep of %d unit(s) failed; they run", job_id, len(ids))
            ended = {}
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        returned = [i for i in ids if i not in ended]
        await asyncio.to_thread(jobs.end_swept, engine, job_id, worker, ended, returned)
        result.ended += len(ended)
        result.returned += len(returned)
        if not ended:  # a run with work everywhere (a first publish): the sweep only costs
            break
    return result
