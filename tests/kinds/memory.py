"""A target kind that exists only in the tests: skills kept on in-memory *shelves*.

It is the proof that a kind is one module plus one line in the kinds table (here the test's
`registered(MEMORY)`): its tenants-file section (`targets.memory: {org_id, shelves}`), its key
family (`mem-` keys), its fan-out (one connection per shelf), its connection check and the
features it declares (no organisation connection, no Claude Code settings, no telemetry source;
a test may subclass it to declare them) are all below, and no product module names it.
`SHELVES` is what the targets hold, for the tests to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx2

from claresia_sync.api.client import CallCounter
from claresia_sync.api.connect import ConnectionKeyError, TenantConnection, connection_key
from claresia_sync.naming import PREFIX
from claresia_sync.publish.targets import (
    AccessCheck,
    Grant,
    LiveSkill,
    NameTaken,
    SkillGone,
)
from claresia_sync.publish.targets.check import TargetReport, zero_retention
from claresia_sync.publish.targets.section import (
    AnthropicId,
    KeyRef,
    StoredTarget,
    TargetSection,
)
from claresia_sync.secrets import KeyFamily
from claresia_sync.transpile import ClaudeSkill

NAME = "memory"
SHELF_KEY = KeyFamily("a memory shelf key", "mem-", "any secret beginning 'mem-'", "shelf key")

SHELVES: dict[tuple[str, str], dict[str, LiveSkill]] = {}
"""(organisation, shelf) -> remote id -> the skill live there."""
OPENED: list[str] = []
"""The key (resolved, revealed) each target was opened with: the key family was applied."""


@dataclass(frozen=True)
class ShelfAccess:
    """Who may use a skill on a shelf: the rbac groups granted it."""

    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"groups": list(self.groups)}


class MemorySection(TargetSection):
    """`targets.memory`: the shelves of an organisation, each with its own key."""

    org_id: AnthropicId
    shelves: dict[AnthropicId, KeyRef]
    """Shelf -> reference of its key (`mem-...`)."""

    def stored(self) -> StoredTarget:
        return StoredTarget(self.org_id, workspace_key_refs=dict(sorted(self.shelves.items())))

    def problems(self, here: str, mapped: Mapping[str, str]) -> list[str]:
        return [] if self.shelves else [f"{here}.shelves: give at least one shelf"]


class MemoryTarget:
    """One shelf."""

    def __init__(self, conn: TenantConnection) -> None:
        self.connection = conn
        self.skills = SHELVES.setdefault((conn.org_id, conn.workspace_id), {})

    async def gate(self, *, checks_access: bool = True) -> str | None:
        return None

    async def access_check(self) -> AccessCheck:
        return lambda access: None

    async def list_ours(self) -> list[LiveSkill]:
        return [s for s in self.skills.values() if s.name.startswith(PREFIX)]

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        for held in self.skills.values():
            if held.name == skill.name:
                raise NameTaken(f"{skill.name} is on the shelf", holder_id=held.remote_id)
        live = LiveSkill(
            f"mem_{len(self.skills) + 1}", "1", skill.content_hash, ShelfAccess(), skill.name
        )
        self.skills[live.remote_id] = live
        return live

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        return self.skills.get(holder_id or "")

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        if remote_id not in self.skills:
            raise SkillGone(f"{remote_id} is not on the shelf")
        old = self.skills[remote_id]
        self.skills[remote_id] = replace(
            old, version=str(int(old.version or "0") + 1), content_hash=skill.content_hash
        )
        return self.skills[remote_id]

    async def set_access(self, remote_id: str, access: Any) -> LiveSkill:
        if remote_id not in self.skills:
            raise SkillGone(f"{remote_id} is not on the shelf")
        self.skills[remote_id] = replace(self.skills[remote_id], access=access)
        return self.skills[remote_id]

    async def delete(self, remote_id: str) -> None:
        if self.skills.pop(remote_id, None) is None:
            raise SkillGone(f"{remote_id} is not on the shelf")

    async def aclose(self) -> None:
        pass


class MemoryKind:
    name = NAME
    key_family = SHELF_KEY
    section = MemorySection
    organisation_connection = False
    claude_code_settings = False
    telemetry_sources: tuple[str, ...] = ()

    def connections(self, base: TenantConnection, stored: StoredTarget) -> list[TenantConnection]:
        return [
            replace(base, admin_key_ref=ref, workspace_id=shelf)
            for shelf, ref in sorted(stored.workspace_key_refs.items())
        ]

    async def check(self, conn: TenantConnection, groups: Mapping[str, str]) -> TargetReport:
        report = TargetReport(conn.target_key, f"shelf {conn.workspace_id}")
        try:
            key = connection_key(conn)
        except ConnectionKeyError as exc:
            report.problems.append(str(exc))
            return report
        held = len(SHELVES.get((conn.org_id, conn.workspace_id), {}))
        report.lines.append(f"Shelf:          {conn.workspace_id} (key {key}), {held} skill(s)")
        zero_retention(conn, report)
        return report

    def desired_access(self, grant: Grant) -> ShelfAccess:
        return ShelfAccess(tuple(sorted(grant.rbac_group_ids)))

    def disabled_access(self) -> ShelfAccess:
        """Kept on the shelf, with no group."""
        return ShelfAccess(())

    def access_from_json(self, data: Mapping[str, Any]) -> ShelfAccess:
        return ShelfAccess(tuple(data.get("groups", ())))

    def open(
        self,
        conn: TenantConnection,
        *,
        http: httpx2.AsyncClient | None = None,
        counter: CallCounter | None = None,
    ) -> MemoryTarget:
        OPENED.append(connection_key(conn).reveal())
        return MemoryTarget(conn)


MEMORY = MemoryKind()
