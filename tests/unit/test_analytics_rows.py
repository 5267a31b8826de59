"""One skills analytics row as stored or quarantined (`analytics.normalise_row`): attribution to
a tenant, a sub-tenant and an archetype, the reasons a row is refused (naming the field), the
days a run reads, and the pages of a day."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import orjson
import pytest

from claresia_sync.telemetry import analytics
from claresia_sync.telemetry.analytics import GroupOwner, UsageContext, normalise_row
from claresia_sync.telemetry.normalise import AttributionContext, SkillRef

SUB = "claresia-ferretti-eng-prd-review"  # published for the sub-tenant ferretti-eng
DAY = dt.date(2026, 11, 29)


def _ctx() -> UsageContext:
    skills = AttributionContext(
        "org_1",
        {},
        published={SUB: SkillRef("prd-review", None, "ferretti-eng")},
        tenant_slugs=frozenset({"ferretti", "ferretti-eng", "acme"}),
    )
    groups = {
        "rbac_sales": [
            GroupOwner("seller", "acme", None),  # another root's archetype on the same group
            GroupOwner("analyst", "ferretti", None),
            GroupOwner("later", "ferretti-eng", "ferretti"),
        ],
        "rbac_eng": [GroupOwner("engineer", "ferretti-eng", "ferretti")],
    }
    return UsageContext(
        skills, groups, parents={"ferretti-eng": "ferretti", "ferretti": None, "acme": None}
    )


def _answer(**changes: Any) -> dict[str, Any]:
    return {
        "skill_name": SUB,
        "invocation_count": 7,
        "distinct_user_count": 3,
        "currency": "USD",
        "share_status": "organization",
        **changes,
    }


def _verdict(raw: dict[str, Any], breakdown: str = "skill") -> analytics.Verdict:
    return normalise_row(raw, org_id="org_1", day=DAY, breakdown=breakdown, ctx=_ctx())


def _row(raw: dict[str, Any], breakdown: str = "skill") -> dict[str, Any]:
    verdict = _verdict(raw, breakdown)
    assert verdict.row is not None and verdict.quarantine is None, verdict
    return verdict.row


def _why(raw: dict[str, Any], breakdown: str = "skill") -> str:
    verdict = _verdict(raw, breakdown)
    assert verdict.row is None and verdict.quarantine is not None, verdict
    return verdict.quarantine


def test_an_organisation_wide_row_is_attributed_to_the_publishing_sub_tenant() -> None:
    row = _row(_answer())
    assert (row["org_id"], row["day"], row["breakdown"]) == ("org_1", DAY, "skill")
    assert (row["user_id"], row["rbac_group_id"], row["archetype_slug"]) == ("", "", None)
    assert (row["tenant_slug"], row["parent_tenant_slug"], row["skill_id"]) == (
        "ferretti-eng",
        "ferretti",
        "prd-review",
    )
    assert (row["skill_name"], row["published_name"]) == (SUB, SUB)
    assert (row["currency"], row["share_status"], row["enable_count"]) == (
        "USD",
        "organization",
        None,
    )
    assert row["chat_conversations"] is None and row["office_word_sessions"] is None
    assert row["raw"] is None


def test_a_user_row_keeps_its_user_and_no_group() -> None:
    row = _row(_answer(user_id="user_1"), "user")
    assert (row["user_id"], row["rbac_group_id"], row["breakdown"]) == ("user_1", "", "user")


def test_a_group_row_goes_to_the_archetype_of_the_group_under_the_same_root() -> None:
    row = _row(_answer(rbac_group_id="rbac_sales"), "rbac_group")
    assert (row["user_id"], row["rbac_group_id"]) == ("", "rbac_sales")
    assert (row["tenant_slug"], row["parent_tenant_slug"], row["archetype_slug"]) == (
        "ferretti",
        None,
        "analyst",
    )
    row = _row(_answer(rbac_group_id="rbac_eng"), "rbac_group")
    assert (row["tenant_slug"], row["parent_tenant_slug"], row["archetype_slug"]) == (
        "ferretti-eng",
        "ferretti",
        "engineer",
    )
    # a group no archetype of this root names: the publishing tenant, no archetype
    row = _row(_answer(rbac_group_id="rbac_other"), "rbac_group")
    assert (row["tenant_slug"], row["archetype_slug"]) == ("ferretti-eng", None)


def test_a_plugin_skill_is_read_by_its_display_name() -> None:
    row = _row(_answer(skill_name="skill_0af3", skill_display_name=f"plugin: {SUB}"))
    assert (row["skill_name"], row["published_name"], row["skill_id"]) == (
        "skill_0af3",
        SUB,
        "prd-review",
    )
    assert analytics.published_name({"skill_display_name": 3, "skill_name": SUB}) == SUB
    assert analytics.published_name({"skill_display_name": "pdf", "skill_name": SUB}) == SUB
    assert analytics.published_name({"skill_name": "pdf"}) is None
    assert analytics.published_name({}) is None


def test_published_names_are_remembered_per_display_and_skill_name() -> None:
    ctx = _ctx()
    assert ctx.published_name({"skill_name": SUB}, SUB) == SUB
    assert ctx._names == {(None, SUB): SUB}
    assert ctx.published_name({"skill_display_name": 5, "skill_name": SUB}, SUB) == SUB
    assert ctx._names == {(None, SUB): SUB}  # an odd display name is not remembered
    ctx._names[(None, "x")] = "remembered"
    assert ctx.published_name({"skill_name": "x"}, "x") == "remembered"


def test_a_skill_outside_the_namespace_is_neither_stored_nor_quarantined() -> None:
    assert _verdict(_answer(skill_name="pdf")) == analytics.Verdict(None, None)


@pytest.mark.parametrize(
    ("raw", "breakdown", "reason"),
    [
        (_answer(skill_name=None), "skill", "malformed: skill_name missing or not a string"),
        (_answer(skill_name=""), "skill", "malformed: skill_name missing or not a string"),
        (_answer(skill_name=7), "skill", "malformed: skill_name missing or not a string"),
        (_answer(), "user", "malformed: user_id missing in a row grouped by it"),
        (_answer(user_id=""), "user", "malformed: user_id missing in a row grouped by it"),
        (_answer(rbac_group_id=4), "rbac_group", "malformed: rbac_group_id missing in a row"),
        (
            _answer(skill_name="claresia-nobody-x"),
            "skill",
            "unknown Claresia skill 'claresia-nobody-x': no tenant publishes it",
        ),
        (_answer(invocation_count=-1), "skill", "malformed: invocation_count is -1, not a count"),
        (
            _answer(distinct_user_count=2**31),
            "skill",
            "malformed: distinct_user_count is 2147483648, not a count",
        ),
        (_answer(invocation_count=True), "skill", "malformed: invocation_count is True, not a"),
        (
            _answer(chat_metrics={"distinct_conversation_skill_used_count": "2"}),
            "skill",
            "malformed: chat_metrics.distinct_conversation_skill_used_count is '2', not a count",
        ),
        (
            _answer(claude_code_metrics={"distinct_session_skill_used_count": 1.0}),
            "skill",
            "malformed: claude_code_metrics.distinct_session_skill_used_count is 1.0, not a",
        ),
        (
            _answer(cowork_metrics={"distinct_session_skill_used_count": -2}),
            "skill",
            "malformed: cowork_metrics.distinct_session_skill_used_count is -2, not a count",
        ),
        (
            _answer(estimated_overage_spend=12),
            "skill",
            "malformed: estimated_overage_spend is 12, not a decimal string",
        ),
        (
            _answer(attributed_list_price="12 cents"),
            "skill",
            "malformed: attributed_list_price is '12 cents', not a decimal string",
        ),
        (
            _answer(attributed_list_price="Infinity"),
            "skill",
            "malformed: attributed_list_price is 'Infinity', not a finite amount",
        ),
        (
            _answer(estimated_overage_spend="NaN"),
            "skill",
            "malformed: estimated_overage_spend is 'NaN', not a finite amount",
        ),
    ],
)
def test_a_row_that_does_not_fit_is_quarantined_naming_the_field(
    raw: dict[str, Any], breakdown: str, reason: str
) -> None:
    assert _why(raw, breakdown).startswith(reason)


def test_counts_and_amounts_at_their_bounds_are_stored() -> None:
    row = _row(
        _answer(
            invocation_count=2**31 - 1,
            distinct_user_count=0,
            chat_metrics={"distinct_conversation_skill_used_count": 5},
            claude_code_metrics={"distinct_session_skill_used_count": 6},
            cowork_metrics={"distinct_session_skill_used_count": 8},
            estimated_overage_spend="0",
            attributed_list_price="250",
            enable_count=2**31 - 1,
        )
    )
    assert (row["invocation_count"], row["distinct_user_count"]) == (2**31 - 1, 0)
    assert (row["chat_conversations"], row["claude_code_sessions"], row["cowork_sessions"]) == (
        5,
        6,
        8,
    )
    assert row["estimated_overage_spend_usd"] == Decimal("0")
    assert row["attributed_list_price_usd"] == Decimal("2.50")
    assert row["enable_count"] == 2**31 - 1 and row["raw"] is None


def test_values_a_column_cannot_hold_are_left_to_raw() -> None:
    row = _row(
        _answer(
            currency=5,
            share_status=["x"],
            enable_count=2**31,
            office_metrics={
                "excel": {"distinct_session_skill_used_count": 2},
                "word": [1],
                "outlook": {"distinct_session_skill_used_count": -1},
            },
        )
    )
    assert (row["currency"], row["share_status"], row["enable_count"]) == (None, None, None)
    assert row["office_excel_sessions"] == 2
    assert (row["office_word_sessions"], row["office_outlook_sessions"]) == (None, None)
    assert row["raw"] is not None and '"currency":5' in row["raw"]
    assert _row(_answer(office_metrics=[1]))["office_excel_sessions"] is None


# --- the days of a run and the pages of a day --------------------------------------------------

TODAY = dt.date(2026, 12, 7)


def _days(checkpoint: dt.date | None, window: int = 7, backfill: int = 30) -> list[dt.date]:
    return analytics.days_to_read(checkpoint, TODAY, window_days=window, backfill_days=backfill)


def test_a_first_run_reads_the_backfill_up_to_yesterday() -> None:
    days = _days(None, backfill=3)
    assert days == [dt.date(2026, 12, 4), dt.date(2026, 12, 5), dt.date(2026, 12, 6)]


def test_a_later_run_reads_the_trailing_window_or_from_the_checkpoint_whichever_is_earlier() -> (
    None
):
    assert _days(dt.date(2026, 12, 6), window=2) == [dt.date(2026, 12, 5), dt.date(2026, 12, 6)]
    assert _days(dt.date(2026, 12, 1), window=2)[0] == dt.date(2026, 12, 2)
    assert _days(dt.date(2026, 12, 3), window=4) == [
        dt.date(2026, 12, 3) + dt.timedelta(days=i) for i in range(4)
    ]
    assert _days(dt.date(2026, 12, 6), window=0) == []


@pytest.mark.parametrize(
    ("message", "day"),
    [
        ("date 2026-12-07 is not available yet; latest available day: 2026-12-05", "2026-12-05"),
        ("too recent (latest available date is 2026-12-04)", "2026-12-04"),
        ("latest available day: 2026-13-45", None),
        ("too recent", None),
    ],
)
def test_a_too_recent_answer_names_the_latest_available_day(message: str, day: str | None) -> None:
    expected = dt.date.fromisoformat(day) if day else None
    assert analytics.latest_day_named(message) == expected
    stop = analytics.TooRecent(expected)
    assert stop.latest == expected and stop.recorded == {"latest_available_day": expected}
    assert str(stop) == f"not available yet (latest available day: {expected})"


def test_a_quarantined_row_is_identified_by_day_breakdown_skill_and_key() -> None:
    raw = {"skill_name": "claresia-x", "user_id": "u1", "rbac_group_id": "g1"}
    assert analytics._event_id(DAY, "user", raw) == "analytics:2026-11-29:user:claresia-x:u1"
    assert analytics._event_id(DAY, "rbac_group", raw) == (
        "analytics:2026-11-29:rbac_group:claresia-x:g1"
    )
    assert analytics._event_id(DAY, "skill", raw) == "analytics:2026-11-29:skill:claresia-x:"


class _Reader:
    def __init__(self, cursors: list[str | None]) -> None:
        self.cursors = cursors
        self.asked: list[tuple[dt.date, str | None, str | None, int]] = []

    async def page(
        self, day: dt.date, group_by: str | None, cursor: str | None, limit: int
    ) -> analytics.AnalyticsPage:
        self.asked.append((day, group_by, cursor, limit))
        return analytics.AnalyticsPage([{"n": len(self.asked)}], self.cursors.pop(0))


async def _all(reader: _Reader) -> list[Any]:
    return [rows async for rows in analytics._pages(reader, DAY, "user_id", 50)]


def test_the_pages_of_a_day_follow_the_cursor_to_the_end() -> None:
    reader = _Reader(["c1", "c2", None])
    assert asyncio.run(_all(reader)) == [[{"n": 1}], [{"n": 2}], [{"n": 3}]]
    assert reader.asked == [
        (DAY, "user_id", None, 50),
        (DAY, "user_id", "c1", 50),
        (DAY, "user_id", "c2", 50),
    ]
    assert asyncio.run(_all(_Reader([""]))) == [[{"n": 1}]]


def test_a_cursor_that_loops_ends_the_day_with_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"^the analytics of 2026-11-29 repeat the page cursor 'c1'$"
    ):
        asyncio.run(_all(_Reader(["c1", "c2", "c1", None])))


def test_a_name_no_publication_holds_yet_is_read_by_the_naming_rule() -> None:
    row = _row(_answer(skill_name="claresia-acme-helper"))
    assert (row["tenant_slug"], row["skill_id"], row["parent_tenant_slug"]) == (
        "acme",
        "helper",
        None,
    )


def test_names_are_remembered_per_skill_name_within_one_run() -> None:
    ctx = _ctx()
    first = normalise_row(_answer(), org_id="org_1", day=DAY, breakdown="skill", ctx=ctx)
    other = normalise_row(
        _answer(skill_name="pdf"), org_id="org_1", day=DAY, breakdown="skill", ctx=ctx
    )
    assert first.row is not None and other == analytics.Verdict(None, None)


def test_a_row_hash_is_signed_64_bit() -> None:
    raw = next(
        a
        for a in (_answer(user_id=f"u{i}") for i in range(64))
        if hashlib.sha256(orjson.dumps(a, option=orjson.OPT_SORT_KEYS)).digest()[0] >= 0x80
    )
    row = _row(raw, "user")
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).digest()
    assert row["row_hash"] == int.from_bytes(digest[:8], "big", signed=True) < 0


def test_a_row_missing_its_key_is_identified_without_one() -> None:
    assert analytics._event_id(DAY, "user", {"skill_name": "s"}) == "analytics:2026-11-29:user:s:"
