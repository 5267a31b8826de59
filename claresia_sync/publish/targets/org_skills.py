"""The `org-skills` target: an organisation of the API of docs/interfaces.md section 3
(`OrgClient`).

Access is the skill's ACL (workspaces AND rbac groups). The server keeps our metadata
(`claresia.tenant`, `claresia.skill_id`) and its own content hash of the files it holds, so
ownership and content are read back from it. Before any write the organisation is gated
(the key's organisation, zero retention) and the ACLs are checked against the workspaces and
rbac groups the key can see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from claresia_sync.api.client import CallCounter, OrgClient, collect
from claresia_sync.api.connect import ORG_SKILLS as NAME
from claresia_sync.api.connect import TenantConnection, open_client
from claresia_sync.api.errors import (
    ZERO_RETENTION_HINT,
    APIError,
    ConflictError,
    NotFoundError,
)
from claresia_sync.api.models import Skill
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
from claresia_sync.publish.targets.section import (
    AnthropicId,
    BaseUrl,
    KeyRef,
    StoredTarget,
    TargetSection,
)
from claresia_sync.secrets import CONSOLE_ADMIN
from claresia_sync.transpile import ClaudeSkill


@dataclass(frozen=True, order=True)
class Acl:
    """The org-skills access of a skill: users of one of these workspaces AND groups see it."""

    workspace_ids: tuple[str, ...] = ()
    rbac_group_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, workspace_ids: Collection[str], rbac_group_ids: Collection[str]) -> Acl:
        return cls(tuple(sorted(set(workspace_ids))), tuple(sorted(set(rbac_group_ids))))

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace_ids": list(self.workspace_ids),
            "rbac_group_ids": list(self.rbac_group_ids),
        }


def zero_retention_refusal(org_id: str, name: str) -> str:
    return f"organisation {org_id} ({name}): zero-retention not enabled — {ZERO_RETENTION_HINT}"


def live_skill(remote: Skill) -> LiveSkill:
    """What the server says of one skill; its content hash is the server's own (docs/interfaces.md
    section 2's rule over the files it holds): our metadata hash is not evidence, since content
    edited behind our back can keep our metadata."""
    return LiveSkill(
        remote_id=remote.id,
        version=remote.latest_version,
        content_hash=remote.content_hash,
        access=Acl.of(remote.access.workspace_ids, remote.access.rbac_group_ids),
        name=remote.name,
        owner_tenant=remote.metadata.get("claresia.tenant"),
        owner_skill=remote.metadata.get("claresia.skill_id"),
    )


def _acl(access: Access) -> Acl:
    if not isinstance(access, Acl):  # a bug: another target's access reached this one
        raise TypeError(f"org-skills access must be an Acl, not {type(access).__name__}")
    return access


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """API errors as the seam's errors (same text and hint, so messages do not change)."""
    try:
        yield
    except NotFoundError as exc:
        raise SkillGone(str(exc), hint=exc.hint) from None
    except ConflictError as exc:
        raise NameTaken(str(exc), holder_id=exc.existing_id, hint=exc.hint) from None
    except APIError as exc:
        raise TargetError(str(exc), hint=exc.hint, retryable=exc.retryable) from None


@dataclass(frozen=True)
class Reach:
    """The workspaces and rbac groups of the organisation that the key can see."""

    org_id: str
    org_name: str
    workspace_ids: frozenset[str]
    rbac_group_ids: frozenset[str]

    def check(self, access: Access) -> str | None:
        acl = _acl(access)
        where = f"organisation {self.org_id} ({self.org_name})"
        missing_ws = [w for w in acl.workspace_ids if w not in self.workspace_ids]
        missing_groups = [g for g in acl.rbac_group_ids if g not in self.rbac_group_ids]
        problems = []
        if missing_ws:
            problems.append(
                f"workspace(s) {', '.join(missing_ws)} not in {where} or not usable by its admin "
                "key: fix the tenant's workspace mapping, or use a key whose principal is a "
                "member of them"
            )
        if missing_groups:
            problems.append(
                f"rbac group(s) {', '.join(missing_groups)} not in {where}: fix the archetype's "
                "rbac_group in the tenant file"
            )
        return "; ".join(problems) or None


async def _nothing() -> None:
    return None


class OrgSkillsTarget:
    """One organisation of the org-skills API, through one admin key."""

    def __init__(self, client: OrgClient, connection: TenantConnection) -> None:
        self.client = client
        self.connection = connection
        self._org_name = ""
        self._read: tuple[frozenset[str], frozenset[str]] | BaseException | None = None
        """The gate's reading of the workspaces and groups, for the pre-flight."""

    def __repr__(self) -> str:
        return f"OrgSkillsTarget({self.connection.org_id}, {self.client!r})"

    @property
    def _org_id(self) -> str:
        return self.connection.org_id

    async def gate(self, *, checks_access: bool = True) -> str | None:
        conn = self.connection
        # One round trip, not three: the pre-flight's lists are read beside the organisation
        # (used only if it passes), as the claude-enterprise gate reads its groups.
        answers = await asyncio.gather(
            self.client.get_organization(),
            self._lists() if checks_access else _nothing(),
            return_exceptions=True,
        )
        info, lists = answers
        if isinstance(info, APIError):
            return f"organisation {conn.org_id}: {info} — {info.hint}"
        if isinstance(info, BaseException):
            raise info
        if info.id != conn.org_id:
            return (
                f"the admin key of tenant {conn.root_slug!r} belongs to organisation {info.id}, "
                f"not {conn.org_id}: fix `targets.org-skills.org_id` or the key"
            )
        self._org_name = info.name
        if not info.zero_data_retention:
            return zero_retention_refusal(conn.org_id, info.name)
        self._read = lists
        return None

    async def _lists(self) -> tuple[frozenset[str], frozenset[str]]:
        """The ids of the usable workspaces and of the rbac groups, read at once."""
        workspaces, groups = await asyncio.gather(
            collect(self.client.list_workspaces(page_size=1000)),
            collect(self.client.list_rbac_groups(page_size=1000)),
        )
        return (
            frozenset(w.id for w in workspaces if not w.archived_at),
            frozenset(g.id for g in groups),
        )

    async def reach(self) -> Reach:
        """What the key can see of the organisation (needs `workspaces:read`); the gate's
        reading if it made one."""
        read, self._read = self._read, None
        if not self._org_name:
            self._org_name = (await self.client.get_organization()).name
        if read is None:
            read = await self._lists()
        elif isinstance(read, BaseException):
            raise read
        return Reach(self._org_id, self._org_name, *read)

    async def access_check(self) -> AccessCheck:
        try:
            return (await self.reach()).check
        except APIError:  # cannot read (scope, outage): the write's own 403 still names it
            return no_access_check

    async def list_ours(self) -> list[LiveSkill]:
        async with _translated():
            listed = self.client.list_skills(self._org_id, name_prefix=PREFIX, page_size=1000)
            return [live_skill(s) async for s in listed]

    async def create(self, skill: ClaudeSkill) -> LiveSkill:
        async with _translated():
            return live_skill(await self.client.create_skill(self._org_id, skill))

    async def adopt(self, name: str, holder_id: str | None) -> LiveSkill | None:
        async with _translated():
            if holder_id is not None:
                return live_skill(await self.client.get_skill(self._org_id, holder_id))
            async for s in self.client.list_skills(self._org_id, name_prefix=name):
                if s.name == name:
                    return live_skill(s)
        return None

    async def new_version(self, remote_id: str, skill: ClaudeSkill) -> LiveSkill:
        async with _translated():
            remote = await self.client.create_skill_version(self._org_id, remote_id, skill)
            return live_skill(remote)

    async def set_access(self, remote_id: str, access: Access) -> LiveSkill:
        acl = _acl(access)
        async with _translated():
            remote = await self.client.set_skill_access(
                self._org_id, remote_id, acl.workspace_ids, acl.rbac_group_ids
            )
            return live_skill(remote)

    async def delete(self, remote_id: str) -> None:
        async with _translated():
            await self.client.delete_skill(self._org_id, remote_id)

    async def aclose(self) -> None:
        await self.client.aclose()


class OrgSkillsSection(TargetSection):
    """`targets.org-skills`: an organisation of the API of docs/interfaces.md section 3, through
    a Console admin key. Also read as a root tenant's `connection:` (the older spelling, same
    meaning; `targets.org-skills` is preferred, and a tenant giving both is refused)."""

    org_id: AnthropicId
    admin_key: KeyRef
    """A Console admin key (`sk-ant-admin01-`)."""
    base_url: BaseUrl | None = None

    def stored(self) -> StoredTarget:
        return StoredTarget(self.org_id, self.admin_key, self.base_url)


class OrgSkillsKind:
    """The `org-skills` kind: a grant is an ACL of the tenant's workspaces and the groups.

    Its section is the organisation connection (stored in `org_connection`: the audit poller
    reads it too); `connection_check` tests it."""

    name = NAME
    key_family = CONSOLE_ADMIN
    section = OrgSkillsSection
    organisation_connection = True
    claude_code_settings = False
    telemetry_sources = ("audit-poller",)

    def connections(self, base: TenantConnection, stored: StoredTarget) -> list[TenantConnection]:
        return [base]

    async def check(self, conn: TenantConnection, groups: Mapping[str, str]) -> None:
        return None

    def desired_access(self, grant: Grant) -> Acl:
        return Acl.of(grant.workspace_ids, grant.rbac_group_ids)

    def disabled_access(self) -> Acl | None:
        """Deleted, as a revoked grant is: the kill switch leaves nothing to see."""
        return None

    def access_from_json(self, data: Mapping[str, Any]) -> Acl:
        return Acl.of(data.get("workspace_ids", []), data.get("rbac_group_ids", []))

    def open(
        self,
        conn: TenantConnection,
        *,
        http: httpx2.AsyncClient | None = None,
        counter: CallCounter | None = None,
    ) -> OrgSkillsTarget:
        return OrgSkillsTarget(open_client(conn, http=http, counter=counter), conn)


ORG_SKILLS = OrgSkillsKind()
