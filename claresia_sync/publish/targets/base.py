"""The publish target seam: what the planner and the applier need of a place skills go to.

A *target kind* (`TargetKind`) is one API a skill can be published through; a *target*
(`PublishTarget`) is one place of that kind, opened for one tenant connection. Three kinds exist:
`org-skills` (an organisation of the API of docs/interfaces.md section 3, `targets.org_skills`),
`claude-enterprise` (the Plugins API of a Claude Enterprise organisation,
`targets.claude_enterprise`) and `claude-api` (the Skills API of one workspace,
`targets.claude_api`); docs/targets.md says what each publishes and who sees it. The planner sees
only `LiveSkill` values and `Access` values; the applier calls only the methods below. Nothing
outside a target's module knows its API, its ids or its access model.

Each kind's module holds a frozen, comparable `Access` value in the target's own terms and a
`TargetKind`: how a `Grant` of the tenant configuration becomes that access, how an access is
stored in and read back from `publication.acl`, and how a target is opened for a connection.
`publish.desired` opens one target per (root tenant, connection) that
`tenancy.lookup.target_connections` returns (claude-api: one per mapped workspace), through
`targets.KINDS`; `publication` rows carry the target (`TenantConnection.target_key`). A kind
also owns its part of the tenants file (`section`, composed into `targets:` by
`tenancy.schema`), its key family, its fan-out of a stored section into connections and its
connection check, and declares the features that belong to it (the organisation connection,
Claude Code's managed settings, the telemetry sources that read it): the tenants file,
`tenants apply`, the lookup, `connection test`, the settings step, the telemetry sources and
`status` iterate `targets.KINDS` and name no kind (docs/architecture.md, "Adding a target").

Errors: every method raises `TargetError` (or a subclass) for what the API refused or could
not answer, with `retryable` saying whether the same call may succeed later (429/5xx, timeouts)
and a one-line `hint` for the operator; anything else is a bug (the applier catches it per item).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2

from claresia_sync.api.client import CallCounter
from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.errors import SkillGone as SkillGone  # re-exported: the seam's errors
from claresia_sync.api.errors import TargetError as TargetError
from claresia_sync.publish.targets.check import TargetReport
from claresia_sync.publish.targets.section import StoredTarget, TargetSection
from claresia_sync.secrets import KeyFamily
from claresia_sync.transpile import ClaudeSkill


class Access(Protocol):
    """Who may use one skill, in a target's own terms: a frozen value compared with `==`
    (desired vs live) and stored as JSON in `publication.acl`."""

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True, order=True)
class Grant:
    """What the tenant configuration grants one (tenant, skill), before any target's terms:
    the workspaces mapped to the tenant and the rbac groups of the archetypes granted it."""

    workspace_ids: tuple[str, ...] = ()
    rbac_group_ids: tuple[str, ...] = ()
    installations: tuple[tuple[str, str], ...] = ()
    """(rbac group, installation preference) of each granting archetype (claude-enterprise)."""


@dataclass(frozen=True)
class LiveSkill:
    """One of our skills as it is live on a target (or as the `publication` row remembers it).

    `content_hash` is the hash the target can prove (the server's own hash, a manifest marker,
    or the recorded one); None when it cannot be known. `access` None: not known either.
    `owner_tenant` / `owner_skill` are what the target says the skill belongs to (its
    metadata or marker), used to find skills of removed tenants and of revoked grants.
    """

    remote_id: str
    version: str | None = None
    content_hash: str | None = None
    access: Access | None = None
    name: str = ""
    owner_tenant: str | None = None
    owner_skill: str | None = None


class NameTaken(TargetError):
    """`create` found the name taken; `holder_id` is the holder's id where the API says it."""

    def __init__(self, message: str, *, holder_id: str | None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.holder_id = holder_id


class AccessCheck(Protocol):
    """Pre-flight: why `access` cannot be written by this target's credential, or None."""

    def __call__(self, access: Access) -> str | None: ...


def no_access_check(access: Access) -> str | None:
    """The check of a target that could not read what its credential may grant."""
    return None


class PublishTarget(Protocol):
    """One place skills are published to, opened for one tenant connection (see the module
    docstring). Only skills whose name starts `claresia-` are ever listed, changed or deleted."""

    connection: TenantConnection

    async def gate(self, *, checks_access: bool = True) -> str | None:
        """Why nothing may be published here (wrong organisation for the key, zero retention
        off, an API that does not answer), or None. Read-only. `checks_access`: the run asks
        `access_check` next (a target may read what it needs with the gate's own reads)."""
        ...

    async def access_check(self) -> AccessCheck:
        """Read, once, what the credential may grant (workspaces, groups) and return the check
        the planner applies to each skill's desired access before any write. Read-only."""
        ...

    async def list_ours(self) -> list[LiveSkill]:
        """Every skill of ours that is live on the target (ownership proven, not guessed)."""
        ...

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        """Create the skill with its first version (no access yet); `NameTaken` if the name is
        held (by us after a crash: `adopt` it; by someone else: fail)."""
        ...

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        """The existing skill `name` if it is provably ours, else None."""
        ...

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        """Upload the skill as a new version; `SkillGone` if it no longer exists."""
        ...

    async def set_access(self, remote_id: str, access: Access) -> LiveSkill:
        """Replace the skill's whole access; `SkillGone` if it no longer exists."""
        ...

    async def delete(self, remote_id: str) -> None:
        """Remove the skill for good; `SkillGone` if it was already gone."""
        ...

    async def aclose(self) -> None:
        """Release what the target holds (not a shared pool it was opened on)."""
        ...


class TargetKind(Protocol):
    """One API skills can be published through (`org-skills`, `claude-enterprise`, ...):
    everything about it that is not the planner's or the applier's, in its own module."""

    name: str
    """As the tenants file (`targets.<name>`), `tenant_target.kind` and `publication.target`
    write it: lowercase words joined by `-`."""

    @property
    def key_family(self) -> KeyFamily:
        """Which keys its connections' references must resolve to (checked when read)."""
        ...

    @property
    def section(self) -> type[TargetSection]:
        """Its section under a root tenant's `targets:` (`targets.<name>`)."""
        ...

    @property
    def organisation_connection(self) -> bool:
        """Its section is the root tenant's organisation connection (org-skills): stored in
        `org_connection`, which the audit poller reads too, rather than a `tenant_target` row,
        and also read from the tenants file's older spelling, a root tenant's `connection:`.
        At most one kind is."""
        ...

    @property
    def claude_code_settings(self) -> bool:
        """Its organisation takes Claude Code's managed settings (the `otlp:` opt-in,
        docs/claude-code.md): the settings step writes through its connection."""
        ...

    @property
    def telemetry_sources(self) -> tuple[str, ...]:
        """The telemetry sources that read its organisations (`telemetry.sources` names): a
        source reads the connections of the kinds that offer it, `status` expects its runs."""
        ...

    def connections(self, base: TenantConnection, stored: StoredTarget) -> list[TenantConnection]:
        """The connections a stored section fans out into (`base`: its tenant, organisation,
        admin key reference, base URL and attestation), one target each."""
        ...

    async def check(self, conn: TenantConnection, groups: Mapping[str, str]) -> TargetReport | None:
        """`connection test` of one connection, read-only (`groups`: archetype -> rbac group);
        None: checked elsewhere (org-skills: `connection_check`, which also tests a key given
        on the command line)."""
        ...

    def desired_access(self, grant: Grant) -> Access:
        """The tenant configuration's grant in this target's terms."""
        ...

    def disabled_access(self) -> Access | None:
        """How a skill disabled by the kill switch stays here: an access nobody has (the skill
        kept, taken back by giving the access again), or None: it is deleted."""
        ...

    def access_from_json(self, data: Mapping[str, Any]) -> Access:
        """An access as stored by `Access.to_json` (an empty mapping: no access)."""
        ...

    def open(
        self,
        conn: TenantConnection,
        *,
        http: httpx2.AsyncClient | None = None,
        counter: CallCounter | None = None,
    ) -> PublishTarget:
        """The target of `conn` (on the shared pool `http`); `ConnectionKeyError` when its
        credential cannot be resolved."""
        ...
