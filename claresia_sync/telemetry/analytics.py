"""Claude Enterprise skills analytics into `skill_usage_daily` (issue 16, docs/interfaces.md
section 6).

`GET /v1/organizations/analytics/skills?date=D[&group_by[]=...]` answers one row per skill (per
group value) for one UTC day, about a day late, and revised by a few percent over the following
days. Each run of one organisation:

- reads every day from the first day not yet read in full (or, on the first run, `backfill_days`
  ago) or the start of the trailing window (`window_days`), whichever is earlier, up to
  yesterday; a day the API says is too recent ends the run normally (the answer names the latest
  available day, which is recorded);
- per day, reads the organisation-wide rows and each breakdown asked for (`user`, `rbac_group`)
  page by page into a staging table, then upserts them into `skill_usage_daily` and advances the
  checkpoint (`telemetry_source.cursor_day`) in that one transaction: a crash loses nothing (the
  day is read again) and duplicates nothing (the upsert key);
- a day with no rows yet (the backfill, and each new day) skips the stage: its pages are copied
  straight into `skill_usage_daily` (nothing to compare with; bench/RESULTS.md has the figures),
  in the same one transaction; an answer that lists a key twice breaks the unique key there, and
  the day is read again through the stage, which keeps one;
- an upsert of a row whose numbers changed counts a revision (`revision_count`,
  `last_changed_at`); an unchanged one only moves `last_seen_at`.

Attribution: the published name (`skill_display_name`, else `skill_name`; plugin-delivered skills
have an opaque `skill_name`, and a `plugin:` style prefix is dropped) gives tenant and catalog
skill; an rbac group gives the archetype and, through it, the sub-tenant. Rows of skills outside
`claresia-` are counted and not stored; a `claresia-` skill no tenant publishes, or a row that
does not fit, goes to `telemetry_quarantine` with why.

Money: `estimated_overage_spend` and `attributed_list_price` are decimal strings in cents;
they are stored exactly in dollars (the decimal point moved two places, numeric columns).

Storage (a year of one large organisation is ~185 million rows, bench/RESULTS.md): each field of
the answer is kept once. `raw` holds only what the columns do not (`rest_of_row`: a field with no
column, or one whose column does not hold its value exactly), null when nothing is left; nulls
and empty objects are left out. `row_hash` is a 64-bit digest (the first 8 bytes of sha256) of
the whole answer for the row, sorted keys: what a revision changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

import orjson
import psycopg
from psycopg import sql as psycopg_sql
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, aliased

from claresia_sync import naming
from claresia_sync.db.models import Archetype, Tenant
from claresia_sync.errors import one_line
from claresia_sync.telemetry import seam, sources
from claresia_sync.telemetry.normalise import AttributionContext

log = logging.getLogger(__name__)

SOURCE = sources.SKILLS_ANALYTICS
BREAKDOWNS: dict[str, str | None] = {
    "skill": None,
    "user": "user_id",
    "rbac_group": "rbac_group_id",
}
PAGE_LIMIT = 1000  # the endpoint's maximum
INT4_MAX = 2**31 - 1
_LATEST = re.compile(r"latest available (?:day|date)\D{0,20}(\d{4}-\d{2}-\d{2})")
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_OFFICE = ("excel", "outlook", "powerpoint", "word")
_SESSIONS = "distinct_session_skill_used_count"
_OFFICE_COLUMNS = {p: f"office_{p}_sessions" for p in _OFFICE}
# Where the fields of an answer are stored: key -> its column, or, for an object, the same map of
# its keys. `raw` keeps what is not here (`rest_of_row`); migration 0013 follows this map in SQL.
FIELD_COLUMNS: dict[str, Any] = {
    "skill_name": "skill_name",
    "skill_display_name": "published_name",
    "user_id": "user_id",
    "rbac_group_id": "rbac_group_id",
    "invocation_count": "invocation_count",
    "distinct_user_count": "distinct_user_count",
    "enable_count": "enable_count",
    "share_status": "share_status",
    "chat_metrics": {"distinct_conversation_skill_used_count": "chat_conversations"},
    "claude_code_metrics": {_SESSIONS: "claude_code_sessions"},
    "cowork_metrics": {_SESSIONS: "cowork_sessions"},
    "office_metrics": {p: {_SESSIONS: column} for p, column in _OFFICE_COLUMNS.items()},
    "estimated_overage_spend": "estimated_overage_spend_usd",
    "attributed_list_price": "attributed_list_price_usd",
    "currency": "currency",
}
_MONEY = frozenset({"estimated_overage_spend_usd", "attributed_list_price_usd"})


class AnalyticsPage(NamedTuple):
    rows: list[dict[str, Any]]
    next_page: str | None


class TooRecent(seam.Stop):
    """The API has no data for this day yet; `latest` is the latest day it names, if any (the
    run ends normally and records it)."""

    def __init__(self, latest: dt.date | None) -> None:
        super().__init__(
            f"not available yet (latest available day: {latest})", latest_available_day=latest
        )
        self.latest = latest


class AnalyticsReader(Protocol):
    """One page of one day's skill analytics (the SDK in the daemon; anything in a bench)."""

    async def page(
        self, day: dt.date, group_by: str | None, cursor: str | None, limit: int
    ) -> AnalyticsPage: ...


def latest_day_named(message: str) -> dt.date | None:
    """The day a "too recent" answer names as the latest available one."""
    found = _LATEST.search(message)
    if not found:
        return None
    try:
        return dt.date.fromisoformat(found.group(1))
    except ValueError:
        return None


# --- attribution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupOwner:
    archetype_slug: str
    tenant_slug: str
    parent_tenant_slug: str | None


@dataclass
class UsageContext:
    """What attributing an analytics row needs: published names and rbac groups."""

    skills: AttributionContext
    groups: dict[str, list[GroupOwner]] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    _names: dict[tuple[str | None, str], str | None] = field(default_factory=dict, repr=False)

    def published_name(self, row: Mapping[str, Any], skill_name: str) -> str | None:
        """`published_name(row)`, remembered per (display name, skill name): each skill's
        rows repeat them once per user."""
        display = row.get("skill_display_name")
        if display is not None and type(display) is not str:
            return published_name(row)
        key = (display, skill_name)
        if key not in self._names:
            self._names[key] = published_name(row)
        return self._names[key]

    @classmethod
    def load(cls, session: Session, org_id: str) -> UsageContext:
        parent = aliased(Tenant)
        groups: dict[str, list[GroupOwner]] = {}
        for group, arch, slug, parent_slug in session.execute(
            select(Archetype.rbac_group_id, Archetype.slug, Tenant.slug, parent.slug)
            .join(Tenant, Tenant.id == Archetype.tenant_id)
            .outerjoin(parent, parent.id == Tenant.parent_id)
            .order_by(Tenant.slug, Archetype.slug)
        ):
            groups.setdefault(group, []).append(GroupOwner(arch, slug, parent_slug))
        parents: dict[str, str | None] = {
            slug: parent_slug
            for slug, parent_slug in session.execute(
                select(Tenant.slug, parent.slug).outerjoin(parent, parent.id == Tenant.parent_id)
            )
        }
        return cls(AttributionContext.load(session, org_id), groups, parents)


def published_name(row: Mapping[str, Any]) -> str | None:
    """The `claresia-` name a row is about, or None (not one of ours)."""
    for value in (row.get("skill_display_name"), row.get("skill_name")):
        if isinstance(value, str):
            name = value.rsplit(":", 1)[-1].strip()
            if naming.is_claresia_name(name):
                return name
    return None


class Verdict(NamedTuple):
    row: dict[str, Any] | None
    quarantine: str | None
    """Why the row is quarantined (row is None then); both None: not one of ours."""


def _count(row: Mapping[str, Any], *path: str) -> int | None:
    value: Any = row
    for key in path:
        # dict first: rows come from JSON, and isinstance against the ABC is slow per value
        value = value.get(key) if type(value) is dict or isinstance(value, Mapping) else None
    if value is None or (type(value) is int and 0 <= value <= INT4_MAX):  # not bool
        return value
    raise ValueError(f"{'.'.join(path)} is {value!r}, not a count")


def _optional_count(value: Any) -> int | None:
    """A count the row may carry (no check promised): the value if it is one, else None (then
    `raw` keeps it)."""
    return value if type(value) is int and 0 <= value <= INT4_MAX else None


def _dollars(row: Mapping[str, Any], key: str) -> Decimal | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} is {value!r}, not a decimal string")
    try:
        cents = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{key} is {value!r}, not a decimal string") from None
    if not cents.is_finite():
        raise ValueError(f"{key} is {value!r}, not a finite amount")
    # Exact whatever the digits (the default context would round past 28).
    return cents.scaleb(-2, _EXACT)


def normalise_row(
    raw: Mapping[str, Any], *, org_id: str, day: dt.date, breakdown: str, ctx: UsageContext
) -> Verdict:
    """One analytics row as a `skill_usage_daily` row, a quarantine reason, or not ours."""
    skill_name = raw.get("skill_name")
    if not isinstance(skill_name, str) or not skill_name:
        return Verdict(None, "malformed: skill_name missing or not a string")
    name = ctx.published_name(raw, skill_name)
    if name is None:
        return Verdict(None, None)
    dimension = BREAKDOWNS[breakdown]
    key_value = raw.get(dimension) if dimension else ""
    if not isinstance(key_value, str) or (dimension and not key_value):
        return Verdict(None, f"malformed: {dimension} missing in a row grouped by it")
    ref = ctx.skills.skill_for(name)
    if ref is None or ref.owner_tenant is None:
        return Verdict(None, f"unknown Claresia skill {name!r}: no tenant publishes it")
    try:
        values = {
            "invocation_count": _count(raw, "invocation_count"),
            "distinct_user_count": _count(raw, "distinct_user_count"),
            "chat_conversations": _count(
                raw, "chat_metrics", "distinct_conversation_skill_used_count"
            ),
            "claude_code_sessions": _count(
                raw, "claude_code_metrics", "distinct_session_skill_used_count"
            ),
            "cowork_sessions": _count(raw, "cowork_metrics", "distinct_session_skill_used_count"),
            "estimated_overage_spend_usd": _dollars(raw, "estimated_overage_spend"),
            "attributed_list_price_usd": _dollars(raw, "attributed_list_price"),
        }
    except ValueError as exc:
        return Verdict(None, f"malformed: {exc}")
    currency = raw.get("currency")
    share_status = raw.get("share_status")
    office = raw.get("office_metrics")
    office = office if type(office) is dict else {}
    for product, column in _OFFICE_COLUMNS.items():
        metrics = office.get(product)
        count = metrics.get(_SESSIONS) if type(metrics) is dict else None
        values[column] = _optional_count(count)
    tenant: str = ref.owner_tenant
    parent, archetype = ctx.parents.get(tenant), None
    if breakdown == "rbac_group":
        root = parent or tenant
        for owner in ctx.groups.get(key_value, []):
            if (owner.parent_tenant_slug or owner.tenant_slug) == root:
                tenant, parent = owner.tenant_slug, owner.parent_tenant_slug
                archetype = owner.archetype_slug
                break
    raw_json = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    row: dict[str, Any] = {
        "org_id": org_id,
        "day": day,
        "breakdown": breakdown,
        "skill_name": skill_name,
        "user_id": key_value if breakdown == "user" else "",
        "rbac_group_id": key_value if breakdown == "rbac_group" else "",
        "published_name": name,
        "tenant_slug": tenant,
        "parent_tenant_slug": parent,
        "skill_id": ref.skill_id,
        "archetype_slug": archetype,
        "enable_count": _optional_count(raw.get("enable_count")),
        "share_status": share_status if isinstance(share_status, str) else None,
        **values,
        "currency": currency if isinstance(currency, str) else None,
        # What a revision changes: the whole answer for this row (sorted keys).
        "row_hash": int.from_bytes(hashlib.sha256(raw_json).digest()[:8], "big", signed=True),
    }
    rest = rest_of_row(raw, row)
    row["raw"] = orjson.dumps(rest).decode() if rest else None
    return Verdict(row, None)


_NO_COLUMNS: dict[str, Any] = {}  # the shape under a field no column holds


def rest_of_row(
    raw: Mapping[str, Any], row: Mapping[str, Any], shape: Mapping[str, Any] = FIELD_COLUMNS
) -> dict[str, Any]:
    """What of the answer `raw` the columns of `row` do not hold: fields with no column, and
    any whose column does not hold its value exactly. Nulls and empty objects are left out.
    (Migration 0013 does the same in SQL for rows stored before it.) The one reading of every
    row: a shortcut for the usual answer saved ~1.9 us of ~12 us a row and no benchmark's wall
    time showed it (bench/RESULTS.md, "one reading")."""
    rest: dict[str, Any] | None = None  # made only for the rare answer that leaves something
    for key, value in raw.items():
        if value is None:
            continue
        where = shape.get(key)
        if type(value) is dict:
            if not value:
                continue
            value = rest_of_row(value, row, where if type(where) is dict else _NO_COLUMNS)
            if not value:
                continue
        elif type(where) is str:
            stored = row[where]
            if where in _MONEY:  # the dollars are the cents exactly (`_dollars`)
                if stored is not None:
                    continue
            elif type(stored) is type(value) and stored == value:  # an int is no bool
                continue
        if rest is None:
            rest = {}
        rest[key] = value
    return rest or {}


# --- storage --------------------------------------------------------------------------------

COLUMNS = (
    "org_id",
    "day",
    "breakdown",
    "skill_name",
    "user_id",
    "rbac_group_id",
    "published_name",
    "tenant_slug",
    "parent_tenant_slug",
    "skill_id",
    "archetype_slug",
    "enable_count",
    "share_status",
    "invocation_count",
    "distinct_user_count",
    "chat_conversations",
    "claude_code_sessions",
    "cowork_sessions",
    "office_excel_sessions",
    "office_outlook_sessions",
    "office_powerpoint_sessions",
    "office_word_sessions",
    "estimated_overage_spend_usd",
    "attributed_list_price_usd",
    "currency",
    "raw",
    "row_hash",
)
# Composed from COLUMNS with psycopg's `sql` (identifiers quoted, no string interpolation), so
# the stage, both COPYs and `_ROW` cannot disagree on the columns or their order.
_COLUMN_LIST = psycopg_sql.SQL(", ").join(map(psycopg_sql.Identifier, COLUMNS))
_CREATE_STAGE = (
    psycopg_sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS skill_usage_stage ON COMMIT DELETE ROWS AS "
        "SELECT {} FROM skill_usage_daily WITH NO DATA"
    )
    .format(_COLUMN_LIST)
    .as_string()
)
_COPY_STAGE = psycopg_sql.SQL("COPY skill_usage_stage ({}) FROM STDIN").format(_COLUMN_LIST)
_COPY_DIRECT = psycopg_sql.SQL("COPY skill_usage_daily ({}) FROM STDIN").format(_COLUMN_LIST)
_ROW = itemgetter(*COLUMNS)
# Under the checkpoint's lock no other run writes this organisation's days.
_DAY_HAS_ROWS = text(
    "SELECT EXISTS (SELECT 1 FROM skill_usage_daily WHERE org_id = :org AND day = :day)"
)
# One day's rows: new ones inserted, changed ones updated and counted as a revision, the rest
# only seen again. DISTINCT ON: a key the answer repeats is upserted once.
_MERGE = """
WITH merged AS (
INSERT INTO skill_usage_daily AS t (
    org_id, day, breakdown, skill_name, user_id, rbac_group_id, published_name, tenant_slug,
    parent_tenant_slug, skill_id, archetype_slug, enable_count, share_status, invocation_count,
    distinct_user_count, chat_conversations, claude_code_sessions, cowork_sessions,
    office_excel_sessions, office_outlook_sessions, office_powerpoint_sessions,
    office_word_sessions, estimated_overage_spend_usd, attributed_list_price_usd, currency, raw,
    row_hash
)
SELECT DISTINCT ON (org_id, day, breakdown, skill_name, user_id, rbac_group_id)
    org_id, day, breakdown, skill_name, user_id, rbac_group_id, published_name, tenant_slug,
    parent_tenant_slug, skill_id, archetype_slug, enable_count, share_status, invocation_count,
    distinct_user_count, chat_conversations, claude_code_sessions, cowork_sessions,
    office_excel_sessions, office_outlook_sessions, office_powerpoint_sessions,
    office_word_sessions, estimated_overage_spend_usd, attributed_list_price_usd, currency, raw,
    row_hash
FROM skill_usage_stage
ORDER BY org_id, day, breakdown, skill_name, user_id, rbac_group_id
ON CONFLICT (org_id, day, breakdown, skill_name, user_id, rbac_group_id) DO UPDATE SET
    last_seen_at = now(),
    revision_count = t.revision_count + (t.row_hash <> EXCLUDED.row_hash)::int,
    last_changed_at = CASE WHEN t.row_hash <> EXCLUDED.row_hash THEN now()
                           ELSE t.last_changed_at END,
    published_name = EXCLUDED.published_name,
    tenant_slug = EXCLUDED.tenant_slug,
    parent_tenant_slug = EXCLUDED.parent_tenant_slug,
    skill_id = EXCLUDED.skill_id,
    archetype_slug = EXCLUDED.archetype_slug,
    enable_count = EXCLUDED.enable_count,
    share_status = EXCLUDED.share_status,
    invocation_count = EXCLUDED.invocation_count,
    distinct_user_count = EXCLUDED.distinct_user_count,
    chat_conversations = EXCLUDED.chat_conversations,
    claude_code_sessions = EXCLUDED.claude_code_sessions,
    cowork_sessions = EXCLUDED.cowork_sessions,
    office_excel_sessions = EXCLUDED.office_excel_sessions,
    office_outlook_sessions = EXCLUDED.office_outlook_sessions,
    office_powerpoint_sessions = EXCLUDED.office_powerpoint_sessions,
    office_word_sessions = EXCLUDED.office_word_sessions,
    estimated_overage_spend_usd = EXCLUDED.estimated_overage_spend_usd,
    attributed_list_price_usd = EXCLUDED.attributed_list_price_usd,
    currency = EXCLUDED.currency,
    raw = EXCLUDED.raw,
    row_hash = EXCLUDED.row_hash
RETURNING (xmax = 0) AS inserted, (t.last_changed_at = now()) AS changed
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted AND changed) AS revised,
       count(*) AS total
FROM merged
"""
_QUARANTINE = text(
    "INSERT INTO telemetry_quarantine (org_id, event_id, reason, raw) "
    "VALUES (:org_id, :event_id, :reason, CAST(:raw AS jsonb)) "
    "ON CONFLICT (org_id, event_id) DO UPDATE SET reason = EXCLUDED.reason, raw = EXCLUDED.raw"
)


class _DayLoader:
    """The row loader of one day (`seam.Loader`), in the step's transaction.

    The day's rows go to the server in one COPY that stays open while pages are read (the server
    stores them as they come). A day with no rows yet is copied straight into the table
    (`direct`); otherwise into a staging table, upserted at `finish`. A day copied straight that
    lists a key twice is read again through the stage (`seam.ReadAgain`)."""

    def __init__(self, conn: Connection, org_id: str, day: dt.date, direct: bool) -> None:
        self.conn = conn
        self.direct = (
            direct and not conn.execute(_DAY_HAS_ROWS, {"org": org_id, "day": day}).scalar_one()
        )
        if not self.direct:
            conn.execute(text(_CREATE_STAGE))
        self.copied = 0
        self._copy: psycopg.Copy | None = None
        self._copy_stack: ExitStack | None = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            copy = self._copy or self._open_copy()
            for r in rows:
                copy.write_row(_ROW(r))
            self.copied += len(rows)

    def _open_copy(self) -> psycopg.Copy:
        dbapi = self.conn.connection.driver_connection
        assert dbapi is not None
        stack = ExitStack()
        cur = stack.enter_context(dbapi.cursor())
        self._copy = stack.enter_context(cur.copy(_COPY_DIRECT if self.direct else _COPY_STAGE))
        self._copy_stack = stack
        return self._copy

    def _end_copy(self, failed: BaseException | None = None) -> None:
        stack, self._copy_stack, self._copy = self._copy_stack, None, None
        if stack is None:
            return
        if failed is not None:  # abandon the COPY (the transaction rolls back anyway)
            stack.__exit__(type(failed), failed, failed.__traceback__)
            return
        try:
            stack.close()
        except psycopg.errors.UniqueViolation as exc:
            if not self.direct:
                raise
            raise seam.ReadAgain(f"the answer lists a key twice ({one_line(exc)})") from exc

    def finish(self) -> seam.Loaded:
        """End the COPY and upsert the day's rows (the seam then writes the quarantine and
        advances the checkpoint, and commits)."""
        self._end_copy()
        if self.direct:
            return seam.Loaded(self.copied)
        inserted, revised, total = self.conn.execute(text(_MERGE)).one()
        return seam.Loaded(inserted, revised, total - inserted - revised)

    def abort(self) -> None:
        try:
            self._end_copy(failed=RuntimeError("the day was not committed"))
        except Exception as exc:  # the COPY's own failure: nothing of the day stays
            log.debug("abandoned COPY: %s", one_line(exc))


# --- the run --------------------------------------------------------------------------------


@dataclass
class AnalyticsResult:
    org_id: str
    days: int = 0
    pages: int = 0
    inserted: int = 0
    revised: int = 0
    unchanged: int = 0
    quarantined: int = 0
    not_ours: int = 0
    latest_available_day: dt.date | None = None
    error: str | None = None


def days_to_read(
    checkpoint_day: dt.date | None, today: dt.date, *, window_days: int, backfill_days: int
) -> list[dt.date]:
    """From the first day not read in full (or `backfill_days` ago on a first run) or the start
    of the trailing window, whichever is earlier, up to yesterday."""
    yesterday = today - dt.timedelta(days=1)
    window_start = today - dt.timedelta(days=window_days)
    if checkpoint_day is None:
        start = today - dt.timedelta(days=backfill_days)
    else:
        start = min(checkpoint_day + dt.timedelta(days=1), window_start)
    return [start + dt.timedelta(days=i) for i in range((yesterday - start).days + 1)]


def _event_id(day: dt.date, breakdown: str, raw: Mapping[str, Any]) -> str:
    key = raw.get(BREAKDOWNS[breakdown] or "", "") if BREAKDOWNS[breakdown] else ""
    return f"analytics:{day.isoformat()}:{breakdown}:{raw.get('skill_name')}:{key}"


class AnalyticsSource:
    """The skills analytics of one organisation as a telemetry source (`seam.Source`): one step
    per day of `days_to_read`, its pages across the breakdowns (see the module doc)."""

    name = SOURCE
    requarantine = True  # a day read again says why its rows do not fit now
    failures = (ValueError,)  # an answer that breaks the contract ends the run as its error

    def __init__(
        self,
        reader: AnalyticsReader,
        org_id: str,
        ctx: UsageContext,
        *,
        window_days: int = 7,
        backfill_days: int = 30,
        breakdowns: tuple[str, ...] = ("user", "rbac_group"),
        today: dt.date | None = None,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        self.reader, self.org_id, self.ctx = reader, org_id, ctx
        self.window_days, self.backfill_days = window_days, backfill_days
        self.breakdowns, self.page_limit = breakdowns, page_limit
        self.today = today or dt.datetime.now(dt.UTC).date()
        self._days: list[dt.date] | None = None
        self._steps: list[tuple[dt.date, seam.Step]] = []
        self._direct = True

    @property
    def days(self) -> int:
        """Days read and committed this run."""
        return sum(1 for _, step in self._steps if step.committed)

    async def next_step(self, state: sources.Checkpoint) -> seam.Step | None:
        if self._days is None:
            self._days = days_to_read(
                state.cursor_day,
                self.today,
                window_days=self.window_days,
                backfill_days=self.backfill_days,
            )
        if self._steps and not self._steps[-1][1].committed:
            day = self._steps[-1][0]  # not written (a key listed twice): again, through the stage
            self._direct = False
        elif not self._days:
            return None
        else:
            day, self._direct = self._days.pop(0), True
        advance: dict[str, object] = {
            "newest_data_at": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        }
        if state.cursor_day is None or day > state.cursor_day:
            advance["cursor_day"] = day
        step = seam.Step(self._pages(day), advance=advance)
        self._steps.append((day, step))
        return step

    async def _pages(self, day: dt.date) -> AsyncIterator[seam.Page]:
        for breakdown in ("skill", *self.breakdowns):
            async for rows in _pages(self.reader, day, BREAKDOWNS[breakdown], self.page_limit):
                yield seam.Page(rows, (day, breakdown))

    def normalise(self, item: Any, page: seam.Page) -> dict[str, Any] | seam.Quarantine | None:
        day, breakdown = page.meta
        verdict = normalise_row(
            item, org_id=self.org_id, day=day, breakdown=breakdown, ctx=self.ctx
        )
        if verdict.quarantine is not None:
            return seam.Quarantine(_event_id(day, breakdown, item), verdict.quarantine)
        return verdict.row

    def loader(self, conn: Connection) -> _DayLoader:
        return _DayLoader(conn, self.org_id, self._steps[-1][0], self._direct)


def result_of(run: seam.SourceRun) -> AnalyticsResult:
    """A seam run of the skills analytics as the CLI and the tests read it."""
    source = run.of
    return AnalyticsResult(
        run.org_id,
        days=source.days if isinstance(source, AnalyticsSource) else 0,
        pages=run.pages,
        inserted=run.inserted,
        revised=run.updated,
        unchanged=run.unchanged,
        quarantined=run.quarantined,
        not_ours=run.not_ours,
        latest_available_day=run.recorded.get("latest_available_day"),
        error=run.error,
    )


async def ingest_org(
    engine: Engine,
    reader: AnalyticsReader,
    org_id: str,
    *,
    window_days: int = 7,
    backfill_days: int = 30,
    breakdowns: tuple[str, ...] = ("user", "rbac_group"),
    today: dt.date | None = None,
    page_limit: int = PAGE_LIMIT,
) -> AnalyticsResult:
    """Read the days `days_to_read` names for `org_id` into `skill_usage_daily` (one run of
    `AnalyticsSource` through the seam)."""
    with Session(engine) as session:
        ctx = UsageContext.load(session, org_id)
    source = AnalyticsSource(
        reader,
        org_id,
        ctx,
        window_days=window_days,
        backfill_days=backfill_days,
        breakdowns=breakdowns,
        today=today,
        page_limit=page_limit,
    )
    return result_of(await seam.run(engine, source, org_id))


async def _pages(
    reader: AnalyticsReader, day: dt.date, group_by: str | None, limit: int
) -> AsyncIterator[list[dict[str, Any]]]:
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = await reader.page(day, group_by, cursor, limit)
        yield page.rows
        if not page.next_page:
            return
        if page.next_page in seen:  # a cursor that loops would never end the day
            raise ValueError(f"the analytics of {day} repeat the page cursor {page.next_page!r}")
        seen.add(page.next_page)
        cursor = page.next_page
