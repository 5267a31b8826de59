"""The normaliser's fast path (an event read straight from its dict) against its typed path
(pydantic's lax view): for every generated event, well-formed or mutated, the same verdict,
quarantine reason included."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from unittest import mock

from hypothesis import event, given, settings
from hypothesis import strategies as st

from claresia_sync.api.models import AuditEvent
from claresia_sync.telemetry import normalise
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Owner,
    Skipped,
    TelemetryRow,
    Verdict,
    fn_telemetry_event,
)

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
# Values pydantic's lax mode reads as another type: the typed path must give the same verdict.
_coercible = st.sampled_from(["12", "0012", " 7 ", 12.0, True, False, 1e20, "1e3", b"bytes"])


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


def typed_verdict(raw: dict[str, Any]) -> Verdict:
    """fn_telemetry_event with its fast path refused for `raw` itself: the typed path (its
    own reading of the typed view's dump still goes through `_plain`)."""
    real = normalise._plain
    refused: list[dict[str, Any]] = []

    def plain(fields: dict[str, Any]) -> Any:
        if fields is raw:
            refused.append(fields)
            return None
        return real(fields)

    with mock.patch.object(normalise, "_plain", plain):
        verdict = fn_telemetry_event(raw, CTX)
    # Skipped events are decided before either path.
    assert refused or isinstance(verdict, Skipped), "the typed path was not taken"
    return verdict


@settings(max_examples=1000, deadline=None)
@given(st.one_of(well_formed(), mutated(), coerced()))
def test_fast_and_typed_paths_give_the_same_verdict(raw: dict[str, Any]) -> None:
    fast_taken = normalise._plain(raw) is not None
    fast = fn_telemetry_event(copy.deepcopy(raw), CTX)
    typed = typed_verdict(copy.deepcopy(raw))
    event(f"{'fast' if fast_taken else 'typed'} path: {type(fast).__name__}")
    assert fast == typed


@settings(max_examples=200, deadline=None)
@given(well_formed())
def test_well_formed_events_take_the_fast_path(raw: dict[str, Any]) -> None:
    assert normalise._plain(raw) is not None
    assert normalise._plain(AuditEvent.from_raw(raw).view.model_dump()) == normalise._plain(raw)


def test_coerced_values_take_the_typed_path_and_read_as_pydantic_reads_them() -> None:
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
    assert normalise._plain(raw) is None
    verdict = fn_telemetry_event(raw, CTX)
    assert isinstance(verdict, TelemetryRow)
    values = verdict.values
    assert (values["duration_ms"], values["input_tokens"], values["output_tokens"]) == (2300, 12, 1)
