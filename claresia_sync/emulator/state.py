"""In-memory state of the emulated Anthropic organisations, and the seed that fills it.

The seed (YAML or JSON, or a dict) lists organisations with their workspaces, rbac groups, admin
keys (scopes, and the workspaces the key's principal may use) and users (workspace and group
memberships); `deploy/emulator.seed.yaml` documents the schema at its top.

All state sits behind one lock because the HTTP server runs in its own thread while tests and
benchmarks read and prime the state from theirs. Audit events are kept per organisation as
parallel lists sorted by id (ids, types, pre-serialised JSON) so that a page of 1,000 events
after any `after_id` costs one bisect and one join, even with a million-event backlog.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ulid import ULID, ULIDGenerator

from claresia_sync.emulator.activity import ActivityFeed, shaped
from claresia_sync.emulator.analytics import (
    PRODUCTS,
    SkillAnalytics,
    opaque_skill_name,
    skill_key,
)
from claresia_sync.emulator.common import (
    EmulatorError,
    bad_request,
    forbidden,
    iso_now,
    not_found,
)
from claresia_sync.emulator.managed_settings import ManagedSettings
from claresia_sync.emulator.plugins import PluginCatalog, Preference
from claresia_sync.emulator.skill_rules import content_hash as files_hash
from claresia_sync.emulator.skill_rules import (
    name_problems,
    org_skill_problems,
    text_files,
)
from claresia_sync.emulator.skills_api import SkillDelete, WorkspaceSkills
from claresia_sync.resources import shipped

Scope = Literal["skills:read", "skills:write", "audit:read", "workspaces:read"]
ALL_SCOPES: tuple[Scope, ...] = ("skills:read", "skills:write", "audit:read", "workspaces:read")
# Real key families (docs/real-api.md section 2): a Claude Enterprise admin key and its scopes, and
# workspace API keys (Skills API).
KEY_PREFIX = "sk-ant-admin"  # Console admin keys (docs/interfaces.md section 3)
ENTERPRISE_KEY_PREFIX = "sk-ant-api01-"
WORKSPACE_KEY_PREFIX = "sk-ant-api03-"
ENTERPRISE_SCOPES = (
    "write:plugins",
    "read:plugins",
    "read:rbac_groups",
    "read:analytics",
    "read:compliance_activities",
    "read:claude_code_managed_settings",
    "write:claude_code_managed_settings",
)
KeyFamily = Literal["console_admin", "enterprise_admin", "workspace"]
# The demo seed (the fixed demo identities): the checkout's, or the copy in the wheel.
DEMO_SEED = shipped("deploy/emulator.seed.yaml")


class SeedError(ValueError):
    """A seed that cannot be loaded; the message names the file and the field."""


# -- seed schema -------------------------------------------------------------------------------


class _Seed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedWorkspace(_Seed):
    id: str = Field(pattern=r"^wrkspc_[A-Za-z0-9_]+$")
    name: str = Field(min_length=1)
    archived_at: str | None = None


class SeedRbacGroup(_Seed):
    id: str = Field(pattern=r"^rbac_group_[A-Za-z0-9_]+$")
    name: str = Field(min_length=1)


class SeedAdminKey(_Seed):
    key: str = Field(min_length=len(KEY_PREFIX) + 8)
    name: str = ""
    # Default: every scope of the key's family (section 3's four, or the Enterprise five).
    scopes: list[str] | None = None
    workspaces: list[str] | None = None  # the workspaces the key's principal may use; None: all

    @model_validator(mode="after")
    def _key_form(self) -> SeedAdminKey:
        if self.key != self.key.strip() or not self.key.startswith(
            (KEY_PREFIX, ENTERPRISE_KEY_PREFIX)
        ):
            raise ValueError(
                f"an admin key must begin {KEY_PREFIX!r} (Console) or {ENTERPRISE_KEY_PREFIX!r} "
                "(Claude Enterprise) and have no spaces"
            )
        allowed = self.allowed_scopes
        unknown = sorted(set(self.scopes or ()) - set(allowed))
        if unknown:
            raise ValueError(f"scopes {unknown} are not scopes of this key family {list(allowed)}")
        return self

    @property
    def family(self) -> KeyFamily:
        return "enterprise_admin" if self.key.startswith(ENTERPRISE_KEY_PREFIX) else "console_admin"

    @property
    def allowed_scopes(self) -> tuple[str, ...]:
        return ENTERPRISE_SCOPES if self.family == "enterprise_admin" else ALL_SCOPES


class SeedApiKey(_Seed):
    """A workspace API key (Skills API). `workspace: null` is a key that may act on every
    workspace of the organisation, naming one in the `anthropic-workspace-id` header."""

    key: str = Field(min_length=len(WORKSPACE_KEY_PREFIX) + 8)
    name: str = ""
    workspace: str | None

    @model_validator(mode="after")
    def _key_form(self) -> SeedApiKey:
        if not self.key.startswith(WORKSPACE_KEY_PREFIX) or self.key != self.key.strip():
            raise ValueError(
                f"a workspace API key must begin {WORKSPACE_KEY_PREFIX!r} and have no spaces"
            )
        return self


class SeedUser(_Seed):
    id: str = Field(pattern=r"^user_[A-Za-z0-9_]+$")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = ""
    workspaces: list[str] = Field(default_factory=list)
    rbac_groups: list[str] = Field(default_factory=list)


class SeedOrganization(_Seed):
    id: str = Field(pattern=r"^org_[A-Za-z0-9_]+$")
    name: str = Field(min_length=1)
    zero_data_retention: bool = True
    claude_enterprise: bool = False  # the Plugins API and the real rbac groups API answer
    plugin_default_preference: Preference = "available"  # the library marketplace's default
    # Deleting a Skills API skill that has versions: docs do not settle it (skills_api.py).
    skill_delete: SkillDelete = "direct"
    org_skills: list[str] = Field(default_factory=list)  # made by hand in claude.ai
    workspaces: list[SeedWorkspace] = Field(default_factory=list)
    rbac_groups: list[SeedRbacGroup] = Field(default_factory=list)
    admin_keys: list[SeedAdminKey] = Field(default_factory=list)
    api_keys: list[SeedApiKey] = Field(default_factory=list)
    users: list[SeedUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> SeedOrganization:
        ws = {w.id for w in self.workspaces}
        groups = {g.id for g in self.rbac_groups}
        for kind, ids in (
            ("workspace", [w.id for w in self.workspaces]),
            ("rbac group", [g.id for g in self.rbac_groups]),
            ("user", [u.id for u in self.users]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"organization {self.id}: duplicate {kind} id(s) {dupes}")
        for i, key in enumerate(self.admin_keys):
            unknown = sorted(set(key.workspaces or ()) - ws)
            if unknown:
                raise ValueError(
                    f"organization {self.id}: admin_keys[{i}].workspaces names unknown {unknown}"
                )
        for i, key in enumerate(self.admin_keys):
            if key.family == "enterprise_admin" and not self.claude_enterprise:
                raise ValueError(
                    f"organization {self.id}: admin_keys[{i}] is a Claude Enterprise key "
                    "(sk-ant-api01-) in an organization without claude_enterprise: true"
                )
        for i, api_key in enumerate(self.api_keys):
            if api_key.workspace is not None and api_key.workspace not in ws:
                raise ValueError(
                    f"organization {self.id}: api_keys[{i}].workspace names unknown "
                    f"{api_key.workspace!r}"
                )
        for user in self.users:
            unknown = sorted((set(user.workspaces) - ws) | (set(user.rbac_groups) - groups))
            if unknown:
                raise ValueError(f"organization {self.id}: user {user.id} names unknown {unknown}")
        return self


class Seed(_Seed):
    organizations: list[SeedOrganization]

    @model_validator(mode="after")
    def _unique(self) -> Seed:
        orgs = [o.id for o in self.organizations]
        keys = [k.key for o in self.organizations for k in o.admin_keys]
        keys += [k.key for o in self.organizations for k in o.api_keys]
        if len(set(orgs)) != len(orgs):
            raise ValueError("duplicate organization ids")
        if len(set(keys)) != len(keys):
            raise ValueError("an admin key is listed twice (each key belongs to one organization)")
        return self


def load_seed(source: str | Path | Mapping[str, Any] | Seed) -> Seed:
    """A validated seed from a YAML/JSON file or a dict; errors name the file and the field."""
    if isinstance(source, Seed):
        return source
    where = "seed"
    if isinstance(source, str | Path):
        where = str(source)
        try:
            data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))  # JSON is YAML
        except OSError as exc:
            raise SeedError(f"cannot read emulator seed {where}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SeedError(f"emulator seed {where} is not valid YAML: {exc}") from None
    else:
        data = source
    try:
        return Seed.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise SeedError(
            f"emulator seed {where}: {loc}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from None


# -- live state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRecord:
    key: str
    org_id: str
    name: str
    scopes: frozenset[str]
    workspaces: frozenset[str] | None  # None: every workspace of the organisation
    family: KeyFamily = "console_admin"
    workspace: str | None = None  # a workspace API key's own workspace (None: any, by header)

    @property
    def key_id(self) -> str:
        """The key's id as the real API shows it (`created_by.api_key_id`), never its value."""
        return "apikey_01" + hashlib.sha256(self.key.encode()).hexdigest()[:24]


@dataclass
class UserRecord:
    id: str
    email: str
    name: str
    workspaces: set[str]
    rbac_groups: set[str]


@dataclass
class SkillRecord:
    id: str
    org_id: str
    name: str
    display_title: str | None
    description: str
    metadata: dict[str, str]
    files: list[dict[str, str]]
    latest_version: str
    content_hash: str
    created_at: str
    updated_at: str
    workspace_ids: list[str] = field(default_factory=list)
    rbac_group_ids: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "skill",
            "id": self.id,
            "name": self.name,
            "display_title": self.display_title,
            "description": self.description,
            "latest_version": self.latest_version,
            "content_hash": self.content_hash,
            "metadata": dict(self.metadata),
            "access": {
                "workspace_ids": list(self.workspace_ids),
                "rbac_group_ids": list(self.rbac_group_ids),
            },
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class OrgState:
    id: str
    name: str
    zero_data_retention: bool
    workspaces: dict[str, dict[str, Any]]
    rbac_groups: dict[str, dict[str, Any]]
    users: dict[str, UserRecord]
    skills: dict[str, SkillRecord] = field(default_factory=dict)
    skill_ids: list[str] = field(default_factory=list)  # sorted
    names: dict[str, str] = field(default_factory=dict)  # name -> skill id
    event_ids: list[str] = field(default_factory=list)  # sorted, parallel to the two below
    event_types: list[str] = field(default_factory=list)
    event_json: list[bytes] = field(default_factory=list)
    event_type_set: set[str] = field(default_factory=set)
    claude_enterprise: bool = False
    plugins: PluginCatalog | None = None  # Claude Enterprise organisations only
    analytics: SkillAnalytics = field(default_factory=SkillAnalytics)  # Claude Enterprise
    activity: ActivityFeed = field(default_factory=ActivityFeed)  # the Compliance activity feed
    claude_code_settings: ManagedSettings = field(default_factory=ManagedSettings)  # Enterprise
    workspace_skills: dict[str, WorkspaceSkills] = field(default_factory=dict)  # Skills API


def workspace_json(ws_id: str, name: str, archived_at: str | None = None) -> dict[str, Any]:
    """A workspace as the SDK's `Workspace` type has it (`anthropic/types/organization/
    workspace.py`): section 3's four fields and the others it requires. Seed workspaces have no
    history: one fixed creation time."""
    return {
        "type": "workspace",
        "id": ws_id,
        "name": name,
        "archived_at": archived_at,
        "created_at": "2026-01-05T09:00:00.000Z",
        "display_color": "#6C5BB9",
        "compartment_id": "compartment_" + ws_id.removeprefix("wrkspc_"),
        "tags": {},
        "data_residency": {
            "workspace_geo": "us",
            "default_inference_geo": "global",
            "allowed_inference_geos": "unrestricted",
        },
    }


# An org-skills upload holds at most this much, all files together (docs/interfaces.md section 3).
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


def content_hash(files: Sequence[Mapping[str, str]]) -> str:
    """The server's own hash of what it stores (docs/interfaces.md section 2's rule, in the
    emulator's own code): never the hash a client claims in its metadata."""
    return files_hash(text_files(files))


# Models and prices (USD per million tokens) used to make simulated invocations look real.
_MODELS = (
    ("claude-sonnet-4-5", 3.0, 15.0, 0.6),
    ("claude-haiku-4-5", 1.0, 5.0, 0.3),
    ("claude-opus-4-1", 15.0, 75.0, 0.1),
)
_FAILURES = (
    ("timeout", "tool call timed out"),
    ("tool_error", "a tool returned an error"),
    ("overloaded", "the model is overloaded"),
    ("invalid_input", "a required input was missing"),
)


class EmulatorState:
    """Organisations, keys, skills and audit logs; every method takes the lock."""

    def __init__(self, seed: str | Path | Mapping[str, Any] | Seed) -> None:
        self.seed = load_seed(seed)
        self.lock = threading.RLock()
        self._ids = ULIDGenerator(clock=self._clock)
        self._last_ms = 0
        self._last_version = 0
        self.reset()

    def _clock(self) -> int:
        # Never backwards, so ids keep increasing in the order they are handed out.
        self._last_ms = max(self._last_ms, time.time_ns() // 1_000_000)
        return self._last_ms

    def reset(self) -> None:
        """Back to the seed: no skills, no events."""
        with self.lock:
            self.keys: dict[str, KeyRecord] = {}
            self.orgs: dict[str, OrgState] = {}
            for org in self.seed.organizations:
                self.orgs[org.id] = OrgState(
                    id=org.id,
                    name=org.name,
                    zero_data_retention=org.zero_data_retention,
                    workspaces={
                        w.id: workspace_json(w.id, w.name, w.archived_at)
                        for w in sorted(org.workspaces, key=lambda w: w.id)
                    },
                    rbac_groups={
                        g.id: {"type": "rbac_group", "id": g.id, "name": g.name}
                        for g in sorted(org.rbac_groups, key=lambda g: g.id)
                    },
                    users={
                        u.id: UserRecord(
                            u.id, u.email, u.name, set(u.workspaces), set(u.rbac_groups)
                        )
                        for u in org.users
                    },
                )
                state = self.orgs[org.id]
                state.claude_enterprise = org.claude_enterprise
                if org.claude_enterprise:
                    state.plugins = PluginCatalog(
                        org.id, org.plugin_default_preference, org.org_skills, self.new_id
                    )
                state.workspace_skills = {
                    w: WorkspaceSkills(self.new_id, org.skill_delete) for w in state.workspaces
                }
                for k in org.admin_keys:
                    self.keys[k.key] = KeyRecord(
                        key=k.key,
                        org_id=org.id,
                        name=k.name,
                        scopes=frozenset(k.allowed_scopes if k.scopes is None else k.scopes),
                        workspaces=None if k.workspaces is None else frozenset(k.workspaces),
                        family=k.family,
                    )
                for a in org.api_keys:
                    self.keys[a.key] = KeyRecord(
                        key=a.key,
                        org_id=org.id,
                        name=a.name,
                        scopes=frozenset(),
                        workspaces=None,
                        family="workspace",
                        workspace=a.workspace,
                    )

    # -- ids ---------------------------------------------------------------------------------

    def _ulid(self) -> ULID:
        return self._ids.generate()

    def new_id(self, prefix: str) -> str:
        """`prefix` + a ULID: ids that increase in creation order (newest-first lists)."""
        return f"{prefix}{self._ulid()}"

    def _new_version(self) -> str:
        self._last_version = max(self._last_version + 1, time.time_ns() // 1000)
        return str(self._last_version)

    # -- lookups -----------------------------------------------------------------------------

    def key(self, value: str) -> KeyRecord | None:
        return self.keys.get(value)

    def org(self, org_id: str) -> OrgState:
        org = self.orgs.get(org_id)
        if org is None:
            raise not_found(f"organization {org_id!r} not found")
        return org

    def organization_json(self, org_id: str) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            active = [w for w in org.workspaces.values() if not w["archived_at"]]
            return {
                "type": "organization",
                "id": org.id,
                "name": org.name,
                "workspace_count": len(active),
                "zero_data_retention": org.zero_data_retention,
            }

    def set_zero_data_retention(self, org_id: str, enabled: bool) -> None:
        with self.lock:
            self.org(org_id).zero_data_retention = enabled

    def set_skill_delete(self, org_id: str, mode: SkillDelete) -> None:
        """How the organisation's Skills API answers a delete of a skill with versions (until
        the next reset, which goes back to the seed's)."""
        with self.lock:
            for skills in self.org(org_id).workspace_skills.values():
                skills.delete_mode = mode

    def skill(self, org_id: str, skill_id: str) -> SkillRecord:
        with self.lock:
            found = self.org(org_id).skills.get(skill_id)
            if found is None:
                raise not_found(f"skill {skill_id!r} not found in organization {org_id!r}")
            return found

    # -- generic list paging -----------------------------------------------------------------

    @staticmethod
    def page(
        ids: Sequence[str], items: Mapping[str, Any], limit: int, after_id: str | None
    ) -> dict[str, Any]:
        """A list answer over `ids` (sorted) after `after_id` (compared, need not exist)."""
        start = bisect.bisect_right(ids, after_id) if after_id else 0
        chosen = ids[start : start + limit]
        data = [items[i] for i in chosen]
        return {
            "data": data,
            "has_more": start + limit < len(ids),
            "first_id": chosen[0] if chosen else None,
            "last_id": chosen[-1] if chosen else None,
        }

    def list_workspaces(
        self,
        org_id: str,
        limit: int,
        after_id: str | None,
        usable: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """The organisation's workspaces; for a key whose principal may use only `usable`,
        only those (what the daemon's pre-flight reads as the key's reach)."""
        with self.lock:
            org = self.org(org_id)
            ids = [w for w in org.workspaces if usable is None or w in usable]
            return self.page(ids, org.workspaces, limit, after_id)

    def list_rbac_groups(self, org_id: str, limit: int, after_id: str | None) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            return self.page(list(org.rbac_groups), org.rbac_groups, limit, after_id)

    def list_skills(
        self, org_id: str, limit: int, after_id: str | None, name_prefix: str | None
    ) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            ids: Sequence[str] = org.skill_ids
            if name_prefix:
                ids = [i for i in ids if org.skills[i].name.startswith(name_prefix)]
            chosen = self.page(ids, org.skills, limit, after_id)
            chosen["data"] = [s.to_json() for s in chosen["data"]]
            return chosen

    # -- skills ------------------------------------------------------------------------------

    @staticmethod
    def _check_upload(payload: Mapping[str, Any]) -> None:
        files = payload.get("files")
        if isinstance(files, list):
            size = sum(
                len(f["content"].encode())
                for f in files
                if isinstance(f, Mapping) and isinstance(f.get("content"), str)
            )
            if size > MAX_UPLOAD_BYTES:
                raise EmulatorError(
                    413,
                    "request_too_large",
                    f"the skill files hold {size} bytes in all, at most {MAX_UPLOAD_BYTES}",
                )
        problems = org_skill_problems(payload)
        if problems:
            raise bad_request("invalid skill upload: " + "; ".join(problems))

    def create_skill(self, org_id: str, payload: Mapping[str, Any]) -> SkillRecord:
        self._check_upload(payload)
        with self.lock:
            org = self.org(org_id)
            name = str(payload["name"])
            existing = org.names.get(name)
            if existing is not None:
                raise EmulatorError(
                    409,
                    "conflict_error",
                    f"a skill named {name!r} already exists ({existing})",
                    existing_id=existing,
                )
            now = iso_now()
            files = [dict(f) for f in payload["files"]]
            metadata = dict(payload.get("metadata") or {})
            version = self._new_version()
            record = SkillRecord(
                id=f"skill_01{self._ulid()}",
                org_id=org_id,
                name=name,
                display_title=payload.get("display_title"),
                description=str(payload["description"]),
                metadata=metadata,
                files=files,
                latest_version=version,
                content_hash=content_hash(files),
                created_at=now,
                updated_at=now,
                versions=[version],
            )
            org.skills[record.id] = record
            bisect.insort(org.skill_ids, record.id)
            org.names[name] = record.id
            return record

    def create_version(self, org_id: str, skill_id: str, payload: Mapping[str, Any]) -> SkillRecord:
        with self.lock:
            record = self.skill(org_id, skill_id)
            name = record.name
        unknown = sorted(set(payload) - {"files", "metadata", "display_title", "description"})
        if unknown:
            raise bad_request(f"unknown field(s) in a version upload: {unknown}")
        self._check_upload({**payload, "name": name})
        with self.lock:
            record = self.skill(org_id, skill_id)
            record.files = [dict(f) for f in payload["files"]]
            record.metadata = dict(payload.get("metadata") or {})
            record.description = str(payload["description"])
            record.display_title = payload.get("display_title", record.display_title)
            record.content_hash = content_hash(record.files)
            record.latest_version = self._new_version()
            record.versions.append(record.latest_version)
            record.updated_at = iso_now()
            return record

    def set_access(
        self,
        org_id: str,
        skill_id: str,
        workspace_ids: Sequence[str],
        rbac_group_ids: Sequence[str],
        principal: KeyRecord,
    ) -> SkillRecord:
        with self.lock:
            org = self.org(org_id)
            record = self.skill(org_id, skill_id)
            for ws in workspace_ids:
                if ws not in org.workspaces:
                    raise bad_request(f"workspace {ws!r} does not exist in organization {org_id}")
                if org.workspaces[ws]["archived_at"]:
                    raise bad_request(f"workspace {ws!r} is archived")
                if principal.workspaces is not None and ws not in principal.workspaces:
                    raise forbidden(
                        f"the admin key's principal is not a member of workspace {ws} and may "
                        "not grant access to it"
                    )
            for group in rbac_group_ids:
                if group not in org.rbac_groups:
                    raise bad_request(
                        f"rbac group {group!r} does not exist in organization {org_id}"
                    )
            record.workspace_ids = sorted(set(workspace_ids))
            record.rbac_group_ids = sorted(set(rbac_group_ids))
            record.updated_at = iso_now()
            return record

    def delete_skill(self, org_id: str, skill_id: str) -> None:
        with self.lock:
            org = self.org(org_id)
            record = self.skill(org_id, skill_id)
            del org.skills[skill_id]
            org.skill_ids.remove(skill_id)
            org.names.pop(record.name, None)

    # -- the @ picker --------------------------------------------------------------------------

    def visible_skills(self, org_id: str, user_id: str) -> list[SkillRecord]:
        """Skills the user sees: member of one of their workspaces AND one of their groups."""
        with self.lock:
            org = self.org(org_id)
            user = org.users.get(user_id)
            if user is None:
                raise not_found(f"user {user_id!r} not found in organization {org_id}")
            return [
                s
                for i in org.skill_ids
                if (s := org.skills[i])
                and user.workspaces.intersection(s.workspace_ids)
                and user.rbac_groups.intersection(s.rbac_group_ids)
            ]

    def visible_plugin_skills(self, org_id: str, user_id: str) -> list[dict[str, Any]]:
        """Skills of the plugins a Claude Enterprise user gets (installation settings of the
        plugin for their groups, else for the organisation): not `not_available`, usable."""
        with self.lock:
            org = self.org(org_id)
            user = org.users.get(user_id)
            if user is None:
                raise not_found(f"user {user_id!r} not found in organization {org_id}")
            if org.plugins is None:
                return []
            return [
                {
                    "id": plugin.id,
                    "name": skill["name"],
                    "display_title": plugin.served.content.display_name,
                    "plugin": plugin.name,
                    "installation_preference": preference,
                }
                for plugin, preference in org.plugins.visible(user.rbac_groups)
                for skill in plugin.served.content.skills
            ]

    # -- audit log ---------------------------------------------------------------------------

    def _append(self, org: OrgState, event: dict[str, Any]) -> None:
        org.event_ids.append(event["id"])
        org.event_types.append(event["type"])
        org.event_type_set.add(event["type"])
        org.event_json.append(json.dumps(event, separators=(",", ":")).encode())

    def append_events(self, org_id: str, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Append raw events as given (any type, any shape); missing ids and types are filled in."""
        with self.lock:
            org = self.org(org_id)
            ids = []
            for raw in events:
                ulid = self._ulid()
                event = {"type": "custom.event", "created_at": iso_now(ulid.milliseconds), **raw}
                event["id"] = f"evt_{ulid}"
                self._append(org, event)
                ids.append(event["id"])
            return ids

    def generate_invocations(
        self,
        org_id: str,
        count: int,
        *,
        failure_rate: float = 0.0,
        user_id: str | None = None,
        skill: str | None = None,
        workspace_id: str | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """`count` skill.invoked/skill.failed events by users on skills they see (first and
        last id returned). `skill` is a skill id or a published name."""
        if count < 0 or not 0.0 <= failure_rate <= 1.0:
            raise bad_request("count must be >= 0 and failure_rate within [0, 1]")
        rng = random.Random(seed)
        with self.lock:
            org = self.org(org_id)
            choices = self._invocation_choices(org, user_id, skill, workspace_id)
            first = last = None
            for _ in range(count):
                user, record, ws = rng.choice(choices)
                event = self._invocation(org, user, record, ws, rng, rng.random() < failure_rate)
                self._append(org, event)
                first = first or event["id"]
                last = event["id"]
            return [i for i in (first, last) if i]

    def record_activity(
        self, org_id: str, activity_type: str, actor: dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        """One Compliance activity-feed event of `org_id` (after a write it describes), shaped
        as the reference documents its type (`activity.SHAPES`)."""
        own = shaped(activity_type, fields)
        with self.lock:
            org = self.org(org_id)
            ulid = self._ulid()
            activity = {
                "id": f"activity_{ulid}",
                "created_at": iso_now(ulid.milliseconds),
                "organization_id": org.id,
                "organization_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"claresia:{org.id}")),
                "actor": actor,
                "type": activity_type,
                **own,
            }
            org.activity.add(activity)
            return activity

    def generate_enterprise_invocations(
        self,
        org_id: str,
        count: int,
        *,
        user_id: str | None = None,
        skill: str | None = None,
        day: dt.date | None = None,
        product: str | None = None,
        seed: int | None = None,
    ) -> int:
        """`count` uses of plugin skills by users who see them (installation settings), into
        the organisation's skills analytics (Claude apps report no per-invocation event);
        `day` back-dates them (late data: a revision of a day already served)."""
        if count < 0:
            raise bad_request("count must be >= 0")
        if product is not None and product not in PRODUCTS:
            raise bad_request(f"product must be one of {', '.join(PRODUCTS)}")
        rng = random.Random(seed)
        when = day or dt.datetime.now(dt.UTC).date()
        with self.lock:
            org = self.org(org_id)
            assert org.plugins is not None
            users = [org.users[user_id]] if user_id in org.users else list(org.users.values())
            if user_id is not None and user_id not in org.users:
                raise not_found(f"user {user_id!r} not found in organization {org.id}")
            choices = [
                (user, plugin.id, s["name"])
                for user in users
                for plugin, _ in org.plugins.visible(user.rbac_groups)
                for s in plugin.served.content.skills
                if skill is None or skill in (s["name"], plugin.name)
            ]
            if not choices:
                raise bad_request(
                    f"no user of organization {org.id} sees a matching plugin skill (publish "
                    "plugins and set their installation settings first)"
                )
            for _ in range(count):
                user, plugin_id, name = rng.choice(choices)
                spend = Decimal(rng.randint(0, 2500)) / 10  # tenths of a cent
                org.analytics.record(
                    when,
                    skill_key(name, opaque_skill_name(plugin_id, name)),
                    user.id,
                    user.rbac_groups,
                    product or rng.choice(PRODUCTS),
                    spend,
                    spend * 2,
                )
            return count

    def _invocation_choices(
        self,
        org: OrgState,
        user_id: str | None,
        skill: str | None,
        workspace_id: str | None,
    ) -> list[tuple[UserRecord, SkillRecord, str]]:
        users = list(org.users.values())
        if user_id is not None:
            if user_id not in org.users:
                raise not_found(f"user {user_id!r} not found in organization {org.id}")
            users = [org.users[user_id]]
        skills = [org.skills[i] for i in org.skill_ids]
        if skill is not None:
            skills = [s for s in skills if skill in (s.id, s.name)]
            if not skills:
                raise not_found(f"skill {skill!r} not found in organization {org.id}")
        choices = []
        for user in users:
            for record in skills:
                if not user.rbac_groups.intersection(record.rbac_group_ids):
                    continue
                for ws in sorted(user.workspaces.intersection(record.workspace_ids)):
                    if workspace_id is None or ws == workspace_id:
                        choices.append((user, record, ws))
        if not choices:
            raise bad_request(
                f"no user of organization {org.id} sees a matching skill in the @ picker "
                "(publish skills and set their workspace and group access first)"
            )
        return choices

    def _invocation(
        self,
        org: OrgState,
        user: UserRecord,
        record: SkillRecord,
        workspace_id: str,
        rng: random.Random,
        failed: bool,
    ) -> dict[str, Any]:
        ulid = self._ulid()
        model, price_in, price_out, _ = rng.choices(_MODELS, weights=[m[3] for m in _MODELS])[0]
        input_tokens = int(rng.lognormvariate(7.0, 0.6))
        output_tokens = 0 if failed and rng.random() < 0.5 else int(rng.lognormvariate(6.3, 0.7))
        cost = (input_tokens * price_in + output_tokens * price_out) / 1_000_000
        duration = int(300 + output_tokens * rng.uniform(8, 25) + rng.uniform(0, 800))
        error = None
        if failed:
            kind, message = rng.choice(_FAILURES)
            error = {"type": kind, "message": message}
        return {
            "type": "skill.failed" if failed else "skill.invoked",
            "id": f"evt_{ulid}",
            "created_at": iso_now(ulid.milliseconds - rng.randint(0, 3000)),
            "organization_id": org.id,
            "workspace_id": workspace_id,
            "actor": {"type": "user", "user_id": user.id, "email": user.email},
            "skill": {"id": record.id, "name": record.name, "version": record.latest_version},
            "invocation": {
                "id": f"inv_{rng.getrandbits(96):024x}",
                "model": model,
                "duration_ms": duration,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                "cost_usd": f"{cost:.4f}",
            },
            "error": error,
        }

    def audit_page(
        self,
        org_id: str,
        limit: int,
        after_id: str | None,
        event_types: set[str] | None,
        *,
        redeliver: int = 0,
    ) -> bytes:
        """One audit log answer, serialised. `redeliver` re-serves that many events from just
        before `after_id` at the start of the page (at-least-once delivery)."""
        with self.lock:
            org = self.org(org_id)
            ids = org.event_ids
            start = bisect.bisect_right(ids, after_id) if after_id else 0
            chosen: list[int]
            if event_types is None or org.event_type_set <= event_types:
                end = min(start + limit, len(ids))
                chosen = list(range(start, end))
                has_more = end < len(ids)
            else:
                chosen = []
                i = start
                while i < len(ids) and len(chosen) < limit:
                    if org.event_types[i] in event_types:
                        chosen.append(i)
                    i += 1
                has_more = any(t in event_types for t in org.event_types[i:])
            if redeliver and start > 0:
                again = [
                    i
                    for i in range(max(0, start - redeliver), start)
                    if event_types is None or org.event_types[i] in event_types
                ]
                chosen = again + chosen
            data = b",".join(org.event_json[i] for i in chosen)
            first = json.dumps(ids[chosen[0]] if chosen else None)
            last = json.dumps(ids[chosen[-1]] if chosen else None)
        return (
            b'{"data":['
            + data
            + b'],"has_more":'
            + (b"true" if has_more else b"false")
            + b',"first_id":'
            + first.encode()
            + b',"last_id":'
            + last.encode()
            + b"}"
        )

    # -- test helpers --------------------------------------------------------------------------

    def add_admin_key(
        self,
        org_id: str,
        key: str,
        scopes: Iterable[str] = ALL_SCOPES,
        workspaces: Iterable[str] | None = None,
    ) -> KeyRecord:
        """Accept one more admin key (until the next reset)."""
        with self.lock:
            self.org(org_id)
            record = KeyRecord(
                key=key,
                org_id=org_id,
                name="added",
                scopes=frozenset(scopes),
                workspaces=None if workspaces is None else frozenset(workspaces),
                family=(
                    "enterprise_admin" if key.startswith(ENTERPRISE_KEY_PREFIX) else "console_admin"
                ),
            )
            self.keys[key] = record
            return record

    def add_workspaces(self, org_id: str, workspaces: Iterable[tuple[str, str]]) -> None:
        """Prime extra workspaces (id, name) directly, e.g. for paging tests."""
        with self.lock:
            org = self.org(org_id)
            for ws_id, name in workspaces:
                org.workspaces[ws_id] = workspace_json(ws_id, name)
            org.workspaces = dict(sorted(org.workspaces.items()))

    def bulk_add_skills(self, org_id: str, names: Iterable[str]) -> list[str]:
        """Prime skills without the upload checks (paging tests); returns their ids."""
        ids = []
        for name in names:
            if name_problems(name):
                raise ValueError(f"bad skill name {name!r}")
            record = self._prime_skill(org_id, name)
            ids.append(record.id)
        return ids

    def _prime_skill(self, org_id: str, name: str) -> SkillRecord:
        with self.lock:
            org = self.org(org_id)
            if name in org.names:
                raise ValueError(f"skill {name!r} exists")
            now = iso_now()
            version = self._new_version()
            files = [{"path": f"{name}/SKILL.md", "content": f"---\nname: {name}\n---\n"}]
            record = SkillRecord(
                id=f"skill_01{self._ulid()}",
                org_id=org_id,
                name=name,
                display_title=name,
                description=f"{name} (primed)",
                metadata={},
                files=files,
                latest_version=version,
                content_hash=content_hash(files),
                created_at=now,
                updated_at=now,
                versions=[version],
            )
            org.skills[record.id] = record
            bisect.insort(org.skill_ids, record.id)
            org.names[name] = record.id
            return record
