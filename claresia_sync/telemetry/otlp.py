"""Claude Code's OpenTelemetry logs as `telemetry_event` rows (issue 16, docs/interfaces.md
section 6).

An export request (`ExportLogsServiceRequest`, decoded from protobuf or from the OTLP JSON
mapping, and read through `otlp_lean`: the same message with a record's attributes as a map)
comes from one tenant (its bearer token). Of its log records:

- `claude_code.skill_activated` of a `claresia-` skill (`skill.name`, present when Claude Code
  runs with `OTEL_LOG_TOOL_DETAILS=1`; `<plugin>:<skill>` for a plugin's skill, bare otherwise:
  `published_skill`) becomes one row: tenant and catalog skill from the published name (it must
  be a skill of the token's tenant or its sub-tenants: otherwise the record is rejected and
  quarantined), the user, the prompt (`prompt.id` -> `invocation_id`);
- each `claude_code.api_request` with a `prompt.id` is a usage entry (model, tokens, cost,
  duration; `request_key` its identity), and each stored activation that names its prompt an
  activation entry: `otlp_usage` adds the usage to the prompt's, whatever export it comes in,
  and analysts see it on the prompt's first activation; it is never written onto the row;
- anything else (other events, skills outside `claresia-`, an activation without a skill name)
  is accepted and not stored (counted).

The event name is the record's `event_name` field (OTLP 1.5+), else its body
(`claude_code.skill_activated`, as Claude Code writes it), else `claude_code.` + its
`event.name` attribute.

Identity: OTLP records carry no id. A row's `event_id` is `otlp_` + a ULID made of the record's
time (milliseconds) and 80 bits of a SHA-256 over the tenant, event name, the record's time in
nanoseconds, `session.id`, `prompt.id`, `event.sequence` and the skill name: a retried export
(same records) maps to the same ids and the unique event id absorbs it; `record_id` is `rec_` +
that ULID.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from claresia_sync import naming
from claresia_sync.db.models import OrgConnection, Tenant, TenantTarget
from claresia_sync.telemetry.normalise import (
    COST_MAX,
    INT4_MAX,
    AttributionContext,
    render_footer,
    storable_raw,
)
from claresia_sync.telemetry.otlp_lean import Export, lean
from claresia_sync.telemetry.settings import TelemetrySettings

SKILL_ACTIVATED = "claude_code.skill_activated"
API_REQUEST = "claude_code.api_request"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
EMAIL_KEYS = frozenset({"user.email"})


class BadRequest(Exception):
    """The request cannot be read (its message is the 400's reason)."""


class TooLarge(Exception):
    """The body, or what it inflates to, is over the cap (413)."""


def decode(body: bytes, content_type: str, encoding: str, cap: int) -> Any:
    """The export request of a POST body (gzip or not, protobuf or JSON), as `otlp_lean`
    reads it."""
    if encoding == "gzip":
        body = _gunzip(body, cap)
    elif encoding not in ("", "identity"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported (use gzip or none)")
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        if kind == PROTOBUF:
            return Export.FromString(body)
        if kind == JSON:  # the JSON mapping names the generated classes' fields
            request = ExportLogsServiceRequest()
            json_format.Parse(body.decode("utf-8"), request, ignore_unknown_fields=True)
            return lean(request)
        else:
            raise BadRequest(
                f"Content-Type {content_type!r} is not OTLP/HTTP: use {PROTOBUF} or {JSON}"
            )
    except DecodeError:
        raise BadRequest("the body is not a protobuf ExportLogsServiceRequest") from None
    except (json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise BadRequest(
            f"the body is not an OTLP JSON ExportLogsServiceRequest: {reason}"
        ) from None


def _gunzip(body: bytes, cap: int) -> bytes:
    """Inflate, refusing more than `cap` bytes (a small body may inflate to gigabytes)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, cap + 1)
    except zlib.error:
        raise BadRequest("Content-Encoding is gzip but the body is not gzip data") from None
    if len(out) > cap or inflater.unconsumed_tail:
        raise TooLarge(f"the body inflates to more than {cap} bytes")
    if not inflater.eof:
        raise BadRequest("the gzip body is truncated")
    return out


def gzip_body(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=5)


def value_of(v: AnyValue) -> Any:
    """The one reading of an OTLP value. A non-empty `string_value` is the oneof's string
    without asking `WhichOneof` (most attributes are strings): an activation's attributes in
    8.0 instead of 11.1 us (tests/unit/test_otlp_reading.py: the same value for every kind)."""
    text = v.string_value
    if text:
        return text
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """A list of attributes (a resource's, a map value's) as a dict."""
    return {kv.key: value_of(kv.value) for kv in kvs}


def record_attributes(record: Any, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A lean record's attributes (`otlp_lean`), those named in `keys` when given (an
    `api_request`'s usage reads 8 of its ~19: looked up, the others are never made)."""
    found = record.attributes
    if keys is None:  # `or`: `value_of`'s own first test, without a call for a string
        return {key: value.string_value or value_of(value) for key, value in found.items()}
    return {key: (v := found[key]).string_value or value_of(v) for key in keys if key in found}


def event_name(record: Any) -> str | None:
    """Read without converting the record's attributes: most records are of no interest."""
    own: str = record.event_name
    if own.startswith("claude_code."):  # OTLP 1.5+: the record's own field
        return own
    body: str = record.body.string_value
    if body.startswith("claude_code."):
        return body
    found = record.attributes.get("event.name")  # a lean record's (`otlp_lean`)
    name = None if found is None else value_of(found)
    if isinstance(name, str) and name:
        return name if name.startswith("claude_code.") else f"claude_code.{name}"
    return None


USAGE_KEYS = (
    "session.id",
    "prompt.id",
    "event.sequence",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms",
)


def identity(tenant: str, name: str, nanos: int, attrs: Mapping[str, Any]) -> str:
    """The record's ULID (text): its time and a hash of what makes it itself (module doc)."""
    get = attrs.get
    parts = [
        tenant,
        name,
        str(nanos),
        str(get("session.id", "")),
        str(get("prompt.id", "")),
        str(get("event.sequence", "")),
        str(get("skill.name", "")),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return ulid_text((nanos // 1_000_000).to_bytes(6, "big") + digest[:10])


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [_CROCKFORD[i >> 5] + _CROCKFORD[i & 31] for i in range(1024)]
_SHIFTS = tuple(range(120, -1, -10))


def ulid_text(raw: bytes) -> str:
    """`str(ULID.from_bytes(raw))` without a ULID object (python-ulid encodes in a slower
    loop): the 130 bits (2 zero bits, then the 16 bytes) as 13 pairs of Crockford base32
    characters, one table lookup per 10 bits."""
    n = int.from_bytes(raw, "big")
    return "".join([_PAIRS[(n >> s) & 1023] for s in _SHIFTS])


@dataclass
class TenantScope:
    """What a tenant's export may be attributed to (loaded per tenant, cached by the receiver)."""

    slug: str
    org_id: str
    skills: AttributionContext
    family: frozenset[str]
    """The tenant and its sub-tenants: a skill of another tenant is rejected."""
    parents: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, slug: str, settings: TelemetrySettings) -> TenantScope:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        assert tenant is not None
        org = session.scalar(
            select(TenantTarget.org_id).where(TenantTarget.tenant_id == tenant.id).limit(1)
        ) or session.scalar(
            select(OrgConnection.org_id).where(OrgConnection.tenant_id == tenant.id)
        )
        parent = aliased(Tenant)
        parents: dict[str, str | None] = {
            s: p
            for s, p in session.execute(
                select(Tenant.slug, parent.slug).outerjoin(parent, parent.id == Tenant.parent_id)
            )
        }
        family = frozenset({slug, *(c.slug for c in tenant.children)})
        return cls(
            slug, org or "", AttributionContext.load(session, org or "", settings), family, parents
        )


@dataclass
class Normalised:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    records: int = 0
    ignored: int = 0
    activations: list[dict[str, Any]] = field(default_factory=list)
    """`claude_code_activation` rows of `rows` that name their prompt (`otlp_usage`)."""
    usage: list[dict[str, Any]] = field(default_factory=list)
    """Usage entries (`otlp_usage`): one per readable `api_request` with a `prompt.id`."""


def _number(attrs: Mapping[str, Any], key: str) -> Decimal | None:
    """The one reading of a number: an OTLP int, double or numeric string, exactly (a double
    as its shortest repr, `str`), or None when absent; refused when not a finite non-negative
    number."""
    value = attrs.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{key} is {value!r}, not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{key} is {value!r}, not a finite non-negative number")
    return number


_ZERO = Decimal(0)


def _count(attrs: Mapping[str, Any], key: str) -> int:
    """`_number` as an int (tokens, milliseconds), 0 when absent. An OTLP int, as Claude Code
    sends these, is taken as it is: no `Decimal` made only to come back to the same int."""
    value = attrs.get(key)
    if type(value) is int and value >= 0:
        return value
    number = _number(attrs, key)
    return 0 if number is None else int(number)


def request_key(tenant: str, nanos: int, attrs: Mapping[str, Any]) -> int:
    """An `api_request`'s identity as a signed 64-bit key: its time and what makes it itself,
    so a retried export is the same key (as `identity` is for activations)."""
    get = attrs.get
    parts = [
        tenant,
        API_REQUEST,
        str(nanos),
        str(get("session.id", "")),
        str(get("prompt.id", "")),
        str(get("event.sequence", "")),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _usage_row(record: Any, attrs: Mapping[str, Any], tenant: str) -> dict[str, Any] | None:
    """The usage entry of an `api_request` (`otlp_usage`), or None when it names no prompt or a
    number cannot be read or stored (it adds nothing; the activation still counts)."""
    prompt = attrs.get("prompt.id")
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if not isinstance(prompt, str) or not prompt or not nanos:
        return None
    try:
        tokens_in = _count(attrs, "input_tokens")
        tokens_out = _count(attrs, "output_tokens")
        cost = _number(attrs, "cost_usd") or _ZERO
        duration = _count(attrs, "duration_ms")
    except ValueError:
        return None
    if cost > COST_MAX or max(tokens_in, tokens_out, duration) > INT4_MAX:
        return None
    session = attrs.get("session.id")
    session = session if isinstance(session, str) else ""
    model = attrs.get("model")
    model = model if isinstance(model, str) else None
    if "\x00" in prompt or "\x00" in session or (model is not None and "\x00" in model):
        return None  # PostgreSQL's text cannot hold it
    return {
        "tenant_slug": tenant,
        "session_id": session,
        "prompt_id": prompt,
        "request_key": request_key(tenant, nanos, attrs),
        "occurred_at": dt.datetime.fromtimestamp(nanos / 1e9, dt.UTC),
        "model": model,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "duration_ms": duration,
    }


def published_skill(attrs: Mapping[str, Any]) -> str | None:
    """The published name an activation names, or None when it is not in our namespace.

    Claude Code names a plugin's skill `<plugin>:<skill>` (and adds `plugin.name`); a skill
    outside a plugin (the `org-skills` target) is named bare. Each of our plugins carries the one
    skill of its own name, so ours read `claresia-t-s:claresia-t-s`. A record is in our namespace
    when the plugin or the skill part is a `claresia-` name; the skill part is what is
    attributed, and one that cannot be ours (in another plugin, or another skill in one of
    ours) reaches `_row`, which quarantines it."""
    name = attrs.get("skill.name")
    if not isinstance(name, str):
        return None
    plugin, colon, skill = name.rpartition(":")
    if not colon:
        plugin = attrs.get("plugin.name") or ""
        plugin = plugin if isinstance(plugin, str) else ""
    if naming.is_claresia_name(skill) or naming.is_claresia_name(plugin):
        return name if not colon and not plugin else f"{plugin}:{skill}"
    return None


def normalise_request(request: Any, scope: TenantScope, settings: TelemetrySettings) -> Normalised:
    """Rows, quarantine entries and rejections of one export request (see the module doc):
    as `decode` returns it (`otlp_lean`), or of the generated classes.

    One pass over the records gathers the activations and the requests' usage. Of an
    `api_request` only the attributes its usage row reads are converted."""
    if isinstance(request, ExportLogsServiceRequest):
        request = lean(request)
    out = Normalised()
    activations: list[tuple[Any, dict[str, Any]]] = []
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        resource_usage = {k: v for k, v in resource.items() if k in USAGE_KEYS}
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            out.records += len(records)
            for record in records:
                name = event_name(record)
                if name == SKILL_ACTIVATED:
                    activations.append((record, {**resource, **record_attributes(record)}))
                elif name == API_REQUEST:
                    used = record_attributes(record, USAGE_KEYS)
                    row = _usage_row(
                        record, {**resource_usage, **used} if resource_usage else used, scope.slug
                    )
                    if row is None:
                        out.ignored += 1
                    else:
                        out.usage.append(row)
                else:
                    out.ignored += 1
    for record, attrs in activations:
        skill = published_skill(attrs)
        if skill is None:
            out.ignored += 1  # not ours, or no name (OTEL_LOG_TOOL_DETAILS unset)
            continue
        nanos = record.time_unix_nano or record.observed_time_unix_nano
        ulid = identity(scope.slug, SKILL_ACTIVATED, nanos, attrs)
        raw = _raw(record, attrs, settings)
        text = orjson.dumps(raw, default=str).decode()
        unstorable = _holding_nul(raw) if "\\u0000" in text else []
        if unstorable:
            verdict: dict[str, Any] | str = (
                f"the record holds NUL characters (in {', '.join(unstorable)}), which "
                "PostgreSQL cannot store: kept here with them replaced by U+FFFD"
            )
            text = orjson.dumps(storable_raw(raw), default=str).decode()
        else:
            verdict = _row(nanos, attrs, skill, scope, settings, ulid, text)
        if isinstance(verdict, str):
            out.rejected += 1
            out.reasons.append(verdict)
            out.quarantine.append(
                {
                    "org_id": scope.org_id,
                    "event_id": f"otlp_{ulid}",  # a retried export is quarantined once
                    "reason": f"claude-code otlp ({scope.slug}): {verdict}",
                    "raw": text,
                }
            )
            continue
        out.rows.append(verdict)
        if verdict["invocation_id"] is not None:
            session = attrs.get("session.id")
            out.activations.append(
                {
                    "event_id": verdict["event_id"],
                    "tenant_slug": scope.slug,
                    "session_id": session if isinstance(session, str) else "",
                    "prompt_id": verdict["invocation_id"],
                    "occurred_at": verdict["occurred_at"],
                    "account_uuid": _text(attrs.get("user.account_uuid")),
                    "account_id": _text(attrs.get("user.account_id")),
                }
            )
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _raw(record: Any, attrs: Mapping[str, Any], settings: TelemetrySettings) -> dict[str, Any]:
    """What is stored of a record (the row's and the quarantine's `raw`): no email unless
    `store_emails`."""
    kept = attrs
    if not settings.store_emails and not EMAIL_KEYS.isdisjoint(attrs):
        kept = {k: v for k, v in attrs.items() if k not in EMAIL_KEYS}
    return {
        "time_unix_nano": record.time_unix_nano,
        "observed_time_unix_nano": record.observed_time_unix_nano,
        "severity_text": record.severity_text,
        "body": value_of(record.body) if record.HasField("body") else None,
        "attributes": kept,
    }


def _holding_nul(raw: dict[str, Any]) -> list[str]:
    """The fields of `raw` (an attribute by its key) that hold a NUL character: valid in a
    protobuf string, refused by PostgreSQL's text and jsonb. Looked for only when the JSON
    text shows one (a literal backslash-u0000 in a string is no NUL)."""

    def has_nul(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(has_nul(k) or has_nul(v) for k, v in value.items())
        if isinstance(value, list):
            return any(has_nul(v) for v in value)
        return False

    fields = [k for k in ("severity_text", "body") if has_nul(raw[k])]
    attrs = raw["attributes"]
    return fields + sorted(storable_raw(k) for k, v in attrs.items() if has_nul(k) or has_nul(v))


def _row(
    nanos: int,
    attrs: Mapping[str, Any],
    skill_name: str,
    scope: TenantScope,
    settings: TelemetrySettings,
    ulid: str,
    raw: str,
) -> dict[str, Any] | str:
    plugin, _, skill_name = skill_name.rpartition(":")
    if plugin and plugin != skill_name:
        return (
            f"skill {skill_name!r} came in plugin {plugin!r}: each claresia plugin carries only "
            "the skill of its own name"
        )
    ref = scope.skills.skill_for(skill_name)
    if ref is None or ref.owner_tenant is None:
        return f"skill {skill_name!r} is in the claresia- namespace but no tenant publishes it"
    if ref.owner_tenant not in scope.family:
        return f"skill {skill_name!r} belongs to tenant {ref.owner_tenant!r}, not to {scope.slug!r}"
    if not nanos:
        return "the record has neither time_unix_nano nor observed_time_unix_nano"
    prompt = _text(attrs.get("prompt.id"))
    rec = f"rec_{ulid}"
    tenant = ref.owner_tenant
    parent = scope.parents.get(tenant)
    user = (
        _text(attrs.get("user.account_uuid"))
        or _text(attrs.get("user.account_id"))
        or _text(attrs.get("user.id"))
    )
    email = attrs.get("user.email")
    url = settings.hub_record_url.format(
        parent_tenant=parent or tenant, tenant=tenant, record_id=rec
    )
    return {
        "record_id": rec,
        "event_id": f"otlp_{ulid}",
        "event_type": SKILL_ACTIVATED,
        "status": "succeeded",
        "occurred_at": dt.datetime.fromtimestamp(nanos / 1e9, dt.UTC),
        "org_id": scope.org_id,
        "workspace_id": None,
        "tenant_slug": tenant,
        "parent_tenant_slug": parent,
        "skill_id": ref.skill_id,
        "skill_name": skill_name,
        "remote_skill_id": ref.remote_skill_id,
        "skill_version": None,
        "actor_user_id": user,
        "actor_email": str(email) if settings.store_emails and email is not None else None,
        "invocation_id": prompt,
        # The prompt's usage (its api_request records, usually in later exports) is in
        # claude_code_prompt and joined where analysts read (migration 0014), never here.
        "model": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "duration_ms": None,
        "error_type": None,
        "error_message": None,
        "footer_md": render_footer(
            title=scope.skills.title(ref.skill_id),
            failed=False,
            error_type=None,
            cost=None,
            duration_ms=None,
            record_url=url,
        ),
        "raw": raw,
    }
