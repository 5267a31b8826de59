"""A publication's access in words, for people: who may use the skill on its target.

`publication.acl` holds each target's access in its own terms (`Access.to_json`): org-skills'
workspaces and rbac groups, claude-enterprise's installation preference per rbac group (and the
organisation's), nothing for a claude-api workspace (the workspace is the access). Groups and
workspaces are named as the tenants file names them: a group by the archetypes it serves, a
workspace by its mapped name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# claude-enterprise's installation preferences (docs/targets.md), as a person reads them.
PREFERENCE_WORDS = {
    "required": "required (installed, cannot be removed)",
    "auto_install": "installed automatically",
    "available": "available to install",
    "not_available": "not available",
}


@dataclass(frozen=True)
class Names:
    """How the tenants file names rbac groups (the archetypes using each) and workspaces."""

    groups: Mapping[str, Sequence[str]]
    workspaces: Mapping[str, str | None]

    def group(self, group_id: str) -> str:
        archetypes = self.groups.get(group_id)
        if not archetypes:
            return f"group {group_id}"
        return f"group {group_id} (archetype {', '.join(archetypes)})"

    def workspace(self, workspace_id: str) -> str:
        name = self.workspaces.get(workspace_id)
        return f"workspace {name} ({workspace_id})" if name else f"workspace {workspace_id}"


@dataclass(frozen=True)
class Grantee:
    """One line of access: who (a group, a workspace, the organisation) and what they get."""

    who: str
    kind: str
    """`group`, `workspace` or `organisation`."""
    id: str | None
    setting: str | None
    """claude-enterprise: the installation preference; else None."""
    text: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def preference(value: str | None) -> str:
    if value is None:
        return "the marketplace's default"
    return PREFERENCE_WORDS.get(value, value)


def describe(target: str, acl: Mapping[str, Any] | None, names: Names) -> list[Grantee]:
    """Who may use a skill published on `target` with access `acl`, one line each; an access
    of an unknown shape is shown as its JSON rather than guessed at."""
    acl = acl or {}
    workspace = target.partition(":")[2]
    lines: list[Grantee] = []
    if workspace and not acl:  # a target of one workspace, which is the access (claude-api)
        who = names.workspace(workspace) if workspace else "the workspace"
        lines.append(
            Grantee(who, "workspace", workspace or None, None, f"{who}: every API key of it")
        )
    if "organization" in acl:
        words = preference(acl["organization"])
        lines.append(
            Grantee("the organisation", "organisation", None, acl["organization"],
                    f"everyone else in the organisation: {words}")
        )  # fmt: skip
    for group_id, pref in sorted((acl.get("rbac_groups") or {}).items()):
        who = names.group(group_id)
        lines.append(Grantee(who, "group", group_id, pref, f"{who}: {preference(pref)}"))
    for workspace_id in acl.get("workspace_ids") or ():
        who = names.workspace(workspace_id)
        text = f"{who}: the groups below may use it there"
        lines.append(Grantee(who, "workspace", workspace_id, None, text))
    for group_id in acl.get("rbac_group_ids") or ():
        # org-skills: a user sees it in a workspace above AND a group here (docs/interfaces.md)
        who = names.group(group_id)
        text = f"{who}: its members may use it in the workspaces above"
        lines.append(Grantee(who, "group", group_id, None, text))
    known = {"organization", "rbac_groups", "workspace_ids", "rbac_group_ids"}
    if set(acl) - known:
        lines.append(Grantee("?", "unknown", None, None, f"access as stored: {dict(acl)}"))
    if not lines:
        lines.append(Grantee("no one", "none", None, None, "no one: no group or workspace"))
    return lines
