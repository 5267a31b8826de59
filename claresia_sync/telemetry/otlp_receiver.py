"""The daemon's OTLP/HTTP logs receiver for Claude Code (`POST /v1/logs`, its own port).

Answers per the OTLP/HTTP specification:
- 200 with an `ExportLogsServiceResponse` in the request's encoding (protobuf or JSON), with
  `partial_success` (how many records were rejected and why) when some were: a rejected record
  is quarantined with the reason, the others are stored;
- 400 with a `google.rpc.Status` saying why the body cannot be read (not protobuf or OTLP JSON,
  wrong types, bad gzip, unknown content type or encoding); 401 without a known bearer token;
  413 over the body cap (declared, streamed or inflated); 405 / 404 elsewhere;
- 429 with `Retry-After` when more requests wait for the database than it may queue
  (back-pressure: bounded memory), 503 with `Retry-After` when the database is unavailable.
Nothing of a request is stored unless all of it is: its rows (`insert_events`), the prompts'
usage and activation keys (`otlp_usage.store`), quarantine entries and the source's state are in
one transaction, and it is answered 200 only once that
transaction is committed. A retried export is stored once (the records' identity,
`telemetry.otlp.identity`).

Group commit: exports are normalised as they come and queued; up to `max_writers` writers
(each a connection) take what is queued, store it in one transaction (up to `MAX_BATCH_ROWS`
rows) and answer each export. While there are fewer exports than writers each goes alone (as
many transactions at once as writers: measured faster than one writer on a shared machine);
when all writers are busy, the exports that queue meanwhile share the next transaction: one
durable commit and one set of statements for several. Every transaction takes its locks in one
order (ids, quarantine entries, source states, each sorted), so writers wait for one another
but do not deadlock. If a transaction fails for something else than the database being
unavailable, each of its exports is tried again alone, so one bad export does not fail others.

Tokens: each root tenant's `otlp_token` reference (tenants file) is resolved when the receiver
refreshes (every `REFRESH_S`, and at most every `MISS_REFRESH_S` when an unknown token comes);
only SHA-256 digests are kept, compared through a dict lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from claresia_sync.db.engine import is_unavailable
from claresia_sync.db.models import OtlpToken, Tenant
from claresia_sync.errors import one_line
from claresia_sync.secrets import KeyReferenceError, resolve_token
from claresia_sync.telemetry import otlp, otlp_usage, sources
from claresia_sync.telemetry.load import insert_events
from claresia_sync.telemetry.settings import TelemetrySettings

log = logging.getLogger(__name__)

REFRESH_S = 30.0
MISS_REFRESH_S = 2.0
RETRY_AFTER_BUSY = "1"
RETRY_AFTER_DOWN = "5"
MAX_BATCH_ROWS = 10_000
_INVALID_ARGUMENT, _UNAUTHENTICATED, _RESOURCE_EXHAUSTED, _UNAVAILABLE = 3, 16, 8, 14

_QUARANTINE = text(
    "INSERT INTO telemetry_quarantine (org_id, event_id, reason, raw) "
    "VALUES (:org_id, :event_id, :reason, CAST(:raw AS jsonb)) "
    "ON CONFLICT (org_id, event_id) DO NOTHING"
)
_SOURCE = text("""
INSERT INTO telemetry_source AS s (source, org_id, last_run_at, last_success_at, last_rows,
                                   newest_data_at)
VALUES (:source, :key, now(), now(), :rows, CAST(:newest AS timestamptz))
ON CONFLICT (source, org_id) DO UPDATE SET
    last_run_at = now(), last_success_at = now(), last_error = NULL, last_rows = :rows,
    newest_data_at = greatest(s.newest_data_at, EXCLUDED.newest_data_at)
""")


@dataclass
class _Pending:
    """A normalised export waiting for the writer; `done` when its transaction is committed."""

    tenant: str
    normalised: otlp.Normalised
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Outcome:
    """What one request did (the daemon's metrics read it)."""

    status: int
    tenant: str | None = None
    stored: int = 0
    rejected: int = 0


class OtlpReceiver:
    def __init__(
        self,
        engine: Engine,
        settings: TelemetrySettings,
        *,
        max_body_bytes: int = 4 * 2**20,
        max_normalising: int = 4,
        max_writers: int = 4,
        max_waiting: int = 64,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.max_body_bytes = max_body_bytes
        self._normalising = asyncio.Semaphore(max_normalising)
        self.max_waiting = max_waiting
        self._waiting = 0
        self._queue: deque[_Pending] = deque()
        self.max_writers = max_writers
        self._writers: set[asyncio.Task[None]] = set()
        self._on_outcome = on_outcome or (lambda _: None)
        self._tokens: dict[str, str] = {}  # sha256 hex of a token -> root tenant slug
        self._scopes: dict[str, otlp.TenantScope] = {}
        self._loaded_at = float("-inf")
        self._refresh = asyncio.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/logs", self.logs, methods=["POST"])])

    # --- tokens and tenants -----------------------------------------------------------------

    def _load(self) -> tuple[dict[str, str], dict[str, otlp.TenantScope]]:
        tokens: dict[str, str] = {}
        with Session(self.engine) as session:
            for ref, slug in session.execute(
                select(OtlpToken.token_ref, Tenant.slug).join(
                    Tenant, Tenant.id == OtlpToken.tenant_id
                )
            ):
                try:
                    token = resolve_token(ref)
                except KeyReferenceError as exc:
                    log.warning("otlp token of tenant %s cannot be read: %s", slug, exc)
                    continue
                tokens[hashlib.sha256(token.encode()).hexdigest()] = slug
            scopes = {
                slug: otlp.TenantScope.load(session, slug, self.settings)
                for slug in sorted(set(tokens.values()))
            }
        return tokens, scopes

    async def _tenant(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        age = time.monotonic() - self._loaded_at
        if age > REFRESH_S or (digest not in self._tokens and age > MISS_REFRESH_S):
            async with self._refresh:
                if time.monotonic() - self._loaded_at > MISS_REFRESH_S:
                    self._tokens, self._scopes = await asyncio.to_thread(self._load)
                    self._loaded_at = time.monotonic()
        return self._tokens.get(digest)

    # --- the endpoint -----------------------------------------------------------------------

    async def logs(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "")
        json_reply = kind.split(";", 1)[0].strip().lower() == otlp.JSON
        response, outcome = await self._handle(request, json_reply)
        self._on_outcome(outcome)
        return response

    async def _handle(self, request: Request, json_reply: bool) -> tuple[Response, Outcome]:
        def fail(status: int, code: int, message: str, **headers: str) -> tuple[Response, Outcome]:
            return _status(status, code, message, json_reply, headers), Outcome(status)

        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        try:
            tenant = await self._tenant(token.strip()) if scheme.lower() == "bearer" else None
        except Exception as exc:
            if is_unavailable(exc):
                return fail(
                    503, _UNAVAILABLE, "the database is unavailable", retry_after=RETRY_AFTER_DOWN
                )
            raise
        if tenant is None:
            return fail(401, _UNAUTHENTICATED, "a known bearer token is required (Authorization)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return fail(413, _INVALID_ARGUMENT, f"the body is over {self.max_body_bytes} bytes")
        try:
            body = await _read(request, self.max_body_bytes)
            export = otlp.decode(
                body,
                request.headers.get("content-type", ""),
                request.headers.get("content-encoding", "").strip().lower(),
                self.max_body_bytes,
            )
        except otlp.TooLarge as exc:
            return fail(413, _INVALID_ARGUMENT, str(exc))
        except otlp.BadRequest as exc:
            return fail(400, _INVALID_ARGUMENT, str(exc))
        except ClientDisconnect:
            return fail(400, _INVALID_ARGUMENT, "the client went away")
        scope = self._scopes.get(tenant)
        if scope is None:
            return fail(503, _UNAVAILABLE, "tenant not loaded yet", retry_after=RETRY_AFTER_BUSY)
        if self._waiting >= self.max_waiting:
            return fail(
                429, _RESOURCE_EXHAUSTED, "too many exports waiting", retry_after=RETRY_AFTER_BUSY
            )
        self._waiting += 1
        try:
            async with self._normalising:  # off the event loop
                normalised = await asyncio.to_thread(
                    otlp.normalise_request, export, scope, self.settings
                )
            await self._stored(tenant, normalised)
        except Exception as exc:
            if not is_unavailable(exc):
                log.exception("otlp export of tenant %s not stored", tenant)
            reason = "the database is unavailable" if is_unavailable(exc) else one_line(exc)[:200]
            return fail(503, _UNAVAILABLE, f"not stored: {reason}", retry_after=RETRY_AFTER_DOWN)
        finally:
            self._waiting -= 1
        log.debug(
            "otlp export of %s: %d record(s), %d stored, %d rejected, %d not ours",
            tenant,
            normalised.records,
            len(normalised.rows),
            normalised.rejected,
            normalised.ignored,
        )
        reply = ExportLogsServiceResponse()
        if normalised.rejected:
            reply.partial_success.rejected_log_records = normalised.rejected
            reply.partial_success.error_message = "; ".join(sorted(set(normalised.reasons)))[:1000]
        outcome = Outcome(200, tenant, len(normalised.rows), normalised.rejected)
        return _message(reply, json_reply, 200, {}), outcome

    # --- group commit -----------------------------------------------------------------------

    async def _stored(self, tenant: str, normalised: otlp.Normalised) -> None:
        """Returns once the export is committed (raises what its transaction raised)."""
        pending = _Pending(tenant, normalised)
        self._queue.append(pending)
        if len(self._writers) < self.max_writers:
            writer = asyncio.create_task(self._write(), name="otlp-writer")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        await pending.done

    async def _write(self) -> None:
        """Store what waits, a transaction at a time, until nothing does (then end: an export
        starts a writer while fewer than `max_writers` run)."""
        while self._queue:
            batch = [self._queue.popleft()]
            rows = len(batch[0].normalised.rows)
            while self._queue and rows + len(self._queue[0].normalised.rows) <= MAX_BATCH_ROWS:
                rows += len(self._queue[0].normalised.rows)
                batch.append(self._queue.popleft())
            try:
                await asyncio.to_thread(self._store, [(p.tenant, p.normalised) for p in batch])
            except Exception as exc:
                if len(batch) == 1 or is_unavailable(exc):
                    _settle(batch, exc)
                    continue
                for one in batch:  # which export failed it? each alone
                    try:
                        await asyncio.to_thread(self._store, [(one.tenant, one.normalised)])
                    except Exception as alone:
                        _settle([one], alone)
                    else:
                        _settle([one], None)
            else:
                _settle(batch, None)

    def _store(self, batch: list[tuple[str, otlp.Normalised]]) -> None:
        """Rows, their prompts' usage (`otlp_usage`), quarantine entries and each tenant's
        source state of these exports: one transaction."""
        with self.engine.begin() as conn:
            insert_events(conn, [row for _, n in batch for row in n.rows])
            otlp_usage.store(
                conn,
                [a for _, n in batch for a in n.activations],
                [u for _, n in batch for u in n.usage],
            )
            quarantine = sorted(
                (entry for _, n in batch for entry in n.quarantine), key=itemgetter("event_id")
            )
            if quarantine:
                conn.execute(_QUARANTINE, quarantine)
            sources_state: dict[str, dict[str, Any]] = {}
            for tenant, n in batch:
                if not n.rows:
                    continue
                newest = max(r["occurred_at"] for r in n.rows)
                state = sources_state.setdefault(
                    tenant,
                    {
                        "source": sources.CLAUDE_CODE_OTLP,
                        "key": tenant,
                        "rows": 0,
                        "newest": newest,
                    },
                )
                state["rows"] += len(n.rows)
                state["newest"] = max(state["newest"], newest)
            if sources_state:
                conn.execute(_SOURCE, [sources_state[t] for t in sorted(sources_state)])


def _settle(batch: list[_Pending], error: BaseException | None) -> None:
    for pending in batch:
        if pending.done.done():  # its request went away
            continue
        if error is None:
            pending.done.set_result(None)
        else:
            pending.done.set_exception(error)


async def _read(request: Request, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise otlp.TooLarge(f"the body is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _message(message: Any, json_reply: bool, status: int, headers: dict[str, str]) -> Response:
    if json_reply:
        body = json_format.MessageToJson(message, indent=None).encode()
        return Response(body, status, headers=headers, media_type=otlp.JSON)
    return Response(message.SerializeToString(), status, headers=headers, media_type=otlp.PROTOBUF)


def _status(
    status: int, code: int, message: str, json_reply: bool, extra: dict[str, str]
) -> Response:
    headers = {"retry-after": extra["retry_after"]} if "retry_after" in extra else {}
    return _message(Status(code=code, message=message), json_reply, status, headers)
