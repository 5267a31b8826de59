"""Tenant file validation: every problem names the file and the path inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from claresia_sync.tenancy import TenantConfigError, load_tenants, parse_tenants

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "tenants.example.yaml"

BASE = """
version: 1
tenants:
  - slug: dainese
    targets:
      org-skills: {org_id: org_dainese, admin_key: env:CLARESIA_DAINESE_ADMIN_KEY}
    workspaces: [{id: wrkspc_dainese_sales}]
    archetypes:
      - {slug: account-exec, rbac_group: rbac_group_dainese_sales, grants: [meeting-summary]}
    sub_tenants:
      - slug: dainese-eng
        workspaces: [{id: wrkspc_dainese_eng}]
        archetypes: [{slug: engineer, rbac_group: rbac_group_x, grants: [prd-review]}]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(TenantConfigError) as caught:
        parse_tenants(text, "tenants.yaml")
    assert str(caught.value).startswith("tenants.yaml: ")
    return caught.value.problems


def _edit(path: str, value: object) -> str:
    """BASE with one value replaced, addressed like 'tenants.0.sub_tenants.0.slug'."""
    data = yaml.safe_load(BASE)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for p in parents:
        node = node[p]
    node[last] = value
    return yaml.safe_dump(data)


def test_example_file_has_the_demo_identities() -> None:
    config = load_tenants(EXAMPLE)
    dainese, acme, _ferretti, vespucci = config.tenants
    # org-skills in the preferred spelling, `targets.org-skills`.
    org_skills = dainese.section("org-skills")
    assert dainese.connection is None and org_skills is not None
    assert (dainese.slug, dainese.org_id) == ("dainese", "org_dainese")
    assert org_skills.stored().admin_key_ref == "env:CLARESIA_DAINESE_ADMIN_KEY"
    assert [s.slug for s in dainese.sub_tenants] == ["dainese-eng", "dainese-corp"]
    assert [w.id for w in dainese.workspaces] == ["wrkspc_dainese_sales"]
    eng, corp = dainese.sub_tenants
    assert [w.id for w in eng.workspaces] == ["wrkspc_dainese_eng"]
    assert [w.id for w in corp.workspaces] == ["wrkspc_dainese_corp"]
    assert {a.slug: a.rbac_group for a in eng.archetypes} == {
        "engineer": "rbac_group_dainese_engineers",
        "sre": "rbac_group_dainese_ops",
    }
    assert {a.slug: a.rbac_group for a in corp.archetypes} == {
        "product-manager": "rbac_group_dainese_product"
    }
    assert {a.slug for a in dainese.archetypes} == {"account-exec"}
    assert (acme.org_id, [w.id for w in acme.workspaces]) == (
        "org_acme",
        ["wrkspc_acme_default"],
    )
    assert {a.slug: a.rbac_group for a in acme.archetypes} == {
        "staff": "rbac_group_acme_everyone",
        "manager": "rbac_group_acme_managers",
    }
    # claude-api alone, its workspace key by reference (a demo key of the emulator's seed).
    assert vespucci.section("org-skills") is None and vespucci.targets is not None
    api = vespucci.targets.claude_api
    assert api is not None and api.org_id == "org_vespucci"
    assert api.workspace_keys == {
        "wrkspc_vespucci_support": "env:CLARESIA_VESPUCCI_SUPPORT_API_KEY"
    }
    assert vespucci.zero_retention is not None


def test_unknown_key_is_named_with_its_path() -> None:
    problems = _problems(_edit("tenants.0.sub_tenants.0.archetypes.0.rbac", "x"))
    assert problems == [
        "tenants.yaml: tenants[0].sub_tenants[0].archetypes[0].rbac: unknown key "
        "(allowed here: slug, rbac_group, grants, installation); did you mean 'rbac_group'?"
    ]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tenant", "(allowed here: version, tenants); did you mean 'tenants'?"),
        ("tenants.0.conection", "did you mean 'connection'?"),
        ("tenants.0.targets.org-skills.api_key", "(allowed here: org_id, admin_key, base_url)"),
        ("tenants.0.targets.org_skills", "did you mean 'org-skills'?"),
        ("tenants.0.workspaces.0.nme", "(allowed here: id, name); did you mean 'name'?"),
        ("tenants.0.archetypes.0.grant", "did you mean 'grants'?"),
        (
            "tenants.0.sub_tenants.0.connection",
            "not allowed in a sub-tenant: a sub-tenant uses its root tenant's connection",
        ),
        ("tenants.0.sub_tenants.0.sub_tenants", "sub-tenants nest one level deep"),
    ],
)
def test_unknown_keys_at_every_level_say_what_is_allowed(path: str, says: str) -> None:
    (problem,) = _problems(_edit(path, {"org_id": "org_x", "admin_key": "env:K"}))
    where = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path.split(".")).lstrip(".")
    assert problem.startswith(f"tenants.yaml: {where}: "), problem
    assert says in problem, problem


def test_an_archetype_without_grants_is_an_error_and_an_empty_list_is_not() -> None:
    data = yaml.safe_load(BASE)
    del data["tenants"][0]["archetypes"][0]["grants"]
    assert _problems(yaml.safe_dump(data)) == [
        "tenants.yaml: tenants[0].archetypes[0].grants: required key is missing "
        "(write `grants: []` to grant nothing)"
    ]
    data["tenants"][0]["archetypes"][0]["grants"] = []
    config = parse_tenants(yaml.safe_dump(data), "tenants.yaml")
    assert config.tenants[0].archetypes[0].grants == []


def test_an_archetype_without_rbac_group_is_an_error() -> None:
    data = yaml.safe_load(BASE)
    del data["tenants"][0]["sub_tenants"][0]["archetypes"][0]["rbac_group"]
    assert _problems(yaml.safe_dump(data)) == [
        "tenants.yaml: tenants[0].sub_tenants[0].archetypes[0].rbac_group: required key is missing"
    ]


def test_two_roots_with_one_slug() -> None:
    data = yaml.safe_load(BASE)
    data["tenants"].append(
        {"slug": "dainese-eng", "connection": {"org_id": "org_other", "admin_key": "env:K"}}
    )
    (problem,) = _problems(yaml.safe_dump(data))
    assert problem == (
        "tenants.yaml: tenants[1].slug: tenant 'dainese-eng' is already at "
        "tenants[0].sub_tenants[0]"
    )


@pytest.mark.parametrize(
    ("path", "value", "where", "says"),
    [
        ("tenants.0.slug", "claude-fans", "tenants[0].slug", "reserved word 'claude'"),
        (
            "tenants.0.sub_tenants.0.slug",
            "anthropic-eng",
            "tenants[0].sub_tenants[0].slug",
            "reserved word 'anthropic'",
        ),
        (
            "tenants.0.archetypes.0.grants",
            ["ok", "claude-helper"],
            "tenants[0].archetypes[0].grants[1]",
            "reserved word",
        ),
        ("tenants.0.slug", "Dainese", "tenants[0].slug", "not a valid slug"),
        (
            "tenants.0.targets.org-skills.admin_key",
            "sk-ant-admin01-abc",
            "tenants[0].targets.org-skills.admin_key",
            "given by value",
        ),
        (
            "tenants.0.targets.org-skills.admin_key",
            "CLARESIA_KEY",
            "tenants[0].targets.org-skills.admin_key",
            "env:NAME",
        ),
        ("tenants.0.workspaces.0.id", "has space", "tenants[0].workspaces[0].id", "pattern"),
        ("tenants.0.slug", 12, "tenants[0].slug", "valid string"),
    ],
)
def test_bad_values(path: str, value: object, where: str, says: str) -> None:
    problems = _problems(_edit(path, value))
    assert any(p.startswith(f"tenants.yaml: {where}: ") and says in p for p in problems), problems


def test_key_never_echoed() -> None:
    secret = "sk-ant-admin01-SECRETSECRET"
    problems = _problems(_edit("tenants.0.targets.org-skills.admin_key", secret))
    assert not any("SECRETSECRET" in p for p in problems)


def test_missing_connection() -> None:
    data = yaml.safe_load(BASE)
    del data["tenants"][0]["targets"]
    assert _problems(yaml.safe_dump(data)) == [
        "tenants.yaml: tenants[0]: no target: give `targets:` (org-skills, claude-enterprise, "
        "claude-api) with the organisation and key references"
    ]


def test_connection_is_the_older_spelling_of_targets_org_skills() -> None:
    """A file written before `targets.org-skills` is read with the same meaning: the same
    section, at its own path in messages; giving both is refused, naming tenant and paths."""
    older = yaml.safe_load(BASE)
    older["tenants"][0]["connection"] = older["tenants"][0].pop("targets")["org-skills"]
    read, preferred = (
        parse_tenants(yaml.safe_dump(d), "tenants.yaml").tenants[0]
        for d in (older, yaml.safe_load(BASE))
    )
    assert read.target_sections() == preferred.target_sections()
    assert read.connection is not None and preferred.connection is None
    assert (read.org_id, read.org_ids()) == ("org_dainese", [("connection.org_id", "org_dainese")])
    assert preferred.org_ids() == [("targets.org-skills.org_id", "org_dainese")]
    older["tenants"][0]["connection"]["admin_key"] = "CLARESIA_KEY"
    (problem,) = _problems(yaml.safe_dump(older))
    assert problem.startswith("tenants.yaml: tenants[0].connection.admin_key: "), problem

    both = yaml.safe_load(BASE)
    both["tenants"][0]["connection"] = dict(both["tenants"][0]["targets"]["org-skills"])
    assert _problems(yaml.safe_dump(both)) == [
        "tenants.yaml: tenants[0]: tenant 'dainese' gives its org-skills target twice, at "
        "tenants[0].connection and tenants[0].targets.org-skills: keep one "
        "(`targets.org-skills` is the preferred spelling)"
    ]


def test_duplicates_are_errors() -> None:
    data = yaml.safe_load(BASE)
    root = data["tenants"][0]
    root["sub_tenants"].append({"slug": "dainese", "workspaces": [{"id": "wrkspc_dainese_eng"}]})
    root["archetypes"].append(dict(root["archetypes"][0]))
    root["archetypes"][0]["grants"] = ["meeting-summary", "meeting-summary"]
    problems = _problems(yaml.safe_dump(data))
    assert sorted(problems) == sorted(
        [
            "tenants.yaml: tenants[0].sub_tenants[1].slug: tenant 'dainese' is already at "
            "tenants[0]",
            "tenants.yaml: tenants[0].sub_tenants[1].workspaces[0]: workspace "
            "'wrkspc_dainese_eng' is already mapped at tenants[0].sub_tenants[0].workspaces[0]",
            "tenants.yaml: tenants[0].archetypes[1].slug: archetype 'account-exec' is already "
            "at tenants[0].archetypes[0]",
            "tenants.yaml: tenants[0].archetypes[0].grants[1]: 'meeting-summary' is listed twice",
        ]
    )


def test_one_root_per_organisation() -> None:
    data = yaml.safe_load(BASE)
    other = {"org-skills": {"org_id": "org_dainese", "admin_key": "env:K"}}
    data["tenants"].append({"slug": "other", "targets": other})
    (problem,) = _problems(yaml.safe_dump(data))
    assert problem.startswith("tenants.yaml: tenants[1].targets.org-skills.org_id: organisation")


def test_published_name_clash_between_tenant_and_sub_tenant() -> None:
    # claresia-dainese-eng-notes: tenant dainese + skill eng-notes = sub-tenant dainese-eng + notes
    data = yaml.safe_load(BASE)
    data["tenants"][0]["archetypes"][0]["grants"] = ["eng-notes"]
    data["tenants"][0]["sub_tenants"][0]["archetypes"][0]["grants"] = ["notes"]
    (problem,) = _problems(yaml.safe_dump(data))
    assert "published name 'claresia-dainese-eng-notes'" in problem
    assert problem.startswith("tenants.yaml: tenants[0].sub_tenants[0].archetypes[0].grants[0]")


def test_duplicate_yaml_key_and_bad_yaml() -> None:
    (problem,) = _problems("version: 1\ntenants: []\ntenants: []\n")
    assert problem.startswith("tenants.yaml: line 3 column 1: not valid YAML: duplicate key")
    (problem,) = _problems("tenants: [\n")
    assert problem.startswith("tenants.yaml: line 2 column 1: not valid YAML")
    (problem,) = _problems("- just a list\n")
    assert "expected a mapping" in problem


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    from claresia_sync.errors import UserError

    with pytest.raises(UserError, match="cannot read the tenant file"):
        load_tenants(tmp_path / "nope.yaml")
