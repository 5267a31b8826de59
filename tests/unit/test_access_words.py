"""A publication's access in words (the console's tenant and skill pages): each target's own
terms, groups named by their archetypes, workspaces by their names, nothing guessed."""

from __future__ import annotations

from claresia_sync.center.access_words import Names, describe

NAMES = Names(
    {"rbac_group_eng": ["ferretti/engineer"], "rbac_group_design": ["ferretti/designer"]},
    {"wrkspc_support": "vespucci-support", "wrkspc_eng": "dainese-engineering"},
)


def _texts(target: str, acl: dict[str, object]) -> list[str]:
    return [g.text for g in describe(target, acl, NAMES)]


def test_claude_enterprise_says_each_group_preference_and_the_organisation() -> None:
    acl = {
        "organization": "not_available",
        "rbac_groups": {"rbac_group_eng": "auto_install", "rbac_group_design": "available"},
    }
    assert _texts("claude-enterprise", acl) == [
        "everyone else in the organisation: not available",
        "group rbac_group_design (archetype ferretti/designer): available to install",
        "group rbac_group_eng (archetype ferretti/engineer): installed automatically",
    ]
    required = describe("claude-enterprise", {"rbac_groups": {"rbac_group_x": "required"}}, NAMES)
    assert required[0].text == "group rbac_group_x: required (installed, cannot be removed)"
    assert (required[0].kind, required[0].id, required[0].setting) == (
        "group",
        "rbac_group_x",
        "required",
    )
    inherited = describe("claude-enterprise", {"organization": None}, NAMES)
    assert inherited[0].text == "everyone else in the organisation: the marketplace's default"


def test_a_claude_api_workspace_is_its_own_access() -> None:
    assert _texts("claude-api:wrkspc_support", {}) == [
        "workspace vespucci-support (wrkspc_support): every API key of it"
    ]
    assert _texts("claude-api:wrkspc_unmapped", {}) == [
        "workspace wrkspc_unmapped: every API key of it"
    ]


def test_org_skills_names_workspaces_and_groups() -> None:
    acl = {"workspace_ids": ["wrkspc_eng"], "rbac_group_ids": ["rbac_group_eng"]}
    assert _texts("org-skills", acl) == [
        "workspace dainese-engineering (wrkspc_eng): the groups below may use it there",
        "group rbac_group_eng (archetype ferretti/engineer): its members may use it in the "
        "workspaces above",
    ]
    assert _texts("org-skills", {"workspace_ids": [], "rbac_group_ids": []}) == [
        "no one: no group or workspace"
    ]


def test_an_access_of_unknown_shape_is_shown_not_guessed() -> None:
    texts = _texts("some-new-kind", {"audience": "everyone"})
    assert texts == ["access as stored: {'audience': 'everyone'}"]
