"""The skills analytics as the official SDK reads them (`organization.analytics.skills.list`).

The SDK client is built with `max_retries=0` on the daemon's shared HTTP pool; retries are the
daemon's one policy (exponential backoff with jitter, or the server's `retry-after`, for 408,
429, 5xx, timeouts and connection errors; `x-should-retry` obeyed). The answer is read through
`with_raw_response` and decoded once with orjson: a day of 1,000 users x 500 skills is 500,000
rows, and typed objects for each would cost more than the rest of the ingestion.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anthropic
import httpx2
import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from claresia_sync.api.client import CallCounter, _parse_retry_after, _RetryAfterOrBackoff
from claresia_sync.api.connect import CLAUDE_ENTERPRISE, TenantConnection, connection_key
from claresia_sync.config import load_settings
from claresia_sync.errors import UserError, one_line
from claresia_sync.telemetry import sources
from claresia_sync.telemetry.analytics import (
    SOURCE,
    AnalyticsPage,
    AnalyticsResult,
    TooRecent,
    ingest_org,
    latest_day_named,
)
from claresia_sync.tenancy.lookup import target_connections

log = logging.getLogger(__name__)
T = TypeVar("T")

ROUTE = "/v1/organizations/analytics/skills"
MAX_ATTEMPTS = 5


class SourceCallError(Exception):
    """A failed call of a telemetry source, named (method and path, never a header)."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after: float | None = None


def _should_retry(exc: anthropic.APIStatusError) -> bool:
    said = exc.response.headers.get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return exc.status_code in (408, 429) or exc.status_code >= 500


def open_sdk(
    conn: TenantConnection, http: httpx2.AsyncClient | None = None
) -> anthropic.AsyncAnthropic:
    """An SDK client for `conn` (key resolved now; `ConnectionKeyError` if it cannot be)."""
    key = connection_key(conn)
    return anthropic.AsyncAnthropic(
        api_key=key.reveal(),
        base_url=conn.base_url,
        max_retries=0,  # ours, not the SDK's: the two would stack
        timeout=load_settings().api_timeout_s,
        http_client=http,
    )


class RetryingCall:
    """`await call(method, route, what, fn)`: `fn()` under the retry policy, counted."""

    def __init__(
        self, counter: CallCounter | None = None, *, max_attempts: int = MAX_ATTEMPTS
    ) -> None:
        self.counter = counter or CallCounter()
        self.max_attempts = max_attempts
        self._wait = _RetryAfterOrBackoff(wait_random_exponential(multiplier=0.5, max=20.0), 60.0)

    async def __call__(
        self, method: str, route: str, what: str, fn: Callable[[], Awaitable[T]]
    ) -> T:
        async def attempt() -> T:
            try:
                result = await fn()
            except anthropic.APIStatusError as exc:
                self.counter.add(method, route, str(exc.status_code))
                failure = SourceCallError(
                    f"{what}: {exc.status_code} {exc.api_message or exc.message}",
                    status=exc.status_code,
                    retryable=_should_retry(exc),
                )
                failure.retry_after = _parse_retry_after(exc.response.headers.get("retry-after"))
                raise failure from None
            except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
                kind = (
                    "timeout" if isinstance(exc, anthropic.APITimeoutError) else "connection_error"
                )
                self.counter.add(method, route, kind)
                raise SourceCallError(
                    f"{what}: {kind.replace('_', ' ')}", status=None, retryable=True
                ) from None
            self.counter.add(method, route, "200")
            return result

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, SourceCallError) and e.retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return await retrying(attempt)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "retrying (attempt %d of %d, in %.2fs) after %s",
            state.attempt_number + 1,
            self.max_attempts,
            state.upcoming_sleep,
            exc,
        )


class SdkAnalyticsReader:
    """`AnalyticsReader` over the SDK."""

    def __init__(
        self, sdk: anthropic.AsyncAnthropic, call: RetryingCall, *, owns_http: bool
    ) -> None:
        self.sdk = sdk
        self.call = call
        self._owns_http = owns_http

    async def page(
        self, day: dt.date, group_by: str | None, cursor: str | None, limit: int
    ) -> AnalyticsPage:
        skills = self.sdk.organization.analytics.skills.with_raw_response
        extra: dict[str, Any] = {}
        if group_by:
            extra["group_by"] = [group_by]
        if cursor:
            extra["page"] = cursor

        async def fetch() -> bytes:
            raw = await skills.list(date=day.isoformat(), limit=limit, **extra)
            return raw.http_response.content

        what = f"GET {ROUTE} (date {day.isoformat()}{', by ' + group_by if group_by else ''})"
        try:
            body = await self.call("GET", ROUTE, what, fetch)
        except SourceCallError as exc:
            latest = latest_day_named(str(exc)) if exc.status == 400 else None
            if latest is not None:
                raise TooRecent(latest) from None
            raise
        data = orjson.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise SourceCallError(
                f"{what}: the answer has no data list", status=200, retryable=False
            )
        next_page = data.get("next_page")
        rows = [
            r if isinstance(r, dict) else {"skill_name": None, "value": r} for r in data["data"]
        ]
        return AnalyticsPage(rows, next_page if isinstance(next_page, str) else None)

    async def aclose(self) -> None:
        if self._owns_http:  # a shared pool is closed by its owner
            await self.sdk.close()


def enterprise_connections(session: Session) -> list[TenantConnection]:
    """The claude-enterprise target of every root tenant (their admin key reads analytics)."""
    return [
        c
        for conns in target_connections(session).values()
        for c in conns
        if c.target == CLAUDE_ENTERPRISE
    ]


async def ingest_connection(
    engine: Engine,
    conn: TenantConnection,
    *,
    http: httpx2.AsyncClient | None = None,
    counter: CallCounter | None = None,
    window_days: int = 7,
    backfill_days: int = 30,
    breakdowns: tuple[str, ...] = ("user", "rbac_group"),
) -> AnalyticsResult:
    """One analytics run of one claude-enterprise organisation; a key that cannot be resolved
    is the run's recorded error, like an API failure."""
    try:
        sdk = open_sdk(conn, http)
    except UserError as exc:
        failed = AnalyticsResult(conn.org_id, error=one_line(exc))
        sources.record_run(engine, SOURCE, conn.org_id, rows=0, error=failed.error)
        return failed
    reader = SdkAnalyticsReader(sdk, RetryingCall(counter), owns_http=http is None)
    try:
        return await ingest_org(
            engine,
            reader,
            conn.org_id,
            window_days=window_days,
            backfill_days=backfill_days,
            breakdowns=breakdowns,
        )
    finally:
        await reader.aclose()
