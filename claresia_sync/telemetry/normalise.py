"""`fn_telemetry_event`: the one place that turns a raw audit event into a telemetry row, a
quarantine verdict, or a counted skip (docs/interfaces.md section 4).

Verdicts, in the order they are decided:
- `Skipped`: another event type, or a skill outside the `claresia-` namespace (counted);
- `Quarantined`: malformed (missing id / created_at, wrong types, unparseable values, values the
  table cannot hold) or not attributable (unknown workspace, unknown Claresia skill), with why;
- `TelemetryRow`: a row of `telemetry_event`, keyed by column name.

Attribution needs an `AttributionContext`, loaded once per organisation and poll: workspace ->
tenant / sub-tenant / parent, published name -> catalog skill (the publication table first, the
naming rule of `claresia_sync.naming` for names it does not hold yet), and the link template.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, lru_cache
from hashlib import sha256
from string import Formatter
from typing import Any, NamedTuple

import jinja2
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from claresia_sync import naming
from claresia_sync.api.models import AuditEvent
from claresia_sync.db.models import CatalogSkill, Publication, Tenant, WorkspaceMapping
from claresia_sync.telemetry.settings import TelemetrySettings

EVENT_STATUS = {"skill.invoked": "succeeded", "skill.failed": "failed"}
INT4_MAX = 2**31 - 1
COST_MAX = Decimal("99999999.999999")  # numeric(14, 6)
_ULID_TAIL = re.compile(r"^evt_([0-9A-Za-z]{1,60})$")
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")  # what ends the emphasis or starts a link or tag


@dataclass(frozen=True)
class SkillRef:
    skill_id: str
    remote_skill_id: str | None = None
    owner_tenant: str | None = None
    """The tenant whose published name this is: audit events are attributed by workspace, but
    skills analytics and the activity feed (issue 16) have only the name."""


@dataclass(frozen=True)
class Owner:
    tenant_slug: str
    parent_tenant_slug: str | None

    @property
    def root(self) -> str:
        return self.parent_tenant_slug or self.tenant_slug


@dataclass
class AttributionContext:
    """What `fn_telemetry_event` needs to know about one organisation (load with `load`)."""

    org_id: str
    workspaces: dict[str, Owner]
    published: dict[str, SkillRef] = field(default_factory=dict)
    tenant_slugs: frozenset[str] = frozenset()
    titles: dict[str, str] = field(default_factory=dict)
    settings: TelemetrySettings = field(default_factory=TelemetrySettings)
    _by_name: dict[str, SkillRef | None] = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls, session: Session, org_id: str, settings: TelemetrySettings | None = None
    ) -> AttributionContext:
        parent = aliased(Tenant)
        workspaces = {
            ws: Owner(slug, parent_slug)
            for ws, slug, parent_slug in session.execute(
                select(WorkspaceMapping.workspace_id, Tenant.slug, parent.slug)
                .join(Tenant, Tenant.id == WorkspaceMapping.tenant_id)
                .outerjoin(parent, parent.id == Tenant.parent_id)
                .where(WorkspaceMapping.org_id == org_id)
            )
        }
        published = {
            name: SkillRef(skill_id, remote, slug)
            for name, skill_id, remote, slug in session.execute(
                select(
                    Publication.published_name,
                    Publication.skill_id,
                    Publication.remote_skill_id,
                    Tenant.slug,
                ).join(Tenant, Tenant.id == Publication.tenant_id)
            )
        }
        return cls(
            org_id=org_id,
            workspaces=workspaces,
            published=published,
            tenant_slugs=frozenset(session.scalars(select(Tenant.slug))),
            titles={
                k: v for k, v in session.execute(select(CatalogSkill.skill_id, CatalogSkill.title))
            },
            settings=settings or TelemetrySettings(),
        )

    def skill_for(self, name: str) -> SkillRef | None:
        """The catalog skill of a published name: the publication table, else the naming rule
        (a shortened name with a hash suffix is matched against the catalog's skill ids).
        Where the rule allows several readings, one naming a catalog skill wins, then the
        longest tenant slug."""
        if name in self._by_name:
            return self._by_name[name]
        found = self.published.get(name)
        if found is None:
            rest = name.removeprefix(naming.PREFIX)
            tenants = [t for t in self.tenant_slugs if rest.startswith(t + "-")]
            hashed = len(name) >= naming.MAX_NAME - 8
            matches = []
            for tenant in sorted(tenants, key=len, reverse=True):
                tail = rest[len(tenant) + 1 :]
                for skill_id in [tail, *self.titles] if hashed else [tail]:
                    try:
                        if naming.published_name(tenant, skill_id) == name:
                            matches.append(SkillRef(skill_id, owner_tenant=tenant))
                    except naming.NamingError:
                        continue
            catalogued = [m for m in matches if m.skill_id in self.titles]
            found = (catalogued or matches)[0] if matches else None
        self._by_name[name] = found
        return found

    def title(self, skill_id: str) -> str:
        return self.titles.get(skill_id) or skill_id.replace("-", " ").title()


@dataclass(frozen=True)
class TelemetryRow:
    values: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.values["event_id"])


@dataclass(frozen=True)
class Quarantined:
    event_id: str | None
    reason: str
    raw: Any


@dataclass(frozen=True)
class Skipped:
    event_id: str | None
    reason: str
    """`other_type` or `outside_namespace`."""


Verdict = TelemetryRow | Quarantined | Skipped


class _Bad(Exception):
    """A malformed event; the message is the quarantine reason."""


def record_id(event_id: str) -> str:
    """`rec_` + the ULID part of `evt_<ULID>` (a redelivered event maps to the same record);
    other id shapes get a stable hash instead."""
    tail = event_id[4:]
    if 0 < len(tail) <= 60 and event_id.startswith("evt_") and tail.isascii() and tail.isalnum():
        return "rec_" + tail  # what the pattern takes, without the regex engine per event
    match = _ULID_TAIL.match(event_id)
    if match:
        return f"rec_{match.group(1)}"
    return "rec_h" + sha256(event_id.encode()).hexdigest()[:32]


def _md(value: object) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


@cache
def _footer_template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("claresia_sync.telemetry", "templates"),
        autoescape=False,  # Markdown, not HTML: the `md` filter escapes what Markdown reads
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["md"] = _md
    return env.get_template("footer.md.j2")


def format_cost(cost: Decimal | None) -> str | None:
    """$0.04 as in seeds/002; sub-cent costs keep 4 decimals rather than showing $0.00.
    Halves round up, as PostgreSQL's `round` does in the analysts' view (migration 0014)."""
    if cost is None:
        return None
    places = _CENT if cost >= _CENT or cost == 0 else _TEN_THOUSANDTH
    return f"${cost.quantize(places, ROUND_HALF_UP)}"


def format_duration(ms: int | None) -> str | None:
    """2.3s, or 1m 5s from a minute on (tenths rounded half up, as in migration 0014)."""
    if ms is None:
        return None
    if ms < 60_000:
        tenths = (ms + 50) // 100  # in integers: a Decimal per event was a third of the footer
        text = _TENTHS.get(tenths)  # at most 600 texts, made once each
        if text is None:
            text = _TENTHS[tenths] = f"{tenths // 10}.{tenths % 10}s"
        return text
    return f"{ms // 60_000}m {ms % 60_000 // 1000}s"


_TENTHS: dict[int, str] = {}


_CENT, _TEN_THOUSANDTH = Decimal("0.01"), Decimal("0.0001")


def render_footer(
    *,
    title: str,
    failed: bool,
    error_type: str | None,
    cost: Decimal | None,
    duration_ms: int | None,
    record_url: str,
) -> str:
    """The footer from `templates/footer.md.j2`. The template is rendered once per shape (title,
    outcome, which parts are present) with markers, which are then replaced: the same text as a
    full render at a fraction of the cost per event (the poller renders thousands a second)."""
    return _footer(
        title, failed, error_type, format_cost(cost), format_duration(duration_ms), record_url
    )


def _footer(
    title: str,
    failed: bool,
    error_type: str | None,
    cost_text: str | None,
    duration_text: str | None,
    record_url: str,
) -> str:
    shape = _footer_shape(
        title, failed, error_type or "error", cost_text is not None, duration_text is not None
    )
    out = shape.replace(_URL, record_url)
    if cost_text is not None:
        out = out.replace(_COST, cost_text)
    if duration_text is not None:
        out = out.replace(_DURATION, duration_text)
    return out


_COST, _DURATION, _URL = "\x01cost\x01", "\x01duration\x01", "\x01url\x01"


@lru_cache(maxsize=4096)
def _footer_shape(
    title: str, failed: bool, error_type: str, has_cost: bool, has_duration: bool
) -> str:
    return _footer_template().render(
        title=title,
        failed=failed,
        error_type=error_type,
        cost=_COST if has_cost else None,
        duration=_DURATION if has_duration else None,
        record_url=_URL,
    )


# What depends only on a value the audit log repeats (a cost, a link's tenants),
# made once per value rather than once per event: each was a microsecond or two of an event's
# ~15 (bench/RESULTS.md, "Session 8: audit ingest"). Bounded: emptied when full.
_MEMO_MAX = 4096
_COST_TEXTS: dict[str, tuple[Decimal, str]] = {}
_LINKS: dict[tuple[str, str, str], tuple[str, str] | None] = {}
_LINK_FIELDS = frozenset({"parent_tenant", "tenant", "record_id"})
_MARK = "\x00"


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value


def _cost_texts(value: str) -> tuple[Decimal, str]:
    """`_cost` of a given cost and its footer text; a bad cost is not remembered (it raises)."""
    found = _COST_TEXTS.get(value)
    if found is None:
        cost = _cost(value)
        text = format_cost(cost)
        assert cost is not None and text is not None
        found = (cost, text)
        _remember(_COST_TEXTS, value, found)
    return found


def record_link(template: str, parent_tenant: str, tenant: str, rec: str) -> str:
    """The "View record" link: `template` filled in. Where the record id goes in as it is
    (one plain `{record_id}`, every field a plain placeholder), the text around it is made once
    per tenant and the id put between; any other template is formatted in full."""
    key = (template, parent_tenant, tenant)
    around = _LINKS.get(key)
    if around is None and key not in _LINKS:
        around = _link_around(template, parent_tenant, tenant)
        _remember(_LINKS, key, around)
    if around is None:
        return template.format(parent_tenant=parent_tenant, tenant=tenant, record_id=rec)
    return around[0] + rec + around[1]


def _link_around(template: str, parent_tenant: str, tenant: str) -> tuple[str, str] | None:
    fields = [
        (name, spec, conv)
        for _, name, spec, conv in Formatter().parse(template)
        if name is not None
    ]
    if not all(name in _LINK_FIELDS and not spec and conv is None for name, spec, conv in fields):
        return None
    if [name for name, _, _ in fields].count("record_id") != 1:
        return None
    marked = template.format(parent_tenant=parent_tenant, tenant=tenant, record_id=_MARK)
    if marked.count(_MARK) != 1:
        return None
    head, _, tail = marked.partition(_MARK)
    return head, tail


def _timestamp(value: str | None) -> dt.datetime:
    if not value:
        raise _Bad("created_at: missing")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"created_at: {value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise _Bad(f"created_at: {value!r} has no time zone")
    return parsed


def _count(name: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= INT4_MAX:
        raise _Bad(f"{name}: {value} is out of range (0..{INT4_MAX})")


def _cost(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        cost = Decimal(value.strip())
    except InvalidOperation:
        raise _Bad(f"invocation.cost_usd: {value!r} is not a decimal number") from None
    if not cost.is_finite() or not Decimal(0) <= cost <= COST_MAX:
        raise _Bad(f"invocation.cost_usd: {value!r} is out of range (0..{COST_MAX})")
    return cost


def _storable_json(raw: Any) -> str | None:
    """`raw` as JSON text for jsonb, or None if PostgreSQL cannot hold it (NUL characters, lone
    surrogates, integers beyond 64 bits: quarantined instead). orjson: the stdlib encoder was
    the largest cost per event. Non-finite floats, which are not JSON, come out as null."""
    try:
        data = orjson.dumps(raw)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if b"\\" in data and b"\\u0000" in data:  # one memchr: most events have no escape
        return None
    return data.decode()


def storable_raw(raw: Any) -> Any:
    """A copy of `raw` that jsonb accepts, for quarantine: NULs and lone surrogates become
    U+FFFD, non-finite floats null."""
    if isinstance(raw, str):
        return _UNSTORABLE_CHARS.sub("\ufffd", raw)
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, dict):
        return {storable_raw(str(k)): storable_raw(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return [storable_raw(v) for v in raw]
    return raw


def without_email(raw: Any) -> Any:
    """`raw` without `actor.email` (docs/interfaces.md section 4: emails are not stored unless
    configured); `raw` itself when it has none. The event is not changed: a shallow copy."""
    actor = raw.get("actor") if isinstance(raw, dict) else None
    if not isinstance(actor, dict) or "email" not in actor:
        return raw
    kept, kept_actor = dict(raw), dict(actor)  # copies in place of comprehensions: a third
    del kept_actor["email"]
    kept["actor"] = kept_actor
    return kept


def fn_telemetry_event(event: AuditEvent | Mapping[str, Any], ctx: AttributionContext) -> Verdict:
    """Normalise one raw audit event (docs/interfaces.md section 4) for the organisation of `ctx`.

    What is stored of the event (the row's `raw`, the quarantine's raw JSON) has no
    `actor.email` unless `ctx.settings.store_emails`."""
    if not isinstance(event, AuditEvent):
        event = AuditEvent.from_raw(event)
    raw = event.raw
    kept = raw if ctx.settings.store_emails else without_email(raw)
    kind = raw.get("type")
    event_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else None
    if isinstance(kind, str) and kind not in EVENT_STATUS:
        return Skipped(event_id, "other_type")
    skill_name = raw.get("skill", {}).get("name") if isinstance(raw.get("skill"), dict) else None
    if isinstance(skill_name, str) and not naming.is_claresia_name(skill_name):
        return Skipped(event_id, "outside_namespace")
    try:
        if not event.is_object:
            raise _Bad(f"the event is {_a(event.served)}, not a JSON object")
        row = _row(_read(raw), ctx)
    except _Bad as bad:
        return Quarantined(event_id, str(bad), storable_raw(kept))
    text = _storable_json(kept)
    if text is None:
        return Quarantined(
            event_id,
            "the event holds NUL characters, broken Unicode or numbers that PostgreSQL cannot "
            "store (kept here with them replaced by U+FFFD or null)",
            storable_raw(kept),
        )
    row["raw"] = text
    return TelemetryRow(row)


class _Fields(NamedTuple):
    """The fields of an event that make its row (`_read`); a sub-object that is absent or
    null reads as all None."""

    id: str
    type: str
    created_at: str | None
    organization_id: str | None
    workspace_id: str | None
    skill_id: str | None
    skill_name: str | None
    skill_version: str | None
    actor_user_id: str | None
    actor_email: str | None
    invocation_id: str | None
    model: str | None
    cost_usd: str | None
    error_type: str | None
    error_message: str | None
    duration_ms: int | None
    input_tokens: int | None
    output_tokens: int | None


_NO_OBJECT: dict[str, Any] = {}
_new_tuple = tuple.__new__
_OPT_STR = frozenset({str, type(None)})
_OPT_INT = frozenset({int, type(None)})  # not bool: a bool is read by `_lax_count`
# The text fields of `_Fields` in order, then actor.type (checked, not stored), by their path.
_TEXT_NAMES = (
    "created_at",
    "organization_id",
    "workspace_id",
    "skill.id",
    "skill.name",
    "skill.version",
    "actor.user_id",
    "actor.email",
    "invocation.id",
    "invocation.model",
    "invocation.cost_usd",
    "error.type",
    "error.message",
    "actor.type",
)
_COUNT_NAMES = (
    "invocation.duration_ms",
    "invocation.usage.input_tokens",
    "invocation.usage.output_tokens",
)
# What a count given as text may be: an integer, digits grouped by `_`, a `.0` tail (as the
# audit log's own typed readers accept), around it only Unicode White_Space.
_COUNT_TEXT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?", re.ASCII)
_WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _a(value: object) -> str:
    """`value`'s JSON kind with its article, for a reason ("a string", "an array")."""
    kind = {
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "an array",
        tuple: "an array",
        dict: "an object",
        type(None): "null",
    }.get(type(value), f"a {type(value).__name__}")
    return kind


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(parent: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
    """`parent[key]` if it is an object, {} if absent or null; else the event is malformed."""
    value = parent.get(key)
    if value is None:
        return _NO_OBJECT
    if type(value) is not dict:
        raise _Bad(f"{name}: {_shown(value)} is {_a(value)}, not an object")
    return value


def _lax_count(name: str, value: Any) -> int | None:
    """A count as the audit log's typed readers take it: an integer, or one written as text
    ("12", " 0012 "), as an integral number (12.0) or as a boolean (0 or 1)."""
    if value is None or type(value) is int:
        return value
    if type(value) is bool:
        return int(value)
    if type(value) is float:
        if not math.isfinite(value) or not value.is_integer():
            raise _Bad(f"{name}: {_shown(value)} is not a whole number")
        return int(value)
    if type(value) is str:
        text = value.strip(_WHITE_SPACE)
        if _COUNT_TEXT.fullmatch(text):
            return int(text.split(".", 1)[0])
        raise _Bad(f"{name}: {_shown(value)} is not a whole number")
    raise _Bad(f"{name}: {_shown(value)} is {_a(value)}, not a whole number")


_UNSTORABLE = " (an event with no id or no type cannot be told apart from another: kept here)"


def _read(raw: Mapping[str, Any]) -> _Fields:
    """The one reading of an event's fields: each text field a string or null, each count a
    whole number (`_lax_count`), each sub-object an object or null; anything else makes the
    event malformed, the reason naming the field, its value and what it should be. Events as
    the API serves them pass the type checks of the first lines and nothing more is done."""
    ident, kind = raw.get("id"), raw.get("type")
    if type(ident) is not str or not ident:
        raise _Bad(
            f"id: missing{_UNSTORABLE}"
            if ident in (None, "")
            else f"id: {_shown(ident)} is not a string"
        )
    if type(kind) is not str or not kind:
        raise _Bad(
            f"type: missing{_UNSTORABLE}"
            if kind in (None, "")
            else f"type: {_shown(kind)} is not a string"
        )
    # An object as served is taken as it is; anything else is read by `_object`.
    actor, skill = raw.get("actor"), raw.get("skill")
    inv, error = raw.get("invocation"), raw.get("error")
    if type(actor) is not dict:
        actor = _object(raw, "actor", "actor")
    if type(skill) is not dict:
        skill = _object(raw, "skill", "skill")
    if type(inv) is not dict:
        inv = _object(raw, "invocation", "invocation")
    if type(error) is not dict:
        error = _object(raw, "error", "error")
    usage = inv.get("usage")
    if type(usage) is not dict:
        usage = _object(inv, "usage", "invocation.usage")
    texts = (
        raw.get("created_at"),
        raw.get("organization_id"),
        raw.get("workspace_id"),
        skill.get("id"),
        skill.get("name"),
        skill.get("version"),
        actor.get("user_id"),
        actor.get("email"),
        inv.get("id"),
        inv.get("model"),
        inv.get("cost_usd"),
        error.get("type"),
        error.get("message"),
    )
    counts: tuple[Any, ...] = (
        inv.get("duration_ms"),
        usage.get("input_tokens"),
        usage.get("output_tokens"),
    )
    # `issuperset` of the types as they come: no set built per event
    if not (_OPT_STR.issuperset(map(type, texts)) and type(actor.get("type")) in _OPT_STR):
        raise _Bad(  # every wrong field at once, as the operator fixes them together
            "; ".join(
                f"{name}: {_shown(value)} is {_a(value)}, not a string"
                for name, value in zip(_TEXT_NAMES, (*texts, actor.get("type")), strict=True)
                if type(value) not in _OPT_STR
            )
        )
    if not _OPT_INT.issuperset(map(type, counts)):
        counts = tuple(map(_lax_count, _COUNT_NAMES, counts))
    duration, tokens_in, tokens_out = counts
    if not (
        (duration is None or 0 <= duration <= INT4_MAX)
        and (tokens_in is None or 0 <= tokens_in <= INT4_MAX)
        and (tokens_out is None or 0 <= tokens_out <= INT4_MAX)
    ):
        for name, count in zip(_COUNT_NAMES, counts, strict=True):
            _count(name, count)  # int4 columns
    return _new_tuple(_Fields, (ident, kind, *texts, *counts))  # NamedTuple's __new__ is Python


def _row(event: _Fields, ctx: AttributionContext) -> dict[str, Any]:
    (
        ident,
        kind,
        created_at,
        organization_id,
        workspace_id,
        remote_skill_id,
        skill_name,
        skill_version,
        actor_user_id,
        actor_email,
        invocation_id,
        model,
        cost_usd,
        error_type,
        error_message,
        duration,
        tokens_in,
        tokens_out,
    ) = event  # locals once, rather than a field lookup per use
    occurred = _timestamp(created_at)
    org_id = ctx.org_id
    if organization_id is not None and organization_id != org_id:
        raise _Bad(
            f"organization_id {organization_id!r} differs from the polled organisation {org_id!r}"
        )
    if not workspace_id:
        raise _Bad("workspace_id: missing (the event cannot be attributed to a tenant)")
    owner = ctx.workspaces.get(workspace_id)
    if owner is None:
        raise _Bad(
            f"unknown workspace {workspace_id!r} of organisation {org_id}: map it to a "
            "tenant or sub-tenant in the tenant file and apply it"
        )
    if not skill_name:
        raise _Bad("skill.name: missing")
    skill = ctx.skill_for(skill_name)
    if skill is None:
        raise _Bad(
            f"skill {skill_name!r} is in the claresia- namespace but matches no "
            "publication and no known tenant"
        )
    cost, cost_text = (None, None) if cost_usd is None else _cost_texts(cost_usd)
    status = EVENT_STATUS[kind]
    rec = record_id(ident)
    tenant, parent = owner.tenant_slug, owner.parent_tenant_slug
    settings = ctx.settings
    url = record_link(settings.hub_record_url, parent or tenant, tenant, rec)
    return {
        "record_id": rec,
        "event_id": ident,
        "event_type": kind,
        "status": status,
        "occurred_at": occurred,
        "org_id": org_id,
        "workspace_id": workspace_id,
        "tenant_slug": tenant,
        "parent_tenant_slug": parent,
        "skill_id": skill.skill_id,
        "skill_name": skill_name,
        "remote_skill_id": remote_skill_id or skill.remote_skill_id,
        "skill_version": skill_version,
        "actor_user_id": actor_user_id,
        "actor_email": actor_email if settings.store_emails else None,
        "invocation_id": invocation_id,
        "model": model,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "duration_ms": duration,
        "error_type": error_type,
        "error_message": error_message,
        "footer_md": _footer(
            ctx.title(skill.skill_id),
            status == "failed",
            error_type,
            cost_text,
            format_duration(duration),
            url,
        ),
    }
