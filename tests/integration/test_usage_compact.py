"""Migration 0013: rows of `skill_usage_daily` stored before it keep everything, in the new
shape the ingester writes (same `raw` rest, same `row_hash`), and a downgrade rebuilds `raw`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, text

from claresia_sync.db.engine import make_engine
from claresia_sync.db.migrate import downgrade, upgrade
from tests.unit.test_analytics_rest import NAME, _normalise, answer

NEW = (
    "enable_count",
    "share_status",
    *(f"office_{p}_sessions" for p in ("excel", "outlook", "powerpoint", "word")),
)
OLD_COLUMNS = (
    "org_id, day, breakdown, skill_name, user_id, rbac_group_id, published_name, tenant_slug, "
    "parent_tenant_slug, skill_id, archetype_slug, invocation_count, distinct_user_count, "
    "chat_conversations, claude_code_sessions, cowork_sessions, estimated_overage_spend_usd, "
    "attributed_list_price_usd, currency, raw, row_hash"
)


def _answers() -> list[dict[str, Any]]:
    odd = answer(user_id="user_2", rbac_group_name="Sales", enable_count=None)
    odd["skill_display_name"] = "plugin:" + NAME
    odd["office_metrics"]["excel"]["distinct_session_skill_used_count"] = 1.5
    odd["office_metrics"]["excel"]["new_metric"] = 2
    odd["chat_cowork_unified_metrics"] = {"chat": {"n": 1}, "sessions": {"n": None}}
    return [
        answer(user_id="user_1"),
        answer(user_id="user_3", enable_count=5, share_status=None, currency=None),
        answer(user_id="user_4", attributed_list_price="1234567890123456789012345678.9"),
        odd,
    ]


def test_old_rows_are_converted_as_the_ingester_writes_them(
    make_database: Callable[[], str],
) -> None:
    engine = make_engine(make_database())
    try:
        upgrade(engine, "0012")
        expected = {}
        with engine.begin() as conn:
            for raw in _answers():
                row = _normalise(raw)
                expected[row["user_id"]] = row
                sorted_json = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
                old = {k: v for k, v in row.items() if k not in NEW}
                if row["user_id"] == "user_4":  # before: rounded to 28 digits
                    old["attributed_list_price_usd"] = Decimal(raw["attributed_list_price"]) / 100
                    row["attributed_list_price_usd"] = old["attributed_list_price_usd"]
                    row["raw"] = orjson.dumps(
                        {"attributed_list_price": raw["attributed_list_price"]}
                    ).decode()
                # as 0007-0012 stored it: the whole answer, a 32-hex-character hash
                old |= {
                    "raw": sorted_json.decode(),
                    "row_hash": hashlib.sha256(sorted_json).hexdigest()[:32],
                }
                names = OLD_COLUMNS.split(", ")
                params = ", ".join(f"CAST(:{n} AS jsonb)" if n == "raw" else f":{n}" for n in names)
                conn.execute(
                    text(f"INSERT INTO skill_usage_daily ({OLD_COLUMNS}) VALUES ({params})"),
                    old,
                )

        upgrade(engine)
        with engine.connect() as conn:
            stored = {
                r.user_id: r._asdict()
                for r in conn.execute(text("SELECT * FROM skill_usage_daily"))
            }
        assert stored.keys() == expected.keys()
        for user, row in expected.items():
            got = stored[user]
            want_raw = orjson.loads(row["raw"]) if row["raw"] else None
            assert got["raw"] == want_raw, user
            for column, value in row.items():
                if column != "raw":
                    assert got[column] == value, (user, column)
        assert stored["user_1"]["raw"] is None  # an answer whose every field has a column

        downgrade(engine, "0012")
        with engine.connect() as conn:
            rebuilt = {
                r.user_id: r.raw
                for r in conn.execute(text("SELECT user_id, raw FROM skill_usage_daily"))
            }
        for raw in _answers():
            back = rebuilt[raw["user_id"]]
            for key in ("skill_name", "skill_display_name", "invocation_count", "share_status"):
                assert back.get(key) == raw[key], key
            for key in ("estimated_overage_spend", "attributed_list_price"):
                assert Decimal(back[key]) == Decimal(raw[key]), key  # raw's text wins if kept
            assert back["office_metrics"]["word"] == raw["office_metrics"]["word"]
            assert back["office_metrics"]["excel"] == raw["office_metrics"]["excel"]
            assert back["chat_metrics"] == raw["chat_metrics"]
        assert rebuilt["user_2"]["rbac_group_name"] == "Sales"
    finally:
        engine.dispose()


def test_the_analyst_docs_name_every_column_and_no_other(engine: Engine) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "analytics.md").read_text()
    section = docs.split("### `skill_usage_daily`", 1)[1].split("\n### ", 1)[0]
    documented = {
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([a-z_]+)`", line.split(" | ")[0])
    }
    with engine.connect() as conn:
        columns = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'skill_usage_daily'"
                )
            ).scalars()
        )
    assert documented == columns
