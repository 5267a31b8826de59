"""The audit-log poller: one organisation connection at a time, page after page, a telemetry
source of the seam (`telemetry/seam.py`: `AuditSource` supplies the page read, the normaliser and
the row loader; its checkpoint and last poll live in `audit_checkpoint`, `AuditCheckpoints`).

For each page of `GET audit_logs?event_types=skill.invoked,skill.failed&after_id=<checkpoint>`:
every event goes through `fn_telemetry_event`, and the page's rows (`insert_events`, in bulk),
its quarantine rows and the new checkpoint are written in ONE transaction. A crash anywhere
therefore loses nothing (the checkpoint never passes rows that are not committed) and counts
nothing twice (a redelivered or re-fetched event hits the unique event id).

The checkpoint row is locked (FOR UPDATE) in that transaction and must still hold the `after_id`
the page was fetched with; if another poller moved it meanwhile, the page is dropped and the
loop resumes from the stored value, so two pollers of one organisation cannot move it backwards.

While a page is written (in the poll's writer thread, so the event loop stays free for the
daemon's other work), the next one is already being fetched and normalised.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from claresia_sync.api.client import MAX_PAGE, SKILL_EVENT_TYPES, OrgClient
from claresia_sync.api.connect import TenantConnection, open_client
from claresia_sync.api.models import AuditEvent, Page
from claresia_sync.db.models import (
    AuditCheckpoint,
)
from claresia_sync.errors import UserError, one_line
from claresia_sync.telemetry import seam
from claresia_sync.telemetry.load import insert_events
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Quarantined,
    Skipped,
    TelemetryRow,
    Verdict,
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


class AuditCheckpoints(seam.Checkpoints):
    """The poller's checkpoint (`after_id`) and last poll, in `audit_checkpoint`."""

    def __init__(self) -> None:
        super().__init__("audit-log")

    def read(self, engine: Engine, org_id: str) -> str | None:
        with engine.connect() as conn:
            return read_checkpoint(conn, org_id)

    def lock(self, conn: Connection, org_id: str) -> str | None:
        _ensure_checkpoint(conn, org_id)
        after: str | None = conn.execute(_LOCK_CHECKPOINT, {"org": org_id}).scalar_one()
        return after

    def advance(self, conn: Connection, org_id: str, **values: object) -> None:
        conn.execute(_ADVANCE, {"after": values["after_id"], "org": org_id})

    def record(self, engine: Engine, result: seam.SourceRun) -> None:
        with engine.begin() as conn:
            _ensure_checkpoint(conn, result.org_id)
            conn.execute(
                _RECORD,
                {
                    "status": "error" if result.error else "ok",
                    "error": result.error,
                    "events": result.inserted,
                    "org": result.org_id,
                },
            )


_LOCK_CHECKPOINT = text("SELECT after_id FROM audit_checkpoint WHERE org_id = :org FOR UPDATE")
_ADVANCE = text(
    "UPDATE audit_checkpoint SET after_id = :after, updated_at = now() WHERE org_id = :org"
)
_RECORD = text(
    "UPDATE audit_checkpoint SET last_polled_at = now(), last_poll_status = :status,"
    " last_poll_error = :error, last_poll_events = :events WHERE org_id = :org"
)


def read_checkpoint(conn: Connection | Session, org_id: str) -> str | None:
    return conn.scalar(select(AuditCheckpoint.after_id).where(AuditCheckpoint.org_id == org_id))


def _ensure_checkpoint(conn: Connection, org_id: str) -> None:
    conn.execute(
        pg_insert(AuditCheckpoint)
        .values(org_id=org_id)
        .on_conflict_do_nothing(index_elements=["org_id"])
    )


class _Loader:
    """A page's new events (`insert_events`: the event id absorbs a redelivery)."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.inserted = conn, 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.inserted += insert_events(self.conn, rows)

    def finish(self) -> seam.Loaded:
        return seam.Loaded(self.inserted)


_Read = tuple[Page[AuditEvent], list[Verdict]]


class AuditSource:
    """The audit log of one organisation as a telemetry source: a step is one page after the
    checkpoint; the next page is fetched and normalised while one is written (the seam's
    items are the events' verdicts)."""

    name = "audit-log"
    checkpoints = AuditCheckpoints()

    def __init__(
        self, client: OrgClient, ctx: AttributionContext, result: PollResult, page_size: int
    ) -> None:
        self.client, self.ctx, self.result, self.page_size = client, ctx, result, page_size
        self._next: tuple[str | None, asyncio.Task[_Read]] | None = None
        self._seen: tuple[seam.Page | None, set[str]] = (None, set())

    def _fetch(self, after_id: str | None) -> asyncio.Task[_Read]:
        return asyncio.create_task(self._read(after_id))

    async def _read(self, after_id: str | None) -> _Read:
        """A page and its events' verdicts: normalised as soon as it arrives, so that a
        prefetched page is normalised while the one before is written (by the writer thread and
        PostgreSQL, on the other core), not after (bench/RESULTS.md, "Audit-log ingest")."""
        page = await self.client.audit_events(
            self.ctx.org_id, after_id, self.page_size, SKILL_EVENT_TYPES
        )
        # In a thread, not on the event loop: normalising a page takes the loop ~15 ms, and a
        # loop held that long did not hand the page before to the writer until it was done, so
        # PostgreSQL waited for the normaliser and the two ran one after the other.
        return page, await asyncio.to_thread(self._verdicts, page.data)

    def _verdicts(self, events: list[AuditEvent]) -> list[Verdict]:
        return [fn_telemetry_event(event, self.ctx) for event in events]

    async def next_step(self, after: str | None) -> seam.Step | None:
        if self._next is not None and self._next[0] == after:
            pending = self._next[1]
        else:
            self.cancel()
            pending = self._fetch(after)
        self._next = None
        page, verdicts = await pending
        if not page.data or page.last_id is None:
            return None
        self.result.pages += 1
        self.result.received += len(page.data)
        new_after = max(page.last_id, after or "")
        if page.has_more:
            self._next = (new_after, self._fetch(new_after))  # fetched while this is written
        return seam.Step(
            seam.one_page(seam.Page(verdicts)),
            advance={"after_id": new_after},
            final=not page.has_more,
        )

    def normalise(self, verdict: Verdict, page: seam.Page) -> Any:
        """An event's verdict (`fn_telemetry_event`, made as its page arrived) for the seam."""
        if isinstance(verdict, TelemetryRow):
            values = verdict.values
            seen = self._seen
            if seen[0] is not page:  # the page itself is kept: an id() may be reused
                seen = self._seen = (page, set())
            ids = seen[1]
            before = len(ids)
            ids.add(values["event_id"])  # a page may repeat an event; keep one
            return values if len(ids) > before else None
        if isinstance(verdict, Quarantined):
            # As the JSONB column would serialise it (stdlib json: any int, escaped text).
            return seam.Quarantine(verdict.event_id, verdict.reason, json.dumps(verdict.raw))
        if isinstance(verdict, Skipped):
            if verdict.reason == "other_type":
                self.result.skipped_other_type += 1
            else:
                self.result.skipped_outside_namespace += 1
        return None

    def loader(self, conn: Connection) -> _Loader:
        return _Loader(conn)

    def cancel(self) -> None:
        """Drop a prefetch no step will use (a failure of it is retrieved and ignored)."""
        if self._next is not None:
            task = self._next[1]
            self._next = None
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()


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
    """Ingest every audit event of `org_id` after its checkpoint (see the module docstring),
    one `AuditSource` run through the seam.

    API errors (after the client's retries) end the poll with `result.error` set; what was
    committed before stays, and the next poll resumes from the checkpoint. Any other failure
    is recorded as the poll's error too (unless the database is gone), then raised.
    """
    result = PollResult(org_id=org_id, tenant_slug=tenant_slug)
    with Session(engine) as session:
        ctx = AttributionContext.load(session, org_id, settings)
    source = AuditSource(client, ctx, result, page_size)
    try:
        ran = await seam.run(engine, source, org_id, max_steps=max_pages)
    finally:
        source.cancel()
    result.inserted, result.duplicates = ran.inserted, ran.duplicates
    result.quarantined, result.error = ran.quarantined, ran.error
    result.checkpoint = await asyncio.to_thread(source.checkpoints.read, engine, org_id)
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
        AuditSource.checkpoints.record(
            engine, seam.SourceRun("audit-log", failed.org_id, error=failed.error)
        )
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
