"""Plugins of a Claude Enterprise organisation (the Plugins API, beta `ce-plugins-2026-09-01`),
as the official SDK's `beta.organization.plugins` resources and types describe them.

One `PluginCatalog` per organisation holds its library marketplace: plugins, their versions
(files kept as uploaded), installation settings per target (`organization` or an rbac group)
and the organisation skills made by hand in claude.ai (their names block plugin skills:
`skill_name_taken`). The catalog is plain data; callers hold the emulator's lock.

Faults (`emulator.faults`) reach the catalog as an error code for one upload:
`plugin_name_taken` (an administrator's plugin takes the name first), `skill_name_taken`,
`registration_pending` (stored, not yet usable, until a version completes it), `scan_pending` /
`scan_failed` / `scan_errored` / `scan_unknown` (the version's content scan runs, fails, ends
without a verdict or with assessment `unknown`: stored, not served).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from claresia_sync.emulator.common import (
    EmulatorError,
    bad_request,
    coded,
    cursor_page,
    iso_now,
    not_found,
)
from claresia_sync.emulator.skill_rules import name_problems, read_frontmatter, skill_md_problems
from claresia_sync.emulator.uploads import Upload, check_paths, text, zip_bytes

BETA = "ce-plugins-2026-09-01"
MANIFEST = ".claude-plugin/plugin.json"
Preference = Literal["required", "auto_install", "available", "not_available"]
PREFERENCES: tuple[Preference, ...] = ("required", "auto_install", "available", "not_available")
# A member in several targets gets the strongest of their settings.
_RANK = {p: i for i, p in enumerate(reversed(PREFERENCES))}
_MAX_NAME = 64
_MAX_DESCRIPTION = 500
_MAX_RELEASE_NOTES = 5000
_VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+-]{0,63}$")
_QUIET_TOOLS = frozenset({"AskUserQuestion", "TodoWrite", "ToolSearch"})
_SCAN_PASS = {"status": "completed", "assessment": "pass", "reason": None}


@dataclass
class PluginContent:
    """A validated upload: the manifest's fields, the skills found, and the files as sent."""

    name: str
    display_name: str | None
    description: str | None
    manifest_version: str | None
    skills: list[dict[str, Any]]  # components of type skill
    reach: str
    files: tuple[tuple[str, bytes], ...]


@dataclass
class PluginVersion:
    id: str
    plugin_id: str
    content: PluginContent
    created_at: str
    created_by: dict[str, Any] | None
    release_notes: str | None
    content_scan: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        c = self.content
        return {
            "type": "plugin_version",
            "id": self.id,
            "plugin_id": self.plugin_id,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "description": c.description,
            "display_name": c.display_name,
            "manifest_version": c.manifest_version,
            "release_notes": self.release_notes,
            "components": c.skills,
            "content_scan": self.content_scan,
            "reach": c.reach,
        }

    @property
    def servable(self) -> bool:
        scan = self.content_scan
        return scan is None or (
            scan["status"] == "completed" and scan.get("assessment") in ("pass", "warn")
        )


@dataclass
class Setting:
    seq: int  # creation order, for the newest-first list
    preference: Preference
    created_at: str
    updated_at: str


@dataclass
class Plugin:
    id: str
    name: str
    marketplace_id: str
    created_at: str
    updated_at: str
    created_by: dict[str, Any] | None
    versions: list[PluginVersion]  # oldest first
    served: PluginVersion
    pinned: bool = False
    pending: bool = False  # registration_pending: stored, not usable in claude.ai
    settings: dict[str, Setting] = field(default_factory=dict)  # target -> setting
    settings_busy: bool = False  # an installation-setting write is being applied

    @property
    def latest(self) -> PluginVersion:
        return self.versions[-1]

    def version(self, version_id: str) -> PluginVersion:
        for v in self.versions:
            if v.id == version_id:
                return v
        raise not_found(f"plugin version {version_id!r} not found in plugin {self.id}")


def target_json(target: str) -> dict[str, Any]:
    if target == "organization":
        return {"type": "organization"}
    return {"type": "rbac_group", "rbac_group_id": target}


def _manifest_version(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    value = raw[1:] if raw[:1] in ("v", "V") else raw
    return value if _VERSION_RE.fullmatch(value) else None


def plugin_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "the manifest's name must be a non-empty string"
    if len(name) > _MAX_NAME:
        return f"the manifest's name {name!r} is longer than {_MAX_NAME} characters"
    if not all(c == "-" or c.isdigit() or (c.isalpha() and not c.isupper()) for c in name):
        return f"the manifest's name {name!r} may hold only lowercase letters, digits and hyphens"
    return None


def parse_plugin(upload: Upload) -> PluginContent:
    """Check an upload as the Plugins API does; 400 listing every problem."""
    files = upload.files
    problems = check_paths(files)
    by_path = dict(files)
    manifest: dict[str, Any] = {}
    if MANIFEST not in by_path:
        problems.append(f"files: the manifest {MANIFEST} is missing")
    else:
        try:
            loaded = json.loads(by_path[MANIFEST])
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            problems.append(f"{MANIFEST}: must be a JSON object")
        else:
            manifest = loaded
            why = plugin_name_problem(manifest.get("name"))
            if why:
                problems.append(f"{MANIFEST}: {why}")
            for key in ("display_name", "description", "version"):
                if manifest.get(key) is not None and not isinstance(manifest[key], str):
                    problems.append(f"{MANIFEST}: {key} must be a string")
            description = manifest.get("description")
            if isinstance(description, str) and len(description) > _MAX_DESCRIPTION:
                problems.append(
                    f"{MANIFEST}: description has {len(description)} characters, "
                    f"at most {_MAX_DESCRIPTION}"
                )
    skills, reach = _skills(files, by_path, problems)
    if ".mcp.json" in by_path or manifest.get("mcpServers"):
        reach = "remote"
    elif reach == "contained" and any(p.startswith("hooks/") for p in by_path):
        reach = "privileged"
    if problems:
        raise bad_request("invalid plugin upload: " + "; ".join(problems))
    return PluginContent(
        name=manifest["name"],
        display_name=manifest.get("display_name"),
        description=manifest.get("description"),
        manifest_version=_manifest_version(manifest.get("version")),
        skills=skills,
        reach=reach,
        files=files,
    )


def _skills(
    files: Iterable[tuple[str, bytes]], by_path: dict[str, bytes], problems: list[str]
) -> tuple[list[dict[str, Any]], str]:
    """Components of type skill (`skills/<name>/SKILL.md`), checked as Agent Skills."""
    names = sorted({p.split("/")[1] for p, _ in files if p.startswith("skills/") and "/" in p[7:]})
    stray = [p for p, _ in files if p.startswith("skills/") and "/" not in p[7:]]
    problems += [f"file {p!r}: skill files belong under skills/<skill-name>/" for p in stray]
    reach = "contained"
    skills = []
    for name in names:
        skill_md = f"skills/{name}/SKILL.md"
        found = [f"skills/{name}: {p}" for p in name_problems(name)]
        if skill_md not in by_path:
            found.append(f"skills/{name}: SKILL.md is missing")
        else:
            content = text(skill_md, by_path[skill_md])
            found += [
                f"{skill_md}: {p.removeprefix('SKILL.md: ')}"
                for p in skill_md_problems(content, name)
            ]
            if not found:
                meta, _ = read_frontmatter(content)
                tools = str(meta.get("allowed-tools") or "").replace(",", " ").split()
                if set(tools) - _QUIET_TOOLS:
                    reach = "privileged"
                skills.append(
                    {"type": "skill", "name": name, "description": meta.get("description")}
                )
        problems += found
    return skills, reach


class PluginCatalog:
    """One organisation's library marketplace. `new_id(prefix)` makes increasing ids."""

    def __init__(
        self,
        org_id: str,
        default_preference: Preference,
        org_skills: Iterable[str],
        new_id: Callable[[str], str],
    ) -> None:
        self.org_id = org_id
        self.marketplace_id = f"marketplace_{org_id.removeprefix('org_')}_library"
        self.default_preference: Preference = default_preference
        self.org_skills: set[str] = set(org_skills)
        self.new_id = new_id
        self.plugins: dict[str, Plugin] = {}
        self.ids: list[str] = []  # sorted ascending = oldest first
        self.names: dict[str, str] = {}
        self._seq = 0

    # -- reads -------------------------------------------------------------------------------

    def get(self, plugin_id: str) -> Plugin:
        found = self.plugins.get(plugin_id)
        if found is None:
            raise not_found(f"plugin {plugin_id!r} not found")
        return found

    def to_json(self, plugin: Plugin) -> dict[str, Any]:
        served = plugin.served
        own = plugin.settings.get("organization")
        return {
            "type": "plugin",
            "id": plugin.id,
            "name": plugin.name,
            "display_name": served.content.display_name,
            "description": served.content.description,
            "manifest_version": served.content.manifest_version,
            "marketplace_id": plugin.marketplace_id,
            "owner": {"type": "organization"},
            "created_at": plugin.created_at,
            "created_by": plugin.created_by,
            "updated_at": plugin.updated_at,
            "latest_version_id": plugin.latest.id,
            "served_version_id": served.id,
            "served_version_pinned": plugin.pinned,
            "components": served.content.skills,
            "content_scan": served.content_scan,
            "reach": served.content.reach,
            "organization_installation_preference": (
                own.preference if own else self.default_preference
            ),
            "organization_installation_preference_inherited": own is None,
        }

    def list_plugins(self, limit: int, page: str | None, owner_type: str | None) -> dict[str, Any]:
        if owner_type == "user":  # members' personal plugins: the emulator has none
            return {"data": [], "next_page": None}
        return cursor_page(self.ids, limit, page, lambda i: self.to_json(self.plugins[i]))

    def list_versions(self, plugin_id: str, limit: int, page: str | None) -> dict[str, Any]:
        plugin = self.get(plugin_id)
        by_id = {v.id: v for v in plugin.versions}
        return cursor_page(list(by_id), limit, page, lambda i: by_id[i].to_json())

    def version(self, plugin_id: str, version_id: str) -> PluginVersion:
        plugin = self.get(plugin_id)
        return plugin.latest if version_id == "latest" else plugin.version(version_id)

    def archive(self, plugin_id: str, version_id: str) -> tuple[str, bytes]:
        if version_id == "latest":
            raise bad_request("name the version to download by its id: 'latest' is not accepted")
        plugin = self.get(plugin_id)
        return plugin.name, zip_bytes(plugin.version(version_id).content.files)

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        upload: Upload,
        actor: dict[str, Any],
        fault: str | None = None,
        release_notes: str | None = None,
    ) -> Plugin:
        content = parse_plugin(upload)
        self._check_notes(release_notes)
        if fault == "plugin_name_taken" and content.name not in self.names:
            admin = {"type": "user_actor", "user_id": "user_claude_ai_admin", "email_address": None}
            self._store(content, admin, None, None)
        holder = self.names.get(content.name)
        if holder is not None:
            raise coded(
                409,
                "conflict_error",
                f"a plugin named {content.name!r} already exists in this marketplace ({holder})",
                "plugin_name_taken",
                plugin_id=holder,
            )
        self._check_skill_names(content, fault)
        plugin = self._store(content, actor, fault, release_notes)
        if fault == "registration_pending":
            raise self._pending(plugin)
        return plugin

    def add_version(
        self,
        plugin_id: str,
        upload: Upload,
        actor: dict[str, Any],
        fault: str | None = None,
        release_notes: str | None = None,
    ) -> PluginVersion:
        plugin = self.get(plugin_id)
        content = parse_plugin(upload)
        self._check_notes(release_notes)
        if content.name != plugin.name:
            raise bad_request(
                f"the manifest's name {content.name!r} must stay the plugin's name {plugin.name!r}"
            )
        self._check_skill_names(content, fault)
        version = self._version(plugin.id, content, actor, fault, release_notes)
        plugin.versions.append(version)
        if not plugin.pinned and version.servable:
            plugin.served = version
        plugin.updated_at = version.created_at
        if fault == "registration_pending":
            plugin.pending = True
            raise self._pending(plugin)
        plugin.pending = False  # a version completes a pending registration
        return version

    def serve(self, plugin_id: str, version_id: str) -> Plugin:
        """Update Plugin: serve this version and pin it."""
        plugin = self.get(plugin_id)
        version = plugin.version(version_id)
        scan = version.content_scan
        if scan is not None and scan["status"] == "processing":
            raise coded(
                409,
                "conflict_error",
                f"the content scan of version {version.id} is still running: retry once it ends",
                "scan_pending",
                plugin_version_id=version.id,
            )
        if not version.servable:
            raise coded(
                400,
                "invalid_request_error",
                f"version {version.id} did not pass its content scan and cannot be served",
                "scan_failed",
                plugin_version_id=version.id,
            )
        plugin.served, plugin.pinned = version, True
        plugin.updated_at = iso_now()
        return plugin

    def delete(self, plugin_id: str) -> None:
        plugin = self.get(plugin_id)
        del self.plugins[plugin_id]
        self.ids.remove(plugin_id)
        self.names.pop(plugin.name, None)

    def set_scan(self, plugin_id: str, version_id: str, scan: dict[str, Any]) -> PluginVersion:
        """claude.ai's content scan finished (a control route): serve it if it passed."""
        plugin = self.get(plugin_id)
        version = plugin.version(version_id)
        version.content_scan = scan
        if version is plugin.latest and version.servable and not plugin.pinned:
            plugin.served = version
            plugin.updated_at = iso_now()
        return version

    # -- installation settings ----------------------------------------------------------------

    def set_setting(self, plugin_id: str, target: str, preference: Preference) -> Setting:
        plugin = self.get(plugin_id)
        now = iso_now()
        setting = plugin.settings.get(target)
        if setting is None:
            self._seq += 1
            setting = plugin.settings[target] = Setting(self._seq, preference, now, now)
        elif setting.preference != preference:  # the value it holds already changes nothing
            setting.preference, setting.updated_at = preference, now
        return setting

    def remove_setting(self, plugin_id: str, target: str) -> None:
        plugin = self.get(plugin_id)
        if plugin.settings.pop(target, None) is None:
            raise not_found(
                f"plugin {plugin_id} holds no installation setting of its own for {target}"
            )

    def list_settings(
        self, plugin_id: str, limit: int, page: str | None, target_type: str | None
    ) -> dict[str, Any]:
        plugin = self.get(plugin_id)
        keyed = {f"{s.seq:012d}": (t, s) for t, s in plugin.settings.items()}

        def render(key: str) -> dict[str, Any]:
            target, setting = keyed[key]
            return setting_json(plugin.id, target, setting)

        def keep(key: str) -> bool:
            kind = "organization" if keyed[key][0] == "organization" else "rbac_group"
            return target_type is None or kind == target_type

        return cursor_page(sorted(keyed), limit, page, render, keep)

    # -- who sees what -------------------------------------------------------------------------

    def preference_for(self, plugin: Plugin, groups: Iterable[str]) -> Preference:
        """A group's own setting overrides the organisation's for its members (the strongest
        of the member's groups); without one, the plugin's own organisation setting or the
        marketplace's default."""
        own = [plugin.settings[g].preference for g in groups if g in plugin.settings]
        if own:
            return max(own, key=_RANK.__getitem__)
        org = plugin.settings.get("organization")
        return org.preference if org else self.default_preference

    def visible(self, groups: set[str]) -> list[tuple[Plugin, Preference]]:
        shown: list[tuple[Plugin, Preference]] = []
        for plugin_id in self.ids:
            plugin = self.plugins[plugin_id]
            if plugin.pending or not plugin.served.servable:
                continue
            preference = self.preference_for(plugin, groups)
            if preference != "not_available":
                shown.append((plugin, preference))
        return shown

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _check_notes(notes: str | None) -> None:
        if notes is not None and len(notes) > _MAX_RELEASE_NOTES:
            raise bad_request(f"release_notes: at most {_MAX_RELEASE_NOTES} characters")

    def _check_skill_names(self, content: PluginContent, fault: str | None) -> None:
        names = [s["name"] for s in content.skills]
        taken = sorted(self.org_skills.intersection(names))
        if fault == "skill_name_taken" and names:
            taken = taken or names[:1]
        if taken:
            raise coded(
                409,
                "conflict_error",
                f"the organization skill {taken[0]!r} has the name of a skill in this plugin: "
                "rename the skill, or remove the organization skill in claude.ai",
                "skill_name_taken",
                skill_name=taken[0],
            )

    def _version(
        self,
        plugin_id: str,
        content: PluginContent,
        actor: dict[str, Any] | None,
        fault: str | None,
        release_notes: str | None,
    ) -> PluginVersion:
        scan: dict[str, Any] = dict(_SCAN_PASS)
        if fault == "scan_pending":
            scan = {"status": "processing", "assessment": None, "reason": None}
        elif fault == "scan_failed":
            scan = {"status": "completed", "assessment": "fail", "reason": "credential-exposure"}
        elif fault == "scan_errored":  # no verdict: the SDK's `reason` says why
            scan = {"status": "errored", "assessment": None, "reason": "scan-did-not-finish"}
        elif fault == "scan_unknown":
            scan = {"status": "completed", "assessment": "unknown", "reason": None}
        return PluginVersion(
            id=self.new_id("pluginver_"),
            plugin_id=plugin_id,
            content=content,
            created_at=iso_now(),
            created_by=actor,
            release_notes=release_notes,
            content_scan=scan,
        )

    def _store(
        self,
        content: PluginContent,
        actor: dict[str, Any] | None,
        fault: str | None,
        release_notes: str | None,
    ) -> Plugin:
        plugin_id = self.new_id("plugin_")
        version = self._version(plugin_id, content, actor, fault, release_notes)
        plugin = Plugin(
            id=plugin_id,
            name=content.name,
            marketplace_id=self.marketplace_id,
            created_at=version.created_at,
            updated_at=version.created_at,
            created_by=actor,
            versions=[version],
            served=version,
            pending=fault == "registration_pending",
        )
        self.plugins[plugin_id] = plugin
        bisect.insort(self.ids, plugin_id)
        self.names[content.name] = plugin_id
        return plugin

    @staticmethod
    def _pending(plugin: Plugin) -> EmulatorError:
        return coded(
            503,
            "api_error",
            f"plugin {plugin.id} and its version {plugin.latest.id} were stored but are not yet "
            "usable in claude.ai: do not create it again; create a version to complete it",
            "registration_pending",
            plugin_id=plugin.id,
            plugin_version_id=plugin.latest.id,
        )


def setting_json(plugin_id: str, target: str, setting: Setting) -> dict[str, Any]:
    return {
        "type": "plugin_installation_setting",
        "plugin_id": plugin_id,
        "target": target_json(target),
        "installation_preference": setting.preference,
        "created_at": setting.created_at,
        "updated_at": setting.updated_at,
    }
