"""`fn_telemetry_event` alone: every verdict, attribution rules, the footer, malformed input."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claresia_sync.naming import published_name
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Owner,
    Quarantined,
    SkillRef,
    Skipped,
    TelemetryRow,
    fn_telemetry_event,
    record_id,
    render_footer,
)
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.unit.hypothesis_profiles import examples

EVENT: dict[str, Any] = {
    "type": "skill.failed",
    "id": "evt_01JDX3AAAAAAAAAAAAAAAAAAAA",
    "created_at": "2026-11-21T09:14:03.512Z",
    "organization_id": "org_dainese",
    "workspace_id": "wrkspc_dainese_eng",
    "actor": {"type": "user", "user_id": "user_ana", "email": "ana@dainese.com"},
    "skill": {
        "id": "skill_01X",
        "name": "claresia-dainese-eng-incident-postmortem",
        "version": "1763712000000000",
    },
    "invocation": {
        "id": "inv_1",
        "model": "claude-sonnet-4-5",
        "duration_ms": 2300,
        "usage": {"input_tokens": 1200, "output_tokens": 800},
        "cost_usd": "0.0400",
    },
    "error": {"type": "timeout", "message": "tool call timed out"},
}


def ctx(**kw: Any) -> AttributionContext:
    base: dict[str, Any] = {
        "org_id": "org_dainese",
        "workspaces": {
            "wrkspc_dainese_eng": Owner("dainese-eng", "dainese"),
            "wrkspc_dainese_sales": Owner("dainese", None),
        },
        "tenant_slugs": frozenset({"dainese", "dainese-eng", "dainese-corp"}),
        "titles": {"incident-postmortem": "Incident Postmortem"},
    }
    base.update(kw)
    return AttributionContext(**base)


def event(**over: Any) -> dict[str, Any]:
    e = copy.deepcopy(EVENT)
    e.update(over)
    return e


def row(e: dict[str, Any], c: AttributionContext | None = None) -> dict[str, Any]:
    verdict = fn_telemetry_event(e, c or ctx())
    assert isinstance(verdict, TelemetryRow), verdict
    return verdict.values


def quarantined(e: Any) -> str:
    verdict = fn_telemetry_event(e, ctx())
    assert isinstance(verdict, Quarantined), verdict
    return verdict.reason


def test_contract_example_row() -> None:
    r = row(EVENT)
    assert r["record_id"] == "rec_01JDX3AAAAAAAAAAAAAAAAAAAA"
    assert r["status"] == "failed" and r["event_type"] == "skill.failed"
    assert r["occurred_at"] == dt.datetime(2026, 11, 21, 9, 14, 3, 512000, tzinfo=dt.UTC)
    assert (r["tenant_slug"], r["parent_tenant_slug"]) == ("dainese-eng", "dainese")
    assert (r["skill_id"], r["remote_skill_id"]) == ("incident-postmortem", "skill_01X")
    assert r["cost_usd"] == Decimal("0.0400") and r["duration_ms"] == 2300
    assert (r["input_tokens"], r["output_tokens"]) == (1200, 800)
    assert (r["error_type"], r["error_message"]) == ("timeout", "tool call timed out")
    assert r["actor_user_id"] == "user_ana" and r["actor_email"] is None
    assert r["footer_md"] == (
        "*Claresia · Incident Postmortem · failed (timeout) · 2.3s · "
        "[View record](https://hub.dainese.claresia.com/records/rec_01JDX3AAAAAAAAAAAAAAAAAAAA)*"
    )
    assert '"id":"evt_01JDX3AAAAAAAAAAAAAAAAAAAA"' in r["raw"]


def test_succeeded_footer_is_the_seed_example_and_emails_when_configured() -> None:
    c = ctx(settings=TelemetrySettings(store_emails=True))
    r = row(event(type="skill.invoked", error=None), c)
    assert r["status"] == "succeeded" and r["error_type"] is None
    assert r["footer_md"].startswith("*Claresia · Incident Postmortem · $0.04 · 2.3s · [View")
    assert r["actor_email"] == "ana@dainese.com"


def test_hub_link_template_is_configurable() -> None:
    c = ctx(settings=TelemetrySettings(hub_record_url="https://hub.example/{tenant}/{record_id}"))
    assert "(https://hub.example/dainese-eng/rec_01JDX3" in row(EVENT, c)["footer_md"]
    with pytest.raises(Exception, match="placeholders"):
        TelemetrySettings(hub_record_url="https://hub/{nope}")


@pytest.mark.parametrize(
    ("cost", "ms", "expected"),
    [
        (Decimal("0.04"), 2300, " · $0.04 · 2.3s · "),
        (Decimal("0.0012"), 450, " · $0.0012 · 0.5s · "),
        (Decimal("12.5"), 75_000, " · $12.50 · 1m 15s · "),
        (None, None, "Title · [View"),
    ],
)
def test_footer_parts(cost: Decimal | None, ms: int | None, expected: str) -> None:
    footer = render_footer(
        title="Title", failed=False, error_type=None, cost=cost, duration_ms=ms, record_url="u"
    )
    assert expected in footer


@settings(max_examples=examples(500), deadline=None)
@given(
    st.integers(0, 2**31 - 1) | st.sampled_from([0, 49, 50, 950, 59_949, 59_950, 59_999, 60_000])
)
def test_durations_are_tenths_of_a_second_rounded_half_up(ms: int) -> None:
    """Under a minute: the seconds to one decimal, halves up (as PostgreSQL's round does in the
    analysts' view); from a minute on: whole minutes and seconds."""
    from decimal import ROUND_HALF_UP

    from claresia_sync.telemetry.normalise import format_duration

    if ms < 60_000:
        expected = f"{(Decimal(ms) / 1000).quantize(Decimal('0.1'), ROUND_HALF_UP)}s"
    else:
        expected = f"{ms // 60_000}m {ms % 60_000 // 1000}s"
    assert format_duration(ms) == expected


def test_footer_escapes_markdown_in_titles() -> None:
    footer = render_footer(
        title="Evil *bold* [link](x)",
        failed=True,
        error_type="tool_error",
        cost=None,
        duration_ms=None,
        record_url="u",
    )
    assert (
        footer == r"*Claresia · Evil \*bold\* \[link\](x) · failed (tool_error) · [View record](u)*"
    )


def test_other_types_and_other_namespaces_are_skipped() -> None:
    assert fn_telemetry_event(event(type="user.login"), ctx()) == Skipped(EVENT["id"], "other_type")
    vendor = event(skill={"id": "s", "name": "acme-helper"})
    assert fn_telemetry_event(vendor, ctx()) == Skipped(EVENT["id"], "outside_namespace")


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"id": None}, "id"),
        ({"id": 42}, "id"),
        ({"created_at": None}, "created_at: missing"),
        ({"created_at": "21/11/2026"}, "not an ISO 8601"),
        ({"created_at": "2026-11-21T09:14:03"}, "no time zone"),
        ({"type": 7}, "type"),
        ({"workspace_id": None}, "workspace_id: missing"),
        ({"workspace_id": "wrkspc_x"}, "unknown workspace 'wrkspc_x' of organisation org_dainese"),
        ({"organization_id": "org_acme"}, "differs from the polled organisation"),
        ({"skill": "claresia-x"}, "skill"),
        ({"skill": {"id": "s"}}, "skill.name: missing"),
        ({"skill": {"name": "claresia-nobody-prd-review"}}, "matches no publication"),
        ({"invocation": {"cost_usd": "NaN"}}, "cost_usd"),
        ({"invocation": {"cost_usd": "-1"}}, "cost_usd"),
        ({"invocation": {"cost_usd": "1e12"}}, "cost_usd"),
        ({"invocation": {"duration_ms": "slow"}}, "duration_ms"),
        ({"invocation": {"duration_ms": 2**40}}, "duration_ms"),
        ({"invocation": {"usage": {"input_tokens": -3}}}, "input_tokens"),
    ],
)
def test_malformed_and_unattributable_events_are_quarantined(
    over: dict[str, Any], reason: str
) -> None:
    assert reason in quarantined(event(**over))


def test_not_an_object_is_quarantined() -> None:
    verdict = fn_telemetry_event(["not", "an", "event"], ctx())  # type: ignore[arg-type]
    assert isinstance(verdict, Quarantined) and verdict.event_id is None
    assert verdict.raw == {"value": ["not", "an", "event"]}


@pytest.mark.parametrize(
    ("value", "stored"),
    [("bad\x00byte", "bad\ufffdbyte"), ("lone \udc80", "lone \ufffd"), (2**70, 2**70)],
)
def test_what_jsonb_cannot_hold_is_quarantined_with_a_storable_copy(
    value: Any, stored: Any
) -> None:
    verdict = fn_telemetry_event(event(error={"type": "x", "message": "m", "extra": value}), ctx())
    assert isinstance(verdict, Quarantined) and "NUL" in verdict.reason
    assert verdict.raw["error"]["extra"] == stored


def test_quarantined_copies_hold_no_nan() -> None:
    verdict = fn_telemetry_event(event(workspace_id="wrkspc_x", odd=float("nan")), ctx())
    assert isinstance(verdict, Quarantined) and verdict.raw["odd"] is None


def test_skill_attribution_prefers_the_publication_table() -> None:
    # `claresia-dainese-eng-x` could be tenant dainese, skill eng-x: the naming rule alone picks
    # the longest known tenant; a publication says otherwise and wins.
    assert row(event(skill={"name": "claresia-dainese-eng-x"}))["skill_id"] == "x"
    published = {"claresia-dainese-eng-x": SkillRef("eng-x", "skill_remote")}
    r = row(event(skill={"name": "claresia-dainese-eng-x"}), ctx(published=published))
    assert (r["skill_id"], r["remote_skill_id"]) == ("eng-x", "skill_remote")
    assert r["footer_md"].startswith("*Claresia · Eng X · ")  # title from the id when uncatalogued


def test_long_names_follow_the_hash_rule() -> None:
    long_skill = "a-very-long-skill-identifier-that-needs-the-hash-suffix"
    name = published_name("dainese-eng", long_skill)
    assert len(name) > 60 and long_skill not in name
    # Without the catalog the name reads as an unshortened one: skill "a-very-...-<hash>".
    assert row(event(skill={"name": name}))["skill_id"] == name.removeprefix(
        "claresia-dainese-eng-"
    )
    c = ctx(titles={long_skill: "Long"})  # the catalog's ids are tried against the rule
    assert row(event(skill={"name": name}), c)["skill_id"] == long_skill


def test_record_id_is_deterministic() -> None:
    assert record_id("evt_01ABC") == "rec_01ABC"
    odd = record_id("weird id/with spaces")
    assert odd == record_id("weird id/with spaces") and odd.startswith("rec_h")


@settings(max_examples=examples(200), deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    ),
    st.sampled_from(sorted(EVENT)),
)
def test_any_field_value_gives_a_verdict_never_an_exception(value: Any, key: str) -> None:
    verdict = fn_telemetry_event(event(**{key: value}), ctx())
    assert isinstance(verdict, TelemetryRow | Quarantined | Skipped)
    if isinstance(verdict, Quarantined):
        assert verdict.reason


@pytest.mark.parametrize(
    "invocation",
    [
        {"duration_ms": 0, "usage": {"input_tokens": 0, "output_tokens": 0}, "cost_usd": "0"},
        {
            "duration_ms": 2**31 - 1,
            "usage": {"input_tokens": 2**31 - 1, "output_tokens": 1},
            "cost_usd": "99999999.999999",
        },
    ],
)
def test_the_bounds_of_counts_and_cost_are_stored(invocation: dict[str, Any]) -> None:
    """A free, instant invocation and the largest values the columns hold are rows, not
    quarantine (int4 counts, numeric(14, 6) cost)."""
    r = row(event(invocation=invocation))
    assert r["duration_ms"] == invocation["duration_ms"]
    assert r["input_tokens"] == invocation["usage"]["input_tokens"]
    assert r["cost_usd"] == Decimal(invocation["cost_usd"])


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"created_at": None}, "created_at: missing"),
        (
            {"invocation": {"cost_usd": "lots"}},
            "invocation.cost_usd: 'lots' is not a decimal number",
        ),
        ({"invocation": {"duration_ms": 2**31}}, "duration_ms: 2147483648 is out of range"),
        ({"invocation": {"cost_usd": "100000000"}}, "invocation.cost_usd: '100000000' is out of"),
    ],
)
def test_quarantine_reasons_name_the_field_and_the_value(over: dict[str, Any], reason: str) -> None:
    assert reason in quarantined(event(**over))


def test_a_record_id_of_an_odd_event_id_is_a_32_digit_hash() -> None:
    odd = record_id("weird id/with spaces")
    assert len(odd) == len("rec_h") + 32 and int(odd.removeprefix("rec_h"), 16) >= 0


def test_a_row_fills_every_column_of_telemetry_event_but_the_ingestion_time() -> None:
    """The row is inserted as is (`telemetry/load.py`): each key must be a column, and each
    column but `ingested_at` (the database's default) must be filled by the normaliser."""
    from claresia_sync.db.models import TelemetryEvent

    columns = {c.name for c in TelemetryEvent.__table__.columns}
    assert set(row(EVENT)) == columns - {"ingested_at"}


@settings(max_examples=examples(500), deadline=None)
@given(
    st.text(alphabet="0aZ9\n_٣éx", max_size=64).map(lambda t: "evt_" + t)
    | st.text(max_size=8)
    | st.integers(55, 65).map(lambda n: "evt_" + "A" * n)
)
def test_record_ids_follow_the_ulid_pattern_without_its_regex(event_id: str) -> None:
    """The fast path of `record_id` takes exactly what `^evt_([0-9A-Za-z]{1,60})$` takes (the
    `$` also before a final newline); anything else is hashed."""
    import re

    match = re.match(r"^evt_([0-9A-Za-z]{1,60})$", event_id)
    got = record_id(event_id)
    if match:
        assert got == "rec_" + match.group(1)
    else:
        assert got.startswith("rec_h") and len(got) == len("rec_h") + 32


@pytest.mark.parametrize(
    "template",
    [
        "https://hub.{parent_tenant}.example/{tenant}/records/{record_id}",
        "https://hub/{record_id}/{record_id}",
        "https://hub/{record_id!r}",
        "https://hub/{record_id:>40}",
        "https://hub/{record_id:.6}",
        "https://hub/{{record_id}}/{tenant}?r={record_id}",
        "https://hub/{tenant}\x00/{record_id}",
        "https://hub/{parent_tenant:>{tenant}}/{record_id}",
    ],
)
def test_the_record_link_is_the_template_filled_in(template: str) -> None:
    """Around the id, made once per tenant, or in full: the same text as `str.format`."""
    from claresia_sync.telemetry.normalise import record_link

    for rec in ("rec_01ABC", "rec_h" + "f" * 32, "rec_01ABC"):
        try:
            expected = template.format(parent_tenant="dainese", tenant="dainese-eng", record_id=rec)
        except (ValueError, KeyError):
            with pytest.raises((ValueError, KeyError)):
                record_link(template, "dainese", "dainese-eng", rec)
            continue
        assert record_link(template, "dainese", "dainese-eng", rec) == expected


def test_costs_remembered_by_their_text_stay_exact_past_the_memo_bound() -> None:
    """The cost memo is emptied when full; every cost still reads and prints as the first time."""
    from claresia_sync.telemetry import normalise

    for cents in range(normalise._MEMO_MAX + 10):
        value = f"{cents / 10_000:.4f}"
        r = row(event(type="skill.invoked", error=None, invocation={"cost_usd": value}))
        assert r["cost_usd"] == Decimal(value)
        assert (
            render_footer(
                title="Incident Postmortem",
                failed=False,
                error_type=None,
                cost=Decimal(value),
                duration_ms=None,
                record_url="u",
            ).split(" · ")[2]
            in r["footer_md"]
        )
    assert len(normalise._COST_TEXTS) <= normalise._MEMO_MAX
    assert "lots" not in normalise._COST_TEXTS and quarantined(
        event(invocation={"cost_usd": "lots"})
    )
