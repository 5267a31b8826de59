"""The `otlp:` opt-in of the tenants file (docs/claude-code.md): checked where it is written,
every problem naming the file and the path."""

from __future__ import annotations

import pytest

from claresia_sync.tenancy import TenantConfigError, parse_tenants

FERRETTI = """
version: 1
tenants:
  - slug: ferretti
    otlp_token: env:CLARESIA_FERRETTI_OTLP_TOKEN
    otlp: {manage_claude_code_settings: true, endpoint: "https://r.example:4318"}
    targets:
      claude-enterprise: {org_id: org_ferretti, admin_key: env:CLARESIA_FERRETTI_ENTERPRISE_KEY}
    archetypes: [{slug: engineer, rbac_group: rbac_group_ferretti_engineers, grants: []}]
    sub_tenants: [{slug: ferretti-lab, archetypes: []}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(TenantConfigError) as caught:
        parse_tenants(text, "t.yaml")
    return caught.value.problems


def test_the_opt_in_is_read() -> None:
    otlp = parse_tenants(FERRETTI, "t.yaml").tenants[0].otlp
    assert otlp is not None and otlp.manage_claude_code_settings
    assert otlp.endpoint == "https://r.example:4318"


def test_off_needs_nothing_else_and_on_needs_the_endpoint() -> None:
    off = FERRETTI.replace(
        'manage_claude_code_settings: true, endpoint: "https://r.example:4318"',
        "manage_claude_code_settings: false",
    )
    assert parse_tenants(off, "t.yaml").tenants[0].otlp is not None
    no_endpoint = FERRETTI.replace(', endpoint: "https://r.example:4318"', "")
    [problem] = problems(no_endpoint)
    assert problem.startswith("t.yaml: tenants[0].otlp.endpoint: required with manage_")


def test_not_in_a_sub_tenant_and_unknown_keys_suggest() -> None:
    sub = FERRETTI.replace(
        "{slug: ferretti-lab, archetypes: []}",
        "{slug: ferretti-lab, archetypes: [], otlp: {manage_claude_code_settings: true}}",
    )
    assert problems(sub) == [
        "t.yaml: tenants[0].sub_tenants[0].otlp: not allowed in a sub-tenant: the root "
        "tenant's opt-in covers its sub-tenants' rbac groups"
    ]
    typo = FERRETTI.replace("manage_claude_code_settings: true", "manage_claude_code: true")
    [problem] = problems(typo)
    assert problem.startswith("t.yaml: tenants[0].otlp.manage_claude_code: unknown key")
    assert "did you mean 'manage_claude_code_settings'?" in problem
    bad_url = FERRETTI.replace('"https://r.example:4318"', "r.example")
    [problem] = problems(bad_url)
    assert problem.startswith("t.yaml: tenants[0].otlp.endpoint: ")
