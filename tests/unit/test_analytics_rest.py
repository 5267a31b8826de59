"""`skill_usage_daily` keeps each field of an analytics answer once: `raw` holds only what no
column holds (migration 0013; the same rule in SQL: tests/integration/test_usage_compact.py)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from claresia_sync.emulator.analytics import _Counts
from claresia_sync.emulator.analytics import _row as emulator_row
from claresia_sync.telemetry.analytics import FIELD_COLUMNS, UsageContext, normalise_row
from claresia_sync.telemetry.normalise import AttributionContext, SkillRef
from tests.unit.hypothesis_profiles import examples

NAME = "claresia-ferretti-prd-review"


def _ctx() -> UsageContext:
    skills = AttributionContext(
        "org_1", {}, published={NAME: SkillRef("prd-review", None, "ferretti")}
    )
    return UsageContext(skills, parents={"ferretti": None})


def answer(**changes: Any) -> dict[str, Any]:
    """A row as the emulator (after the SDK's AnalyticsSkillActivity) answers it."""
    counts = _Counts()
    counts.invocations, counts.spend_cents, counts.list_cents = 7, Decimal("1250.5"), Decimal(3)
    row = emulator_row(NAME, counts, 3, {"chat": 2, "claude_code": 1})
    row["office_metrics"]["word"]["distinct_session_skill_used_count"] = 4
    return {**row, **changes}


def _normalise(raw: dict[str, Any], breakdown: str = "user") -> dict[str, Any]:
    verdict = normalise_row(
        raw, org_id="org_1", day=dt.date(2026, 11, 29), breakdown=breakdown, ctx=_ctx()
    )
    assert verdict.row is not None, verdict
    return verdict.row


def test_every_field_of_an_answer_has_a_column_so_raw_is_null() -> None:
    raw = answer(user_id="user_1")
    row = _normalise(raw)
    assert row["raw"] is None
    assert (row["user_id"], row["invocation_count"], row["distinct_user_count"]) == ("user_1", 7, 3)
    assert (row["chat_conversations"], row["claude_code_sessions"], row["cowork_sessions"]) == (
        2,
        1,
        0,
    )
    assert [row[f"office_{p}_sessions"] for p in ("excel", "outlook", "powerpoint", "word")] == [
        0,
        0,
        0,
        4,
    ]
    assert (row["share_status"], row["enable_count"], row["currency"]) == (
        "organization",
        None,
        "USD",
    )
    assert row["estimated_overage_spend_usd"] == Decimal("12.505")  # cents -> dollars, exact
    # the revision digest covers the whole answer: the first 8 bytes of its sha256
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).digest()
    assert row["row_hash"] == int.from_bytes(digest[:8], "big", signed=True)
    changed = _normalise({**raw, "share_status": "private"})
    assert changed["row_hash"] != row["row_hash"] and changed["raw"] is None


def test_what_no_column_holds_stays_in_raw() -> None:
    raw = answer(user_id="user_1", rbac_group_name="Sales", product="chat")
    raw["skill_display_name"] = "plugin:" + NAME  # resolves to NAME, but is not NAME
    raw["office_metrics"]["excel"]["distinct_session_skill_used_count"] = 1.5  # not a count
    raw["office_metrics"]["excel"]["new_metric"] = 2
    raw["chat_cowork_unified_metrics"] = {"chat": {"n": 1}, "sessions": {"n": None}}
    original = copy.deepcopy(raw)
    row = _normalise(raw)
    assert raw == original  # the answer is not changed
    assert orjson.loads(row["raw"]) == {
        "rbac_group_name": "Sales",
        "product": "chat",
        "skill_display_name": "plugin:" + NAME,
        "office_metrics": {"excel": {"distinct_session_skill_used_count": 1.5, "new_metric": 2}},
        "chat_cowork_unified_metrics": {"chat": {"n": 1}},  # nulls are left out
    }
    assert row["office_excel_sessions"] is None and row["office_word_sessions"] == 4


def test_amounts_are_held_exactly_whatever_their_digits() -> None:
    # 29 significant digits: past the default context's 28, still exact
    cents = "1234567890123456789012345678.9"
    row = _normalise(answer(user_id="user_1", attributed_list_price=cents))
    assert row["attributed_list_price_usd"] == Decimal("12345678901234567890123456.789")
    assert row["raw"] is None
    row = _normalise(answer(user_id="user_1", attributed_list_price="125e1"))
    assert row["attributed_list_price_usd"] == Decimal("12.5") and row["raw"] is None


# Mostly well-formed values (a malformed row is quarantined whole, never reaches the check),
# some of a surprising type, and keys no column holds at both levels.
_VALUES = st.one_of(
    st.none(),
    st.integers(0, 10**6),
    st.text(max_size=8),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
)
_METRICS = st.dictionaries(
    st.sampled_from(
        ["distinct_session_skill_used_count", "distinct_conversation_skill_used_count", "x"]
    ),
    st.one_of(st.none(), st.integers(0, 100), st.booleans()),
    max_size=2,
)


@settings(max_examples=examples(500), deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from(
            [
                "skill_display_name",
                "user_id",
                "share_status",
                "currency",
                "enable_count",
                "chat_metrics",
                "cowork_metrics",
                "office_metrics",
                "unknown_field",
            ]
        ),
        st.one_of(
            _VALUES,
            _METRICS,
            st.dictionaries(
                st.sampled_from(["word", "excel", "teams"]),
                st.one_of(st.none(), _METRICS),
                max_size=2,
            ),
        ),
        max_size=4,
    )
)
def test_raw_keeps_exactly_the_leaves_no_column_holds(changes: dict[str, Any]) -> None:
    """The one reading of every row against a leaf-by-leaf oracle: each non-null value of the
    answer, by its path, is either held exactly by its column or kept in `raw`, never both and
    never neither (an amount is held when its column is set: `_dollars` is exact)."""
    raw = answer(**{"user_id": "user_1", **changes})
    verdict = normalise_row(
        raw, org_id="org_1", day=dt.date(2026, 11, 29), breakdown="user", ctx=_ctx()
    )
    if verdict.row is None:  # refused as malformed: quarantined whole, nothing dropped
        return
    row = verdict.row

    def leaves(value: Any, path: tuple[str, ...] = (), kept: bool = False) -> dict[Any, Any]:
        """Values by path; nulls and empty objects count only in what `raw` kept (an error)."""
        if type(value) is dict and (value or not kept):
            return {
                p: v
                for k, inner in value.items()
                for p, v in leaves(inner, (*path, k), kept).items()
            }
        return {} if value is None and not kept else {path: value}

    def column(path: tuple[str, ...]) -> str | None:
        where: Any = FIELD_COLUMNS
        for key in path:
            where = where.get(key) if type(where) is dict else None
        return where if type(where) is str else None

    def held(path: tuple[str, ...], value: Any) -> bool:
        name = column(path)
        if name is None:
            return False
        if name.endswith("_usd"):
            return row[name] is not None and row[name] == Decimal(value).scaleb(-2)
        return type(row[name]) is type(value) and row[name] == value

    expected = {p: v for p, v in leaves(raw).items() if not held(p, v)}
    kept = leaves(orjson.loads(row["raw"]), kept=True) if row["raw"] is not None else {}
    assert kept == expected, (changes, kept, expected)
