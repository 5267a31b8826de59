"""The publish-job queue (`publish_job`): every move of a job's status happens here.

A job is any row: `INSERT INTO publish_job DEFAULT VALUES` asks for "publish every tenant",
`INSERT INTO publish_job (tenant_id) VALUES (...)` for one tenant (and its sub-tenants), with
`force = true` for a check against the organisation's own skill list.

    queued --claim--> running --finish--> succeeded | partial | failed | cancelled
    queued --cancel--> cancelled          running --cancel--> (stops at its next item) cancelled
    running --requeue_stale / requeue_lost--> queued     (its replica died / lost the database)
    finished --retry--> a new queued job (`retry_of`)    finished, old --prune--> deleted
    running --requeue_yielded--> queued     (it yielded to a job of higher priority)

Workers claim with `FOR UPDATE SKIP LOCKED`, so several may share the queue; a running job's
runner heartbeats (`heartbeat`), which also tells it whether a cancel was asked.

A job over every tenant is split (`split`, by whoever claims it first) into one unit per root
tenant with a connection: the units are ordinary queued jobs, claimed by any replica; the split
job (the parent) is running and claimed by no one, its `stats.units` counts its units by status,
and the last unit to finish ends it in the same transaction (`finish`), with the units' counts
summed: no replica watches it. Cancelling it cancels its queued units and asks the running ones
to stop.

Priority (the kill switch, `PRIORITY_KILL_SWITCH`): the highest priority is claimed first, and
while a job of higher priority is queued or running on some of a job's tenants (`_OVERLAPS`:
either covers every tenant, or both have the same root tenant), that job is not claimed, and if
it runs, its heartbeat tells it to yield (`beat`): it stops at its next item, lets go of its
tenants' locks and goes back to the queue (`requeue_yielded`), to resume after.
Lag: `lag_seconds` (a generated column) is requested -> finished; `stats.publish_lag_s` is
requested -> the last skill live with its ACL, the figure the publish-lag SLO is about.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from claresia_sync.db.models import JobStatus, PublishJob, Tenant
from claresia_sync.errors import UserError
from claresia_sync.publish import job_units as units
from claresia_sync.tenancy.lookup import require_tenant

__all__ = [
    "ACTIVE",
    "FINISHED",
    "MAX_RECORDED_ERRORS",
    "PRIORITY_KILL_SWITCH",
    "Beat",
    "ClaimedJob",
    "JobStatus",
    "beat",
    "beat_swept",
    "cancel",
    "claim",
    "claim_units",
    "claimed",
    "counts",
    "end_swept",
    "enqueue",
    "enqueue_drift_check",
    "enqueue_once",
    "finish",
    "heartbeat",
    "list_jobs",
    "mark_started",
    "parent_outcome",
    "prune",
    "requeue_lost",
    "requeue_stale",
    "requeue_yielded",
    "retry",
    "scope_key",
    "split",
]

MAX_RECORDED_ERRORS = units.MAX_RECORDED_ERRORS
FINISHED = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED}
)
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
RETRYABLE = frozenset({JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED})
PRIORITY_KILL_SWITCH = 100
"""A kill-switch job (publish/kill_switch.py): ahead of every other job, queued or running."""

# `_OUTRANKED` (written out in `_CLAIM` and `_BEAT`: SQL text is never concatenated): a job `k`
# of higher priority than job `a` is queued or running on some of `a`'s tenants: either covers
# every tenant, or their tenants have the same root (a job covers its tenant's sub-tenants).
# Statuses are bound parameters (`:queued`, `:running`: see `_STATUS`), never spliced in.
_CLAIM = text("""
UPDATE publish_job j SET status = :running, started_at = now(), heartbeat_at = now(),
       claimed_by = :worker
  FROM (SELECT a.id FROM publish_job a
         WHERE a.status = :queued AND (CAST(:job_id AS bigint) IS NULL OR a.id = :job_id)
           AND NOT EXISTS (
               SELECT 1 FROM publish_job k
                WHERE k.priority > a.priority AND k.status IN (:queued, :running)
                  AND (k.tenant_id IS NULL OR a.tenant_id IS NULL
                       OR (SELECT coalesce(t.parent_id, t.id) FROM tenant t
                             WHERE t.id = k.tenant_id)
                        = (SELECT coalesce(t.parent_id, t.id) FROM tenant t
                             WHERE t.id = a.tenant_id)))
           AND (CAST(:parent AS bigint) IS NULL OR a.parent_id = :parent)
           AND NOT (a.id = ANY(CAST(:skip AS bigint[])))
           AND (NOT CAST(:published AS boolean)
                OR EXISTS (SELECT 1 FROM publication p JOIN tenant t ON t.id = p.tenant_id
                            WHERE a.tenant_id IN (t.id, t.parent_id)))
         ORDER BY a.priority DESC, a.requested_at, a.id
         LIMIT :limit
         FOR UPDATE OF a SKIP LOCKED) q
 WHERE j.id = q.id
RETURNING j.id, (SELECT t.slug FROM tenant t WHERE t.id = j.tenant_id) AS slug, j.force,
          j.requested_at, j.parent_id, j.priority
""")
_BEAT = text("""
UPDATE publish_job a SET heartbeat_at = now(),
       stats = coalesce(CAST(:progress AS jsonb), a.stats)
 WHERE a.id = :job_id AND a.status = :running
RETURNING a.cancel_requested_at IS NOT NULL AS cancel,
          EXISTS (
              SELECT 1 FROM publish_job k
               WHERE k.priority > a.priority AND k.status IN (:queued, :running)
                 AND (k.tenant_id IS NULL OR a.tenant_id IS NULL
                      OR (SELECT coalesce(t.parent_id, t.id) FROM tenant t
                            WHERE t.id = k.tenant_id)
                       = (SELECT coalesce(t.parent_id, t.id) FROM tenant t
                            WHERE t.id = a.tenant_id))
          ) AS must_yield
""")

# Back to the queue, keeping its place (requested_at); a queued job of the same dedupe key
# already does its work, so the key goes (the key is unique among queued jobs).
_REQUEUE_YIELDED = text("""
UPDATE publish_job a SET status = :queued, claimed_by = NULL, started_at = NULL,
       stats = jsonb_build_object('yielded', coalesce(CAST(a.stats->>'yielded' AS int), 0) + 1),
       dedupe_key = CASE WHEN EXISTS (SELECT 1 FROM publish_job o
                                       WHERE o.dedupe_key = a.dedupe_key AND o.status = :queued)
                         THEN NULL ELSE a.dedupe_key END
 WHERE a.id = :job_id AND a.status = :running
RETURNING a.id
""")
_REQUEUE_STALE = text("""
UPDATE publish_job j SET status = :queued, claimed_by = NULL, started_at = NULL
  FROM (SELECT id, claimed_by FROM publish_job
         WHERE status = :running AND heartbeat_at < now() - make_interval(secs => :stale)
           AND units IS NULL
           AND (CAST(:parent AS bigint) IS NULL OR parent_id = :parent)
         FOR UPDATE SKIP LOCKED) old
 WHERE j.id = old.id
RETURNING j.id, old.claimed_by
""")
_REQUEUE_LOST = text("""
UPDATE publish_job SET status = :queued, claimed_by = NULL, started_at = NULL
 WHERE status = :running AND claimed_by = :me AND NOT (id = ANY(CAST(:running_ids AS bigint[])))
   AND units IS NULL
RETURNING id
""")
_QUEUED_ONLY = text("status = 'queued'")  # ux_publish_job_dedupe_key's predicate (db/models.py)
_QUEUED_WITH_KEY = text("SELECT id FROM publish_job WHERE dedupe_key = :key AND status = :queued")
_STATUS = {"queued": str(JobStatus.QUEUED), "running": str(JobStatus.RUNNING)}


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    tenant_slug: str | None
    force: bool
    requested_at: dt.datetime
    parent_id: int | None = None
    """The split job this one is a unit of."""
    priority: int = 0

    @property
    def splits(self) -> bool:
        """A job over every tenant runs as units (`split`), not as one run; but a kill switch's
        (a delete or two per organisation, in a hurry) runs as one: its calls are spread over
        every organisation at once, not a few units at a time (bench/RESULTS.md, Kill switch)."""
        return self.tenant_slug is None and self.parent_id is None and self.priority == 0

    @property
    def kill_only(self) -> bool:
        """The kill switch's job does the kill and nothing else: it applies only the items of
        skills disabled in its scope (`planner.only_disabled`); other pending changes of its
        tenants wait for a job of their own."""
        return self.priority >= PRIORITY_KILL_SWITCH


class JobStateError(UserError):
    """An operator verb that does not apply to the job in its current state."""


def _tenant_id(session: Session, tenant_slug: str) -> int:
    return require_tenant(session, tenant_slug).id


def scope_key(tenant_id: int | None, force: bool) -> str:
    """The dedupe key of a job of this scope: one queued job does what a second would."""
    return f"{'force' if force else 'publish'}:{'all' if tenant_id is None else tenant_id}"


def enqueue(
    session: Session,
    tenant_slug: str | None = None,
    *,
    force: bool = False,
    claimed_by: str | None = None,
    retry_of: int | None = None,
    dedupe_key: str | None = None,
    priority: int = 0,
    requested_by: str | None = None,
) -> int:
    """Queue a job (in the caller's transaction: commit to make it visible); its id.

    With `claimed_by` the job is born running and claimed by that worker, so that no daemon can
    take it between the insert and the caller's own run (`republish` runs its job in-process).
    With `dedupe_key`, the id of the job already queued with that key if there is one.
    `requested_by` names who asked (default: the database user). `priority` above 0 puts it
    ahead of the queue and makes running jobs of its tenants yield."""
    tenant_id = None if tenant_slug is None else _tenant_id(session, tenant_slug)
    if dedupe_key is not None:
        return _enqueue_keyed(session, tenant_id, force, dedupe_key, requested_by)[0]
    job = PublishJob(tenant_id=tenant_id, force=force, retry_of=retry_of, priority=priority)
    if requested_by is not None:
        job.requested_by = requested_by
    if claimed_by is not None:
        job.status = JobStatus.RUNNING
        job.claimed_by = claimed_by
        job.started_at = job.heartbeat_at = func.now()
    session.add(job)
    session.flush()
    return job.id


def enqueue_once(
    session: Session, tenant_slug: str | None = None, *, force: bool = False
) -> tuple[int, bool]:
    """Queue a job of this scope unless one is queued (`scope_key`); (its id, whether new)."""
    tenant_id = None if tenant_slug is None else _tenant_id(session, tenant_slug)
    return _enqueue_keyed(session, tenant_id, force, scope_key(tenant_id, force))


def _enqueue_keyed(
    session: Session,
    tenant_id: int | None,
    force: bool,
    key: str,
    requested_by: str | None = None,
) -> tuple[int, bool]:
    """Insert unless a queued job holds `key` (the partial unique index decides, so two
    callers at once queue one job); (the id, whether it is new)."""
    values: dict[str, Any] = {"tenant_id": tenant_id, "force": force, "dedupe_key": key}
    if requested_by is not None:
        values["requested_by"] = requested_by
    stmt = (
        insert(PublishJob)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[PublishJob.dedupe_key],
            index_where=_QUEUED_ONLY,  # the index's own predicate, for ON CONFLICT to infer it
        )
        .returning(PublishJob.id)
    )
    for _ in range(3):  # the queued holder may be claimed between the two statements
        new = session.execute(stmt).scalar_one_or_none()
        if new is not None:
            return int(new), True
        held = session.execute(_QUEUED_WITH_KEY, {**_STATUS, "key": key}).scalar_one_or_none()
        if held is not None:
            return int(held), False
    raise RuntimeError(f"publish job key {key!r}: neither queued nor insertable")


def claim(
    engine: Engine, worker: str, job_id: int | None = None, *, parent: int | None = None
) -> ClaimedJob | None:
    """Take the oldest queued job (or job `job_id` if still queued, or a unit of `parent`);
    None if there is none."""
    params = {**_STATUS, "worker": worker, "job_id": job_id, "parent": parent}
    with engine.begin() as conn:
        row = conn.execute(
            _CLAIM, {**params, "limit": 1, "skip": [], "published": False}
        ).one_or_none()
    return None if row is None else _claimed(row)


def claim_units(
    engine: Engine, worker: str, parent: int, limit: int, skip: Collection[int] = ()
) -> list[ClaimedJob]:
    """Take up to `limit` queued units of split job `parent` at once, in `claim`'s order and
    under its rules (none outranked by a job of higher priority), leaving out the ids `skip` and
    the organisations never published (a sweep's, `publish/unit_sweep.py`: those have work)."""
    params = {**_STATUS, "worker": worker, "job_id": None, "parent": parent, "published": True}
    with engine.begin() as conn:
        rows = conn.execute(_CLAIM, {**params, "limit": limit, "skip": sorted(skip)}).all()
    return [_claimed(row) for row in rows]


def _claimed(row: Any) -> ClaimedJob:
    return ClaimedJob(row.id, row.slug, row.force, row.requested_at, row.parent_id, row.priority)


def claimed(engine: Engine, job_id: int) -> ClaimedJob:
    """A job this process enqueued already claimed (`enqueue(..., claimed_by=...)`)."""
    with Session(engine) as session:
        job = session.get(PublishJob, job_id)
        if job is None:
            raise JobStateError(f"publish job {job_id} does not exist")
        slug = None if job.tenant_id is None else session.get(Tenant, job.tenant_id)
        return ClaimedJob(
            job.id,
            slug.slug if slug else None,
            job.force,
            job.requested_at,
            job.parent_id,
            job.priority,
        )


def mark_started(engine: Engine, job_id: int) -> None:
    """The job's tenants are locked and its work starts now (the wait for locks is not work)."""
    with engine.begin() as conn:
        conn.execute(
            update(PublishJob)
            .where(PublishJob.id == job_id)
            .values(started_at=func.now(), heartbeat_at=func.now())
        )


@dataclass(frozen=True)
class Beat:
    """What a heartbeat tells a running job: stop for good (`cancel`), or give way to a job of
    higher priority on its tenants and go back to the queue (`must_yield`)."""

    cancel: bool = False
    must_yield: bool = False


def beat(engine: Engine, job_id: int, progress: tuple[int, int] | None = None) -> Beat:
    """Refresh a running job's heartbeat; whether it must stop or yield (`Beat`).

    `progress` (skills done, skills known so far) goes into the running job's `stats` as
    `{"progress": {"done": ..., "total": ...}}`, for `jobs show` and the console; `finish`
    replaces it with the final counts."""
    stats = None
    if progress is not None:
        stats = json.dumps({"progress": {"done": progress[0], "total": progress[1]}})
    with engine.begin() as conn:
        row = conn.execute(_BEAT, {**_STATUS, "job_id": job_id, "progress": stats}).one_or_none()
    return Beat() if row is None else Beat(bool(row.cancel), bool(row.must_yield))


def heartbeat(engine: Engine, job_id: int, progress: tuple[int, int] | None = None) -> bool:
    """Refresh a running job's heartbeat; True if a cancel of it was requested (`beat`)."""
    return beat(engine, job_id, progress).cancel


def requeue_yielded(engine: Engine, job_id: int) -> bool:
    """Put a running job that yielded (`Beat.must_yield`) back in the queue, in its place; False
    if it was no longer running (cancelled or taken over meanwhile)."""
    with engine.begin() as conn:
        return conn.execute(_REQUEUE_YIELDED, {**_STATUS, "job_id": job_id}).first() is not None


def requeue_stale(
    engine: Engine, stale_after: float, *, parent: int | None = None
) -> list[tuple[int, str]]:
    """Queue again the running jobs (or units of `parent`) whose heartbeat is older than
    `stale_after` seconds (their replica died); (job id, the replica that had it) of each. A
    split job has no heartbeat of its own: its units have."""
    with engine.begin() as conn:
        params = {**_STATUS, "stale": stale_after, "parent": parent}
        rows = conn.execute(_REQUEUE_STALE, params).all()
    return [(int(r.id), str(r.claimed_by)) for r in rows]


def requeue_lost(engine: Engine, worker: str, running: Sequence[int]) -> list[int]:
    """Queue again the jobs `worker` claimed but no longer runs (not in `running`)."""
    with engine.begin() as conn:
        rows = conn.execute(
            _REQUEUE_LOST, {**_STATUS, "me": worker, "running_ids": sorted(running)}
        ).all()
    return [int(r.id) for r in rows]


def finish(
    engine: Engine,
    job_id: int,
    status: JobStatus,
    stats: dict[str, Any],
    errors: Sequence[Any],
) -> JobStatus | None:
    """Record a job's end; a unit's end also moves its split job's counts, and the last unit's
    ends the split job (one transaction: no replica has to watch the split job). The split
    job's status if this ended it, else None."""
    with engine.begin() as conn:
        parent = conn.execute(
            select(PublishJob.parent_id).where(PublishJob.id == job_id)
        ).scalar_one_or_none()
        if parent is not None:
            units.lock(conn, parent)  # first, as `cancel` does: no deadlock between the two
        conn.execute(
            update(PublishJob)
            .where(PublishJob.id == job_id)
            .values(
                status=status,
                stats=stats,
                errors=list(errors[:MAX_RECORDED_ERRORS]),
                finished_at=func.now(),
                heartbeat_at=func.now(),
            )
        )
        return None if parent is None else units.settle(conn, parent)


def split(engine: Engine, job_id: int) -> int:
    """Split a claimed job over every tenant into its units (see `publish.units`): the job is
    then running, claimed by no one, and ends with its last unit. How many units it has."""
    with engine.begin() as conn:
        return units.split(conn, job_id)


def beat_swept(engine: Engine, worker: str, ids: Sequence[int]) -> None:
    """Heartbeat the units a sweep holds (`publish/unit_sweep.py`)."""
    with engine.begin() as conn:
        units.beat_swept(conn, worker, sorted(ids))


def end_swept(
    engine: Engine,
    job_id: int,
    worker: str,
    ended: dict[int, dict[str, Any]],
    returned: Sequence[int],
) -> JobStatus | None:
    """Record a sweep's verdict in one transaction (`job_units.end_swept`): units with nothing
    to do succeeded with their stats, the others queued again for a run of their own."""
    with engine.begin() as conn:
        return units.end_swept(conn, job_id, worker, ended, sorted(returned))


def parent_outcome(engine: Engine, job_id: int) -> JobView | None:
    """A split job once it has ended (None while a unit is queued or running)."""
    view = get_job(engine, job_id)
    return view if view.status in FINISHED else None


def enqueue_drift_check(engine: Engine) -> int | None:
    """Queue a forced republish-all unless one is already queued; its id (None: one was)."""
    with Session(engine) as session, session.begin():
        job_id, new = _enqueue_keyed(
            session, None, True, scope_key(None, True), requested_by="drift-check"
        )
    return job_id if new else None


# --- operator verbs ---------------------------------------------------------------------------


def _locked(session: Session, job_id: int) -> PublishJob:
    job = session.scalar(select(PublishJob).where(PublishJob.id == job_id).with_for_update())
    if job is None:
        raise JobStateError(f"publish job {job_id} does not exist (see `claresia-sync jobs list`)")
    return job


def cancel(engine: Engine, job_id: int) -> JobStatus:
    """Cancel a job: a queued one ends `cancelled` now; a running one is asked to stop at its
    next item (it ends `cancelled`). Returns the job's status after the call."""
    with Session(engine) as session, session.begin():
        job = _locked(session, job_id)
        status = JobStatus(job.status)
        if status in FINISHED:
            raise JobStateError(f"publish job {job_id} already ended {status}: nothing to cancel")
        job.cancel_requested_at = func.now()
        if job.units is not None:  # a split job: its units stop, and the last one ends it
            session.flush()
            return units.cancel(session.connection(), job_id)
        if status == JobStatus.QUEUED:
            job.status = JobStatus.CANCELLED
            job.finished_at = func.now()
            return JobStatus.CANCELLED
        return status


def retry(engine: Engine, job_id: int) -> int:
    """Queue a new job with the scope of a finished partial, failed or cancelled one; its id."""
    with Session(engine) as session, session.begin():
        job = _locked(session, job_id)
        if JobStatus(job.status) not in RETRYABLE:
            raise JobStateError(
                f"publish job {job_id} is {job.status}: only a partial, failed or cancelled job "
                "can be retried"
            )
        new = PublishJob(tenant_id=job.tenant_id, force=job.force, retry_of=job.id)
        session.add(new)
        session.flush()
        return new.id


def prune(engine: Engine, older_than: dt.timedelta) -> int:
    """Delete finished jobs that finished more than `older_than` ago; how many."""
    cutoff = func.now() - older_than
    with engine.begin() as conn:
        result = conn.execute(
            delete(PublishJob).where(
                PublishJob.status.in_([str(s) for s in FINISHED]),
                PublishJob.finished_at < cutoff,
            )
        )
    return int(result.rowcount or 0)


def counts(engine: Engine) -> dict[JobStatus, int]:
    """Jobs by status (every status, zeros included)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(PublishJob.status, func.count()).group_by(PublishJob.status)
        ).all()
    found = {str(status): int(n) for status, n in rows}
    return {s: found.get(s, 0) for s in JobStatus}


@dataclass(frozen=True)
class JobView:
    """One job as `jobs list` / `jobs show` print it."""

    id: int
    tenant: str | None
    force: bool
    status: JobStatus
    requested_by: str
    requested_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    claimed_by: str | None
    cancel_requested: bool
    retry_of: int | None
    stats: dict[str, Any]
    errors: list[Any]
    parent_id: int | None = None
    units: int | None = None

    @property
    def unit_counts(self) -> dict[str, int] | None:
        """A split job's units by status (and `total`, `ended`); None for any other job."""
        if self.units is None:
            return None
        counts = {k: int(v) for k, v in (self.stats.get("units") or {}).items()}
        counts.setdefault("total", self.units)
        counts["ended"] = sum(counts.get(str(s), 0) for s in FINISHED)
        return counts

    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "id": self.id,
            "tenant": self.tenant,
            "force": self.force,
            "status": str(self.status),
            "requested_by": self.requested_by,
            "requested_at": iso(self.requested_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "claimed_by": self.claimed_by,
            "cancel_requested": self.cancel_requested,
            "retry_of": self.retry_of,
            "parent_id": self.parent_id,
            "units": self.units,
            "priority": self.priority,
            "stats": self.stats,
            "errors": self.errors,
        }


def _view(job: PublishJob, tenant: str | None) -> JobView:
    return JobView(
        id=job.id,
        tenant=tenant,
        force=job.force,
        status=JobStatus(job.status),
        requested_by=job.requested_by,
        requested_at=job.requested_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        claimed_by=job.claimed_by,
        cancel_requested=job.cancel_requested_at is not None,
        retry_of=job.retry_of,
        stats=job.stats,
        errors=job.errors,
        parent_id=job.parent_id,
        units=job.units,
        priority=job.priority,
    )


def list_jobs(
    engine: Engine,
    *,
    status: JobStatus | None = None,
    tenant_slug: str | None = None,
    limit: int = 20,
    parent: int | None = None,
) -> list[JobView]:
    """The newest jobs first, optionally of one status or one tenant; the units of a split job
    only with `parent` (its `stats.units` counts them)."""
    with Session(engine) as session:
        query = (
            select(PublishJob, Tenant.slug)
            .outerjoin(Tenant, Tenant.id == PublishJob.tenant_id)
            .order_by(PublishJob.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(PublishJob.status == status)
        query = query.where(
            PublishJob.parent_id.is_(None) if parent is None else PublishJob.parent_id == parent
        )
        if tenant_slug is not None:
            query = query.where(PublishJob.tenant_id == _tenant_id(session, tenant_slug))
        return [_view(job, slug) for job, slug in session.execute(query).all()]


def get_job(engine: Engine, job_id: int) -> JobView:
    with Session(engine) as session:
        row = session.execute(
            select(PublishJob, Tenant.slug)
            .outerjoin(Tenant, Tenant.id == PublishJob.tenant_id)
            .where(PublishJob.id == job_id)
        ).one_or_none()
        if row is None:
            raise JobStateError(
                f"publish job {job_id} does not exist (see `claresia-sync jobs list`)"
            )
        job, slug = row
        return _view(job, slug)
