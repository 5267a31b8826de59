"""A target kind's part of the tenants file: the section under `targets:` that a kind owns
(its pydantic model), the field types every section is made of, and how a section is stored in
`tenant_target` (`StoredTarget`, read back by the kind's fan-out into connections).

`tenancy.schema` composes the tenants file's `targets:` mapping from `targets.KINDS`, one
optional key per kind with a `section`; this module sits below both so that a kind's module
needs nothing from `tenancy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from claresia_sync.secrets import KeyReferenceError, check_reference

_ID = r"^[A-Za-z0-9_\-]+$"  # Anthropic ids: org_..., wrkspc_..., rbac_group_...


def _key_reference(value: str) -> str:
    try:
        return check_reference(value)
    except KeyReferenceError as exc:
        raise ValueError(str(exc)) from None


AnthropicId = Annotated[str, Field(min_length=1, max_length=200, pattern=_ID)]
KeyRef = Annotated[str, AfterValidator(_key_reference)]
"""`env:NAME` or `file:/path`: the key itself never goes into the tenants file."""
BaseUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]


class Spec(BaseModel):
    """A mapping of the tenants file: unknown keys refused, nothing coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True)
class StoredTarget:
    """A section as `tenant_target` stores it (every key by reference)."""

    org_id: str
    admin_key_ref: str | None = None
    base_url: str | None = None
    workspace_key_refs: dict[str, str] = field(default_factory=dict)


class TargetSection(Spec):
    """The section of one target kind under a root tenant's `targets:`; every section names the
    tenant's organisation (`org_id`, checked equal across its targets)."""

    org_id: AnthropicId

    def stored(self) -> StoredTarget:
        """What `tenants apply` stores in the tenant's `tenant_target` row of this kind."""
        raise NotImplementedError

    def problems(self, here: str, mapped: Mapping[str, str]) -> list[str]:
        """What is wrong with the section beside the rest of the tenant's entry. `here`: the
        section's path (`tenants[0].targets.<kind>`); `mapped`: workspace id -> where it is
        mapped (the tenant and its sub-tenants)."""
        return []
