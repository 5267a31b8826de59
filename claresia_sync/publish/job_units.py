"""Split jobs: a publish job over every tenant runs as one unit per root tenant.

A republish-all (or a drift check) as one run is one replica's, under one bound of calls shared
by every organisation: a second replica does not make it faster, and a replica's death costs the
whole run. Split, each root tenant with a connection (an organisation, with all its targets) is
a unit: an ordinary queued job of that tenant (`parent_id` = the split job, its priority: a
kill switch's units are ahead of everything too), which any replica
claims (`jobs.claim`), runs alone on its tenant (`job_run.run_job`) and requeues when its
replica dies (`jobs.requeue_stale`), as it would a job of that tenant.

The split job itself (`units` set) is running and claimed by no one (no heartbeat, never
requeued); `stats.units` counts its units by status as they end, and the last unit to end ends
it in the same transaction, its status and counts made of the units': no replica watches it.

    split:   (claimed, over every tenant) --> running, units = N; N units queued
    settle:  a unit ended --> stats.units recounted; the last one --> succeeded | partial |
             failed | cancelled, stats summed over the units, their errors
    cancel:  queued units --> cancelled; running ones asked to stop; the last one ends it

The SQL here is `publish/jobs.py`'s (the queue's), kept apart because it only concerns split
jobs; `publish/jobs.py` calls it inside its own transactions.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import Connection, text

from claresia_sync.db.models import JobStatus

MAX_RECORDED_ERRORS = 1000  # errors kept in a job's row (`jobs.MAX_RECORDED_ERRORS`)

# Numbers summed over the units into the split job's stats (the keys of a job's stats).
SUMMED = (
    "created",
    "updated",
    "acl",
    "deleted",
    "unchanged",
    "failed",
    "api_calls",
    "api_writes",
    "retried",
    "still_failing",
)

# Every root tenant with a connection or a target: the organisations a publish of every tenant
# reaches (`desired.desired_state(None)`), one unit each.
_SPLIT = text("""
INSERT INTO publish_job (tenant_id, force, parent_id, requested_by, requested_at, priority)
SELECT t.id, p.force, p.id, p.requested_by, p.requested_at, p.priority
  FROM publish_job p, tenant t
 WHERE p.id = :job AND t.parent_id IS NULL
   AND (EXISTS (SELECT 1 FROM org_connection c WHERE c.tenant_id = t.id)
        OR EXISTS (SELECT 1 FROM tenant_target g WHERE g.tenant_id = t.id))
 ORDER BY t.slug
ON CONFLICT DO NOTHING
""")
_MARK_SPLIT = text("""
UPDATE publish_job
   SET units = (SELECT count(*) FROM publish_job WHERE parent_id = :job),
       status = :running, claimed_by = NULL, heartbeat_at = NULL,
       started_at = coalesce(started_at, now())
 WHERE id = :job AND units IS NULL
RETURNING units
""")
_LOCK = text("SELECT units, cancel_requested_at FROM publish_job WHERE id = :job FOR UPDATE")
_TALLY = text(
    "SELECT status, count(*) AS n FROM publish_job WHERE parent_id = :job GROUP BY status"
)
_UNITS = text("""
SELECT j.status, j.stats, j.errors FROM publish_job j JOIN tenant t ON t.id = j.tenant_id
 WHERE j.parent_id = :job ORDER BY t.slug
""")
_SET_STATS = text("UPDATE publish_job SET stats = CAST(:stats AS jsonb) WHERE id = :job")
_END = text("""
UPDATE publish_job
   SET status = :status, stats = CAST(:stats AS jsonb), errors = CAST(:errors AS jsonb),
       finished_at = now()
 WHERE id = :job AND status = :running
""")
_CANCEL_QUEUED = text("""
UPDATE publish_job SET status = :cancelled, cancel_requested_at = now(), finished_at = now()
 WHERE parent_id = :job AND status = :queued
""")
_ASK_RUNNING = text("""
UPDATE publish_job SET cancel_requested_at = now()
 WHERE parent_id = :job AND status = :running AND cancel_requested_at IS NULL
""")

# A sweep's claimed units (`publish/unit_sweep.py`): heartbeated together; those it found with
# nothing to do end with their stats (cancelled if a cancel reached them meanwhile), the others
# go back to the queue for a normal run (or end cancelled). Only while still the sweep's own.
_BEAT_SWEPT = text("""
UPDATE publish_job SET heartbeat_at = now()
 WHERE id = ANY(CAST(:ids AS bigint[])) AND status = :running AND claimed_by = :worker
""")
_END_SWEPT = text("""
UPDATE publish_job j
   SET status = CASE WHEN j.cancel_requested_at IS NULL THEN :succeeded ELSE :cancelled END,
       stats = e.stats, errors = CAST('[]' AS jsonb), finished_at = now(), heartbeat_at = now()
  FROM jsonb_to_recordset(CAST(:ended AS jsonb)) AS e(id bigint, stats jsonb)
 WHERE j.id = e.id AND j.status = :running AND j.claimed_by = :worker
""")
_RETURN_SWEPT = text("""
UPDATE publish_job
   SET status = CASE WHEN cancel_requested_at IS NULL THEN :queued ELSE :cancelled END,
       finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
       claimed_by = NULL, started_at = NULL, heartbeat_at = NULL
 WHERE id = ANY(CAST(:ids AS bigint[])) AND status = :running AND claimed_by = :worker
""")
# Units queued again wake the replicas' workers as a new job does (the channel of the insert
# trigger, migrations 0001): they slept through the sweep, which held the units.
_WAKE = text("SELECT pg_notify('claresia_publish_job', CAST(:job AS text))")
_SWEPT_STATUS = {
    "running": str(JobStatus.RUNNING),
    "queued": str(JobStatus.QUEUED),
    "succeeded": str(JobStatus.SUCCEEDED),
    "cancelled": str(JobStatus.CANCELLED),
}


def _json(value: Any) -> str:
    return json.dumps(value)


def split(conn: Connection, job_id: int) -> int:
    """Queue the units of claimed job `job_id` (over every tenant) and make it their parent;
    how many units it has. Again on a split job: nothing new (its count)."""
    conn.execute(_SPLIT, {"job": job_id})
    units = conn.execute(
        _MARK_SPLIT, {"job": job_id, "running": str(JobStatus.RUNNING)}
    ).scalar_one_or_none()
    if units is None:  # split before (a replica died between its split and its release)
        units = conn.execute(_LOCK, {"job": job_id}).one().units
    settle(conn, job_id)  # no unit at all: it ends now
    return int(units or 0)


def lock(conn: Connection, job_id: int) -> None:
    """Hold the split job's row for the transaction (a unit's end, a cancel: one at a time)."""
    conn.execute(_LOCK, {"job": job_id})


def tally(conn: Connection, job_id: int) -> dict[str, int]:
    """The units of a split job by status, and `total`."""
    counts = {str(r.status): int(r.n) for r in conn.execute(_TALLY, {"job": job_id})}
    return {**{str(s): counts.get(str(s), 0) for s in JobStatus}, "total": sum(counts.values())}


def settle(conn: Connection, job_id: int) -> JobStatus | None:
    """After a unit's end (the split job's row held): recount; the last unit ends the job.
    The status it ended with, if this call ended it."""
    held = conn.execute(_LOCK, {"job": job_id}).one()
    counts = tally(conn, job_id)
    if counts[JobStatus.QUEUED] or counts[JobStatus.RUNNING]:
        conn.execute(_SET_STATS, {"job": job_id, "stats": _json({"units": counts})})
        return None
    rows = conn.execute(_UNITS, {"job": job_id}).all()
    status = _status([JobStatus(r.status) for r in rows], held.cancel_requested_at is not None)
    stats, errors = summed(rows), [e for r in rows for e in r.errors][:MAX_RECORDED_ERRORS]
    stats["units"] = counts
    ended = conn.execute(
        _END,
        {
            "job": job_id,
            "status": str(status),
            "stats": _json(stats),
            "errors": _json(errors),
            "running": str(JobStatus.RUNNING),
        },
    )
    return status if ended.rowcount else None


def summed(rows: Any) -> dict[str, Any]:
    """A split job's stats: its units' counts summed, the longest publish lag, the most rounds."""
    total: Counter[str] = Counter()
    lags: list[float] = []
    rounds = 0
    claude_code: Counter[str] = Counter()
    check_remote = False
    for row in rows:
        stats = row.stats or {}
        for key in SUMMED:
            total[key] += int(stats.get(key) or 0)
        if stats.get("publish_lag_s") is not None:
            lags.append(float(stats["publish_lag_s"]))
        rounds = max(rounds, int(stats.get("rounds") or 0))
        check_remote = check_remote or bool(stats.get("check_remote"))
        claude_code.update(stats.get("claude_code_settings") or {})
    out: dict[str, Any] = {key: total[key] for key in SUMMED}
    out["check_remote"] = check_remote
    out["rounds"] = rounds
    out["publish_lag_s"] = max(lags) if lags else None
    if claude_code:
        out["claude_code_settings"] = dict(claude_code)
    return out


def _status(statuses: list[JobStatus], cancelled: bool) -> JobStatus:
    if cancelled:
        return JobStatus.CANCELLED
    if all(s == JobStatus.SUCCEEDED for s in statuses):
        return JobStatus.SUCCEEDED
    if any(s in (JobStatus.SUCCEEDED, JobStatus.PARTIAL) for s in statuses):
        return JobStatus.PARTIAL
    return JobStatus.FAILED


def cancel(conn: Connection, job_id: int) -> JobStatus:
    """Cancel a split job (its row held, `cancel_requested_at` set): its queued units end
    cancelled now, its running ones stop at their next item; it ends with the last of them.
    Its status after the call."""
    statuses = {"cancelled": str(JobStatus.CANCELLED), "queued": str(JobStatus.QUEUED)}
    conn.execute(_CANCEL_QUEUED, {"job": job_id, **statuses})
    conn.execute(_ASK_RUNNING, {"job": job_id, "running": str(JobStatus.RUNNING)})
    settle(conn, job_id)
    status = conn.execute(text("SELECT status FROM publish_job WHERE id = :job"), {"job": job_id})
    return JobStatus(status.scalar_one())


def beat_swept(conn: Connection, worker: str, ids: list[int]) -> None:
    """Heartbeat the units a sweep holds (`worker`'s), all in one statement."""
    conn.execute(_BEAT_SWEPT, {**_SWEPT_STATUS, "ids": ids, "worker": worker})


def end_swept(
    conn: Connection,
    job_id: int,
    worker: str,
    ended: dict[int, dict[str, Any]],
    returned: list[int],
) -> JobStatus | None:
    """A sweep's verdict on the units of split job `job_id` it holds: `ended` (id -> stats)
    succeeded, `returned` queued again; then the split job recounted (the status it ended
    with, if this ended it). The split job's row is locked first, as `finish` does."""
    lock(conn, job_id)
    rows = [{"id": unit, "stats": stats} for unit, stats in ended.items()]
    params = {**_SWEPT_STATUS, "worker": worker}
    if rows:
        conn.execute(_END_SWEPT, {**params, "ended": _json(rows)})
    if returned:
        conn.execute(_RETURN_SWEPT, {**params, "ids": returned})
        conn.execute(_WAKE, {"job": job_id})
    return settle(conn, job_id)
