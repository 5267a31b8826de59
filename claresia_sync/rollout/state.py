"""A rollout's state and every move of it (tables `rollout`, `rollout_wave`, `rollout_tenant`):

    start --> running --(wave passes: next wave; the last passes)--> completed
              running --(guardrail trips, a job fails, `halt`)--> halted --promote--> running
              running | halted | completed --rollback--> rolled_back

Moving a wave is one transaction: its tenants pinned to the release (each one's previous
release kept), a publish job queued for each (dedupe key `rollout:ID:TENANT`), the wave marked
`publishing`. A crash leaves all of it or none of it, so a restarted daemon neither skips a
tenant nor queues its job twice. Rollouts run one at a time (started under a table lock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from claresia_sync.db.models import Rollout, RolloutTenant, RolloutWave, Tenant
from claresia_sync.errors import UserError
from claresia_sync.publish import jobs
from claresia_sync.release_store import current_release, require_release
from claresia_sync.rollout.plan import Plan, resolve_waves

ACTIVE = ("running", "halted")


class RolloutStateError(UserError):
    """A verb that does not apply to the rollout as it stands."""


def effective_releases(session: Session) -> dict[str, tuple[int, int | None]]:
    """Every root tenant: (the release it is on, its pin or None when it follows the current)."""
    current = current_release(session)
    out = {}
    for slug, pin in session.execute(
        select(Tenant.slug, Tenant.release).where(Tenant.parent_id.is_(None))
    ):
        effective = pin if pin is not None else current
        if effective is not None:
            out[slug] = (effective, pin)
    return out


def active_rollout(session: Session) -> Rollout | None:
    return session.scalar(select(Rollout).where(Rollout.status.in_(ACTIVE)))


def require_rollout(session: Session, rollout_id: int | None, *, lock: bool = False) -> Rollout:
    """Rollout `rollout_id`, or (None) the newest one."""
    query = select(Rollout)
    query = (
        query.where(Rollout.id == rollout_id)
        if rollout_id is not None
        else query.order_by(Rollout.id.desc()).limit(1)
    )
    if lock:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise RolloutStateError(
            f"rollout {rollout_id} does not exist (`claresia-sync rollout status`)"
            if rollout_id is not None
            else "no rollout yet: `claresia-sync rollout start N` starts one"
        )
    return found


def start(session: Session, release: int, plan: Plan, *, source: str, by: str) -> Rollout:
    """Start rolling `release` out to the root tenants not on it, by `plan`; its first wave
    moves now (the caller commits)."""
    require_release(session, release)
    session.execute(text("LOCK TABLE rollout IN SHARE ROW EXCLUSIVE MODE"))
    running = active_rollout(session)
    if running is not None:
        raise RolloutStateError(
            f"rollout {running.id} (release {running.release}) is {running.status}: one rollout "
            "at a time; `rollout promote` it to the end, or `rollout rollback` it, first"
        )
    on = effective_releases(session)
    eligible = sorted(s for s, (r, _) in on.items() if r != release)
    if not eligible:
        raise RolloutStateError(f"every tenant is on release {release} already: nothing to do")
    waves = resolve_waves(plan, eligible, set(on), source)
    rollout = Rollout(
        release=release, plan=plan.model_dump(mode="json"), plan_source=source, created_by=by
    )
    session.add(rollout)
    session.flush()
    ids = dict(session.execute(select(Tenant.slug, Tenant.id)).all())
    for wave in waves:
        session.add(
            RolloutWave(
                rollout_id=rollout.id,
                number=wave.number,
                name=wave.name,
                soak_s=wave.soak_s,
                guardrails=wave.guardrails.model_dump(mode="json"),
            )
        )
        for slug in wave.tenants:
            effective, pin = on[slug]
            session.add(
                RolloutTenant(
                    rollout_id=rollout.id,
                    tenant_id=ids[slug],
                    tenant_slug=slug,
                    wave=wave.number,
                    previous_pin=pin,
                    previous_release=effective,
                )
            )
    session.flush()
    move_wave(session, rollout, 1)
    return rollout


def wave_of(session: Session, rollout: Rollout, number: int) -> RolloutWave:
    return session.get_one(RolloutWave, (rollout.id, number))


def move_wave(session: Session, rollout: Rollout, number: int) -> None:
    """Pin wave `number`'s tenants to the release and queue their publish jobs; a wave with no
    tenant passes at once and the next one moves."""
    waves = session.scalar(
        select(func.max(RolloutWave.number)).where(RolloutWave.rollout_id == rollout.id)
    )
    while True:
        rollout.wave = number
        wave = wave_of(session, rollout, number)
        members = list(
            session.scalars(
                select(RolloutTenant).where(
                    RolloutTenant.rollout_id == rollout.id, RolloutTenant.wave == number
                )
            )
        )
        wave.started_at = func.now()
        if members:
            break
        wave.status, wave.live_at, wave.passed_at, wave.passed_by = (
            "passed",
            func.now(),
            func.now(),
            "empty",
        )
        if number == waves:
            complete(session, rollout)
            return
        number += 1
    for member in members:
        tenant = session.get_one(Tenant, member.tenant_id)
        tenant.release = rollout.release
        member.moved_at = func.now()
        member.job_id = jobs.enqueue(
            session,
            member.tenant_slug,
            dedupe_key=f"rollout:{rollout.id}:{member.tenant_id}",
            requested_by=f"rollout {rollout.id}",
        )
    wave.status = "publishing"
    session.flush()


def complete(session: Session, rollout: Rollout) -> None:
    """The last wave passed: its tenants follow the current release again if it is the one
    rolled out (`follow_current`); else they stay pinned to it until it is made current."""
    rollout.status = "completed"
    rollout.finished_at = func.now()
    session.flush()
    follow_current(session, rollout.release)


def completed(session: Session, rollout: Rollout) -> str:
    """A completed rollout's tenants, in words: following the current release, or pinned."""
    n = rollout.release
    if current_release(session) == n:
        return f"release {n} rolled out; its tenants follow the current release ({n})"
    return (
        f"release {n} rolled out; its tenants stay pinned to it until `release current {n}` "
        "(then they follow the current release)"
    )


def follow_current(session: Session, release: int) -> list[str]:
    """If `release` is the current release: the tenants a completed rollout of it moved, and
    still pinned to it, follow the current release again (pinned, the next one made current
    would not reach them); their slugs. One pinned to another release since is left alone.
    When a rollout completes, and when `release current N` names a rolled-out release."""
    if current_release(session) != release:
        return []
    moved = (
        select(RolloutTenant.tenant_id)
        .join(Rollout, Rollout.id == RolloutTenant.rollout_id)
        .where(
            Rollout.release == release,
            Rollout.status == "completed",
            RolloutTenant.moved_at.is_not(None),
        )
    )
    unpinned = session.scalars(
        update(Tenant)
        .where(Tenant.release == release, Tenant.id.in_(moved))
        .values(release=None)
        .returning(Tenant.slug),
        execution_options={"synchronize_session": "fetch"},
    )
    return sorted(unpinned)


def halt(
    session: Session,
    rollout: Rollout,
    reason: str,
    readings: dict[str, Any] | None = None,
) -> None:
    if rollout.status != "running":
        raise RolloutStateError(
            f"rollout {rollout.id} is {rollout.status}: only a running rollout can be halted"
        )
    rollout.status = "halted"
    rollout.halted_at = func.now()
    rollout.halt_reason = reason
    rollout.halt_readings = readings
    session.flush()


def promote(session: Session, rollout: Rollout, by: str) -> int | None:
    """Pass the current wave now and move the next one (a halted rollout runs again); the
    wave moved, or None when the rollout is thereby completed."""
    if rollout.status not in ACTIVE:
        raise RolloutStateError(
            f"rollout {rollout.id} is {rollout.status}: only a running or halted rollout can "
            "be promoted"
        )
    wave = wave_of(session, rollout, rollout.wave)
    wave.status, wave.passed_at, wave.passed_by = "passed", func.now(), by
    if wave.live_at is None:
        wave.live_at = func.now()
    rollout.status = "running"
    rollout.halted_at = rollout.halt_reason = rollout.halt_readings = None
    last = session.scalar(
        select(func.max(RolloutWave.number)).where(RolloutWave.rollout_id == rollout.id)
    )
    if rollout.wave == last:
        complete(session, rollout)
        return None
    move_wave(session, rollout, rollout.wave + 1)
    return None if rollout.status == "completed" else rollout.wave


@dataclass(frozen=True)
class RolledBack:
    tenant: str
    release: int
    job_id: int | None
    """None: skipped, its release was changed by hand since (`note`)."""
    note: str | None = None


def rollback(session: Session, rollout: Rollout, by: str) -> list[RolledBack]:
    """Every tenant the rollout moved back on the release it was on before, and a publish job
    queued for each (every target: where a target cannot go back to an old version, the old
    content is published as a new one). Only the newest rollout can be rolled back."""
    newest = session.scalar(select(func.max(Rollout.id)))
    if rollout.status == "rolled_back":
        raise RolloutStateError(f"rollout {rollout.id} is rolled back already")
    if rollout.id != newest:
        raise RolloutStateError(
            f"rollout {rollout.id} is not the newest (rollout {newest} is): roll back the newest"
        )
    current = current_release(session)
    out = []
    members = session.scalars(
        select(RolloutTenant)
        .where(
            RolloutTenant.rollout_id == rollout.id,
            RolloutTenant.moved_at.is_not(None),
            RolloutTenant.rolled_back_at.is_(None),
        )
        .order_by(RolloutTenant.tenant_slug)
    )
    for member in members:
        tenant = session.get_one(Tenant, member.tenant_id)
        on = tenant.release or current  # following the current one: a completed rollout's
        if on != rollout.release:
            out.append(
                RolledBack(
                    member.tenant_slug,
                    member.previous_release,
                    None,
                    f"left on release {on}: its release changed since the rollout moved it",
                )
            )
            continue
        # Back to following the current release if that gives the release it was on.
        follows = member.previous_pin is None and current == member.previous_release
        tenant.release = None if follows else member.previous_release
        member.rolled_back_at = func.now()
        member.rollback_job_id = jobs.enqueue(
            session,
            member.tenant_slug,
            dedupe_key=f"rollback:{rollout.id}:{member.tenant_id}",
            requested_by=f"rollback of rollout {rollout.id}",
        )
        out.append(RolledBack(member.tenant_slug, member.previous_release, member.rollback_job_id))
    rollout.status = "rolled_back"
    rollout.rolled_back_by = by
    rollout.finished_at = func.now()
    session.flush()
    return out


def members(session: Session, rollout_id: int) -> list[RolloutTenant]:
    return list(
        session.scalars(
            select(RolloutTenant)
            .where(RolloutTenant.rollout_id == rollout_id)
            .order_by(RolloutTenant.wave, RolloutTenant.tenant_slug)
        )
    )


def waves(session: Session, rollout_id: int) -> list[RolloutWave]:
    return list(
        session.scalars(
            select(RolloutWave)
            .where(RolloutWave.rollout_id == rollout_id)
            .order_by(RolloutWave.number)
        )
    )


def now(session: Session) -> dt.datetime:
    return session.execute(select(func.now())).scalar_one()
