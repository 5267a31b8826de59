"""The Compliance activity feed of an organisation (`GET /v1/compliance/activities`): skill and
plugin lifecycle events made from the writes the emulator receives, through the API (actor
`api_actor`) or the control routes that stand for an administrator in claude.ai (`user_actor`).

Each record carries the fields Anthropic's Compliance API reference documents for its type
(`SHAPES`; docs/real-api.md section 3): `id`, `created_at`, `organization_id`,
`organization_uuid`, `actor`, `type` and its own fields, no others. Actors carry `ip_address` and
`user_agent`: `api_actor` (`api_key_id`, any API key of the organisation) or `user_actor`
(`user_id`, `email_address`).

The feed is newest first. Pages follow Anthropic's list conventions as we read them (the SDK
does not cover this endpoint; docs/real-api.md says what is assumed): `limit` 1-5000;
no cursor: the newest `limit`; `after_id=X`: the `limit` activities just older than X;
`before_id=X`: the `limit` activities just newer than X; either way newest first, with
`first_id` (newest on the page), `last_id` (oldest) and `has_more` (more beyond the page in the
direction asked); `activity_types[]` filters.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from claresia_sync.emulator.common import bad_request

MAX_LIMIT = 5000


_PLUGIN = ("plugin_id", "plugin_name")
_SKILL = ("skill_id", "skill_name")
# The fields of each type beyond the common ones, as the Compliance API reference lists them.
SHAPES: dict[str, tuple[str, ...]] = {
    **{
        f"claude_skill_{v}": _SKILL
        for v in ("created", "deleted", "replaced", "enabled", "disabled")
    },
    **{f"claude_plugin_{v}": _PLUGIN for v in ("created", "updated", "replaced", "deleted")},
    "plugin_installation_preference_updated": (
        "marketplace_id",
        "plugin_name",
        "action",
        "group_id",
        "group_name",
        "installation_preference",
    ),
    "platform_skill_version_created": ("skill_id", "version"),
    "platform_skill_version_deleted": ("skill_id", "version"),
}
COMMON = ("id", "created_at", "organization_id", "organization_uuid", "actor", "type")


def api_actor(key_id: str, ip_address: str, user_agent: str) -> dict[str, Any]:
    """A write through the API with any API key of the organisation (ours or another's)."""
    return {
        "type": "api_actor",
        "api_key_id": key_id,
        "ip_address": ip_address,
        "user_agent": user_agent,
    }


def user_actor(user_id: str, email: str, ip_address: str, user_agent: str) -> dict[str, Any]:
    """A person in claude.ai."""
    return {
        "type": "user_actor",
        "user_id": user_id,
        "email_address": email,
        "ip_address": ip_address,
        "user_agent": user_agent,
    }


def shaped(activity_type: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The type's own fields, exactly (a missing one is null, an extra one a bug here)."""
    own = SHAPES[activity_type]
    extra = sorted(set(fields) - set(own))
    if extra:
        raise ValueError(f"{activity_type} carries no {extra}: only {list(own)}")
    return {name: fields.get(name) for name in own}


@dataclass
class ActivityFeed:
    """One organisation's activities, ids ascending (ULIDs: creation order)."""

    ids: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, activity: dict[str, Any]) -> None:
        self.ids.append(activity["id"])
        self.items.append(activity)

    def page(
        self,
        limit_text: str | None,
        after_id: str | None,
        before_id: str | None,
        types: list[str],
    ) -> dict[str, Any]:
        try:
            limit = int(limit_text or "100")
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit_text!r}")
        if after_id and before_id:
            raise bad_request("give after_id or before_id, not both")
        unknown = sorted(set(types) - set(SHAPES))
        if unknown:
            raise bad_request(f"activity_types[]: unknown activity type {unknown[0]!r}")
        wanted = set(types)
        chosen: list[int] = []
        if before_id:  # newer than before_id, nearest first
            i = bisect.bisect_right(self.ids, before_id)
            while i < len(self.ids) and len(chosen) < limit:
                if not wanted or self.items[i]["type"] in wanted:
                    chosen.append(i)
                i += 1
            more = any(
                not wanted or self.items[j]["type"] in wanted for j in range(i, len(self.ids))
            )
            chosen.reverse()
        else:  # older than after_id (or the newest), nearest first
            i = (bisect.bisect_left(self.ids, after_id) if after_id else len(self.ids)) - 1
            while i >= 0 and len(chosen) < limit:
                if not wanted or self.items[i]["type"] in wanted:
                    chosen.append(i)
                i -= 1
            more = any(not wanted or self.items[j]["type"] in wanted for j in range(i, -1, -1))
        data = [self.items[i] for i in chosen]
        return {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
