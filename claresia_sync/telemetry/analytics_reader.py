"""The skills analytics as the official SDK reads them (`organization.analytics.skills.list`).

The SDK client and the retries are the real targets' (`api.sdk.SdkCaller`: built
with `max_retries=0` on the daemon's shared HTTP pool, under the daemon's one retry policy).
The answer is read through `with_raw_response` and decoded once with orjson: a day of 1,000
users x 500 skills is 500,000 rows, and typed objects for each would cost more than the rest of
the ingestion.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.api.client import CallCounter
from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.sdk import SdkCaller, SdkFailure
from claresia_sync.publish.targets import KINDS
from claresia_sync.telemetry import seam, sources
from claresia_sync.telemetry.analytics import (
    SOURCE,
    AnalyticsPage,
    AnalyticsResult,
    AnalyticsSource,
    TooRecent,
    UsageContext,
    latest_day_named,
    result_of,
)
from claresia_sync.tenancy.lookup import target_connections

log = logging.getLogger(__name__)

ROUTE = "/v1/organizations/analytics/skills"


def _hints(status: int, code: str | None, message: str) -> str:
    if status == 403:
        return "the Enterprise admin key needs the scope read:analytics: make one with it"
    if status == 404:
        return "the skills analytics are for Claude Enterprise organisations only"
    return "the next run reads the same days again"


def open_caller(
    conn: TenantConnection,
    http: httpx2.AsyncClient | None = None,
    counter: CallCounter | None = None,
) -> SdkCaller:
    """The SDK for `conn` under the daemon's one retry policy (`api.sdk`);
    `ConnectionKeyError` when the key cannot be resolved."""
    return SdkCaller(conn, http=http, counter=counter, hints=_hints)


class SdkAnalyticsReader:
    """`AnalyticsReader` over the SDK."""

    def __init__(self, caller: SdkCaller) -> None:
        self.caller = caller

    async def page(
        self, day: dt.date, group_by: str | None, cursor: str | None, limit: int
    ) -> AnalyticsPage:
        skills = self.caller.sdk.organization.analytics.skills.with_raw_response
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
            body = await self.caller.call("GET", ROUTE, what, fetch)
        except SdkFailure as exc:
            latest = latest_day_named(str(exc)) if exc.status == 400 else None
            if latest is not None:
                raise TooRecent(latest) from None
            raise
        data = orjson.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ValueError(f"{what}: the answer has no data list")
        next_page = data.get("next_page")
        rows = [
            r if isinstance(r, dict) else {"skill_name": None, "value": r} for r in data["data"]
        ]
        return AnalyticsPage(rows, next_page if isinstance(next_page, str) else None)

    async def aclose(self) -> None:
        await self.caller.aclose()


def connections_offering(session: Session, source: str) -> list[TenantConnection]:
    """The target connections of every root tenant whose kind offers `source`
    (`TargetKind.telemetry_sources`): the ones a run of the source reads."""
    return [
        c
        for conns in target_connections(session).values()
        for c in conns
        if source in KINDS[c.target].telemetry_sources
    ]


def enterprise_connections(session: Session) -> list[TenantConnection]:
    """The claude-enterprise target of every root tenant (the kind that offers the skills
    analytics: its admin key reads them)."""
    return connections_offering(session, SOURCE)


@asynccontextmanager
async def _open(
    engine: Engine, conn: TenantConnection, options: seam.RunOptions
) -> AsyncIterator[AnalyticsSource]:
    reader = SdkAnalyticsReader(open_caller(conn, options.http, options.counter))
    try:
        with Session(engine) as session:
            ctx = UsageContext.load(session, conn.org_id)
        cfg = options.sources
        yield AnalyticsSource(
            reader,
            conn.org_id,
            ctx,
            window_days=cfg.analytics_window_days,
            backfill_days=cfg.analytics_backfill_days,
            breakdowns=cfg.analytics_breakdowns,
        )
    finally:
        await reader.aclose()


KIND = seam.register(
    seam.SourceKind(SOURCE, enterprise_connections, _open, interval_setting="analytics_interval")
)


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
    """One analytics run of one claude-enterprise organisation (`seam.ingest_connection`); a
    key that cannot be resolved is the run's recorded error, like an API failure."""
    settings = sources.SourceSettings(
        analytics_window_days=window_days,
        analytics_backfill_days=backfill_days,
        analytics_breakdowns=breakdowns,
    )
    options = seam.RunOptions(http=http, counter=counter, sources=settings)
    return result_of(await seam.ingest_connection(engine, KIND, conn, options))
