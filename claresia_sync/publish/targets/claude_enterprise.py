"""The `claude-enterprise` target: the Claude apps of a Claude Enterprise organisation, through
the Plugins API (docs/real-api.md section 1 A), on the official SDK.

- One plugin per published skill, named as the skill (`claresia-{tenant}-{skill}`): the
  manifest `.claude-plugin/plugin.json` plus the transpiled bundle under `skills/<name>/`
  (only the packaging differs from the other targets).
- Access (`Installation`): the plugin's organisation setting `not_available` plus, for each
  rbac group of an archetype granted the skill, that archetype's preference (`available`,
  `auto_install`, `required`; the strongest when two archetypes of one group differ). Settings
  are written one at a time per plugin; a setting no longer wanted is removed.
- Ownership, provable from the server: the manifest `description` ends with the marker
  `[claresia-sync <tenant>/<skill> sha256:<hash>]` (`MARKER`), which the plugin list returns,
  so the published content hash and its owner survive a lost database (the version archive
  holds the same manifest). A plugin without our marker, or made by a person in claude.ai
  (`created_by` a user, whatever its manifest says), is never adopted, changed or deleted.
- Zero retention: no API reports it; the tenants file's attestation is the gate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx2
import orjson

from claresia_sync.api.client import CallCounter
from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.errors import ZERO_RETENTION_HINT
from claresia_sync.api.sdk import SdkCaller, SdkFailure
from claresia_sync.naming import PREFIX
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
from claresia_sync.publish.targets.remembered import Lru
from claresia_sync.publish.targets.section import (
    AnthropicId,
    BaseUrl,
    KeyRef,
    StoredTarget,
    TargetSection,
)
from claresia_sync.secrets import ENTERPRISE_ADMIN
from claresia_sync.transpile import ClaudeSkill

log = logging.getLogger(__name__)

NAME = "claude-enterprise"
Preference = Literal["auto_install", "available", "not_available", "required"]
MANIFEST = ".claude-plugin/plugin.json"
ORG_SETTING = "not_available"
PREFERENCES = ("available", "auto_install", "required")  # weakest first
SCOPES = ("write:plugins", "read:plugins", "read:rbac_groups")
MARKER = re.compile(
    r"\[claresia-sync (?P<tenant>[a-z0-9-]+)/(?P<skill>[a-z0-9-]+) (?P<hash>sha256:[0-9a-f]{64})\]$"
)
MAX_DESCRIPTION = 500  # of a plugin manifest's description
# Routes as counted in claresia_api_calls_total.
R_ME = "/v1/organizations/me"
R_GROUPS = "/v1/organizations/rbac_groups"
R_PLUGINS = "/v1/organizations/plugins"
R_PLUGIN = "/v1/organizations/plugins/{plugin_id}"
R_VERSIONS = "/v1/organizations/plugins/{plugin_id}/versions"
R_SETTINGS = "/v1/organizations/plugins/{plugin_id}/installation_settings"
R_SETTING = "/v1/organizations/plugins/{plugin_id}/installation_settings/{target}"


@dataclass(frozen=True, order=True)
class Installation:
    """Who gets a plugin: its own organisation setting (None: inherited from the marketplace)
    and each rbac group's own setting, as (group id, preference) sorted by group."""

    organization: str | None = ORG_SETTING
    groups: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"organization": self.organization, "rbac_groups": dict(self.groups)}


def _installation(access: Access) -> Installation:
    if not isinstance(access, Installation):  # a bug: another target's access reached this one
        raise TypeError(
            f"claude-enterprise access must be Installation, not {type(access).__name__}"
        )
    return access


def marker(skill: ClaudeSkill) -> str:
    meta = skill.metadata
    owner = f"{meta['claresia.tenant']}/{meta['claresia.skill_id']}"
    return f"[claresia-sync {owner} {skill.content_hash}]"


def plugin_files(skill: ClaudeSkill) -> list[tuple[str, bytes, str]]:
    """The plugin of one skill: its manifest (with the ownership marker) and the bundle under
    `skills/` (the bundle's top folder is the skill's name)."""
    tag = marker(skill)
    room = MAX_DESCRIPTION - len(tag) - 1
    text = (
        skill.description if len(skill.description) <= room else skill.description[: room - 1] + "…"
    )
    manifest = {
        "name": skill.name,
        "display_name": skill.display_title,
        "description": f"{text} {tag}",
        "version": skill.metadata.get("claresia.skill_version", "1.0.0"),
    }
    files = [
        (MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode(), "application/json")
    ]
    for f in skill.files:
        kind = "text/markdown" if f.path.endswith(".md") else "text/plain"
        files.append((f"skills/{f.path}", f.content.encode(), kind))
    return files


def _hints(status: int, code: str | None, message: str) -> str:
    if code == "plugin_name_taken":
        return "a plugin of that name exists: it is adopted only if claresia-sync made it"
    if code == "skill_name_taken":
        return (
            "an organisation skill made in claude.ai has this skill's name: remove or rename it "
            "in claude.ai (Admin settings → Skills), then publish again"
        )
    if code in ("scan_failed", "scan_pending"):
        return "the content scan decides: see the plugin's version in claude.ai"
    if status == 401:
        return (
            "the Claude Enterprise admin key was refused: re-paste it (most common: a trailing "
            "space)"
        )
    if status == 403:
        return (
            "the Claude Enterprise admin key lacks a scope: re-mint it in claude.ai with the "
            "scopes " + ", ".join(SCOPES)
        )
    if status == 404 and ("beta" in message or "Enterprise" in message):
        return (
            "the Plugins API answers only for a Claude Enterprise organisation with the "
            "ce-plugins-2026-09-01 beta: use the claude-api target otherwise"
        )
    if status == 503 or status == 429:
        return "the API is busy: the next run retries"
    return ""


def zero_retention_refusal(conn: TenantConnection) -> str:
    return (
        f"{conn.describe()}: zero-retention not attested — {ZERO_RETENTION_HINT}, then record "
        "it in the tenants file as `zero_retention: {attested_by: ..., attested_at: YYYY-MM-DD}` "
        "(no API reports it)"
    )


def _owner(description: str | None) -> re.Match[str] | None:
    return MARKER.search(description or "")


# The organisation each key proved to belong to, by (base URL, key fingerprint): a key is minted
# in one organisation and stays there, so a long-lived process (the daemon) reads it once.
_ORG_OF_KEY: Lru[tuple[str, str], str] = Lru(10_000)


async def _nothing() -> None:
    return None


def _answer(raw: Any, what: str) -> dict[str, Any]:
    """A write's answer (the SDK's raw response) as JSON, not built into the SDK's models: the
    few fields used are read from it (the models cost a tenth of a create's CPU)."""
    try:
        body = orjson.loads(raw.http_response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise TargetError(
            f"{what}: the answer is not the JSON of the object written",
            hint="the next run reads the server's state",
            retryable=True,
        )
    return body


class ClaudeEnterpriseTarget:
    """One Claude Enterprise organisation, through one Enterprise admin key."""

    def __init__(self, caller: SdkCaller, connection: TenantConnection) -> None:
        self.caller = caller
        self.connection = connection
        self._plugins = caller.sdk.beta.organization.plugins
        self._locks: dict[str, asyncio.Lock] = {}
        self._known: dict[str, Installation] = {}
        self._groups: dict[str, str] | None = None  # read by the gate, for the pre-flight
        """Settings this target read or wrote (a fresh plugin's are known without a read)."""

    def __repr__(self) -> str:
        return f"ClaudeEnterpriseTarget({self.connection.org_id}, {self.caller!r})"

    # -- reads ---------------------------------------------------------------------------

    async def organization_name(self) -> str:
        me = await self.caller.call(
            "GET", R_ME, "GET /v1/organizations/me", self.caller.sdk.organization.retrieve
        )
        if me.id != self.connection.org_id:
            raise TargetError(
                f"the claude-enterprise admin key of tenant {self.connection.root_slug!r} belongs "
                f"to organisation {me.id}, not {self.connection.org_id}",
                hint="fix `targets.claude-enterprise.org_id` or the key",
            )
        return me.name

    async def gate(self, *, checks_access: bool = True) -> str | None:
        conn = self.connection
        if conn.zero_retention is None:
            return zero_retention_refusal(conn)
        # Up to three reads at once (one round trip per organisation, which a run of many has):
        # the Plugins API, read on every run (a revoked key's 401, a lost scope's 403 or a lost
        # Enterprise plan's 404 refuses the organisation); the key's organisation, unless this
        # process already proved it (a key never changes organisation); and the groups, only
        # when the pre-flight will check them.
        where = (conn.base_url, self.caller.key_fingerprint)
        proven = _ORG_OF_KEY.get(where) == (True, conn.org_id)
        answers = await asyncio.gather(
            self.caller.call(
                "GET",
                R_PLUGINS,
                "GET /v1/organizations/plugins",
                # Only its status matters: the raw answer, not parsed into a page of models.
                lambda: self._plugins.with_raw_response.list(limit=1),
            ),
            _nothing() if proven else self.organization_name(),
            self.rbac_groups() if checks_access else _nothing(),
            return_exceptions=True,
        )
        for answer in (answers[1], answers[0]):  # a key of another organisation says so first
            if isinstance(answer, TargetError):
                return f"{conn.describe()}: {answer}" + (f" — {answer.hint}" if answer.hint else "")
            if isinstance(answer, BaseException):
                raise answer
        if not proven:
            _ORG_OF_KEY.put(where, conn.org_id)
        groups = answers[2]
        self._groups = groups if isinstance(groups, dict) else None
        return None

    async def rbac_groups(self) -> dict[str, str]:
        """Group id -> name, every group of the organisation (`read:rbac_groups`)."""

        async def groups() -> dict[str, str]:
            return {
                g.id: g.name async for g in self.caller.sdk.organization.rbac_groups.list(limit=100)
            }

        return await self.caller.call("GET", R_GROUPS, "GET /v1/organizations/rbac_groups", groups)

    async def access_check(self) -> AccessCheck:
        known = self._groups
        if known is None:
            try:
                known = await self.rbac_groups()
            except TargetError:  # cannot read: the setting write's own 404 names the group
                return no_access_check
        where = f"organisation {self.connection.org_id}"

        def check(access: Access) -> str | None:
            missing = [g for g, _ in _installation(access).groups if g not in known]
            if not missing:
                return None
            return (
                f"rbac group(s) {', '.join(missing)} not in {where}: fix the archetype's "
                "rbac_group in the tenant file"
            )

        return check

    async def _settings(self, plugin_id: str) -> Installation:
        async def listed() -> Installation:
            org: str | None = None
            groups = []
            async for s in self._plugins.installation_settings.list(plugin_id, limit=100):
                if s.target.type == "organization":
                    org = s.installation_preference
                else:
                    groups.append(
                        (getattr(s.target, "rbac_group_id", ""), s.installation_preference)
                    )
            return Installation(org, tuple(sorted(groups)))

        self._known[plugin_id] = await self.caller.call(
            "GET",
            R_SETTINGS,
            f"GET /v1/organizations/plugins/{plugin_id}/installation_settings",
            listed,
        )
        return self._known[plugin_id]

    def _live(self, plugin: Any, access: Installation | None = None) -> LiveSkill | None:
        """A listed plugin as a LiveSkill if it is provably ours (our marker), else None."""
        found = _owner(plugin.description)
        if found is None or not plugin.name.startswith(PREFIX):
            return None
        by = getattr(plugin, "created_by", None)
        if by is not None and by.type == "user_actor":
            return None  # made by a person in claude.ai (a copied marker proves nothing)
        return LiveSkill(
            remote_id=plugin.id,
            version=plugin.latest_version_id,
            content_hash=found["hash"],
            access=access,
            name=plugin.name,
            owner_tenant=found["tenant"],
            owner_skill=found["skill"],
        )

    async def list_ours(self) -> list[LiveSkill]:
        async def listed() -> list[Any]:
            return [p async for p in self._plugins.list(limit=100, owner_type="organization")]

        plugins = await self.caller.call("GET", R_PLUGINS, "GET /v1/organizations/plugins", listed)
        ours = [p for p in plugins if self._live(p) is not None]
        bound = asyncio.Semaphore(8)

        async def with_access(p: Any) -> LiveSkill:
            async with bound:
                live = self._live(p, await self._settings(p.id))
            assert live is not None
            return live

        return list(await asyncio.gather(*(with_access(p) for p in ours)))

    # -- writes --------------------------------------------------------------------------

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        files = plugin_files(skill)
        what = "POST /v1/organizations/plugins"
        try:
            raw = await self.caller.call(
                "POST",
                R_PLUGINS,
                what,
                lambda: self._plugins.with_raw_response.create(
                    files=files, release_notes="claresia-sync"
                ),
            )
        except SdkFailure as exc:
            if exc.code == "plugin_name_taken":
                raise NameTaken(
                    str(exc), holder_id=exc.details.get("plugin_id"), hint=exc.hint
                ) from None
            if exc.code == "registration_pending" and exc.details.get("plugin_id"):
                # Stored but not usable: never create again (409); a version completes it.
                plugin_id = str(exc.details["plugin_id"])
                log.warning("%s: registration pending; completing it with a version", skill.name)
                return await self.new_version(plugin_id, skill)
            raise
        plugin = _answer(raw, what)
        self._scan(skill.name, plugin.get("content_scan"), plugin["latest_version_id"])
        return LiveSkill(
            remote_id=plugin["id"],
            version=plugin["latest_version_id"],
            content_hash=skill.content_hash,
            access=self._fresh(plugin),
            name=plugin["name"],
            owner_tenant=skill.metadata.get("claresia.tenant"),
            owner_skill=skill.metadata.get("claresia.skill_id"),
        )

    def _fresh(self, plugin: Mapping[str, Any]) -> Installation:
        """The settings of a plugin just created: its organisation setting, no group's."""
        inherited = plugin.get("organization_installation_preference_inherited")
        access = Installation(
            None if inherited else plugin.get("organization_installation_preference")
        )
        self._known[plugin["id"]] = access
        return access

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        if holder_id is None:
            return None
        plugin = await self.caller.call(
            "GET",
            R_PLUGIN,
            f"GET /v1/organizations/plugins/{holder_id}",
            lambda: self._plugins.retrieve(holder_id),
        )
        live = self._live(plugin)
        if live is None:
            by = plugin.created_by
            who = f"{by.type}" if by is not None else "someone"
            raise TargetError(
                f"plugin name {name} is held by plugin {plugin.id} "
                f"({plugin.display_name or plugin.name!r}, "
                f"created by a {who}), which claresia-sync did not make: left untouched",
                hint=(
                    "rename or delete that plugin in claude.ai (Admin settings → Plugins), then "
                    "publish again"
                ),
            )
        return LiveSkill(**{**live.__dict__, "access": await self._settings(plugin.id)})

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        files = plugin_files(skill)
        what = f"POST /v1/organizations/plugins/{remote_id}/versions"

        async def upload() -> Any:
            return await self.caller.call(
                "POST",
                R_VERSIONS,
                what,
                lambda: self._plugins.versions.with_raw_response.create(
                    remote_id, files=files, release_notes="claresia-sync"
                ),
            )

        try:
            raw = await upload()
        except SdkFailure as exc:
            if exc.code != "registration_pending":
                raise
            # The SDK: the version was stored but is not usable yet; a later version create on
            # the plugin completes it. Once: a plugin that stays pending fails this skill.
            log.warning("%s: version registration pending; uploading it once more", skill.name)
            raw = await upload()
        version = _answer(raw, what)
        self._scan(skill.name, version.get("content_scan"), version["id"])
        return LiveSkill(
            remote_id=remote_id,
            version=version["id"],
            content_hash=skill.content_hash,
            name=skill.name,
            owner_tenant=skill.metadata.get("claresia.tenant"),
            owner_skill=skill.metadata.get("claresia.skill_id"),
        )

    def _scan(self, name: str, scan: Mapping[str, Any] | None, version_id: str) -> None:
        """Report a version's content scan: failed is this skill's error; pending is logged
        (the version is served once the scan passes). Failed as the SDK's `plugins.update`
        refuses to serve a version (`scan_failed`): status `errored` (no verdict) or assessment
        `fail` or `unknown`; a `warn` is served."""
        if not scan:
            return
        status, assessment, reason = scan.get("status"), scan.get("assessment"), scan.get("reason")
        if status == "errored" or assessment in ("fail", "unknown"):
            why = "no verdict" if status == "errored" else f"assessed {assessment}"
            hint = "the previous version stays served; "
            if status == "errored" and reason != "scan-invalid-archive":
                hint += "retry the scan in claude.ai (Admin settings → Plugins) or publish again"
            else:
                hint += "change the skill's content and publish again"
            raise TargetError(
                f"{name}: version {version_id} failed the content scan of claude.ai "
                f"({why}{': ' + reason if reason else ''})",
                hint=hint,
            )
        if status == "processing":
            log.warning(
                "%s: version %s is waiting for its content scan; it is served when the scan passes",
                name,
                version_id,
            )

    async def set_access(self, remote_id: str, access: Access) -> LiveSkill:
        want = _installation(access)
        lock = self._locks.setdefault(remote_id, asyncio.Lock())
        async with lock:  # writes for one plugin go one at a time (else 503 x-should-retry)
            # What this run read or made, else a read; forgotten until the writes all succeed.
            have = self._known.pop(remote_id, None) or await self._settings(remote_id)
            self._known.pop(remote_id, None)
            if have.organization != want.organization:
                await self._write(remote_id, "organization", want.organization)
            wanted = dict(want.groups)
            for group, pref in want.groups:
                if dict(have.groups).get(group) != pref:
                    await self._write(remote_id, group, pref)
            for group, _ in have.groups:
                if group not in wanted:
                    await self._write(remote_id, group, None)
            self._known[remote_id] = want
        return LiveSkill(remote_id=remote_id, access=want)

    async def _write(self, plugin_id: str, target: str, preference: str | None) -> None:
        settings = self._plugins.installation_settings
        path = f"/v1/organizations/plugins/{plugin_id}/installation_settings/{target}"
        if preference is None:
            try:
                await self.caller.call(
                    "DELETE",
                    R_SETTING,
                    f"DELETE {path}",
                    # The answers of setting writes are not read: the raw ones, no models.
                    lambda: settings.with_raw_response.remove(target, plugin_id=plugin_id),
                )
            except SkillGone:
                # The SDK: a target holding no setting of its own answers 404 (a removal
                # repeated after a lost answer is already done). Only a plugin that is gone
                # too is SkillGone: one read tells them apart.
                await self.caller.call(
                    "GET",
                    R_PLUGIN,
                    f"GET /v1/organizations/plugins/{plugin_id}",
                    lambda: self._plugins.retrieve(plugin_id),
                )
                log.info("%s: no setting of its own (already removed): done", path)
        else:
            await self.caller.call(
                "POST",
                R_SETTING,
                f"POST {path}",
                lambda: settings.with_raw_response.set(
                    target,
                    plugin_id=plugin_id,
                    installation_preference=cast(Preference, preference),
                ),
            )

    async def delete(self, remote_id: str) -> None:
        await self.caller.call(
            "DELETE",
            R_PLUGIN,
            f"DELETE /v1/organizations/plugins/{remote_id}",
            lambda: self._plugins.delete(remote_id),
        )

    async def aclose(self) -> None:
        await self.caller.aclose()


class EnterpriseTargetSpec(TargetSection):
    """`targets.claude-enterprise`: the Plugins API of a Claude Enterprise organisation."""

    org_id: AnthropicId
    admin_key: KeyRef
    """A Claude Enterprise admin key (`sk-ant-api01-`)."""
    base_url: BaseUrl | None = None

    def stored(self) -> StoredTarget:
        return StoredTarget(self.org_id, self.admin_key, self.base_url)


class ClaudeEnterpriseKind:
    """The `claude-enterprise` kind: a grant is the installation preference of each granting
    archetype's group, the organisation `not_available`."""

    name = NAME
    key_family = ENTERPRISE_ADMIN
    section = EnterpriseTargetSpec
    organisation_connection = False
    claude_code_settings = True
    telemetry_sources = ("skills-analytics", "activity-feed")

    def connections(self, base: TenantConnection, stored: StoredTarget) -> list[TenantConnection]:
        return [base]

    async def check(self, conn: TenantConnection, groups: Mapping[str, str]) -> TargetReport:
        """The organisation name, the Plugins API reachable (beta header, Enterprise
        organisation), the read scopes verified and the missing ones named, each archetype's
        rbac group found or named as missing."""
        report = TargetReport(conn.target_key, f"{conn.base_url}, organisation {conn.org_id}")
        target = open_for_check(self.open, conn, report, "Enterprise admin key")
        if target is None:
            return report
        try:
            await _check(target, conn, groups, report)
        finally:
            await target.aclose()
        return report

    def desired_access(self, grant: Grant) -> Installation:
        strongest: dict[str, str] = {}
        for group, pref in grant.installations:  # a group granted by several archetypes
            held = strongest.get(group)
            strongest[group] = pref if held is None else max(held, pref, key=PREFERENCES.index)
        return Installation(ORG_SETTING, tuple(sorted(strongest.items())))

    def disabled_access(self) -> Installation:
        """The plugin stays, `not_available` to the organisation and with no group setting: the
        Plugins API's own reversible way out of use (docs/releases.md, "Switch a skill off")."""
        return Installation(ORG_SETTING, ())

    def access_from_json(self, data: Mapping[str, Any]) -> Installation:
        if not data or "organization" not in data:
            return Installation(None)
        return Installation(
            data.get("organization"), tuple(sorted(dict(data.get("rbac_groups") or {}).items()))
        )

    def open(
        self,
        conn: TenantConnection,
        *,
        http: httpx2.AsyncClient | None = None,
        counter: CallCounter | None = None,
    ) -> ClaudeEnterpriseTarget:
        return ClaudeEnterpriseTarget(
            SdkCaller(conn, http=http, counter=counter, hints=_hints), conn
        )


def _scope_named(exc: TargetError) -> str | None:
    found = re.search(r"(write|read):[a-z_]+", str(exc))
    return found.group(0) if found else None


async def _check(
    target: ClaudeEnterpriseTarget,
    conn: TenantConnection,
    groups: Mapping[str, str],
    report: TargetReport,
) -> None:
    try:
        name = await target.organization_name()
    except TargetError as exc:
        report.problems.append(f"{exc}" + (f" — {exc.hint}" if exc.hint else ""))
        return
    report.lines.append(f"Organisation:   {name} ({conn.org_id})")
    zero_retention(conn, report)
    verified: list[str] = []
    missing: list[str] = []
    plugins = target.caller.sdk.beta.organization.plugins
    try:
        await target.caller.call(
            "GET", R_PLUGINS, "GET /v1/organizations/plugins", lambda: plugins.list(limit=1)
        )
        report.lines.append("Plugins API:    reachable (beta ce-plugins-2026-09-01)")
        verified.append("read:plugins")
    except SdkFailure as exc:
        if exc.status == 403:
            missing.append(_scope_named(exc) or "read:plugins")
        else:
            report.problems.append(f"{exc}" + (f" — {exc.hint}" if exc.hint else ""))
            return
    known: dict[str, str] | None = None
    try:
        known = await target.rbac_groups()
        verified.append("read:rbac_groups")
    except SdkFailure as exc:
        if exc.status != 403:
            raise
        missing.append(_scope_named(exc) or "read:rbac_groups")
    report.lines.append(
        f"Scopes:         {', '.join(verified) or 'none'} verified; write:plugins is checked "
        "at publish"
    )
    if missing:
        report.lines.append(f"Missing scopes: {', '.join(missing)}")
        report.problems.append(
            f"the Claude Enterprise admin key lacks the scope(s) {', '.join(missing)}: re-mint it "
            f"in claude.ai with the scopes {', '.join(SCOPES)}"
        )
    if known is None:
        return
    for archetype, group in sorted(groups.items()):
        if group in known:
            report.lines.append(f"RBAC group:     {archetype} -> {group} ({known[group]}) found")
        else:
            report.lines.append(f"RBAC group:     {archetype} -> {group} MISSING")
            report.problems.append(
                f"archetype {archetype}: rbac group {group} is not in organisation {conn.org_id}: "
                "fix its rbac_group in the tenants file"
            )


CLAUDE_ENTERPRISE_KIND = ClaudeEnterpriseKind()
