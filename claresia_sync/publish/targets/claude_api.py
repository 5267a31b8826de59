"""The `claude-api` target: the Skills API of one Claude API workspace (docs/real-api.md
section 1 B), on the official SDK, with that workspace's API key.

- One target per mapped workspace (`TenantConnection.workspace_id`); every request names the
  workspace (`anthropic-workspace-id`), so a key of another workspace is refused by the API.
- Access is empty (`WorkspaceAccess`): the workspace holding the skill is the access.
- Ownership and content, provable from the server: the skill's `display_name` is
  `<published name> [claresia-sync <tenant>/<skill> sha256:<hash at creation>]` (the name itself
  lives on the versions, fixed at creation, and a version cannot change the display name). The
  Skills API keeps no content hash, but each version's archive can be downloaded
  (`GET /v1/skills/{id}/versions/{v}/content`): a skill is ours only when its first version's
  files hash to the hash its display name states (a copied display name over other files
  proves nothing), and the latest version's files give the content hash that is live. So a
  lost database costs neither a twin nor a blind new version. Names are not unique in the
  Skills API, so `create` looks for ours first (no twin after a crash between create and
  record). Two proven skills of one name (twins, as two runs side by side made them before
  issue 21) are both listed, the older first: the planner keeps the recorded one and deletes
  the other.
- What the proofs read is immutable (a version's archive; a skill's first version while its
  latest stays the same), so the process remembers it (`claude_api_cache`): a drift check of
  unchanged skills reads only the skills list; a skill whose latest version is new to the
  process costs its versions list and the archives not yet read.
- Zero retention: the tenants file's attestation is the gate, and every run warns that the
  Skills API is not eligible for zero data retention (Anthropic's skills guide).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx2

from claresia_sync.api.client import CallCounter
from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.sdk import SdkCaller, SdkFailure
from claresia_sync.naming import PREFIX
from claresia_sync.publish.targets import claude_api_cache as cache
from claresia_sync.publish.targets.base import (
    Access,
    AccessCheck,
    Grant,
    LiveSkill,
    NameTaken,
    SkillGone,
    TargetError,
    no_access_check,
)
from claresia_sync.publish.targets.check import TargetReport, open_for_check, zero_retention
from claresia_sync.publish.targets.claude_enterprise import marker, zero_retention_refusal
from claresia_sync.publish.targets.section import (
    AnthropicId,
    BaseUrl,
    KeyRef,
    StoredTarget,
    TargetSection,
)
from claresia_sync.secrets import WORKSPACE_API_KEY
from claresia_sync.transpile import ClaudeSkill, bytes_hash

log = logging.getLogger(__name__)

NAME = "claude-api"
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
R_VERSION = "/v1/skills/{skill_id}/versions/{version}"
R_CONTENT = "/v1/skills/{skill_id}/versions/{version}/content"
MAX_ARCHIVE_BYTES = 30 * 1024 * 1024  # the Skills API's upload limit: no version holds more


@dataclass(frozen=True, order=True)
class WorkspaceAccess:
    """The access of a workspace skill: the workspace itself (nothing to set)."""

    def to_json(self) -> dict[str, Any]:
        return {}


def display_name(skill: ClaudeSkill) -> str:
    return f"{skill.name} {marker(skill)}"


def archive_hash(data: bytes, name: str) -> str | None:
    """The content hash (the transpiler's rule) of a version's zip, its files under the skill's
    top folder `name` (added if the archive holds them without it); None if it is no zip or
    unpacks to more than a version may hold."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [i for i in archive.infolist() if not i.is_dir()]
            if sum(i.file_size for i in entries) > MAX_ARCHIVE_BYTES:
                return None
            files = [(i.filename, archive.read(i)) for i in entries]
    except zipfile.BadZipFile:
        return None
    if not any(path.startswith(f"{name}/") for path, _ in files):
        files = [(f"{name}/{path}", content) for path, content in files]
    return bytes_hash(files)


def skill_files(skill: ClaudeSkill) -> list[tuple[str, bytes, str]]:
    """The transpiled bundle as it is (one top folder holding SKILL.md)."""
    return [
        (f.path, f.content.encode(), "text/markdown" if f.path.endswith(".md") else "text/plain")
        for f in skill.files
    ]


def _versions_first(exc: SdkFailure) -> bool:
    """A skill delete refused because the skill still has versions (beta users report a 400
    "Cannot delete skill with existing versions. Delete all versions first.")."""
    return exc.status in (400, 409) and "version" in exc.api_message.lower()


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
        self._listing = asyncio.Lock()  # the first creates of a run wait for one list, not each

    def __repr__(self) -> str:
        return f"ClaudeApiTarget({self.connection.workspace_id}, {self.caller!r})"

    async def gate(self, *, checks_access: bool = True) -> str | None:
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

    def _where(self, skill_id: str) -> tuple[str, str, str]:
        return (self.connection.base_url, self.connection.workspace_id, skill_id)

    async def _archive_hash(self, skill_id: str, version_id: str, name: str) -> str | None:
        """The content hash of one version, from its downloaded archive (None: not a zip);
        downloaded once per process (a version never changes, `claude_api_cache`)."""
        key = (*self._where(skill_id), version_id, name)
        found, known = cache.ARCHIVES.get(key)
        if found:
            return known

        async def read() -> bytes:
            answer = await self.caller.sdk.beta.skills.versions.download(
                version_id, skill_id=skill_id
            )
            return await answer.read()

        data = await self.caller.call(
            "GET", R_CONTENT, f"GET /v1/skills/{skill_id}/versions/{version_id}/content", read
        )
        hashed = archive_hash(data, name)
        cache.ARCHIVES.put(key, hashed)
        return hashed

    async def _first_version(self, skill_id: str, latest: str) -> str | None:
        """The id of the skill's first version (None: it lists none); the versions are read
        again only when the latest version is not the one they were read under."""
        where = self._where(skill_id)
        found, known = cache.FIRST.get(where)
        if found and known is not None and known[0] == latest:
            return known[1]

        async def listed() -> list[Any]:
            return [v async for v in self._skills.versions.list(skill_id, limit=1000)]

        versions = await self.caller.call(
            "GET", R_VERSIONS, f"GET /v1/skills/{skill_id}/versions", listed
        )
        if not versions:
            return None
        first: str = min(versions, key=lambda v: (v.created_at, v.id)).id
        cache.FIRST.put(where, (latest, first))
        return first

    async def _prove(self, skill: Any) -> LiveSkill | None:
        """A listed skill as a LiveSkill if it is provably ours, with the hash that is live."""
        found = DISPLAY.match(skill.display_name or "")
        if found is None or not found["name"].startswith(PREFIX):
            return None
        name, skill_id, latest = found["name"], skill.id, skill.latest_version_id
        first = await self._first_version(skill_id, latest)
        if first is None:
            return None
        if await self._archive_hash(skill_id, first, name) != found["hash"]:
            log.warning(
                "%s: skill %s is named %s but its first version is not what the name states: "
                "not made by claresia-sync, left alone",
                self.connection.describe(),
                skill_id,
                name,
            )
            return None
        live_hash = (
            found["hash"] if latest == first else await self._archive_hash(skill_id, latest, name)
        )
        return LiveSkill(
            remote_id=skill_id,
            version=latest,
            content_hash=live_hash,
            access=WorkspaceAccess(),
            name=name,
            owner_tenant=found["tenant"],
            owner_skill=found["skill"],
        )

    async def list_ours(self) -> list[LiveSkill]:
        async def listed() -> list[Any]:
            return [s async for s in self._skills.list(limit=100, source="custom")]

        skills = await self.caller.call("GET", R_SKILLS, "GET /v1/skills", listed)
        bound = asyncio.Semaphore(8)

        async def prove(skill: Any) -> tuple[Any, LiveSkill | None]:
            async with bound:
                try:
                    return skill, await self._prove(skill)
                except SkillGone:  # deleted since the list: not live
                    return skill, None

        proven = await asyncio.gather(*(prove(s) for s in skills if DISPLAY.match(s.display_name)))
        found = [
            live
            for _, live in sorted(
                ((s, live) for s, live in proven if live is not None),
                key=lambda pair: (pair[0].created_at, pair[0].id),
            )
        ]
        ours: dict[str, LiveSkill] = {}
        for live in found:  # the older first: what a create of this run finds taken
            held = ours.setdefault(live.name, live)
            if held is not live:
                log.warning(
                    "%s: skills %s and %s are both ours (%s): the run keeps the one recorded "
                    "and deletes the other",
                    self.connection.describe(),
                    held.remote_id,
                    live.remote_id,
                    live.name,
                )
        self._ours = ours
        return found

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        async with self._listing:
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
        held = (self._ours or {}).get(name)
        if held is not None and held.remote_id == holder_id:
            return held  # proven by `list_ours` in this run
        found = await self.caller.call(
            "GET", R_SKILL, f"GET /v1/skills/{holder_id}", lambda: self._skills.retrieve(holder_id)
        )
        return await self._prove(found)

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
        """Delete the skill; if the API refuses while it has versions (docs/real-api.md S7),
        delete its versions, then the skill."""
        try:
            await self._delete_skill(remote_id)
            return
        except SdkFailure as exc:
            if not _versions_first(exc):
                raise
        log.info("skill %s: the API deletes its versions first", remote_id)

        async def listed() -> list[str]:
            return [v.id async for v in self._skills.versions.list(remote_id, limit=1000)]

        versions = await self.caller.call(
            "GET", R_VERSIONS, f"GET /v1/skills/{remote_id}/versions", listed
        )
        for version in versions:
            with contextlib.suppress(SkillGone):  # gone already: that is the goal
                await self._delete_version(remote_id, version)
        await self._delete_skill(remote_id)

    async def _delete_version(self, remote_id: str, version: str) -> None:
        await self.caller.call(
            "DELETE",
            R_VERSION,
            f"DELETE /v1/skills/{remote_id}/versions/{version}",
            lambda: self._skills.versions.delete(version, skill_id=remote_id),
        )

    async def _delete_skill(self, remote_id: str) -> None:
        await self.caller.call(
            "DELETE",
            R_SKILL,
            f"DELETE /v1/skills/{remote_id}",
            lambda: self._skills.delete(remote_id),
        )

    async def aclose(self) -> None:
        await self.caller.aclose()


class ApiTargetSpec(TargetSection):
    """`targets.claude-api`: the Skills API, one workspace API key per mapped workspace."""

    org_id: AnthropicId
    workspace_keys: dict[AnthropicId, KeyRef]
    """Workspace id -> reference of that workspace's API key (`sk-ant-api03-`)."""
    admin_key: KeyRef | None = None
    """Optional Console admin key (`sk-ant-admin01-`): lets `connection test` name workspaces."""
    base_url: BaseUrl | None = None

    def stored(self) -> StoredTarget:
        return StoredTarget(
            self.org_id, self.admin_key, self.base_url, dict(sorted(self.workspace_keys.items()))
        )

    def problems(self, here: str, mapped: Mapping[str, str]) -> list[str]:
        """Exactly one key per workspace mapped to the tenant or its sub-tenants."""
        keys = f"{here}.workspace_keys"
        problems = [
            f"{keys}: no API key for workspace {ws_id!r} (mapped at {where}): the claude-api "
            f"target publishes into every mapped workspace; add `{ws_id}: env:NAME`"
            for ws_id, where in mapped.items()
            if ws_id not in self.workspace_keys
        ]
        problems += [
            f"{keys}.{ws_id}: workspace is not mapped to this tenant or its sub-tenants: "
            "map it under `workspaces:` or remove its key"
            for ws_id in self.workspace_keys
            if ws_id not in mapped
        ]
        return problems


class ClaudeApiKind:
    """The `claude-api` kind: one target per workspace; a grant needs no access there."""

    name = NAME
    key_family = WORKSPACE_API_KEY
    section = ApiTargetSpec
    organisation_connection = False
    claude_code_settings = False
    telemetry_sources: tuple[str, ...] = ()

    def connections(self, base: TenantConnection, stored: StoredTarget) -> list[TenantConnection]:
        """One per workspace key: each publishes into its workspace with that key."""
        return [
            replace(base, admin_key_ref=ref, workspace_id=ws)
            for ws, ref in sorted(stored.workspace_key_refs.items())
        ]

    async def check(self, conn: TenantConnection, groups: Mapping[str, str]) -> TargetReport:
        """The workspace API key valid and belonging to its workspace (every request names the
        workspace), with the warning that the Skills API is not eligible for zero retention."""
        report = TargetReport(conn.target_key, f"{conn.base_url}, workspace {conn.workspace_id}")
        target = open_for_check(self.open, conn, report, "API key", of=conn.workspace_id)
        if target is None:
            return report
        try:
            await target.caller.call(
                "GET",
                "/v1/skills",
                "GET /v1/skills",
                lambda: target.caller.sdk.skills.list(limit=1),
            )
            report.lines.append(f"Workspace:      {conn.workspace_id}: key valid and belongs to it")
        except TargetError as exc:
            report.problems.append(
                f"{conn.describe()}: {exc}" + (f" — {exc.hint}" if exc.hint else "")
            )
        finally:
            await target.aclose()
        zero_retention(conn, report)
        report.warnings.append(f"{conn.workspace_id}: {ZDR_WARNING}")
        return report

    def desired_access(self, grant: Grant) -> WorkspaceAccess:
        return WorkspaceAccess()

    def disabled_access(self) -> WorkspaceAccess | None:
        """Deleted: the workspace is the access, nothing narrower exists."""
        return None

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
