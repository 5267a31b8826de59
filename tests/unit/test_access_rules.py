"""Each target kind's access rule (`TargetKind.desired_access`): how a grant of the tenants file
becomes who may use a skill on that target, and how it is stored and read back."""

from __future__ import annotations

import itertools

import pytest

from claresia_sync.publish.targets import KINDS, Acl, Grant, Installation, WorkspaceAccess

ENTERPRISE = KINDS["claude-enterprise"]
ENG, DESIGN = "rbac_group_eng", "rbac_group_design"
PREFERENCES = ["available", "auto_install", "required"]  # weakest first


@pytest.mark.parametrize("prefs", list(itertools.permutations(PREFERENCES)))
def test_claude_enterprise_the_strongest_preference_of_a_group_wins(
    prefs: tuple[str, ...],
) -> None:
    """Three archetypes of one group granted the same skill, in any order: required wins over
    auto_install, which wins over available (a weaker one must never take a user's required
    plugin away)."""
    grant = Grant(installations=tuple((ENG, p) for p in prefs))
    assert ENTERPRISE.desired_access(grant) == Installation("not_available", ((ENG, "required"),))


@pytest.mark.parametrize(
    ("prefs", "strongest"),
    [
        (("available", "auto_install"), "auto_install"),
        (("auto_install", "available"), "auto_install"),
        (("available",), "available"),
        (("available", "available"), "available"),
        (("auto_install",), "auto_install"),
        (("required", "available"), "required"),
    ],
)
def test_claude_enterprise_two_archetypes_of_one_group(
    prefs: tuple[str, ...], strongest: str
) -> None:
    grant = Grant(installations=tuple((ENG, p) for p in prefs))
    assert ENTERPRISE.desired_access(grant) == Installation("not_available", ((ENG, strongest),))


def test_claude_enterprise_groups_are_independent_and_sorted() -> None:
    grant = Grant(
        workspace_ids=("wrkspc_a",),
        rbac_group_ids=(ENG, DESIGN),
        installations=((ENG, "required"), (DESIGN, "available"), (ENG, "available")),
    )
    access = ENTERPRISE.desired_access(grant)
    assert access == Installation("not_available", ((DESIGN, "available"), (ENG, "required")))
    assert ENTERPRISE.desired_access(Grant()) == Installation("not_available", ())


def test_claude_enterprise_access_round_trips_through_json() -> None:
    access = Installation("not_available", ((DESIGN, "available"), (ENG, "required")))
    stored = access.to_json()
    assert stored == {
        "organization": "not_available",
        "rbac_groups": {DESIGN: "available", ENG: "required"},
    }
    assert ENTERPRISE.access_from_json(stored) == access
    # A row written before the target knew its settings (or by another kind) is "inherited".
    assert ENTERPRISE.access_from_json({}) == Installation(None)
    assert ENTERPRISE.access_from_json({"workspace_ids": []}) == Installation(None)
    assert ENTERPRISE.access_from_json({"organization": None, "rbac_groups": None}) == (
        Installation(None, ())
    )


def test_org_skills_access_is_the_workspaces_and_the_groups() -> None:
    kind = KINDS["org-skills"]
    grant = Grant(
        workspace_ids=("wrkspc_b", "wrkspc_a", "wrkspc_b"),
        rbac_group_ids=(ENG, DESIGN),
        installations=((ENG, "required"),),
    )
    acl = kind.desired_access(grant)
    assert acl == Acl(("wrkspc_a", "wrkspc_b"), (DESIGN, ENG))
    assert acl.to_json() == {
        "workspace_ids": ["wrkspc_a", "wrkspc_b"],
        "rbac_group_ids": [DESIGN, ENG],
    }
    assert kind.access_from_json(acl.to_json()) == acl
    assert kind.access_from_json({}) == Acl()
    assert kind.desired_access(Grant()) == Acl()


def test_claude_api_access_is_the_workspace_itself() -> None:
    kind = KINDS["claude-api"]
    grant = Grant(workspace_ids=("wrkspc_a",), rbac_group_ids=(ENG,))
    assert kind.desired_access(grant) == WorkspaceAccess()
    assert kind.access_from_json({"workspace_ids": ["wrkspc_a"]}) == WorkspaceAccess()
    assert kind.desired_access(grant).to_json() == {}
