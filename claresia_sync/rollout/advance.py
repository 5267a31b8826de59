"""The daemon's `rollout` step: one look at the running rollout, in one transaction.

- A wave `publishing`: when every publish job of its tenants has finished it is live and its
  soak starts (`soaking`); a job that ended partial, failed or cancelled halts the rollout.
- Whether publishing or soaking, its guardrails are read (rollout/guardrails.py) and kept on the
  wave; one that trips halts the rollout with the reason and the readings.
- A wave soaking whose soak time has passed and whose guardrails pass (enough invocations,
  nothing tripped) passes, and the next wave moves (rollout/state.py), or the rollout completes.

The rollout row is locked (`FOR UPDATE SKIP LOCKED`): with several replicas, one advances it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from claresia_sync.db.models import JobStatus, PublishJob, Rollout, RolloutTenant
from claresia_sync.rollout import guardrails, state
from claresia_sync.rollout.plan import Guardrails


@dataclass(frozen=True)
class Step:
    """What one step did to a rollout, for the daemon's log."""

    rollout_id: int
    release: int
    event: str  # started-soak | passed | completed | halted | waiting
    message: str


def advance(engine: Engine) -> Step | None:
    """Advance the running rollout by what its jobs, soak and guardrails allow; None: none runs
    (or another replica holds it)."""
    with Session(engine) as session, session.begin():
        rollout = session.scalar(
            select(Rollout)
            .where(Rollout.status == "running")
            .order_by(Rollout.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if rollout is None:
            return None
        return _advance(session, rollout)


def _advance(session: Session, rollout: Rollout) -> Step:
    wave = state.wave_of(session, rollout, rollout.wave)
    label = f"wave {wave.number} ({wave.name})"
    members = [m for m in state.members(session, rollout.id) if m.wave == wave.number]
    now = state.now(session)

    def step(event: str, message: str) -> Step:
        return Step(rollout.id, rollout.release, event, f"rollout {rollout.id}: {message}")

    event = "waiting"
    if wave.status == "publishing":
        done, failed = _jobs(session, members)
        if failed:
            reason = f"{label}: " + "; ".join(failed)
            state.halt(session, rollout, reason)
            return step("halted", f"halted: {reason}")
        if done is not None:
            wave.status, wave.live_at = "soaking", done
            event = "started-soak"
    assert wave.started_at is not None
    soak_over = wave.live_at is not None and now >= wave.live_at + dt.timedelta(seconds=wave.soak_s)
    if not _due(wave.readings, wave.started_at, now, wave.status == "soaking" and soak_over):
        verdict = (wave.readings or {}).get("verdict", "waiting")
        return step(event, f"{label} {wave.status}: {verdict} (guardrails not due for a reading)")
    readings = guardrails.read(
        session,
        rollout.release,
        {m.tenant_slug: m.previous_release for m in members},
        wave.started_at,
        now,
        Guardrails.model_validate(wave.guardrails),
    )
    wave.readings = readings.as_json()
    if readings.tripped:
        reason = f"{label}: " + "; ".join(readings.tripped)
        state.halt(session, rollout, reason, readings.as_json())
        return step("halted", f"halted: {reason}")
    if wave.status == "soaking" and wave.live_at is not None:
        soaked = now >= wave.live_at + dt.timedelta(seconds=wave.soak_s)
        if soaked and readings.enough:
            wave.status, wave.passed_at, wave.passed_by = "passed", now, "guardrails"
            last = max(w.number for w in state.waves(session, rollout.id))
            if wave.number == last:
                state.complete(session, rollout)
            else:
                state.move_wave(session, rollout, wave.number + 1)
            if rollout.status == "completed":
                return step("completed", f"{label} passed; {state.completed(session, rollout)}")
            return step("passed", f"{label} passed; wave {rollout.wave} moves")
    if event == "started-soak":
        return step(event, f"{label} is live; soaking for {wave.soak_s:g}s")
    return step(event, f"{label} {wave.status}: {readings.verdict}")


# A reading counts the changed skills' events over twice the window since the wave started, so
# its cost grows with the soak (bench/guardrails_read.py: 0.15 s of the database's CPU at 1 h,
# 4.5 s at 24 h, for 20,000 invocations an hour). The guardrails are read again once the window
# has grown by a 48th since the last reading (every step while a wave is young), and always
# before a wave passes: an hour then costs about 48 readings of its window, whatever the soak.
READINGS_PER_WINDOW = 48


def _due(
    last: dict[str, Any] | None, started: dt.datetime, now: dt.datetime, soak_over: bool
) -> bool:
    """Whether the wave's guardrails are read at this step (`last`: the latest readings)."""
    if not last or "until" not in last:
        return True
    if soak_over and last.get("verdict") == "pass":
        return True  # it passes on a fresh reading only
    since_last = now - dt.datetime.fromisoformat(last["until"])
    return since_last >= (now - started) / READINGS_PER_WINDOW


def _jobs(session: Session, members: list[RolloutTenant]) -> tuple[dt.datetime | None, list[str]]:
    """(when the last of the wave's jobs finished, None while one has not), and each job that
    did not succeed."""
    ids = [m.job_id for m in members if m.job_id is not None]
    rows = {j.id: j for j in session.scalars(select(PublishJob).where(PublishJob.id.in_(ids)))}
    failed, finished = [], []
    for m in members:
        job = rows.get(m.job_id) if m.job_id is not None else None
        if job is None:
            continue  # pruned long after it finished
        status = JobStatus(job.status)
        if status in (JobStatus.QUEUED, JobStatus.RUNNING):
            return None, []
        if status != JobStatus.SUCCEEDED:
            failed.append(
                f"the publish job {job.id} of {m.tenant_slug} ended {status} "
                f"(`claresia-sync jobs show {job.id}`)"
            )
        if job.finished_at is not None:
            finished.append(job.finished_at)
    return (max(finished) if finished else state.now(session)), failed
