"""Where skills are published: the target seam (`base`) and its implementations.

`KINDS` names every target kind a tenant can use: `org-skills` (the organisation API of
docs/interfaces.md section 3), `claude-enterprise` (the Plugins API) and `claude-api` (the Skills
API, one target per workspace); see docs/targets.md. See `base` for the protocol and for how to
add a kind.
"""

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
from claresia_sync.publish.targets.org_skills import ORG_SKILLS, Acl, OrgSkillsTarget

KINDS: dict[str, TargetKind] = {
    ORG_SKILLS.name: ORG_SKILLS,
    CLAUDE_ENTERPRISE_KIND.name: CLAUDE_ENTERPRISE_KIND,
    CLAUDE_API_KIND.name: CLAUDE_API_KIND,
}

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
    "OrgSkillsTarget",
    "PublishTarget",
    "SkillGone",
    "TargetError",
    "TargetKind",
    "WorkspaceAccess",
]
