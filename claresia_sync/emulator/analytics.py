"""Skills analytics of a Claude Enterprise organisation (`GET /v1/organizations/analytics/skills`,
as the official SDK's `organization.analytics.skills.list` and `AnalyticsSkillActivity` describe
it), derived from the invocations the emulator simulates (`/_emulator/invocations`).

- Each simulated invocation adds to the counters of its UTC day x skill x user x product; rows are
  aggregated when served: per skill, or per skill and `user_id` / `rbac_group_id` / `product`
  (`group_by[]`), sorted by skill name then the group value, `limit` + opaque `page` cursor.
- Lag: a day is served once it is at least `lag_days` (default 1) old; a later date answers 400
  naming the latest available day, as the SDK's docstring says the real one does.
- Revisions: invocations may be back-dated (`day`), as late data is in the real pipeline; a
  day re-read later then answers other numbers.
- A plugin skill's row has an opaque `skill_name` and the skill's name as `skill_display_name`
  (the docstring: plugin-delivered skills resolve to their name, without a `plugin:` prefix).
- `repeat_rows` (a test knob): each page lists its first rows again, a key answered twice.
- Money: `estimated_overage_spend` and `attributed_list_price` are decimal strings in cents.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from claresia_sync.emulator.common import bad_request

PRODUCTS = ("chat", "claude_code", "cowork")
GROUP_BYS = ("product", "rbac_group_id", "user_id")
MAX_LIMIT = 1000
EARLIEST = dt.date(2026, 1, 1)


@dataclass
class _Counts:
    invocations: int = 0
    sessions: int = 0
    spend_cents: Decimal = Decimal(0)
    list_cents: Decimal = Decimal(0)


@dataclass
class SkillAnalytics:
    """One organisation's analytics: counters per (day, skill name, user, product)."""

    lag_days: int = 1
    repeat_rows: int = 0
    """Each page lists its first `repeat_rows` rows again at its end (a key answered twice)."""
    counts: dict[tuple[dt.date, str, str, str], _Counts] = field(
        default_factory=lambda: defaultdict(_Counts)
    )
    user_groups: dict[str, frozenset[str]] = field(default_factory=dict)

    def record(
        self,
        day: dt.date,
        skill: str,
        user_id: str,
        groups: Iterable[str],
        product: str,
        spend_cents: Decimal,
        list_cents: Decimal,
    ) -> None:
        c = self.counts[(day, skill, user_id, product)]
        c.invocations += 1
        c.sessions += 1 if c.invocations % 2 else 0  # about two invocations per session
        c.spend_cents += spend_cents
        c.list_cents += list_cents
        self.user_groups[user_id] = frozenset(groups)

    def latest_day(self, today: dt.date | None = None) -> dt.date:
        return (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=self.lag_days)

    def page(
        self,
        day_text: str | None,
        group_by: list[str],
        limit_text: str | None,
        cursor: str | None,
    ) -> dict[str, Any]:
        day = self._day(day_text)
        unknown = [g for g in group_by if g not in GROUP_BYS]
        if unknown:
            raise bad_request(
                f"group_by[]: unsupported dimension {unknown[0]!r} on this endpoint "
                f"(supported: {', '.join(GROUP_BYS)})"
            )
        try:
            limit = int(limit_text or "100")
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit_text!r}")
        rows = self._rows(day, sorted(set(group_by)))
        start = _decode_cursor(cursor) if cursor else 0
        chosen = rows[start : start + limit]
        end = start + len(chosen)
        return {
            "data": chosen + chosen[: self.repeat_rows],
            "next_page": _encode_cursor(end) if end < len(rows) else None,
        }

    def _day(self, text: str | None) -> dt.date:
        if not text:
            raise bad_request("date is required (YYYY-MM-DD)")
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise bad_request(f"date must be a UTC date YYYY-MM-DD, not {text!r}") from None
        if day < EARLIEST:
            raise bad_request(f"date {text} is too early: no earlier than {EARLIEST.isoformat()}")
        latest = self.latest_day()
        if day > latest:
            raise bad_request(
                f"date {text} is not available yet: the latest available day is "
                f"{latest.isoformat()}"
            )
        return day

    def _rows(self, day: dt.date, group_by: list[str]) -> list[dict[str, Any]]:
        # (skill, group key) -> counters, distinct users, products
        agg: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
        for (d, skill, user, product), c in self.counts.items():
            if d != day:
                continue
            keys: list[tuple[str, ...]] = [()]
            for dim in group_by:
                values = {
                    "user_id": [user],
                    "product": [product],
                    "rbac_group_id": sorted(self.user_groups.get(user, ())),
                }[dim]
                keys = [(*k, v) for k in keys for v in values]
            for key in keys:
                entry = agg.setdefault((skill, key), [_Counts(), set(), defaultdict(int)])
                total: _Counts = entry[0]
                total.invocations += c.invocations
                total.sessions += c.sessions
                total.spend_cents += c.spend_cents
                total.list_cents += c.list_cents
                entry[1].add(user)
                entry[2][product] += c.sessions
        out = []
        for (skill, key), (total, users, sessions) in sorted(agg.items()):
            row = _row(skill, total, len(users), sessions)
            row.update(zip(group_by, key, strict=True))
            out.append(row)
        return out


def opaque_skill_name(plugin_id: str, skill: str) -> str:
    """The opaque id a plugin-delivered skill has in analytics rows."""
    return "skill_" + hashlib.sha256(f"{plugin_id}/{skill}".encode()).hexdigest()[:24]


def _cents(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _row(skill: str, c: _Counts, users: int, sessions: dict[str, int]) -> dict[str, Any]:
    display, _, opaque = skill.partition("\x00")
    office = {"distinct_session_skill_used_count": 0}
    return {
        "skill_name": opaque or display,
        "skill_display_name": display if opaque else None,
        "invocation_count": c.invocations,
        "distinct_user_count": users,
        "enable_count": None,
        "share_status": "organization",
        "chat_metrics": {"distinct_conversation_skill_used_count": sessions.get("chat", 0)},
        "claude_code_metrics": {
            "distinct_session_skill_used_count": sessions.get("claude_code", 0)
        },
        "cowork_metrics": {"distinct_session_skill_used_count": sessions.get("cowork", 0)},
        "office_metrics": {k: dict(office) for k in ("excel", "outlook", "powerpoint", "word")},
        "estimated_overage_spend": _cents(c.spend_cents),
        "attributed_list_price": _cents(c.list_cents),
        "currency": "USD",
    }


def skill_key(display_name: str, opaque: str) -> str:
    """How a skill is keyed in the counters: sorted by its display name, served opaque."""
    return f"{display_name}\x00{opaque}"


def _encode_cursor(offset: int) -> str:
    return "page_" + base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = cursor.removeprefix("page_")
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        return int(text.removeprefix("o"))
    except (ValueError, UnicodeDecodeError):
        raise bad_request(f"page: not a cursor this endpoint gave: {cursor!r}") from None
