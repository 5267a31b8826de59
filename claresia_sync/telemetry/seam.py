"""The telemetry source seam, like the publish target seam (docs/architecture.md): what differs
between sources is written by each source, what does not is written here, once.

A source (`Source`, one object per run of one organisation) supplies:
- its page read: `next_step(state)`, the next transaction's worth of pages (`Step`) from the
  checkpoint `state`, with the checkpoint columns it moves to, or None when the run is done;
- its normaliser: `normalise(item, page)`, a row, a `Quarantine` or None (not ours);
- its row loader: `loader(conn)`, which writes a step's rows in the step's transaction.

`run` does the rest: the loop; each step in ONE transaction with the checkpoint row locked and
compared with the one the step was planned from (another replica that moved it meanwhile makes
the step dropped, never the checkpoint moved backwards), the rows, the quarantine entries and
the checkpoint's move; the run's outcome for `status`, `/metrics` and `/readyz`
(`sources.record_run`); an API failure ends the run as its recorded error. The daemon keeps
each (source, organisation) to one replica at a time (its advisory lock around every run).

A kind of source registers itself in `KINDS` (`register`): its name (`telemetry_source.source`),
the organisations it reads, how to open a run of one and its interval setting (`SourceKind`).
The daemon reads every registered kind (`kinds`); a new product source is one module that calls
`register` and one line in `SOURCE_MODULES`; a test registers its own with `register`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.errors import APIError
from claresia_sync.db.engine import is_unavailable
from claresia_sync.errors import UserError, one_line
from claresia_sync.publish.targets.base import TargetError
from claresia_sync.telemetry import sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quarantine:
    """An item that does not fit, and why (`telemetry_quarantine`); `raw`: what to keep of it
    (JSON text) when not the item as read (e.g. without the actor's email)."""

    event_id: str | None
    reason: str
    raw: str | None = None


@dataclass(frozen=True)
class Page:
    items: Sequence[Any]
    meta: Any = None
    """What the normaliser needs to know of the page (e.g. the day and breakdown it covers)."""


@dataclass
class Step:
    """What one transaction covers: its pages (read while the step is written) and the
    checkpoint columns it moves (`sources.advance`; a callable: known once the pages are read).
    `final`: the run ends after it. `committed` is set by `run`."""

    pages: AsyncIterable[Page]
    advance: Mapping[str, object] | Callable[[], Mapping[str, object]] = field(default_factory=dict)
    final: bool = False
    committed: bool | None = None


@dataclass(frozen=True)
class Loaded:
    inserted: int
    updated: int = 0
    unchanged: int = 0


class Loader(Protocol):
    """Writes one step's rows on the step's connection (inside its transaction); a loader
    with an `abort()` method is told when the step fails (before its connection closes)."""

    def add(self, rows: list[Any]) -> None: ...

    def finish(self) -> Loaded: ...


class ReadAgain(Exception):
    """Raised by a loader or a page read: the step is rolled back whole and the source asked
    again from the same checkpoint (it knows why, e.g. the day again through a stage)."""


class Stop(Exception):
    """Raised by a page read: the source has nothing more for now. The step is rolled back,
    the run ends normally; `recorded` goes with the run's outcome (`sources.record_run`)."""

    def __init__(self, message: str, **recorded: Any) -> None:
        super().__init__(message)
        self.recorded = recorded


class Source(Protocol):
    name: str

    async def next_step(self, state: Any) -> Step | None: ...

    def normalise(self, item: Any, page: Page) -> Any: ...

    def loader(self, conn: Connection) -> Loader: ...


@dataclass
class SourceRun:
    """What one run of one source for one organisation did."""

    source: str
    org_id: str
    steps: int = 0
    pages: int = 0
    received: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    """Rows already stored (an item read again), absorbed by the source's key."""
    unchanged: int = 0
    quarantined: int = 0
    not_ours: int = 0
    dropped: int = 0
    """Steps not written: the checkpoint moved meanwhile (another replica)."""
    error: str | None = None
    recorded: dict[str, Any] = field(default_factory=dict)
    """What a `Stop` said, recorded with the run."""
    of: Any = field(default=None, repr=False)
    """The `Source` that ran (its own counts)."""

    @property
    def rows(self) -> int:
        return self.inserted + self.updated


# Quarantine entries: a redelivered item keeps its first entry unless the source says it is
# read again on purpose (a revised day), then the newest reason wins.
# Written out twice rather than concatenated: SQL text is only ever a literal (test_security).
_KEEP_FIRST = text(
    "INSERT INTO telemetry_quarantine (org_id, event_id, reason, raw) "
    "VALUES (:org_id, :event_id, :reason, CAST(:raw AS jsonb)) ON CONFLICT (org_id, event_id) "
    "DO NOTHING"
)
_KEEP_NEWEST = text(
    "INSERT INTO telemetry_quarantine (org_id, event_id, reason, raw) "
    "VALUES (:org_id, :event_id, :reason, CAST(:raw AS jsonb)) ON CONFLICT (org_id, event_id) "
    "DO UPDATE SET reason = EXCLUDED.reason, raw = EXCLUDED.raw"
)


class Checkpoints:
    """Where a source's checkpoint and its runs' outcome are kept: `telemetry_source`, one row
    per (source, organisation) (`sources`). A source may keep them elsewhere (`checkpoints`
    attribute: the audit poller's `audit_checkpoint`)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def read(self, engine: Engine, org_id: str) -> Any:
        return sources.read(engine, self.source, org_id)

    def lock(self, conn: Connection, org_id: str) -> Any:
        """The checkpoint, locked until the caller's transaction ends."""
        return sources.lock(conn, self.source, org_id)

    def advance(self, conn: Connection, org_id: str, **values: object) -> None:
        sources.advance(conn, self.source, org_id, **values)

    def record(self, engine: Engine, result: SourceRun) -> None:
        sources.record_run(
            engine,
            self.source,
            result.org_id,
            rows=result.rows,
            error=result.error,
            **result.recorded,
        )


def _checkpoints(source: Source) -> Checkpoints:
    found = getattr(source, "checkpoints", None)
    return found if isinstance(found, Checkpoints) else Checkpoints(source.name)


class _Moved(Exception):
    """The checkpoint is no longer the one the step was planned from."""


async def run(
    engine: Engine,
    source: Source,
    org_id: str,
    *,
    max_steps: int | None = None,
    record: bool = True,
) -> SourceRun:
    """Run `source` for `org_id` step by step until it is done, `max_steps` were taken or it
    fails (see the module doc); the run's outcome is recorded unless `record` is false."""
    result = SourceRun(source.name, org_id, of=source)
    store = _checkpoints(source)
    # One thread holds each step's transaction (a connection stays on the thread that uses it)
    # and keeps one malloc arena (bench/RESULTS.md).
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{source.name}-{org_id}")
    loop = asyncio.get_running_loop()

    async def db(fn: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(writer, fn, *args)

    try:
        state = await db(store.read, engine, org_id)
        while max_steps is None or result.steps < max_steps:
            step = await source.next_step(state)
            if step is None:
                break
            result.steps += 1
            try:
                await _write_step(engine, source, org_id, step, state, result, db)
                step.committed = True
            except _Moved:
                step.committed = False
                result.dropped += 1
                log.info("%s of %s: a step dropped, the checkpoint moved", source.name, org_id)
            except ReadAgain as exc:
                step.committed = False
                log.info("%s of %s: %s; read again", source.name, org_id, exc)
                continue
            state = await db(store.read, engine, org_id)
            if step.final and step.committed:
                break
    except Stop as exc:
        result.recorded = exc.recorded
    except (APIError, TargetError, UserError, *getattr(source, "failures", ())) as exc:
        # An API failure, or what the source says ends a run as its error (`failures`).
        result.error = one_line(exc)
        log.warning("%s of %s stopped: %s", source.name, org_id, result.error)
    except Exception as exc:
        if is_unavailable(exc):  # without the database nothing can be recorded
            raise
        result.error = one_line(f"{type(exc).__name__}: {exc}")
        if record:
            await asyncio.to_thread(store.record, engine, result)
        raise
    finally:
        writer.shutdown(wait=True)
    if record:
        await asyncio.to_thread(store.record, engine, result)
    return result


async def _write_step(
    engine: Engine,
    source: Source,
    org_id: str,
    step: Step,
    expected: sources.Checkpoint,
    result: SourceRun,
    db: Callable[..., Any],
) -> None:
    """One step in one transaction: lock and compare the checkpoint, rows page by page as they
    are read, quarantine, the checkpoint's move, commit; nothing of it stays if it fails."""
    conn: Connection = await db(engine.connect)
    counts = SourceRun(source.name, org_id)
    loader: Loader | None = None
    try:

        def begin() -> Loader:
            conn.begin()
            current = _checkpoints(source).lock(conn, org_id)
            if current != expected:
                raise _Moved
            return source.loader(conn)

        loader = await db(begin)
        assert loader is not None
        bad: list[dict[str, Any]] = []
        async for page in step.pages:
            counts.pages += 1
            counts.received += len(page.items)
            rows = []
            for item in page.items:
                verdict = source.normalise(item, page)
                if isinstance(verdict, Quarantine):
                    bad.append(_quarantine_entry(org_id, item, verdict))
                elif verdict is None:
                    counts.not_ours += 1
                else:
                    rows.append(verdict)
            counts.duplicates += len(rows)  # less what the loader finds new, below
            await db(loader.add, rows)
        counts.quarantined = len(bad)

        def finish(loader: Loader) -> None:
            loaded = loader.finish()
            counts.inserted, counts.updated = loaded.inserted, loaded.updated
            counts.unchanged = loaded.unchanged
            if bad:
                again = getattr(source, "requarantine", False)
                conn.execute(_KEEP_NEWEST if again else _KEEP_FIRST, bad)
            advance = step.advance() if callable(step.advance) else step.advance
            if advance:
                _checkpoints(source).advance(conn, org_id, **advance)
            conn.commit()

        await db(finish, loader)
        loader = None
    finally:
        abort = getattr(loader, "abort", None)
        if abort is not None:
            await db(abort)
        await db(conn.close)  # rolls back what was not committed
    result.pages += counts.pages
    result.received += counts.received
    result.inserted += counts.inserted
    result.updated += counts.updated
    result.unchanged += counts.unchanged
    result.duplicates += max(counts.duplicates - counts.inserted - counts.updated, 0)
    result.quarantined += counts.quarantined
    result.not_ours += counts.not_ours


def _quarantine_entry(org_id: str, item: Any, why: Quarantine) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "event_id": why.event_id,
        "reason": why.reason,
        "raw": why.raw if why.raw is not None else orjson.dumps(item, default=str).decode(),
    }


async def one_page(page: Page) -> AsyncIterator[Page]:
    """The pages of a step that has one, already read."""
    yield page


# --- kinds of sources ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """What the daemon hands every run: its HTTP pool and API call counter (None outside it)."""

    http: Any = None
    counter: Any = None
    sources: sources.SourceSettings = field(default_factory=sources.SourceSettings)


@dataclass(frozen=True)
class SourceKind:
    """A registered kind of telemetry source: its name, the connections it reads (one run per
    organisation), how to open a run of one (`open`: the API client and what the normaliser
    needs, closed after the run), and the daemon setting holding its interval in seconds."""

    name: str
    connections: Callable[[Session], list[TenantConnection]]
    open: Callable[[Engine, TenantConnection, RunOptions], AbstractAsyncContextManager[Source]]
    interval_setting: str


KINDS: dict[str, SourceKind] = {}
# The product's sources: each module registers its kind when imported (`kinds`).
SOURCE_MODULES = ("claresia_sync.telemetry.activity", "claresia_sync.telemetry.analytics_reader")


def register(kind: SourceKind) -> SourceKind:
    """Add a kind of source (its module calls this once; a test may add its own)."""
    KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, SourceKind]:
    """Every registered kind: the product's (imported here once) and any a test added."""
    for module in SOURCE_MODULES:
        importlib.import_module(module)
    return KINDS


async def ingest_connection(
    engine: Engine, kind: SourceKind, conn: TenantConnection, options: RunOptions | None = None
) -> SourceRun:
    """One run of `kind` for one organisation. A key that cannot be resolved (or another
    problem opening the run) is the run's recorded error, like an API failure. The daemon
    holds the single-replica lease around it (`daemon.runtime`, advisory lock per source and
    organisation)."""
    try:
        opened = kind.open(engine, conn, options or RunOptions())
        async with opened as source:
            return await run(engine, source, conn.org_id)
    except UserError as exc:
        failed = SourceRun(kind.name, conn.org_id, error=one_line(exc))
        log.warning("%s of %s failed: %s", kind.name, conn.org_id, failed.error)
        await asyncio.to_thread(Checkpoints(kind.name).record, engine, failed)
        return failed
