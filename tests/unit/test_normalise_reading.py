"""The normaliser's one reading of an event's fields (`normalise._read`) against an independent
oracle: the API client's typed view of an audit event (`AuditEvent.view` / `.problem`, pydantic
in lax mode), which the normaliser does not use. For every generated event, well-formed,
mutated or with values written as another type:
- the view finds a problem: the event is quarantined, the reason starting with a field the view
  names (or skipped, by its type or skill name, before any reading);
- it finds none: the same verdict as for the event with the view's values written in."""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from claresia_sync.api.models import AuditEvent
from claresia_sync.telemetry import normalise
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Owner,
    Quarantined,
    Skipped,
    TelemetryRow,
    Verdict,
    fn_telemetry_event,
)
from tests.unit.hypothesis_profiles import examples

CTX = AttributionContext(
    org_id="org_dainese",
    workspaces={
        "wrkspc_dainese_eng": Owner("dainese-eng", "dainese"),
        "wrkspc_dainese_sales": Owner("dainese", None),
    },
    tenant_slugs=frozenset({"dainese", "dainese-eng"}),
    titles={"incident-postmortem": "Incident Postmortem"},
)

_json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_json = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# Values pydantic's lax mode reads as another type: the one reading must read them alike. (Not
# bytes, which JSON does not have: the view reads them as text, the reading refuses them.)
_coercible = st.sampled_from(
    ["12", "0012", " 7 ", "12.00", "1_000", "\u30007", 12.0, True, False, 1e20, 2.5, "1e3", "x"]
)


def _mostly(valid: st.SearchStrategy[Any], *odd: Any) -> st.SearchStrategy[Any]:
    """`valid` seven times in eight, else one of `odd`."""
    return st.integers(0, 7).flatmap(lambda n: valid if n else st.sampled_from(odd))


_count = _mostly(st.integers(0, 50_000), None, -1, 2**31 - 1, 2**31, 2**70)
_created = _mostly(
    st.datetimes(
        min_value=dt.datetime(2020, 1, 1),
        max_value=dt.datetime(2030, 1, 1),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
    ).map(dt.datetime.isoformat),
    "",
    "21/11/2026",
    "2026-11-21T09:14:03",
    "2026-11-21T09:14:03.512Z",
)
_skill_name = _mostly(
    st.sampled_from(
        ["claresia-dainese-eng-incident-postmortem", "claresia-dainese-meeting-summary"]
    ),
    "claresia-nobody-prd-review",
    "acme-helper",
    "",
    None,
)
_text = st.text(max_size=6)


@st.composite
def well_formed(draw: st.DrawFn) -> dict[str, Any]:
    """An event of the shape the API serves, with values the normaliser may still refuse
    (unknown workspaces, costs out of range, counts beyond int4...)."""
    ev: dict[str, Any] = {
        "type": draw(_mostly(st.sampled_from(["skill.invoked", "skill.failed"]), "user.login")),
        "id": draw(st.sampled_from(["evt_01JDX3AAAAAAAAAAAAAAAAAAAA", "evt_x y", "e"])),
        "created_at": draw(_created),
        "organization_id": draw(_mostly(st.sampled_from(["org_dainese", None]), "org_acme")),
        "workspace_id": draw(
            _mostly(
                st.sampled_from(["wrkspc_dainese_eng", "wrkspc_dainese_sales"]), "wrkspc_x", None
            )
        ),
        "actor": {"type": "user", "user_id": draw(_text), "email": draw(_text)},
        "skill": {"id": draw(st.none() | _text), "name": draw(_skill_name), "version": "1"},
        "invocation": {
            "id": draw(_text),
            "model": "claude-sonnet-4-5",
            "duration_ms": draw(_count),
            "usage": {"input_tokens": draw(_count), "output_tokens": draw(_count)},
            "cost_usd": draw(
                _mostly(st.sampled_from(["0.0400", "0", " 2.5 "]), "1e12", "-1", "NaN", "x", None)
            ),
        },
        "error": draw(st.none() | st.fixed_dictionaries({"type": _text, "message": _text})),
    }
    for key in draw(st.sets(st.sampled_from(["actor", "invocation", "error"]))):
        ev[key] = draw(st.sampled_from([None, {}, "drop"]))
        if ev[key] == "drop":
            del ev[key]
    return ev


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event with one field (top-level or nested) replaced or removed."""
    ev = draw(well_formed())
    parents = [ev, *(v for v in ev.values() if isinstance(v, dict))]
    inv = ev.get("invocation")
    if isinstance(inv, dict) and isinstance(inv.get("usage"), dict):
        parents.append(inv["usage"])
    parent = draw(st.sampled_from(parents))
    key = draw(st.sampled_from([*sorted(parent), "extra"]))
    if draw(st.booleans()) and key in parent:
        del parent[key]
    else:
        parent[key] = draw(st.one_of(_coercible, _json) if draw(st.booleans()) else _coercible)
    return ev


@st.composite
def coerced(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event whose counts are given as values pydantic converts ("12", 12.0,
    true): not plain, so the typed path reads them."""
    ev = draw(well_formed())
    inv = ev["invocation"] = ev.get("invocation") or {}
    usage = inv["usage"] = inv.get("usage") or {}
    targets = [(inv, "duration_ms"), (usage, "input_tokens"), (usage, "output_tokens")]
    for i in draw(st.sets(st.sampled_from(range(len(targets))), min_size=1)):
        parent, key = targets[i]
        parent[key] = draw(_coercible)
    return ev


# pydantic-core drops a run of leading zeros and underscores before reading a sign or digits
# again ("0-7" is -7, "0__1" is 1): no count is written so; the one reading refuses them.
_PYDANTIC_ZEROS = re.compile(r"[+-]?0[0_]*[_+-]")
_COUNTS = (("invocation", "duration_ms"), ("usage", "input_tokens"), ("usage", "output_tokens"))


def _odd_zeros(raw: dict[str, Any]) -> bool:
    inv = raw.get("invocation")
    usage = inv.get("usage") if isinstance(inv, dict) else None
    parents = {"invocation": inv, "usage": usage}
    for parent, key in _COUNTS:
        holder = parents[parent]
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, str) and _PYDANTIC_ZEROS.match(value.strip()):
            return True
    return False


def _counts_out_of_range(raw: dict[str, Any]) -> set[str]:
    """The counts that are integers the int4 columns cannot hold (the view takes them)."""
    inv = raw.get("invocation")
    usage = inv.get("usage") if isinstance(inv, dict) else None
    out = set()
    for holder, path in (
        (inv, "invocation.duration_ms"),
        (usage, "invocation.usage.input_tokens"),
        (usage, "invocation.usage.output_tokens"),
    ):
        value = holder.get(path.rsplit(".", 1)[1]) if isinstance(holder, dict) else None
        if type(value) is int and not 0 <= value < 2**31:
            out.add(path)
    return out


def _fields_named(problem: str, view_id: str, view_type: str) -> set[str]:
    """The fields a problem of the typed view names ("skill.name: Input should be ...; ...")."""
    named = {part.split(":", 1)[0].strip() for part in problem.split("; ")}
    if not view_id:
        named.add("id")
    if not view_type:
        named.add("type")
    return named


def _without_raw(verdict: Verdict) -> Any:
    """A verdict without what it keeps of the event as served (which differs by design)."""
    if isinstance(verdict, TelemetryRow):
        return {k: v for k, v in verdict.values.items() if k != "raw"}
    if isinstance(verdict, Quarantined):
        return (verdict.event_id, verdict.reason)
    return verdict


@settings(max_examples=examples(1000), deadline=None)
@given(st.one_of(well_formed(), mutated(), coerced()))
def test_the_reading_agrees_with_the_typed_view(raw: dict[str, Any]) -> None:
    assume(not _odd_zeros(raw))
    verdict = fn_telemetry_event(copy.deepcopy(raw), CTX)
    served = AuditEvent.from_raw(copy.deepcopy(raw))
    event(f"{'problem' if served.problem else 'no problem'}: {type(verdict).__name__}")
    if isinstance(verdict, Skipped):
        kind, skill = raw.get("type"), raw.get("skill")
        name = skill.get("name") if isinstance(skill, dict) else None
        assert (verdict.reason == "other_type" and isinstance(kind, str)) or (
            verdict.reason == "outside_namespace" and isinstance(name, str)
        )
        return
    if served.problem:
        assert isinstance(verdict, Quarantined), (served.problem, verdict)
        named = _fields_named(served.problem, served.view.id, served.view.type)
        named |= _counts_out_of_range(raw)  # as malformed to the reading, and read with them
        assert verdict.reason.split(":", 1)[0] in named, (served.problem, verdict.reason)
        return
    as_read = served.view.model_dump()  # the view's values, extra fields kept
    assert _without_raw(verdict) == _without_raw(fn_telemetry_event(as_read, CTX))


@settings(max_examples=examples(200), deadline=None)
@given(well_formed())
def test_well_formed_events_are_read_as_they_are(raw: dict[str, Any]) -> None:
    """An event as the API serves it is read without any conversion: each field is the very
    value of the event, and what the typed view reads too (but counts the columns cannot hold,
    refused by name)."""
    try:
        fields = normalise._read(raw)
    except normalise._Bad as bad:
        assert re.fullmatch(
            r"invocation\.[a-z_.]+: -?\d+ is out of range \(0\.\.2147483647\)", str(bad)
        )
        return
    inv = raw.get("invocation") or {}
    assert fields.id is raw["id"] and fields.created_at is raw["created_at"]
    assert fields.duration_ms is inv.get("duration_ms")
    assert fields.input_tokens is (inv.get("usage") or {}).get("input_tokens")
    assert normalise._read(AuditEvent.from_raw(raw).view.model_dump()) == fields


def test_coerced_values_are_read_as_pydantic_reads_them() -> None:
    raw = {
        "type": "skill.invoked",
        "id": "evt_01JDX3AAAAAAAAAAAAAAAAAAAA",
        "created_at": "2026-11-21T09:14:03.512Z",
        "workspace_id": "wrkspc_dainese_eng",
        "skill": {"name": "claresia-dainese-eng-incident-postmortem"},
        "invocation": {
            "duration_ms": "2300",
            "usage": {"input_tokens": 12.0, "output_tokens": True},
        },
    }
    verdict = fn_telemetry_event(raw, CTX)
    assert isinstance(verdict, TelemetryRow)
    values = verdict.values
    assert (values["duration_ms"], values["input_tokens"], values["output_tokens"]) == (2300, 12, 1)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"id": 42}, "id: 42 is not a string"),
        ({"id": ""}, "id: missing" + normalise._UNSTORABLE),
        ({"type": None}, "type: missing" + normalise._UNSTORABLE),
        ({"type": ["skill.invoked"]}, "type: ['skill.invoked'] is not a string"),
        ({"actor": "ana"}, "actor: 'ana' is a string, not an object"),
        ({"invocation": {"usage": [1]}}, "invocation.usage: [1] is an array, not an object"),
        (
            {"skill": {"name": "claresia-dainese-eng-x", "version": 3}},
            "skill.version: 3 is a number, not a string",
        ),
        ({"actor": {"type": False}}, "actor.type: False is a boolean, not a string"),
        ({"invocation": {"duration_ms": 2.5}}, "invocation.duration_ms: 2.5 is not a whole number"),
        (
            {"invocation": {"duration_ms": "0-7"}},
            "invocation.duration_ms: '0-7' is not a whole number",
        ),
        (
            {"invocation": {"usage": {"output_tokens": {}}}},
            "invocation.usage.output_tokens: {} is an object, not a whole number",
        ),
        ({"invocation": {"cost_usd": 0.04}}, "invocation.cost_usd: 0.04 is a number, not a string"),
    ],
)
def test_a_malformed_field_is_named_with_its_value_and_what_it_should_be(
    over: dict[str, Any], reason: str
) -> None:
    raw = {
        "type": "skill.invoked",
        "id": "evt_01JDX3AAAAAAAAAAAAAAAAAAAA",
        "created_at": "2026-11-21T09:14:03.512Z",
        "workspace_id": "wrkspc_dainese_eng",
        "skill": {"name": "claresia-dainese-eng-incident-postmortem"},
        **over,
    }
    verdict = fn_telemetry_event(raw, CTX)
    assert isinstance(verdict, Quarantined) and verdict.reason == reason


def test_bytes_are_not_text() -> None:
    """The typed view would read bytes as text; JSON has none, and the one reading refuses them
    rather than storing what no API served."""
    raw = {
        "type": "skill.invoked",
        "id": "evt_01JDX3AAAAAAAAAAAAAAAAAAAA",
        "created_at": "2026-11-21T09:14:03.512Z",
        "workspace_id": "wrkspc_dainese_eng",
        "skill": {"name": "claresia-dainese-eng-incident-postmortem", "version": b"1"},
    }
    verdict = fn_telemetry_event(raw, CTX)
    assert isinstance(verdict, Quarantined)
    assert verdict.reason == "skill.version: b'1' is a bytes, not a string"
