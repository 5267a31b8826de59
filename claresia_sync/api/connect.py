"""From a tenant's connection to an open API client: the one way every part gets there.

`TenantConnection` is the value the publisher, the poller, the daemon and `connection test`
share (read from the database by `claresia_sync.tenancy.lookup`); `open_client` is the one place
a key reference is resolved and a client opened. Keys are resolved afresh on every call, so a
rotated key is used at once and no key is kept between calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx2

from claresia_sync.api.client import CallCounter, OrgClient
from claresia_sync.errors import UserError
from claresia_sync.secrets import (
    CONSOLE_ADMIN,
    AdminKey,
    KeyFamily,
    KeyReferenceError,
    resolve_key,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"

# The targets a tenant can publish to are the kinds of `publish.targets.KINDS` (docs/targets.md),
# each named in its own module. org-skills, the organisation API `OrgClient` speaks, is named
# here: it is the default of a connection (`connection test --key-ref`, the audit poller).
ORG_SKILLS = "org-skills"
KEY_FAMILIES: dict[str, KeyFamily] = {ORG_SKILLS: CONSOLE_ADMIN}
"""Target kind -> the key family of its connections: each kind's own, put here as it is
registered (`publish.targets.register`), so that resolving a key needs no target module."""


@dataclass(frozen=True)
class ZeroRetention:
    """The tenants file's attestation that zero data retention is on (no API reports it)."""

    attested_by: str
    attested_at: dt.date

    def __str__(self) -> str:
        return f"attested by {self.attested_by} on {self.attested_at.isoformat()} (tenants file)"


@dataclass(frozen=True)
class TenantConnection:
    """A tenant's organisation, admin key reference and API base URL.

    A sub-tenant uses its root tenant's connection: `tenant_slug` is the tenant it was asked
    for, `root_slug` the tenant the connection belongs to (equal for a root tenant).
    """

    tenant_slug: str
    root_slug: str
    org_id: str
    """"" when not known (`connection test --key-ref` without a tenant)."""
    admin_key_ref: str
    """`env:NAME` or `file:PATH`, never a key (resolved by `open_client`)."""
    base_url: str = DEFAULT_BASE_URL
    target: str = ORG_SKILLS
    """Which API: `org-skills`, `claude-enterprise` or `claude-api` (its key family too)."""
    workspace_id: str = ""
    """claude-api: the one workspace this connection's key publishes into."""
    zero_retention: ZeroRetention | None = None
    """The root tenant's attestation, if the tenants file gives one."""

    @property
    def target_key(self) -> str:
        """The target as `publication.target` stores it: `claude-api:<workspace>` per workspace."""
        return f"{self.target}:{self.workspace_id}" if self.workspace_id else self.target

    @property
    def key_family(self) -> KeyFamily | None:
        """Its kind's key family (None: a kind this program does not know)."""
        return KEY_FAMILIES.get(self.target)

    @classmethod
    def ad_hoc(cls, admin_key_ref: str, base_url: str | None = None) -> TenantConnection:
        """A connection given on the command line, with no tenant and no known organisation."""
        return cls("", "", "", admin_key_ref, base_url or DEFAULT_BASE_URL)

    def describe(self) -> str:
        """How messages name this connection: `organisation org_x (tenant 'x')`."""
        parts = [f"organisation {self.org_id}" if self.org_id else f"the API at {self.base_url}"]
        if self.workspace_id:
            parts.append(f"workspace {self.workspace_id}")
        if self.root_slug:
            parts.append(f"(tenant {self.root_slug!r})")
        return " ".join(parts)


class ConnectionKeyError(UserError):
    """The admin key of a connection cannot be resolved (unset variable, missing file, ...)."""


def open_client(
    conn: TenantConnection,
    *,
    http: httpx2.AsyncClient | None = None,
    counter: CallCounter | None = None,
    **options: Any,
) -> OrgClient:
    """An `OrgClient` for `conn` (on the shared pool `http` if given); raises
    `ConnectionKeyError` naming the organisation and tenant when the key cannot be resolved."""
    return OrgClient(conn.base_url, connection_key(conn), http=http, counter=counter, **options)


def connection_key(conn: TenantConnection) -> AdminKey:
    """The resolved key of `conn`, of its target's family; `ConnectionKeyError` naming the
    organisation, tenant and reference (never the key) otherwise."""
    family = conn.key_family
    if family is None:
        raise ConnectionKeyError(
            f"{conn.describe()}: unknown target kind {conn.target!r} (known: "
            f"{', '.join(KEY_FAMILIES)}): fix the tenants file and apply it"
        )
    try:
        return resolve_key(conn.admin_key_ref, family)
    except KeyReferenceError as exc:
        raise ConnectionKeyError(f"{conn.describe()}: {conn.target} {family.noun}: {exc}") from None
