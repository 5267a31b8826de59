"""Where skills are published: the target seam (`base`) and its implementations.

`KINDS` names every target kind a tenant can use: `org-skills` (the organisation API of
docs/interfaces.md section 3), `claude-enterprise` (the Plugins API) and `claude-api` (the Skills
API, one target per workspace); see docs/targets.md. See `base` for the protocol. Adding a kind
is its module and one `register` line below (docs/architecture.md, "Adding a target"): the
tenants file, `tenants apply`, the lookup, `connection test`, publishing, the Claude Code
settings step, the telemetry sources and `status` read this table.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from claresia_sync.api.connect import KEY_FAMILIES
from claresia_sync.publish.targets.base import (
    Access,
    AccessCheck,
    Grant,
    LiveSkill,
    NameTaken,
    PublishTarget,
    SkillGone,
    TargetError,
    TargetKind,
)
from claresia_sync.publish.targets.claude_api import CLAUDE_API_KIND, WorkspaceAccess
from claresia_sync.publish.targets.claude_enterprise import (
    CLAUDE_ENTERPRISE_KIND,
    ClaudeEnterpriseTarget,
    Installation,
)
from claresia_sync.publish.targets.org_skills import (
    ORG_SKILLS,
    Acl,
    OrgSkillsSection,
    OrgSkillsTarget,
)

KINDS: dict[str, TargetKind] = {}
"""Every kind by name, in the order the tenants file lists them and a tenant's targets run."""


def register(kind: TargetKind) -> None:
    """Make `kind` one a tenant can use (its key family with it)."""
    held = [k.name for k in KINDS.values() if k.organisation_connection and k.name != kind.name]
    if kind.organisation_connection and held:
        raise ValueError(f"{kind.name}: {held[0]} is already the organisation connection")
    KINDS[kind.name] = kind
    KEY_FAMILIES[kind.name] = kind.key_family


@contextmanager
def registered(kind: TargetKind) -> Iterator[TargetKind]:
    """`kind` registered for the time of a block (a test's own kind), then forgotten."""
    register(kind)
    try:
        yield kind
    finally:
        KINDS.pop(kind.name, None)
        KEY_FAMILIES.pop(kind.name, None)


register(ORG_SKILLS)
register(CLAUDE_ENTERPRISE_KIND)
register(CLAUDE_API_KIND)

__all__ = [
    "CLAUDE_API_KIND",
    "CLAUDE_ENTERPRISE_KIND",
    "KINDS",
    "ORG_SKILLS",
    "Access",
    "AccessCheck",
    "Acl",
    "ClaudeEnterpriseTarget",
    "Grant",
    "Installation",
    "LiveSkill",
    "NameTaken",
    "OrgSkillsSection",
    "OrgSkillsTarget",
    "PublishTarget",
    "SkillGone",
    "TargetError",
    "TargetKind",
    "WorkspaceAccess",
    "register",
    "registered",
]
