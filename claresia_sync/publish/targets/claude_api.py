"""The `claude-api` target: the Skills API of one Claude API workspace (REAL_API.md section 1 B),
on the official SDK, with that workspace's API key.

- One target per mapped workspace (`TenantConnection.workspace_id`); every request names the
  workspace (`anthropic-workspace-id`), so a key of another workspace is refused by the API.
- Access is empty (`WorkspaceAccess`): the workspace holding the skill is the access.
- Ownership, provable from the server: the skill's `display_name` is
  `<published name> [claresia-sync <tenant>/<skill> sha256:<hash at creation>]` (the name itself
  lives on the versions, fixed at creation). Only skills with this marker are listed, changed or
  deleted. The Skills API keeps no content hash and a new version cannot change the display
  name, so a listed skill's content hash is not provable (`content_hash=None`): the planner keeps
  the `publication` row's; with a lost database the next forced run uploads one version of each
  skill (ours, proven by the marker) rather than guess. Names are not unique in the Skills API,
  so `create` looks for ours first (no twin after a crash between create and record).
- Zero retention: the tenants file's attestation is the gate, and every run warns that the
  Skills API is not eligible for zero data retention (Anthropic's skills guide).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from claresia_sync.api.client import CallCounter
from claresia_sync.api.connect import CLAUDE_API, TenantConnection
from claresia_sync.naming import PREFIX
from claresia_sync.publish.targets.base import (
    Access,
    AccessCheck,
    Grant,
    LiveSkill,
    NameTaken,
    TargetError,
    no_access_check,
)
from claresia_sync.publish.targets.claude_enterprise import marker, zero_retention_refusal
from claresia_sync.publish.targets.sdk import SdkCaller
from claresia_sync.transpile import ClaudeSkill

log = logging.getLogger(__name__)

NAME = CLAUDE_API
ZDR_WARNING = (
    "the Skills API is not eligible for zero data retention (Anthropic's skills guide): skills "
    "uploaded to a Claude API workspace are kept under standard retention"
)
DISPLAY = re.compile(
    r"^(?P<name>\S+) \[claresia-sync (?P<tenant>[a-z0-9-]+)/(?P<skill>[a-z0-9-]+) "
    r"(?P<hash>sha256:[0-9a-f]{64})\]$"
)
R_SKILLS = "/v1/skills"
R_SKILL = "/v1/skills/{skill_id}"
R_VERSIONS = "/v1/skills/{skill_id}/versions"


@dataclass(frozen=True, order=True)
class WorkspaceAccess:
    """The access of a workspace skill: the workspace itself (nothing to set)."""

    def to_json(self) -> dict[str, Any]:
        return {}


def display_name(skill: ClaudeSkill) -> str:
    return f"{skill.name} {marker(skill)}"


def skill_files(skill: ClaudeSkill) -> list[tuple[str, bytes, str]]:
    """The transpiled bundle as it is (one top folder holding SKILL.md)."""
    return [
        (f.path, f.content.encode(), "text/markdown" if f.path.endswith(".md") else "text/plain")
        for f in skill.files
    ]


def _hints(status: int, code: str | None, message: str) -> str:
    if status == 401:
        return "the workspace API key was refused: re-paste it (most common: a trailing space)"
    if status == 403 and "belongs to workspace" in message:
        return "give this workspace its own API key in targets.claude-api.workspace_keys"
    if status == 403:
        return (
            "use a workspace API key (sk-ant-api03-) made in that workspace: admin keys cannot "
            "call /v1/skills"
        )
    if status == 404 and "workspace" in message:
        return "fix the workspace id in the tenants file (the workspace is not in the organisation)"
    if status in (429, 503):
        return "the API is busy: the next run retries"
    return ""


class ClaudeApiTarget:
    """One Claude API workspace, through its API key."""

    def __init__(self, caller: SdkCaller, connection: TenantConnection) -> None:
        self.caller = caller
        self.connection = connection
        self._skills = caller.sdk.skills
        self._ours: dict[str, LiveSkill] | None = None

    def __repr__(self) -> str:
        return f"ClaudeApiTarget({self.connection.workspace_id}, {self.caller!r})"

    async def gate(self) -> str | None:
        conn = self.connection
        if conn.zero_retention is None:
            return zero_retention_refusal(conn)
        log.warning("%s: %s", conn.describe(), ZDR_WARNING)
        try:
            await self.caller.call(
                "GET", R_SKILLS, "GET /v1/skills", lambda: self._skills.list(limit=1)
            )
        except TargetError as exc:
            return f"{conn.describe()}: {exc}" + (f" — {exc.hint}" if exc.hint else "")
        return None

    async def access_check(self) -> AccessCheck:
        return no_access_check

    def _live(self, skill: Any) -> LiveSkill | None:
        found = DISPLAY.match(skill.display_name or "")
        if found is None or not found["name"].startswith(PREFIX):
            return None
        return LiveSkill(
            remote_id=skill.id,
            version=skill.latest_version_id,
            content_hash=None,  # not provable: the planner keeps the recorded hash
            access=WorkspaceAccess(),
            name=found["name"],
            owner_tenant=found["tenant"],
            owner_skill=found["skill"],
        )

    async def list_ours(self) -> list[LiveSkill]:
        async def listed() -> list[Any]:
            return [s async for s in self._skills.list(limit=100, source="custom")]

        skills = await self.caller.call("GET", R_SKILLS, "GET /v1/skills", listed)
        ours = [live for s in skills if (live := self._live(s)) is not None]
        self._ours = {s.name: s for s in ours}
        return ours

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        if self._ours is None:
            await self.list_ours()
        assert self._ours is not None
        held = self._ours.get(skill.name)
        if held is not None:  # created by an earlier run that could not record it
            raise NameTaken(
                f"{skill.name} exists in {self.connection.workspace_id}", holder_id=held.remote_id
            )
        files = skill_files(skill)
        created = await self.caller.call(
            "POST",
            R_SKILLS,
            "POST /v1/skills",
            lambda: self._skills.create(files=files, display_name=display_name(skill)),
        )
        live = LiveSkill(
            remote_id=created.id,
            version=created.latest_version_id,
            content_hash=skill.content_hash,
            access=WorkspaceAccess(),
            name=skill.name,
            owner_tenant=skill.metadata.get("claresia.tenant"),
            owner_skill=skill.metadata.get("claresia.skill_id"),
        )
        self._ours[skill.name] = live
        return live

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        if holder_id is None:
            return None
        found = await self.caller.call(
            "GET", R_SKILL, f"GET /v1/skills/{holder_id}", lambda: self._skills.retrieve(holder_id)
        )
        return self._live(found)

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        files = skill_files(skill)
        version = await self.caller.call(
            "POST",
            R_VERSIONS,
            f"POST /v1/skills/{remote_id}/versions",
            lambda: self._skills.versions.create(remote_id, files=files),
        )
        return LiveSkill(remote_id=remote_id, version=version.id, content_hash=skill.content_hash)

    async def set_access(self, remote_id: str, access: Access) -> LiveSkill:
        return LiveSkill(remote_id=remote_id, access=WorkspaceAccess())

    async def delete(self, remote_id: str) -> None:
        await self.caller.call(
            "DELETE",
            R_SKILL,
            f"DELETE /v1/skills/{remote_id}",
            lambda: self._skills.delete(remote_id),
        )

    async def aclose(self) -> None:
        await self.caller.aclose()


class ClaudeApiKind:
    """The `claude-api` kind: one target per workspace; a grant needs no access there."""

    name = NAME

    def desired_access(self, grant: Grant) -> WorkspaceAccess:
        return WorkspaceAccess()

    def access_from_json(self, data: Mapping[str, Any]) -> WorkspaceAccess:
        return WorkspaceAccess()

    def open(
        self,
        conn: TenantConnection,
        *,
        http: httpx2.AsyncClient | None = None,
        counter: CallCounter | None = None,
    ) -> ClaudeApiTarget:
        caller = SdkCaller(
            conn,
            http=http,
            counter=counter,
            hints=_hints,
            default_headers={"anthropic-workspace-id": conn.workspace_id},
        )
        return ClaudeApiTarget(caller, conn)


CLAUDE_API_KIND = ClaudeApiKind()
