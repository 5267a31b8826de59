"""The demo seed carries the fixed demo identities; a bad seed is refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from claresia_sync.emulator import DEMO_SEED, EmulatorState, SeedError, load_seed
from tests.fixtures.emulator import ACME_KEY, DAINESE_KEY


def test_demo_seed_has_the_fixed_identities() -> None:
    state = EmulatorState(DEMO_SEED)
    dainese, acme = state.orgs["org_dainese"], state.orgs["org_acme"]
    assert (dainese.name, dainese.zero_data_retention) == ("Dainese S.p.A.", True)
    assert (acme.name, acme.zero_data_retention) == ("Acme Corp", True)
    assert {w["id"]: w["name"] for w in dainese.workspaces.values()} == {
        "wrkspc_dainese_eng": "dainese-engineering",
        "wrkspc_dainese_corp": "dainese-corporate",
        "wrkspc_dainese_sales": "dainese-sales",
    }
    assert set(dainese.rbac_groups) == {
        "rbac_group_dainese_engineers",
        "rbac_group_dainese_product",
        "rbac_group_dainese_ops",
        "rbac_group_dainese_sales",
    }
    assert list(acme.workspaces) == ["wrkspc_acme_default"]
    assert acme.workspaces["wrkspc_acme_default"]["name"] == "acme"
    assert set(acme.rbac_groups) == {"rbac_group_acme_everyone", "rbac_group_acme_managers"}
    full = {"skills:read", "skills:write", "audit:read", "workspaces:read"}
    for key, org in ((DAINESE_KEY, "org_dainese"), (ACME_KEY, "org_acme")):
        record = state.key(key)
        assert record is not None and record.org_id == org and record.scopes == full
        assert record.workspaces is None
    # Every archetype group has at least one member who can see what is granted to it.
    for org in (dainese, acme):
        for group in org.rbac_groups:
            assert any(group in u.rbac_groups and u.workspaces for u in org.users.values())


def _seed(**org: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "org_t",
        "name": "T",
        "workspaces": [{"id": "wrkspc_t", "name": "t"}],
        "rbac_groups": [{"id": "rbac_group_t", "name": "t"}],
        "admin_keys": [{"key": "sk-ant-admin01-t-000000000000"}],
    }
    return {"organizations": [{**base, **org}]}


@pytest.mark.parametrize(
    ("seed", "fragment"),
    [
        (
            _seed(users=[{"id": "user_a", "email": "a@t", "workspaces": ["wrkspc_nope"]}]),
            "wrkspc_nope",
        ),
        (_seed(admin_keys=[{"key": "sk-live-0000000000000000000"}]), "sk-ant-admin"),
        (
            _seed(admin_keys=[{"key": "sk-ant-admin01-t-0000", "scopes": ["skills:delete"]}]),
            "scopes",
        ),
        (_seed(workspaces=[{"id": "ws_bad", "name": "x"}]), "workspaces.0.id"),
        (_seed(colour="blue"), "colour"),
        ({"organizations": [_seed()["organizations"][0]] * 2}, "duplicate organization"),
    ],
)
def test_bad_seed_names_the_problem(seed: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SeedError) as refused:
        load_seed(seed)
    assert fragment in str(refused.value)


def test_seed_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "seed.yaml"
    broken.write_text("organizations: [\n", encoding="utf-8")
    with pytest.raises(SeedError, match=r"seed\.yaml"):
        load_seed(broken)
    with pytest.raises(SeedError, match=r"missing\.yaml"):
        load_seed(tmp_path / "missing.yaml")
    json_seed = tmp_path / "seed.json"
    json_seed.write_text('{"organizations": []}', encoding="utf-8")
    assert load_seed(json_seed).organizations == []
