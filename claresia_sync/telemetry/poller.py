"""The audit-log poller: one organisation connection at a time, page after page.

For each page of `GET audit_logs?event_types=skill.invoked,skill.failed&after_id=<checkpoint>`:
every event goes through `fn_telemetry_event`, and the page's rows (`insert_events`, in bulk),
its quarantine rows and the new checkpoint are written in ONE transaction. A crash anywhere
therefore loses nothing (the checkpoint never passes rows that are not committed) and counts
nothing twice (a redelivered or re-fetched event hits the unique event id).

The checkpoint row is locked (FOR UPDATE) in that transaction and must still hold the `after_id`
the page was fetched with; if another poller moved it meanwhile, the page is dropped and the
loop resumes from the stored value, so two pollers of one organisation cannot move it backwards.

While a page is written (in the poll's writer thread, so the event loop stays free for the
daemon's other work), the next one is already being fetched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from claresia_sync.api.client import MAX_PAGE, SKILL_EVENT_TYPES, OrgClient
from claresia_sync.api.connect import TenantConnection, open_client
from claresia_sync.api.errors import APIError
from claresia_sync.api.models import AuditEvent, Page
from claresia_sync.db.engine import is_unavailable
from claresia_sync.db.models import (
    AuditCheckpoint,
    TelemetryQuarantine,
)
from claresia_sync.errors import UserError, one_line
from claresia_sync.telemetry.load import insert_events
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Quarantined,
    Skipped,
    TelemetryRow,
    fn_telemetry_event,
)
from claresia_sync.telemetry.settings import TelemetrySettings
from claresia_sync.tenancy.lookup import get_connection, org_connections

log = logging.getLogger(__name__)


@dataclass
class PollResult:
    """What one poll of one organisation did (the CLI prints it; the daemon logs it)."""

    org_id: str
    tenant_slug: str = ""
    pages: int = 0
    received: int = 0
    """Events served, redeliveries included."""
    inserted: int = 0
    duplicates: int = 0
    """Events already stored (at-least-once delivery), absorbed by the unique event id."""
    quarantined: int = 0
    skipped_other_type: int = 0
    skipped_outside_namespace: int = 0
    checkpoint: str | None = None
    error: str | None = None


@dataclass
class _Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    other_type: int = 0
    outside: int = 0


def normalise_page(events: Sequence[AuditEvent], ctx: AttributionContext) -> _Batch:
    batch = _Batch()
    seen: set[str] = set()
    for event in events:
        verdict = fn_telemetry_event(event, ctx)
        if isinstance(verdict, TelemetryRow):
            if verdict.event_id not in seen:  # a page may repeat an event; keep one
                seen.add(verdict.event_id)
                batch.rows.append(verdict.values)
        elif isinstance(verdict, Quarantined):
            batch.quarantine.append(
                {
                    "org_id": ctx.org_id,
                    "event_id": verdict.event_id,
                    "reason": verdict.reason,
                    "raw": verdict.raw,
                }
            )
        elif isinstance(verdict, Skipped):
            if verdict.reason == "other_type":
                batch.other_type += 1
            else:
                batch.outside += 1
    return batch


_LOCK_CHECKPOINT = text("SELECT after_id FROM audit_checkpoint WHERE org_id = :org FOR UPDATE")


def read_checkpoint(conn: Connection | Session, org_id: str) -> str | None:
    return conn.scalar(select(AuditCheckpoint.after_id).where(AuditCheckpoint.org_id == org_id))


def _ensure_checkpoint(conn: Connection, org_id: str) -> None:
    conn.execute(
        pg_insert(AuditCheckpoint)
        .values(org_id=org_id)
        .on_conflict_do_nothing(index_elements=["org_id"])
    )


def write_page(
    engine: Engine,
    org_id: str,
    expected_after: str | None,
    new_after: str,
    batch: _Batch,
) -> int | None:
    """Rows, quarantine and checkpoint in one transaction: how many rows were new, or None if
    the checkpoint no longer holds `expected_after` (nothing written)."""
    with engine.begin() as conn:
        _ensure_checkpoint(conn, org_id)
        current = conn.execute(_LOCK_CHECKPOINT, {"org": org_id}).scalar_one()
        if current != expected_after:
            return None
        inserted = insert_events(conn, batch.rows)
        if batch.quarantine:
            conn.execute(
                pg_insert(TelemetryQuarantine)
                .values(batch.quarantine)
                .on_conflict_do_nothing(index_elements=["org_id", "event_id"])
            )
        conn.execute(
            text(
                "UPDATE audit_checkpoint SET after_id = :after, updated_at = now() "
                "WHERE org_id = :org"
            ),
            {"after": new_after, "org": org_id},
        )
    return inserted


def _record_poll(engine: Engine, result: PollResult) -> None:
    with engine.begin() as conn:
        _ensure_checkpoint(conn, result.org_id)
        conn.execute(
            text(
                "UPDATE audit_checkpoint SET last_polled_at = now(), last_poll_status = :status,"
                " last_poll_error = :error, last_poll_events = :events WHERE org_id = :org"
            ),
            {
                "status": "error" if result.error else "ok",
                "error": result.error,
                "events": result.inserted,
                "org": result.org_id,
            },
        )


async def poll_org(
    engine: Engine,
    client: OrgClient,
    org_id: str,
    *,
    settings: TelemetrySettings | None = None,
    page_size: int = MAX_PAGE,
    max_pages: int | None = None,
    tenant_slug: str = "",
) -> PollResult:
    """Ingest every audit event of `org_id` after its checkpoint (see the module docstring).

    API errors (after the client's retries) end the poll with `result.error` set; what was
    committed before stays, and the next poll resumes from the checkpoint. Any other failure
    is recorded as the poll's error too (unless the database is gone), then raised.
    """
    result = PollResult(org_id=org_id, tenant_slug=tenant_slug)
    with Session(engine) as session:
        ctx = AttributionContext.load(session, org_id, settings)
        after = read_checkpoint(session, org_id)

    def fetch(after_id: str | None) -> asyncio.Task[Page[AuditEvent]]:
        return asyncio.create_task(
            client.audit_events(org_id, after_id, page_size, SKILL_EVENT_TYPES)
        )

    # One writer thread per poll: pages are written one at a time anyway, and a single thread
    # keeps one malloc arena (the default pool's changing threads made memory grow with the
    # backlog: bench/RESULTS.md).
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"telemetry-writer-{org_id}")
    loop = asyncio.get_running_loop()
    pending = fetch(after)
    try:
        while True:
            page = await pending
            if not page.data or page.last_id is None:
                break
            result.pages += 1
            result.received += len(page.data)
            new_after = max(page.last_id, after or "")
            more = page.has_more and (max_pages is None or result.pages < max_pages)
            if more:
                pending = fetch(new_after)  # fetched while this page is handled
            batch = normalise_page(page.data, ctx)
            inserted = await loop.run_in_executor(
                writer, write_page, engine, org_id, after, new_after, batch
            )
            if inserted is None:
                if more:
                    pending.cancel()
                with engine.connect() as conn:
                    after = read_checkpoint(conn, org_id)
                pending = fetch(after)
                continue
            result.inserted += inserted
            result.duplicates += len(batch.rows) - inserted
            result.quarantined += len(batch.quarantine)
            result.skipped_other_type += batch.other_type
            result.skipped_outside_namespace += batch.outside
            after = new_after
            if not more:
                break
    except APIError as exc:
        result.error = one_line(exc)
        log.warning("audit poll of %s stopped: %s", org_id, result.error)
    except Exception as exc:
        if not is_unavailable(exc):  # without the database nothing can be recorded
            result.error = one_line(f"{type(exc).__name__}: {exc}")
            _record_poll(engine, result)
        raise
    finally:
        writer.shutdown(wait=True)
        if not pending.done():
            pending.cancel()
        elif not pending.cancelled():
            pending.exception()  # a prefetch that failed after the loop ended: retrieved, ignored
    result.checkpoint = after
    _record_poll(engine, result)
    return result


def poll_targets(session: Session, tenant: str | None = None) -> list[TenantConnection]:
    """The organisation connections to poll: all, or the one of `tenant` (a sub-tenant polls
    its parent's organisation, which holds its workspaces' events)."""
    if tenant is None:
        return list(org_connections(session).values())
    return [get_connection(session, tenant)]


async def poll_once(
    engine: Engine,
    *,
    tenant: str | None = None,
    org_id: str | None = None,
    settings: TelemetrySettings | None = None,
    page_size: int = MAX_PAGE,
    client_options: dict[str, Any] | None = None,
) -> list[PollResult]:
    """One poll of every organisation connection (or only `tenant`'s, or only `org_id`'s: the
    daemon polls each organisation on its own schedule), one after another.

    A connection whose key cannot be resolved or whose API fails gets a result with `error`
    (`poll_connection`); the others are still polled. `settings`: the entry point's telemetry
    settings (their defaults when none are given); `client_options`: `open_client`'s.
    """
    settings = settings or TelemetrySettings()
    with Session(engine) as session:
        targets = poll_targets(session, tenant)
    if org_id is not None:
        targets = [t for t in targets if t.org_id == org_id]
        if not targets:
            raise UserError(f"no tenant has a connection to organisation {org_id!r}")
    return [
        await poll_connection(
            engine, target, settings=settings, page_size=page_size, client_options=client_options
        )
        for target in targets
    ]


async def poll_connection(
    engine: Engine,
    connection: TenantConnection,
    *,
    settings: TelemetrySettings | None = None,
    page_size: int = MAX_PAGE,
    client_options: dict[str, Any] | None = None,
) -> PollResult:
    """Poll one organisation connection (`poll_org` through a client opened for it).

    A failure before any HTTP call (the key reference cannot be resolved: variable unset, file
    missing; a bad client setting) is the poll's error, recorded in `audit_checkpoint` like an
    API failure, so `status` never says `ok` for an organisation that cannot be polled."""
    try:
        client = open_client(connection, **(client_options or {}))
    except UserError as exc:
        failed = PollResult(connection.org_id, connection.root_slug, error=one_line(exc))
        log.warning("audit poll of %s failed: %s", connection.org_id, failed.error)
        _record_poll(engine, failed)
        return failed
    async with client:
        return await poll_org(
            engine,
            client,
            connection.org_id,
            settings=settings,
            page_size=page_size,
            tenant_slug=connection.root_slug,
        )
