"""The Compliance activity feed into `org_activity` (issue 16, docs/interfaces.md section 6).

`GET /v1/compliance/activities` is newest first: `after_id` pages back in time, `before_id`
forward. The feed is a telemetry source of the seam (`telemetry/seam.py`: `FeedSource` supplies
the page read, the normaliser and the row loader). Each run of one organisation:

- first run: the newest page is stored and its newest id becomes the checkpoint
  (`telemetry_source.cursor`); its oldest id is where the backfill goes on, back in time
  (`backfill_cursor`), until the feed ends or activities are older than `backfill_days`;
- every run: the backfill goes on if unfinished, then the feed is paged forward from the
  checkpoint (`before_id`), page by page, each page's new activities and the new checkpoint in
  ONE transaction, with the checkpoint row locked and compared (two replicas cannot move it
  backwards); a crash loses nothing and the activity id (primary key) stores nothing twice;
- then the `SETTLE_PAGE` activities just before the checkpoint are read again: one that became
  queryable late (the feed promises "within about a minute") with an id before the checkpoint
  is stored then.

Only skill and plugin lifecycle types are asked for (`activity_types[]`), and each is read by
the fields the Compliance API reference documents for it (`READINGS`; docs/real-api.md section
3): a plugin activity names `plugin_id`/`plugin_name`, `plugin_installation_preference_updated`
only the plugin's name (and marketplace, group, action, preference), a Skills API version
activity only `skill_id` and `version` (its name comes from `publication`).

An activity that changes one of our plugins or skills (deleted, replaced, updated, an
installation preference changed) queues a forced publish job for its tenant in the same
transaction, unless one is already queued (`jobs.enqueue_once`: its dedupe key), so the
publisher repairs it at once instead of at the hourly drift check; unless it is our own
write. Ours are told apart by the API key that made them, not by the actor's type: any admin
key of the organisation writes as an `api_actor`. Our key ids (`OurKeys`) are learnt from the
Plugins API: the `created_by` of the plugin versions `publication` records as ours (the SDK's
`BetaPluginAPIActor`: "in the same form the Compliance API activity feed uses"). The Skills API
says no creator, so a `platform_skill_version_created` of the very version `publication`
records is ours, and its key with it. A write by a key not (yet) known as ours is taken for
drift: at worst a repair that finds nothing to change.
An activity that does not fit (no id, no type, no time) goes to `telemetry_quarantine`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from cachetools import LRUCache
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from claresia_sync import naming
from claresia_sync.api.client import ActivityPage, OrgClient
from claresia_sync.api.connect import TenantConnection, open_client
from claresia_sync.api.errors import UnexpectedResponseError
from claresia_sync.api.sdk import SdkCaller, SdkFailure
from claresia_sync.errors import one_line
from claresia_sync.publish import jobs
from claresia_sync.publish.targets import CLAUDE_ENTERPRISE_KIND
from claresia_sync.publish.targets.base import TargetError
from claresia_sync.telemetry import seam, sources
from claresia_sync.telemetry.analytics import UsageContext
from claresia_sync.telemetry.analytics_reader import connections_offering

log = logging.getLogger(__name__)

SOURCE = sources.ACTIVITY_FEED
ACTIVITY_TYPES = (
    "claude_skill_created",
    "claude_skill_deleted",
    "claude_skill_replaced",
    "claude_skill_enabled",
    "claude_skill_disabled",
    "claude_plugin_created",
    "claude_plugin_updated",
    "claude_plugin_replaced",
    "claude_plugin_deleted",
    "plugin_installation_preference_updated",
    "platform_skill_version_created",
    "platform_skill_version_deleted",
)
# What changes a published plugin or skill (created/enabled ones are not ours to undo).
DRIFT_TYPES = frozenset(
    {
        "claude_skill_deleted",
        "claude_skill_replaced",
        "claude_skill_disabled",
        "claude_plugin_updated",
        "claude_plugin_replaced",
        "claude_plugin_deleted",
        "plugin_installation_preference_updated",
        "platform_skill_version_created",
        "platform_skill_version_deleted",
    }
)
SETTLE_PAGE = 100


@dataclass(frozen=True)
class Reading:
    """Which documented fields of a type name its subject: its remote id and its name."""

    id_field: str | None
    name_field: str | None


_PLUGIN, _SKILL = Reading("plugin_id", "plugin_name"), Reading("skill_id", "skill_name")
READINGS: dict[str, Reading] = {
    **{t: _SKILL for t in ACTIVITY_TYPES if t.startswith("claude_skill_")},
    **{t: _PLUGIN for t in ACTIVITY_TYPES if t.startswith("claude_plugin_")},
    "plugin_installation_preference_updated": Reading(None, "plugin_name"),
    "platform_skill_version_created": Reading("skill_id", None),
    "platform_skill_version_deleted": Reading("skill_id", None),
}
# The field holding the acting API key's id, per actor type; the id of other actors.
KEY_FIELDS = {"api_actor": "api_key_id", "admin_api_key_actor": "admin_api_key_id"}
ID_FIELDS = {**KEY_FIELDS, "user_actor": "user_id", "service_account_actor": "service_account_id"}


@dataclass
class ActivityResult:
    org_id: str
    pages: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    repairs: list[int] = field(default_factory=list)
    """Publish jobs queued for drift."""
    checkpoint: str | None = None
    backfilled: bool = False
    error: str | None = None


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


@dataclass(frozen=True)
class _Row:
    values: dict[str, Any]
    drift_tenant: str | None
    """The root tenant to repair, if this activity changed one of ours behind our back."""


@dataclass
class Published:
    """What `publication` records as ours: names and recorded versions by remote id."""

    names: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Published:
        found = cls()
        for remote, name, version in session.execute(_PUBLISHED):
            found.names[remote] = name
            found.ids.setdefault(name, remote)
            if version:
                found.versions[remote] = version
        return found


_PUBLISHED = text(
    "SELECT remote_skill_id, published_name, remote_version FROM publication "
    "WHERE remote_skill_id <> '' ORDER BY published_at NULLS FIRST, id"
)


def _text(raw: Mapping[str, Any], name: str | None) -> str | None:
    value = raw.get(name) if name else None
    return value if isinstance(value, str) and value else None


def actor_key(actor: Mapping[str, Any]) -> str | None:
    """The id of the API key an activity was made with (any admin key), or None (a person)."""
    kind = actor.get("type")
    return _text(actor, KEY_FIELDS.get(kind)) if isinstance(kind, str) else None


def normalise_activity(
    raw: Mapping[str, Any],
    org_id: str,
    ctx: UsageContext,
    published: Published,
    our_keys: set[str],
) -> _Row | str:
    """An activity as an `org_activity` row, or why it is quarantined. A Skills API version
    activity of the version `publication` records adds its key to `our_keys`."""
    activity_id, kind = raw.get("id"), raw.get("type")
    created = _parse_time(raw.get("created_at"))
    if not isinstance(activity_id, str) or not activity_id:
        return "malformed: id missing or not a string"
    if not isinstance(kind, str) or not kind:
        return "malformed: type missing or not a string"
    if created is None:
        return f"malformed: created_at {raw.get('created_at')!r} is not an ISO time with a zone"
    actor = raw.get("actor")
    actor = actor if isinstance(actor, Mapping) else {}
    actor_type = actor.get("type") if isinstance(actor.get("type"), str) else None
    reading = READINGS.get(kind, Reading(None, None))
    subject_id, name = _text(raw, reading.id_field), _text(raw, reading.name_field)
    if name is None and subject_id is not None:
        name = published.names.get(subject_id)  # a version activity names only the id
    if subject_id is None and name is not None:
        subject_id = published.ids.get(name)  # a preference activity names only the plugin
    ref = ctx.skills.skill_for(name) if name and naming.is_claresia_name(name) else None
    tenant = ref.owner_tenant if ref else None
    key = actor_key(actor)
    if (
        kind == "platform_skill_version_created"
        and subject_id is not None
        and _text(raw, "version") == published.versions.get(subject_id)
        and key is not None
    ):
        our_keys.add(key)  # the version we recorded: uploaded with our key
    drift = None
    if tenant is not None and kind in DRIFT_TYPES and (key is None or key not in our_keys):
        drift = ctx.parents.get(tenant) or tenant
    actor_id = _text(actor, ID_FIELDS.get(actor_type or ""))
    if not ctx.skills.settings.store_emails and "email_address" in actor:
        raw = {**raw, "actor": {k: v for k, v in actor.items() if k != "email_address"}}
    values = {
        "activity_id": activity_id,
        "org_id": org_id,
        "activity_type": kind,
        "created_at": created,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "subject_id": subject_id,
        "subject_name": name,
        "tenant_slug": tenant,
        "skill_id": ref.skill_id if ref else None,
        "repair_job_id": None,
        "raw": orjson.dumps(raw).decode(),
    }
    return _Row(values, drift)


_EXISTING = text("SELECT activity_id FROM org_activity WHERE activity_id = ANY(:ids)")
_INSERT = text("""
INSERT INTO org_activity (activity_id, org_id, activity_type, created_at, actor_type, actor_id,
                          subject_id, subject_name, tenant_slug, skill_id, repair_job_id, raw)
VALUES (:activity_id, :org_id, :activity_type, :created_at, :actor_type, :actor_id,
        :subject_id, :subject_name, :tenant_slug, :skill_id, :repair_job_id, CAST(:raw AS jsonb))
ON CONFLICT (activity_id) DO NOTHING
""")


class _Loader:
    """The feed's row loader: new activities (the activity id absorbs those stored before) and
    the repair jobs of those that changed one of ours, in the step's transaction."""

    def __init__(self, conn: Connection, feed: FeedSource) -> None:
        self.conn, self.feed, self.inserted = conn, feed, 0

    def add(self, rows: list[_Row]) -> None:
        ids = [r.values["activity_id"] for r in rows]
        existing = set(self.conn.execute(_EXISTING, {"ids": ids}).scalars()) if ids else set()
        new = {r.values["activity_id"]: r for r in rows if r.values["activity_id"] not in existing}
        self.feed.repairs += _queue_repairs(self.conn, [r for r in new.values() if r.drift_tenant])
        if new:
            self.conn.execute(_INSERT, [r.values for r in new.values()])
        self.inserted += len(new)

    def finish(self) -> seam.Loaded:
        return seam.Loaded(self.inserted)


def _queue_repairs(conn: Connection, drifted: list[_Row]) -> list[int]:
    """One forced publish job per drifted root tenant (an already queued one is reused); the
    activities record the job that repairs them."""
    jobs_by_tenant: dict[str, int] = {}
    queued: list[int] = []
    for row in drifted:
        tenant = row.drift_tenant
        assert tenant is not None
        if tenant not in jobs_by_tenant:
            with Session(bind=conn) as session:  # in this page's transaction
                job_id, new = jobs.enqueue_once(session, tenant, force=True)
            if new:
                queued.append(job_id)
                log.info(
                    "activity %s (%s by %s) changed %s behind our back: publish job %s queued",
                    row.values["activity_id"],
                    row.values["activity_type"],
                    row.values["actor_type"],
                    row.values["subject_name"],
                    job_id,
                )
            jobs_by_tenant[tenant] = job_id
        row.values["repair_job_id"] = jobs_by_tenant[tenant]
    return queued


# Who uploaded a plugin version: the id of the API key, or None (a person, or not known).
Uploader = Callable[[str, str], Awaitable[str | None]]
# The newest plugin versions recorded as ours per root tenant publishing into the organisation
# (a few, so one plugin deleted since does not hide the key).
_RECORDED = text("""
SELECT remote_skill_id, remote_version FROM (
    SELECT p.remote_skill_id, p.remote_version,
           row_number() OVER (PARTITION BY coalesce(t.parent_id, t.id)
                              ORDER BY p.published_at DESC NULLS LAST, p.id DESC) AS n
      FROM publication p
      JOIN tenant t ON t.id = p.tenant_id
      JOIN tenant_target tt ON tt.tenant_id = coalesce(t.parent_id, t.id) AND tt.kind = :kind
     WHERE tt.org_id = :org AND p.target = :kind
       AND p.remote_skill_id <> '' AND p.remote_version IS NOT NULL
) recent WHERE n <= 3
""")
# Keys already learnt from stored Skills API activities of versions recorded as ours.
_LEARNT = text("""
SELECT DISTINCT a.actor_id FROM org_activity a
  JOIN publication p ON p.remote_skill_id = a.subject_id AND p.remote_version = a.raw->>'version'
 WHERE a.org_id = :org AND a.activity_type = 'platform_skill_version_created'
   AND a.actor_type = ANY(:key_actors) AND a.actor_id IS NOT NULL
""")


async def our_keys(engine: Engine, org_id: str, uploader: Uploader | None) -> set[str]:
    """The API key ids claresia-sync is known to write with in `org_id` (see the module doc)."""

    def read() -> tuple[list[tuple[str, str]], set[str]]:
        with engine.connect() as conn:
            plugins = {"org": org_id, "kind": CLAUDE_ENTERPRISE_KIND.name}
            recorded = [
                (r.remote_skill_id, r.remote_version) for r in conn.execute(_RECORDED, plugins)
            ]
            learnt = set(
                conn.execute(_LEARNT, {"org": org_id, "key_actors": list(KEY_FIELDS)}).scalars()
            )
        return recorded, learnt

    recorded, keys = await asyncio.to_thread(read)
    for plugin_id, version in recorded:
        if uploader is None:
            break
        try:
            key = await uploader(plugin_id, version)
        except TargetError as exc:  # not learnt this run: our writes may look like drift
            log.warning("activity feed of %s: our key not learnt: %s", org_id, one_line(exc))
            break
        if key is not None:
            keys.add(key)
    return keys


class FeedSource:
    """The activity feed of one organisation as a telemetry source (`seam.Source`): backfill
    until done, then forward from the checkpoint, then the settle page (see the module doc)."""

    name = SOURCE

    def __init__(
        self,
        client: OrgClient,
        org_id: str,
        ctx: UsageContext,
        published: Published,
        keys: set[str],
        *,
        horizon: dt.datetime,
        page_size: int,
    ) -> None:
        self.client, self.org_id, self.ctx = client, org_id, ctx
        self.published, self.keys = published, keys
        self.horizon, self.page_size = horizon, page_size
        self.repairs: list[int] = []
        self.backfilled = False
        self._forward: tuple[seam.Step, bool] | None = None  # the last forward step, has_more
        self._forward_done = self._settled = False

    async def _page(self, **cursor: Any) -> ActivityPage:
        limit = cursor.pop("limit", self.page_size)
        return await self.client.compliance_activities(
            limit=limit, activity_types=ACTIVITY_TYPES, **cursor
        )

    async def next_step(self, state: sources.Checkpoint) -> seam.Step | None:
        if state.cursor is None:  # first run: the newest page sets both ends
            if self._settled:
                return None
            self._settled = True  # an empty feed: nothing more this run
            page = await self._page()
            if not page.data:
                self.backfilled = True
                return None
            ended = not page.has_more or _older_than(page, self.horizon)
            self._settled = False
            return _step(
                page,
                cursor=page.first_id,
                backfill_cursor=None if ended else page.last_id,
                newest_data_at=_newest_time(page),
            )
        if state.backfill_cursor:  # back in time
            page = await self._page(after_id=state.backfill_cursor)
            ended = not page.data or not page.has_more or _older_than(page, self.horizon)
            return _step(page, backfill_cursor=None if ended else page.last_id)
        self.backfilled = True
        if self._forward is not None and self._forward[0].committed and not self._forward[1]:
            self._forward_done = True
        if not self._forward_done:  # forward from the newest stored
            page = await self._page(before_id=state.cursor)
            if page.data:
                if page.first_id is None or page.first_id <= state.cursor:
                    raise UnexpectedResponseError(
                        f"the feed's page before {state.cursor} does not move forward "
                        f"(first_id {page.first_id!r})",
                        status=200,
                        route="GET /v1/compliance/activities",
                    )
                step = _step(page, cursor=page.first_id, newest_data_at=_newest_time(page))
                self._forward = (step, page.has_more)
                return step
            self._forward_done = True
        if not self._settled:
            # An activity becomes queryable up to about a minute after it happened, so one may
            # appear behind the checkpoint: the newest ones just before it are read again (the
            # activity id absorbs those already stored; the checkpoint does not move).
            self._settled = True
            return _step(await self._page(after_id=state.cursor, limit=SETTLE_PAGE), final=True)
        return None

    def normalise(self, item: Any, page: seam.Page) -> _Row | seam.Quarantine:
        verdict = normalise_activity(item, self.org_id, self.ctx, self.published, self.keys)
        if isinstance(verdict, _Row):
            return verdict
        ident = item.get("id") if isinstance(item, Mapping) else None
        return seam.Quarantine(f"activity:{ident}" if isinstance(ident, str) else None, verdict)

    def loader(self, conn: Connection) -> _Loader:
        return _Loader(conn, self)


def _step(page: ActivityPage, *, final: bool = False, **advance: object) -> seam.Step:
    """One page of oldest-first processing (a key learnt applies to what follows)."""
    return seam.Step(
        seam.one_page(seam.Page(list(reversed(page.data)))), advance=advance, final=final
    )


def _newest_time(page: ActivityPage) -> dt.datetime | None:
    return _parse_time(page.data[0].get("created_at")) if page.data else None


async def open_feed(
    engine: Engine,
    client: OrgClient,
    org_id: str,
    *,
    uploader: Uploader | None = None,
    backfill_days: int = 30,
    page_size: int = 1000,
    now: dt.datetime | None = None,
) -> FeedSource:
    """The feed of `org_id` ready to run: what attributing needs, and our key ids."""
    horizon = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=backfill_days)
    with Session(engine) as session:
        ctx = UsageContext.load(session, org_id)
        published = Published.load(session)
    keys = await our_keys(engine, org_id, uploader)
    return FeedSource(client, org_id, ctx, published, keys, horizon=horizon, page_size=page_size)


async def ingest_feed(
    engine: Engine,
    client: OrgClient,
    org_id: str,
    *,
    uploader: Uploader | None = None,
    backfill_days: int = 30,
    page_size: int = 1000,
    max_pages: int | None = None,
    now: dt.datetime | None = None,
) -> ActivityResult:
    """One run of the feed of `org_id` through the seam; `uploader` says who uploaded a plugin
    version (our key ids are learnt from it)."""
    feed = await open_feed(
        engine,
        client,
        org_id,
        uploader=uploader,
        backfill_days=backfill_days,
        page_size=page_size,
        now=now,
    )
    done = await seam.run(engine, feed, org_id, max_steps=max_pages)
    return await asyncio.to_thread(_result, engine, feed, done)


def _result(engine: Engine, feed: FeedSource, done: seam.SourceRun) -> ActivityResult:
    state = sources.read(engine, SOURCE, feed.org_id)
    return ActivityResult(
        done.org_id,
        pages=done.pages,
        inserted=done.inserted,
        duplicates=done.duplicates,
        quarantined=done.quarantined,
        repairs=feed.repairs,
        checkpoint=state.cursor,
        backfilled=feed.backfilled or (state.cursor is not None and not state.backfill_cursor),
        error=done.error,
    )


def _older_than(page: ActivityPage, horizon: dt.datetime) -> bool:
    oldest = _parse_time(page.data[-1].get("created_at")) if page.data else None
    return oldest is not None and oldest < horizon


@asynccontextmanager
async def _open(
    engine: Engine, conn: TenantConnection, options: seam.RunOptions
) -> AsyncIterator[FeedSource]:
    client = open_client(conn, http=options.http, counter=options.counter)
    caller = SdkCaller(conn, http=options.http, counter=options.counter, hints=_hints)
    try:
        async with client:
            yield await open_feed(
                engine,
                client,
                conn.org_id,
                uploader=PluginUploaders(caller),
                backfill_days=options.sources.activity_backfill_days,
            )
    finally:
        await caller.aclose()


def _connections(session: Session) -> list[TenantConnection]:
    """The targets whose kind offers the feed (claude-enterprise)."""
    return connections_offering(session, SOURCE)


KIND = seam.register(
    seam.SourceKind(SOURCE, _connections, _open, interval_setting="activity_interval")
)


async def ingest_connection(
    engine: Engine, conn: TenantConnection, options: seam.RunOptions | None = None
) -> seam.SourceRun:
    """One feed run of one claude-enterprise organisation (`seam.ingest_connection`)."""
    return await seam.ingest_connection(engine, KIND, conn, options)


def _hints(status: int, code: str | None, message: str) -> str:
    if status == 403:
        return "the Enterprise admin key needs the scope read:plugins: make one with it"
    return "the next run asks again"


R_VERSION = "/v1/organizations/plugins/{plugin_id}/versions/{version}"
# (plugin id, version id) -> the uploading key's id or None: a version never changes uploader.
_UPLOADERS: LRUCache[tuple[str, str], str | None] = LRUCache(maxsize=4096)


class PluginUploaders:
    """Who uploaded a plugin version: its `created_by` (`GET .../versions/{version}`), an
    `api_actor`'s `api_key_id` (the SDK's BetaPluginAPIActor, "in the same form the Compliance
    API activity feed uses for it"). Remembered per process; a version gone (404) is None."""

    def __init__(self, caller: SdkCaller) -> None:
        self.caller = caller

    async def __call__(self, plugin_id: str, version: str) -> str | None:
        if (plugin_id, version) in _UPLOADERS:
            return _UPLOADERS[(plugin_id, version)]
        versions = self.caller.sdk.beta.organization.plugins.versions
        what = f"GET /v1/organizations/plugins/{plugin_id}/versions/{version}"
        try:
            found = await self.caller.call(
                "GET", R_VERSION, what, lambda: versions.retrieve(version, plugin_id=plugin_id)
            )
        except SdkFailure as exc:
            if exc.status != 404:
                raise
            _UPLOADERS[(plugin_id, version)] = None
            return None
        by = found.created_by
        key = by.api_key_id if by is not None and by.type == "api_actor" else None
        _UPLOADERS[(plugin_id, version)] = key
        return key
