"""What one OTLP export becomes (`otlp.normalise_request`): the stored activation row field by
field, its stable id, the prompt's usage entries, the quarantine entries with their reasons, and
what is left uncounted; then the body's decoding (`otlp.decode`)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from ulid import ULID

from claresia_sync.telemetry import otlp, otlp_lean
from claresia_sync.telemetry.normalise import AttributionContext, SkillRef
from claresia_sync.telemetry.settings import TelemetrySettings

SUB = "claresia-ferretti-eng-prd-review"  # published for the sub-tenant ferretti-eng
ROOT = "claresia-ferretti-meeting-notes"  # published for the tenant itself
NANOS = 1_780_000_000_123_456_789
PROMPT = {"prompt.id": "prompt-1", "session.id": "session-1", "event.sequence": 3}


def _scope() -> otlp.TenantScope:
    skills = AttributionContext(
        org_id="org_ferretti",
        workspaces={},
        published={
            SUB: SkillRef("prd-review", "skill_remote_1", "ferretti-eng"),
            ROOT: SkillRef("meeting-notes", None, "ferretti"),
        },
        tenant_slugs=frozenset({"ferretti", "ferretti-eng"}),
        titles={"prd-review": "PRD Review"},
    )
    return otlp.TenantScope(
        "ferretti",
        "org_ferretti",
        skills,
        frozenset({"ferretti", "ferretti-eng"}),
        {"ferretti": None, "ferretti-eng": "ferretti"},
    )


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def _record(
    attrs: dict[str, Any], body: str = otlp.SKILL_ACTIVATED, nanos: int = NANOS, **fields: Any
) -> LogRecord:
    record = LogRecord(time_unix_nano=nanos, **fields)
    if body:
        record.body.string_value = body
    record.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in attrs.items())
    return record


def _request(
    *records: LogRecord, resource: dict[str, Any] | None = None
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    logs = request.resource_logs.add()
    logs.resource.attributes.extend(
        KeyValue(key=k, value=_value(v)) for k, v in (resource or {}).items()
    )
    logs.scope_logs.add().log_records.extend(records)
    return request


def _normalise(*records: LogRecord, store_emails: bool = False, **kw: Any) -> otlp.Normalised:
    settings = TelemetrySettings(store_emails=store_emails)
    return otlp.normalise_request(_request(*records, **kw), _scope(), settings)


def test_an_activation_is_one_row_every_field_as_stored() -> None:
    attrs = {
        "skill.name": SUB,
        **PROMPT,
        "user.account_uuid": "uuid-1",
        "user.account_id": "user_1",
        "user.email": "ana@ferretti.example",
    }
    out = _normalise(_record(attrs, severity_text="INFO"))
    assert (out.records, out.ignored, out.rejected, out.quarantine) == (1, 0, 0, [])
    (row,) = out.rows
    ulid = row["event_id"].removeprefix("otlp_")
    assert row == {
        "record_id": f"rec_{ulid}",
        "event_id": f"otlp_{ulid}",
        "event_type": "claude_code.skill_activated",
        "status": "succeeded",
        "occurred_at": dt.datetime(2026, 5, 28, 20, 26, 40, 123457, tzinfo=dt.UTC),
        "org_id": "org_ferretti",
        "workspace_id": None,
        "tenant_slug": "ferretti-eng",
        "parent_tenant_slug": "ferretti",
        "skill_id": "prd-review",
        "skill_name": SUB,
        "remote_skill_id": "skill_remote_1",
        "skill_version": None,
        "actor_user_id": "uuid-1",
        "actor_email": None,
        "invocation_id": "prompt-1",
        "model": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "duration_ms": None,
        "error_type": None,
        "error_message": None,
        "footer_md": "*Claresia · PRD Review · "
        f"[View record](https://hub.ferretti.claresia.com/records/rec_{ulid})*",
        "raw": row["raw"],
    }
    assert orjson.loads(row["raw"]) == {
        "time_unix_nano": NANOS,
        "observed_time_unix_nano": 0,
        "severity_text": "INFO",
        "body": otlp.SKILL_ACTIVATED,
        "attributes": {k: v for k, v in attrs.items() if k != "user.email"},  # no email kept
    }
    assert out.activations == [
        {
            "event_id": row["event_id"],
            "tenant_slug": "ferretti",
            "session_id": "session-1",
            "prompt_id": "prompt-1",
            "occurred_at": row["occurred_at"],
            "account_uuid": "uuid-1",
            "account_id": "user_1",
        }
    ]


def test_the_id_of_a_record_is_stable_across_versions_and_exports() -> None:
    """A retried export maps to the same id (the unique id absorbs it), also across an upgrade:
    the id is pinned. It is a ULID whose time is the record's millisecond."""
    (row,) = _normalise(_record({"skill.name": SUB, **PROMPT})).rows
    assert row["event_id"] == "otlp_01KSR4923V2XNH7WJTZRW99F5A"
    assert ULID.from_str(row["event_id"].removeprefix("otlp_")).milliseconds == NANOS // 10**6
    again = _normalise(_record({"skill.name": SUB, **PROMPT}, severity_text="WARN")).rows[0]
    assert again["event_id"] == row["event_id"]
    others = [
        _record({"skill.name": SUB, **PROMPT}, nanos=NANOS + 1),
        _record({"skill.name": SUB, **PROMPT, "session.id": "session-2"}),
        _record({"skill.name": SUB, **PROMPT, "prompt.id": "prompt-2"}),
        _record({"skill.name": SUB, **PROMPT, "event.sequence": 4}),
        _record({"skill.name": ROOT, **PROMPT}),
    ]
    ids = {row["event_id"], *(r["event_id"] for r in _normalise(*others).rows)}
    assert len(ids) == 1 + len(others)
    # another tenant's record with the same fields is another event
    assert otlp.identity("acme", otlp.SKILL_ACTIVATED, NANOS, PROMPT) != otlp.identity(
        "ferretti", otlp.SKILL_ACTIVATED, NANOS, PROMPT
    )
    assert otlp.identity("f", otlp.SKILL_ACTIVATED, 1, {}) != otlp.identity("f", "x", 1, {})


def test_the_user_is_the_account_uuid_else_the_account_id_else_the_user_id() -> None:
    def user(**attrs: str) -> Any:
        (row,) = _normalise(_record({"skill.name": ROOT, **PROMPT, **attrs})).rows
        return row["actor_user_id"]

    assert user(**{"user.account_id": "user_1", "user.id": "anon"}) == "user_1"
    assert user(**{"user.account_uuid": "", "user.id": "anon"}) == "anon"
    assert user() is None


def test_a_tenants_own_skill_has_no_parent_and_an_untitled_skill_its_id_as_title() -> None:
    (row,) = _normalise(_record({"skill.name": ROOT, "user.email": "a@b.c"})).rows
    assert (row["tenant_slug"], row["parent_tenant_slug"], row["remote_skill_id"]) == (
        "ferretti",
        None,
        None,
    )
    assert row["footer_md"].startswith("*Claresia · Meeting Notes · [View record](")
    assert "/records/rec_" in row["footer_md"]
    assert row["invocation_id"] is None and row["actor_email"] is None


def test_emails_are_stored_when_configured() -> None:
    attrs = {"skill.name": ROOT, **PROMPT, "user.email": "ana@ferretti.example"}
    (row,) = _normalise(_record(attrs), store_emails=True).rows
    assert row["actor_email"] == "ana@ferretti.example"
    assert orjson.loads(row["raw"])["attributes"]["user.email"] == "ana@ferretti.example"


def test_an_activation_without_a_prompt_is_a_row_and_no_activation_entry() -> None:
    out = _normalise(_record({"skill.name": ROOT, "session.id": "s"}))
    assert len(out.rows) == 1 and out.activations == []


def test_the_observed_time_stands_in_for_a_missing_time() -> None:
    record = _record({"skill.name": ROOT}, nanos=0, observed_time_unix_nano=NANOS)
    (row,) = _normalise(record).rows
    assert row["occurred_at"] == dt.datetime.fromtimestamp(NANOS / 1e9, dt.UTC)


def test_a_record_without_any_time_is_quarantined_with_why() -> None:
    out = _normalise(_record({"skill.name": ROOT, **PROMPT}, nanos=0))
    assert out.rows == [] and out.rejected == 1
    (entry,) = out.quarantine
    ulid = otlp.identity("ferretti", otlp.SKILL_ACTIVATED, 0, {"skill.name": ROOT, **PROMPT})
    assert entry == {
        "org_id": "org_ferretti",
        "event_id": f"otlp_{ulid}",
        "reason": "claude-code otlp (ferretti): "
        "the record has neither time_unix_nano nor observed_time_unix_nano",
        "raw": entry["raw"],
    }
    assert out.reasons == ["the record has neither time_unix_nano nor observed_time_unix_nano"]
    assert orjson.loads(entry["raw"])["attributes"]["skill.name"] == ROOT


def test_a_skill_of_another_tenant_is_rejected_naming_both_tenants() -> None:
    scope = _scope()
    scope.skills.published["claresia-acme-x"] = SkillRef("x", None, "acme")
    request = _request(_record({"skill.name": "claresia-acme-x"}))
    out = otlp.normalise_request(request, scope, TelemetrySettings())
    assert out.reasons == ["skill 'claresia-acme-x' belongs to tenant 'acme', not to 'ferretti'"]


def test_a_record_holding_nul_is_quarantined_naming_where_with_a_storable_copy() -> None:
    attrs = {"skill.name": ROOT, "tool\x00name": "x", "note": "a\x00b", "fine": "c"}
    out = _normalise(_record(attrs, severity_text="I\x00NFO"))
    assert out.rows == [] and out.rejected == 1
    (reason,) = out.reasons
    assert reason == (
        "the record holds NUL characters (in severity_text, note, tool\ufffdname), which "
        "PostgreSQL cannot store: kept here with them replaced by U+FFFD"
    )
    kept = orjson.loads(out.quarantine[0]["raw"])
    assert kept["severity_text"] == "I\ufffdNFO"
    assert kept["attributes"] == {
        "skill.name": ROOT,
        "tool\ufffdname": "x",
        "note": "a\ufffdb",
        "fine": "c",
    }


def test_nul_is_looked_for_in_the_body_and_nested_values() -> None:
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="k", value=AnyValue(string_value="\x00")))
    listed = AnyValue()
    listed.array_value.values.append(AnyValue(string_value="\x00"))
    record = _record({"skill.name": ROOT}, body=otlp.SKILL_ACTIVATED)
    record.attributes.extend(
        [KeyValue(key="nested", value=nested), KeyValue(key="listed", value=listed)]
    )
    (reason,) = _normalise(record).reasons
    assert "(in listed, nested)" in reason
    with_body = _record({"event.name": "skill_activated", "skill.name": ROOT}, body="\x00")
    (reason,) = _normalise(with_body).reasons
    assert "(in body)" in reason
    # a backslash-u0000 written out in a string is text, not a NUL
    (row,) = _normalise(_record({"skill.name": ROOT, "note": "\\u0000"})).rows
    assert orjson.loads(row["raw"])["attributes"]["note"] == "\\u0000"


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (LogRecord(event_name=otlp.SKILL_ACTIVATED), otlp.SKILL_ACTIVATED),
        (_record({}, body=otlp.API_REQUEST), otlp.API_REQUEST),
        (_record({"event.name": "skill_activated"}, body="text"), otlp.SKILL_ACTIVATED),
        (_record({"event.name": "claude_code.api_request"}, body=""), otlp.API_REQUEST),
        (_record({"event.name": ""}, body="hello"), None),
        (_record({"event.name": 7, "other": "claude_code.x"}, body="hello"), None),
        (LogRecord(event_name="other.event"), None),
    ],
)
def test_the_event_name_is_the_field_else_the_body_else_the_attribute(
    record: LogRecord, name: str | None
) -> None:
    lean = otlp_lean.lean(_request(record))
    (read,) = lean.resource_logs[0].scope_logs[0].log_records
    assert otlp.event_name(read) == name


def test_values_of_every_kind_are_read() -> None:
    value = AnyValue()
    value.array_value.values.extend([AnyValue(int_value=1), AnyValue(string_value="a")])
    assert otlp.value_of(value) == [1, "a"]
    value = AnyValue()
    value.kvlist_value.values.append(KeyValue(key="k", value=AnyValue(bool_value=True)))
    assert otlp.value_of(value) == {"k": True}
    assert otlp.value_of(AnyValue(bytes_value=b"\x01\xff")) == "01ff"
    assert otlp.value_of(AnyValue(string_value="")) == ""
    assert otlp.value_of(AnyValue()) is None


def _usage(**attrs: Any) -> dict[str, Any]:
    return {
        **PROMPT,
        "model": "claude-sonnet-4-5",
        "input_tokens": 1200,
        "output_tokens": "800",
        "cost_usd": 0.0125,
        "duration_ms": 2300.0,
        "other": "not read",
        **attrs,
    }


def test_an_api_request_is_a_usage_entry_of_its_prompt() -> None:
    out = _normalise(_record(_usage(), body=otlp.API_REQUEST))
    assert (out.rows, out.ignored, out.records) == ([], 0, 1)
    (entry,) = out.usage
    assert entry == {
        "tenant_slug": "ferretti",
        "session_id": "session-1",
        "prompt_id": "prompt-1",
        "request_key": entry["request_key"],
        "occurred_at": dt.datetime.fromtimestamp(NANOS / 1e9, dt.UTC),
        "model": "claude-sonnet-4-5",
        "input_tokens": 1200,
        "output_tokens": 800,
        "cost_usd": Decimal("0.0125"),
        "duration_ms": 2300,
    }
    assert entry["request_key"] == 1406434308981883956  # pinned: a retry is the same request
    assert -(2**63) <= entry["request_key"] < 2**63


def test_a_request_key_tells_requests_apart() -> None:
    keys = {
        otlp.request_key("ferretti", NANOS, PROMPT),
        otlp.request_key("acme", NANOS, PROMPT),
        otlp.request_key("ferretti", NANOS + 1, PROMPT),
        otlp.request_key("ferretti", NANOS, {**PROMPT, "session.id": "s2"}),
        otlp.request_key("ferretti", NANOS, {**PROMPT, "prompt.id": "p2"}),
        otlp.request_key("ferretti", NANOS, {**PROMPT, "event.sequence": 9}),
    }
    assert len(keys) == 6
    assert otlp.request_key("ferretti", NANOS, PROMPT) == otlp.request_key(
        "ferretti", NANOS, {**PROMPT, "model": "other"}
    )


def test_a_usage_entry_takes_what_the_resource_says_and_the_record_overrides() -> None:
    record = _record(_usage(**{"session.id": "own"}), body=otlp.API_REQUEST)
    resource = {"session.id": "from-resource", "model": "m-resource", "service.name": "cc"}
    (entry,) = _normalise(record, resource=resource).usage
    assert (entry["session_id"], entry["model"]) == ("own", "claude-sonnet-4-5")
    attrs = {k: v for k, v in _usage().items() if k not in ("session.id", "model")}
    (entry,) = _normalise(_record(attrs, body=otlp.API_REQUEST), resource=resource).usage
    assert (entry["session_id"], entry["model"]) == ("from-resource", "m-resource")


def test_absent_numbers_are_zero_and_odd_texts_absent() -> None:
    attrs = {**PROMPT, "session.id": 5, "model": 7}
    (entry,) = _normalise(_record(attrs, body=otlp.API_REQUEST)).usage
    assert (entry["input_tokens"], entry["output_tokens"], entry["duration_ms"]) == (0, 0, 0)
    assert entry["cost_usd"] == Decimal(0) and (entry["session_id"], entry["model"]) == ("", None)
    observed = _record(_usage(), body=otlp.API_REQUEST, nanos=0, observed_time_unix_nano=NANOS)
    assert _normalise(observed).usage[0]["occurred_at"].year == 2026


@pytest.mark.parametrize(
    "attrs",
    [
        _usage(**{"prompt.id": ""}),
        _usage(**{"prompt.id": 12}),
        {k: v for k, v in _usage().items() if k != "prompt.id"},
        _usage(input_tokens="many"),
        _usage(output_tokens=-1),
        _usage(cost_usd="NaN"),
        _usage(duration_ms="x"),
        _usage(cost_usd="100000000"),
        _usage(input_tokens=2**31),
        _usage(output_tokens=2**31),
        _usage(duration_ms=2**31),
        _usage(**{"prompt.id": "p\x00"}),
        _usage(**{"session.id": "s\x00"}),
        _usage(model="m\x00"),
    ],
)
def test_a_request_that_names_no_prompt_or_holds_what_cannot_be_stored_adds_nothing(
    attrs: dict[str, Any],
) -> None:
    out = _normalise(_record(attrs, body=otlp.API_REQUEST))
    assert (out.usage, out.ignored, out.rejected) == ([], 1, 0)


def test_the_largest_usage_the_columns_hold_is_kept() -> None:
    attrs = _usage(input_tokens=2**31 - 1, cost_usd="99999999.999999", duration_ms=0)
    (entry,) = _normalise(_record(attrs, body=otlp.API_REQUEST)).usage
    assert entry["input_tokens"] == 2**31 - 1 and entry["cost_usd"] == Decimal("99999999.999999")
    assert _normalise(_record(attrs, body=otlp.API_REQUEST, nanos=0)).usage == []


def test_records_of_other_events_and_several_scopes_are_counted() -> None:
    request = _request(_record({"skill.name": ROOT}), _record({}, body="claude_code.user_prompt"))
    request.resource_logs[0].scope_logs.add().log_records.append(_record({"skill.name": "pdf"}))
    more = request.resource_logs.add().scope_logs.add().log_records
    more.append(_record({"skill.name": SUB}))
    out = otlp.normalise_request(request, _scope(), TelemetrySettings())
    assert (out.records, len(out.rows), out.ignored, out.rejected) == (4, 2, 2, 0)


# --- the body -----------------------------------------------------------------------------


def _read(request: Any) -> list[dict[str, Any]]:
    """What the normaliser makes of a request (a lean map's order is not the wire's)."""
    return otlp.normalise_request(request, _scope(), TelemetrySettings()).rows


def _body() -> ExportLogsServiceRequest:
    return _request(_record({"skill.name": ROOT, **PROMPT}))


@pytest.mark.parametrize("content_type", [otlp.PROTOBUF, "Application/X-Protobuf; charset=x"])
def test_a_protobuf_body_plain_or_gzipped_is_read(content_type: str) -> None:
    data = _body().SerializeToString()
    for body, encoding in ((data, ""), (data, "identity"), (otlp.gzip_body(data), "gzip")):
        assert _read(otlp.decode(body, content_type, encoding, 10**6)) == _read(_body())


def test_a_json_body_is_read_and_unknown_fields_are_ignored() -> None:
    from google.protobuf import json_format

    doc = json.loads(json_format.MessageToJson(_body()))
    doc["resourceLogs"][0]["futureField"] = 1
    read = otlp.decode(json.dumps(doc).encode(), "application/json", "", 10**6)
    assert _read(read) == _read(_body())


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "reason"),
    [
        (b"x", otlp.PROTOBUF, "br", "Content-Encoding 'br' is not supported (use gzip or none)"),
        (b"x", "text/plain", "", "Content-Type 'text/plain' is not OTLP/HTTP: use "),
        (b"\xff\xff", otlp.PROTOBUF, "", "the body is not a protobuf ExportLogsServiceRequest"),
        (b"{", otlp.JSON, "", "the body is not an OTLP JSON ExportLogsServiceRequest: "),
        (b"\xff", otlp.JSON, "", "the body is not an OTLP JSON ExportLogsServiceRequest: "),
        (b"not gzip", otlp.PROTOBUF, "gzip", "Content-Encoding is gzip but the body is not gzip"),
        (gzip.compress(b"abc", mtime=0)[:-4], otlp.PROTOBUF, "gzip", "the gzip body is truncated"),
    ],
)
def test_a_body_that_cannot_be_read_is_refused_with_why(
    body: bytes, content_type: str, encoding: str, reason: str
) -> None:
    with pytest.raises(otlp.BadRequest) as refused:
        otlp.decode(body, content_type, encoding, 10**6)
    assert str(refused.value).startswith(reason)


def test_a_body_that_inflates_past_the_cap_is_too_large() -> None:
    data = otlp.gzip_body(b"\x00" * 1001)
    assert otlp._gunzip(otlp.gzip_body(b"\x00" * 1000), 1000) == b"\x00" * 1000
    with pytest.raises(otlp.TooLarge, match="the body inflates to more than 1000 bytes"):
        otlp.decode(data, otlp.PROTOBUF, "gzip", 1000)


def test_ids_of_records_without_session_prompt_or_sequence_are_pinned_too() -> None:
    (row,) = _normalise(_record({"skill.name": ROOT})).rows
    assert row["event_id"] == "otlp_01KSR4923VK2EAR0XXRZ3PZERT"
    # a request key is signed 64-bit (bigint): this one's digest is above 2^63
    assert otlp.request_key("ferretti", NANOS, {"prompt.id": "p1"}) == -717196382686360863
