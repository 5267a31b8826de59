"""Replay quarantined events: an event quarantined because its workspace was not mapped (or its
skill was unknown) becomes a telemetry row once the tenant file maps it.

Each quarantine row is normalised again with today's attribution context. In one transaction
per batch: rows that now normalise are inserted (a duplicate event id is absorbed, as in the
poller) and their quarantine entries deleted; entries still bad keep their raw event and get the
current reason. Batches lock their entries (SKIP LOCKED), so two replays, or a replay and the
daemon, never handle one entry twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.telemetry.load import insert_events
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Quarantined,
    TelemetryRow,
    fn_telemetry_event,
)
from claresia_sync.telemetry.poller import poll_targets
from claresia_sync.telemetry.settings import TelemetrySettings

BATCH = 1000

_ORGS = text(
    "SELECT DISTINCT org_id FROM telemetry_quarantine "
    "WHERE org_id IS NOT NULL AND (CAST(:org AS text) IS NULL OR org_id = :org) ORDER BY org_id"
)
_TAKE = text(
    "SELECT id, raw, reason FROM telemetry_quarantine WHERE org_id = :org AND id > :after "
    "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
)
_DELETE = text("DELETE FROM telemetry_quarantine WHERE id = ANY(:ids)")
_REASON = text(
    "UPDATE telemetry_quarantine SET reason = :reason WHERE id = :id AND reason <> :reason"
)


@dataclass
class ReplayResult:
    org_id: str
    examined: int = 0
    attributed: int = 0
    """Entries that became telemetry rows (or were already stored) and left quarantine."""
    inserted: int = 0
    still: Counter[str] = field(default_factory=Counter)
    """Entries left in quarantine, by reason."""
    dry_run: bool = False


def replay_quarantine(
    engine: Engine,
    *,
    org_id: str | None = None,
    settings: TelemetrySettings | None = None,
    dry_run: bool = False,
) -> list[ReplayResult]:
    """Normalise every quarantined event again (of one organisation, or all), with the entry
    point's telemetry `settings` (their defaults when none are given)."""
    settings = settings or TelemetrySettings()
    with engine.connect() as conn:
        orgs = list(conn.execute(_ORGS, {"org": org_id}).scalars())
    return [_replay_org(engine, org, settings, dry_run) for org in orgs]


def replay_for_tenant(
    engine: Engine,
    tenant: str | None = None,
    *,
    settings: TelemetrySettings | None = None,
    dry_run: bool = False,
) -> list[ReplayResult]:
    """`replay_quarantine` of one tenant's organisation (a sub-tenant: its parent's), or of all
    (`telemetry replay-quarantine` and the Command Center)."""
    orgs: list[str | None] = [None]
    if tenant is not None:
        with Session(engine) as session:
            orgs = [t.org_id for t in poll_targets(session, tenant)]
    return [
        r
        for org in orgs
        for r in replay_quarantine(engine, org_id=org, settings=settings, dry_run=dry_run)
    ]


def _replay_org(
    engine: Engine, org_id: str, settings: TelemetrySettings, dry_run: bool
) -> ReplayResult:
    result = ReplayResult(org_id, dry_run=dry_run)
    with Session(engine) as session:
        ctx = AttributionContext.load(session, org_id, settings)
    after = 0
    while True:
        with engine.begin() as conn:
            taken = conn.execute(_TAKE, {"org": org_id, "after": after, "n": BATCH}).all()
            if not taken:
                return result
            after = taken[-1].id
            rows, done, reasons = [], [], []
            for entry in taken:
                result.examined += 1
                verdict = fn_telemetry_event(entry.raw, ctx)
                if isinstance(verdict, TelemetryRow):
                    rows.append(verdict.values)
                    done.append(entry.id)
                elif isinstance(verdict, Quarantined):
                    result.still[verdict.reason] += 1
                    if verdict.reason != entry.reason:
                        reasons.append({"reason": verdict.reason, "id": entry.id})
                else:  # of another type now: nothing to attribute, nothing lost by keeping it
                    result.still[f"skipped: {verdict.reason}"] += 1
            result.attributed += len(done)
            if dry_run:
                continue
            result.inserted += insert_events(conn, rows)
            if done:
                conn.execute(_DELETE, {"ids": done})
            if reasons:
                conn.execute(_REASON, reasons)  # one executemany for the batch
