"""From a tenant's connection to an open API client: the one way every part gets there.

`TenantConnection` is the value the publisher, the poller, the daemon and `connection test`
share (read from the database by `claresia_sync.tenancy.lookup`); `open_client` is the one place
a key reference is resolved and a client opened. Keys are resolved afresh on every call, so a
rotated key is used at once and no key is kept between calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2

from claresia_sync.api.client import CallCounter, OrgClient
from claresia_sync.errors import UserError
from claresia_sync.secrets import KeyReferenceError, resolve_key

DEFAULT_BASE_URL = "https://api.anthropic.com"


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

    @classmethod
    def ad_hoc(cls, admin_key_ref: str, base_url: str | None = None) -> TenantConnection:
        """A connection given on the command line, with no tenant and no known organisation."""
        return cls("", "", "", admin_key_ref, base_url or DEFAULT_BASE_URL)

    def describe(self) -> str:
        """How messages name this connection: `organisation org_x (tenant 'x')`."""
        parts = [f"organisation {self.org_id}" if self.org_id else f"the API at {self.base_url}"]
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
    try:
        key = resolve_key(conn.admin_key_ref)
    except KeyReferenceError as exc:
        raise ConnectionKeyError(f"{conn.describe()}: admin key: {exc}") from None
    return OrgClient(conn.base_url, key, http=http, counter=counter, **options)
