"""A rollout as `rollout status`, the operator API and the console show it: its waves, their
tenants and jobs, the latest guardrail readings, and the next step in words."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from claresia_sync.db.models import PublishJob, Rollout, RolloutTenant, RolloutWave
from claresia_sync.rollout import state


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def list_rollouts(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The newest rollouts first, in short."""
    return [
        {
            "id": r.id,
            "release": r.release,
            "status": r.status,
            "wave": r.wave,
            "created_at": _iso(r.created_at),
            "created_by": r.created_by,
            "halt_reason": r.halt_reason,
        }
        for r in session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(limit))
    ]


def describe(session: Session, rollout_id: int | None = None) -> dict[str, Any]:
    """Rollout `rollout_id` (None: the newest) in full."""
    rollout = state.require_rollout(session, rollout_id)
    waves = state.waves(session, rollout.id)
    members = state.members(session, rollout.id)
    job_ids = [j for m in members for j in (m.job_id, m.rollback_job_id) if j is not None]
    statuses = dict(
        session.execute(
            select(PublishJob.id, PublishJob.status).where(PublishJob.id.in_(job_ids))
        ).all()
    )
    return {
        "id": rollout.id,
        "release": rollout.release,
        "status": rollout.status,
        "wave": rollout.wave,
        "plan_source": rollout.plan_source,
        "created_at": _iso(rollout.created_at),
        "created_by": rollout.created_by,
        "halted_at": _iso(rollout.halted_at),
        "halt_reason": rollout.halt_reason,
        "halt_readings": rollout.halt_readings,
        "finished_at": _iso(rollout.finished_at),
        "rolled_back_by": rollout.rolled_back_by,
        "next_step": next_step(
            rollout, waves, members, statuses, state.completed(session, rollout)
        ),
        "waves": [
            {
                "number": w.number,
                "name": w.name,
                "status": w.status,
                "soak_s": w.soak_s,
                "guardrails": w.guardrails,
                "started_at": _iso(w.started_at),
                "live_at": _iso(w.live_at),
                "passed_at": _iso(w.passed_at),
                "passed_by": w.passed_by,
                "readings": w.readings,
                "tenants": [_member(m, statuses) for m in members if m.wave == w.number],
            }
            for w in waves
        ],
    }


def _member(m: RolloutTenant, statuses: dict[int, str]) -> dict[str, Any]:
    return {
        "tenant": m.tenant_slug,
        "previous_release": m.previous_release,
        "moved_at": _iso(m.moved_at),
        "job_id": m.job_id,
        "job_status": statuses.get(m.job_id) if m.job_id is not None else None,
        "rolled_back_at": _iso(m.rolled_back_at),
        "rollback_job_id": m.rollback_job_id,
        "rollback_job_status": (
            statuses.get(m.rollback_job_id) if m.rollback_job_id is not None else None
        ),
    }


def next_step(
    rollout: Rollout,
    waves: list[RolloutWave],
    members: list[RolloutTenant],
    statuses: dict[int, str],
    completed: str,
) -> str:
    """What happens next, in one sentence (`completed`: how `state.completed` words it)."""
    if rollout.status == "completed":
        return f"completed: {completed}"
    if rollout.status == "rolled_back":
        back = [m for m in members if m.rollback_job_id is not None]
        waiting = sum(
            1 for m in back if statuses.get(m.rollback_job_id or 0) in ("queued", "running")
        )
        return (
            f"rolled back by {rollout.rolled_back_by}: {len(back)} tenant(s) back on their "
            f"previous release; {waiting} rollback publish job(s) still to finish"
        )
    if rollout.status == "halted":
        return (
            f"halted: {rollout.halt_reason}. `rollout promote` starts the next wave anyway, "
            "`rollout rollback` puts the tenants back"
        )
    wave = next(w for w in waves if w.number == rollout.wave)
    label = f"wave {wave.number} ({wave.name})"
    mine = [m for m in members if m.wave == wave.number]
    if wave.status == "publishing":
        done = sum(
            1
            for m in mine
            if m.job_id is not None and statuses.get(m.job_id) not in ("queued", "running")
        )
        return f"{label}: publishing, {done} of {len(mine)} tenant job(s) finished"
    readings = wave.readings or {}
    verdict = readings.get("verdict", "waiting")
    assert wave.live_at is not None
    until = wave.live_at + dt.timedelta(seconds=wave.soak_s)
    later = "the rollout completes" if wave.number == len(waves) else "the next wave starts"
    if verdict == "waiting":
        total = (readings.get("skills") or [{}])[-1].get("new_invocations", 0)
        need = wave.guardrails.get("min_invocations", 0)
        return (
            f"{label}: soaking until {until.isoformat(timespec='seconds')}; waiting for "
            f"{need} new-content invocations ({total} so far) before {later}"
        )
    return f"{label}: soaking; {later} at {until.isoformat(timespec='seconds')} if guardrails pass"
