"""What an operator and an analyst read of the audit normaliser, word for word: the footer's
money, durations and escaping, and each quarantine reason (the field, its value, what to do)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import orjson
import pytest

from claresia_sync.naming import published_name
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Owner,
    Quarantined,
    SkillRef,
    TelemetryRow,
    fn_telemetry_event,
    format_cost,
    format_duration,
    render_footer,
)
from claresia_sync.telemetry.settings import TelemetrySettings

CTX = AttributionContext(
    org_id="org_dainese",
    workspaces={"wrkspc_dainese_eng": Owner("dainese-eng", "dainese")},
    tenant_slugs=frozenset({"dainese", "dainese-eng"}),
    titles={"incident-postmortem": "Incident Postmortem", "eng-x": "Eng X"},
)
EVENT: dict[str, Any] = {
    "type": "skill.invoked",
    "id": "evt_01JDX3AAAAAAAAAAAAAAAAAAAA",
    "created_at": "2026-11-21T09:14:03.512Z",
    "organization_id": "org_dainese",
    "workspace_id": "wrkspc_dainese_eng",
    "skill": {"name": "claresia-dainese-eng-incident-postmortem"},
}


def _verdict(**over: Any) -> Any:
    return fn_telemetry_event({**copy.deepcopy(EVENT), **over}, CTX)


def _why(**over: Any) -> str:
    verdict = _verdict(**over)
    assert isinstance(verdict, Quarantined), verdict
    return verdict.reason


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        (None, None),
        (Decimal(0), "$0.00"),
        (Decimal("0.01"), "$0.01"),
        (Decimal("0.0099"), "$0.0099"),
        (Decimal("0.00005"), "$0.0001"),  # halves up, sub-cent
        (Decimal("1.005"), "$1.01"),  # halves up, not to even
        (Decimal("0.125"), "$0.13"),
    ],
)
def test_costs_show_cents_and_sub_cent_costs_four_places(
    cost: Decimal | None, text: str | None
) -> None:
    assert format_cost(cost) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, None), (0, "0.0s"), (49, "0.0s"), (50, "0.1s"), (59_950, "60.0s"), (60_000, "1m 0s")],
)
def test_durations_at_their_edges(ms: int | None, text: str | None) -> None:
    assert format_duration(ms) == text


def _footer(**kw: Any) -> str:
    args: dict[str, Any] = {
        "title": "T",
        "failed": False,
        "error_type": None,
        "cost": None,
        "duration_ms": None,
        "record_url": "https://hub/r",
        **kw,
    }
    return render_footer(**args)


def test_the_footer_of_each_outcome() -> None:
    assert _footer() == "*Claresia · T · [View record](https://hub/r)*"
    assert _footer(cost=Decimal(0)) == "*Claresia · T · $0.00 · [View record](https://hub/r)*"
    assert _footer(failed=True, cost=Decimal(1)) == (
        "*Claresia · T · failed (error) · [View record](https://hub/r)*"  # no cost when failed
    )
    assert _footer(failed=True, error_type="timeout", duration_ms=1500) == (
        "*Claresia · T · failed (timeout) · 1.5s · [View record](https://hub/r)*"
    )
    assert _footer(title="U", cost=Decimal("2"), duration_ms=61_000) == (
        "*Claresia · U · $2.00 · 1m 1s · [View record](https://hub/r)*"
    )


def test_titles_and_error_types_are_one_line_with_markdown_escaped() -> None:
    footer = _footer(
        title="a\n  `b` <i>|x\\", failed=True, error_type="bad_*request*", record_url="u"
    )
    assert footer == (
        r"*Claresia · a \`b\` \<i\>\|x\\ · failed (bad_\*request\*) · [View record](u)*"
    )


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"created_at": None}, "created_at: missing"),
        ({"created_at": ""}, "created_at: missing"),
        ({"created_at": "21/11/2026"}, "created_at: '21/11/2026' is not an ISO 8601 timestamp"),
        (
            {"created_at": "2026-11-21T09:14:03"},
            "created_at: '2026-11-21T09:14:03' has no time zone",
        ),
        (
            {"organization_id": "org_acme"},
            "organization_id 'org_acme' differs from the polled organisation 'org_dainese'",
        ),
        (
            {"workspace_id": ""},
            "workspace_id: missing (the event cannot be attributed to a tenant)",
        ),
        (
            {"workspace_id": "wrkspc_x"},
            "unknown workspace 'wrkspc_x' of organisation org_dainese: map it to a tenant or "
            "sub-tenant in the tenant file and apply it",
        ),
        ({"skill": {"version": "1"}}, "skill.name: missing"),
        (
            {"skill": {"name": "claresia-nobody-x"}},
            "skill 'claresia-nobody-x' is in the claresia- namespace but matches no publication "
            "and no known tenant",
        ),
        (
            {"invocation": {"cost_usd": "NaN"}},
            "invocation.cost_usd: 'NaN' is out of range (0..99999999.999999)",
        ),
        (
            {"invocation": {"cost_usd": "-0.01"}},
            "invocation.cost_usd: '-0.01' is out of range (0..99999999.999999)",
        ),
        (
            {"invocation": {"usage": {"input_tokens": -3}}},
            "invocation.usage.input_tokens: -3 is out of range (0..2147483647)",
        ),
        (
            {"invocation": {"usage": {"output_tokens": 2**31}}},
            "invocation.usage.output_tokens: 2147483648 is out of range (0..2147483647)",
        ),
        (
            {"skill": {"name": "claresia-dainese-eng-incident-postmortem", "id": "x" * 50}},
            None,
        ),
    ],
)
def test_each_quarantine_reason_word_for_word(over: dict[str, Any], reason: str | None) -> None:
    if reason is None:
        assert isinstance(_verdict(**over), TelemetryRow)
    else:
        assert _why(**over) == reason


def test_a_long_value_is_shown_cut_and_every_wrong_text_field_at_once() -> None:
    reason = _why(
        workspace_id=["w" * 60],
        error={"type": 1.5, "message": {"a": None}},
        actor={"type": None, "user_id": True},
    )
    assert reason == (
        f"workspace_id: ['{'w' * 35}... is an array, not a string; "  # 40 characters at most
        "actor.user_id: True is a boolean, not a string; "
        "error.type: 1.5 is a number, not a string; "
        "error.message: {'a': None} is an object, not a string"
    )


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("text", "a string"),
        (["x"], "an array"),
        (5, "a number"),
        (True, "a boolean"),
        (None, "null"),
    ],
)
def test_an_event_that_is_not_an_object_says_what_it_is(event: Any, kind: str) -> None:
    verdict = fn_telemetry_event(event, CTX)
    assert isinstance(verdict, Quarantined)
    assert verdict.reason == f"the event is {kind}, not a JSON object"


def test_a_name_read_by_the_rule_prefers_a_catalogued_skill_over_the_longest_tenant() -> None:
    # claresia-dainese-eng-x: tenant dainese-eng's skill x (longest tenant), or tenant dainese's
    # skill eng-x, which the catalog knows: the catalogued reading wins.
    verdict = _verdict(skill={"name": "claresia-dainese-eng-x"})
    assert isinstance(verdict, TelemetryRow) and verdict.values["skill_id"] == "eng-x"
    assert verdict.values["footer_md"].startswith("*Claresia · Eng X · ")


@pytest.mark.parametrize(
    ("length", "shown"), [(36, "['" + "v" * 36 + "']"), (37, "['" + "v" * 35 + "...")]
)
def test_a_value_is_shown_whole_up_to_40_characters(length: int, shown: str) -> None:
    over = {"name": EVENT["skill"]["name"], "version": ["v" * length]}
    assert _why(skill=over) == f"skill.version: {shown} is an array, not a string"


def test_an_event_as_a_python_tuple_is_an_array() -> None:
    verdict = fn_telemetry_event(("x",), CTX)  # type: ignore[arg-type]
    assert isinstance(verdict, Quarantined)
    assert verdict.reason == "the event is an array, not a JSON object"


def test_a_count_is_trimmed_of_white_space_only() -> None:
    # U+001F is space to Python's str.strip, not Unicode White_Space: no count written so
    assert _why(invocation={"duration_ms": "\x1f7"}) == (
        "invocation.duration_ms: '\\x1f7' is not a whole number"
    )
    verdict = _verdict(invocation={"duration_ms": "\u3000 7\u2029"})
    assert isinstance(verdict, TelemetryRow) and verdict.values["duration_ms"] == 7


WITH_EMAIL = {"type": "user", "user_id": "user_ana", "email": "ana@dainese.com"}


def test_the_stored_event_has_no_email_unless_configured() -> None:
    row = _verdict(actor=WITH_EMAIL)
    assert isinstance(row, TelemetryRow)
    assert orjson.loads(row.values["raw"])["actor"] == {"type": "user", "user_id": "user_ana"}
    held = _verdict(actor=WITH_EMAIL, workspace_id="wrkspc_x")
    assert isinstance(held, Quarantined)
    assert held.raw["actor"] == {"type": "user", "user_id": "user_ana"}
    assert held.raw["workspace_id"] == "wrkspc_x"  # the rest of the event is kept
    keeping = AttributionContext(
        org_id=CTX.org_id,
        workspaces=CTX.workspaces,
        tenant_slugs=CTX.tenant_slugs,
        titles=CTX.titles,
        settings=TelemetrySettings(store_emails=True),
    )
    raw = {**copy.deepcopy(EVENT), "actor": WITH_EMAIL}
    kept = fn_telemetry_event(raw, keeping)
    assert isinstance(kept, TelemetryRow)
    assert orjson.loads(kept.values["raw"])["actor"] == WITH_EMAIL
    held = fn_telemetry_event({**raw, "workspace_id": "wrkspc_x"}, keeping)
    assert isinstance(held, Quarantined) and held.raw["actor"] == WITH_EMAIL


def test_a_quarantined_event_keeps_its_id_and_its_numbers() -> None:
    held = _verdict(workspace_id="wrkspc_x", invocation={"duration_ms": 1.0, "odd": 2.5})
    assert isinstance(held, Quarantined)
    assert held.event_id == EVENT["id"] and held.raw["invocation"] == {
        "duration_ms": 1.0,
        "odd": 2.5,
    }
    nul = _verdict(error={"type": "x", "message": "a\x00b"})
    assert isinstance(nul, Quarantined) and nul.event_id == EVENT["id"]
    assert nul.reason == (
        "the event holds NUL characters, broken Unicode or numbers that PostgreSQL cannot "
        "store (kept here with them replaced by U+FFFD or null)"
    )


@pytest.mark.parametrize("ident", [42, "", None])
def test_an_event_without_a_usable_id_is_held_under_no_id(ident: Any) -> None:
    held = _verdict(id=ident)
    assert isinstance(held, Quarantined) and held.event_id is None


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"skill": 5}, "skill: 5 is a number, not an object"),
        ({"invocation": "fast"}, "invocation: 'fast' is a string, not an object"),
        ({"error": [1]}, "error: [1] is an array, not an object"),
        # the first count out of range is named, not one at a bound beside it
        (
            {"invocation": {"duration_ms": 0, "usage": {"input_tokens": -3}}},
            "invocation.usage.input_tokens: -3 is out of range (0..2147483647)",
        ),
        (
            {"invocation": {"duration_ms": 2**31 - 1, "usage": {"output_tokens": -1}}},
            "invocation.usage.output_tokens: -1 is out of range (0..2147483647)",
        ),
    ],
)
def test_each_malformed_part_is_named(over: dict[str, Any], reason: str) -> None:
    assert _why(**over) == reason


def test_the_invocation_fields_are_stored() -> None:
    invocation = {"id": "inv_1", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 3}}
    verdict = _verdict(
        invocation=invocation,
        actor={"user_id": "user_ana"},
        skill={**EVENT["skill"], "version": "2"},
    )
    assert isinstance(verdict, TelemetryRow)
    values = verdict.values
    assert (values["invocation_id"], values["model"], values["input_tokens"]) == (
        "inv_1",
        "claude-sonnet-4-5",
        3,
    )
    assert (values["actor_user_id"], values["skill_version"]) == ("user_ana", "2")


def _fresh(**kw: Any) -> AttributionContext:
    return AttributionContext(
        org_id=CTX.org_id, workspaces=CTX.workspaces, tenant_slugs=CTX.tenant_slugs, **kw
    )


def test_a_name_is_read_by_the_rule_once_and_for_each_tenant() -> None:
    ctx = _fresh(titles={"x": "X"})
    first = ctx.skill_for("claresia-dainese-eng-x")
    assert first == SkillRef("x", owner_tenant="dainese-eng")
    assert ctx.skill_for("claresia-dainese-eng-x") == first  # remembered, not forgotten


def test_a_catalog_id_the_rule_refuses_does_not_end_the_search() -> None:
    long_skill = "a-very-long-skill-identifier-that-needs-the-hash-suffix"
    name = published_name("dainese-eng", long_skill)
    ctx = _fresh(titles={"claude-helper": "Refused", long_skill: "Long"})
    ref = ctx.skill_for(name)
    assert ref is not None and ref.skill_id == long_skill
