"""`connection test --tenant T` on the real targets, as an operator runs it: a CLI process, the
tenant read from a real PostgreSQL, the emulator's real endpoints over loopback."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import yaml
from sqlalchemy import Engine

from claresia_sync.config import Settings
from claresia_sync.emulator import EmulatorServer
from tests.cli import clean_env, run_cli
from tests.fixtures.real_api import ANY_KEY, APPS_KEY, DATA_KEY, ENTERPRISE_KEY, READONLY_KEY
from tests.integration.test_publish_e2e import apply
from tests.integration.test_publish_e2e import world as world  # the fixture

APPS, DATA = "wrkspc_ferretti_apps", "wrkspc_ferretti_data"


def ferretti(world: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in world["tenants"] if t["slug"] == "ferretti")
    return found


def connection_test(
    settings: Settings, *extra: str, **keys: str
) -> subprocess.CompletedProcess[str]:
    env = {"CLARESIA_FERRETTI_ENTERPRISE_KEY": ENTERPRISE_KEY, **keys}
    return run_cli(
        "connection", "test", "--tenant", "ferretti", *extra, env=clean_env(settings, **env)
    )


def test_claude_enterprise_names_organisation_groups_and_where_zero_retention_comes_from(
    engine: Engine, db_settings: Settings, world: dict[str, Any]
) -> None:
    ok = connection_test(db_settings)
    assert ok.returncode == 0, ok.stderr
    out = ok.stdout
    assert "[claude-enterprise]" in out and "Organisation:   Ferretti Group (org_ferretti)" in out
    assert (
        "Zero retention: attested by Anna Ferretti <anna@ferretti.example> on 2026-11-20 "
        "(tenants file); no API reports it"
    ) in out
    assert "Plugins API:    reachable (beta ce-plugins-2026-09-01)" in out
    assert "ferretti/engineer -> rbac_group_ferretti_engineers (engineers) found" in out
    assert ENTERPRISE_KEY[8:-4] not in out + ok.stderr

    ferretti(world)["archetypes"][1]["rbac_group"] = "rbac_group_ferretti_nope"
    apply(engine, world)
    missing = connection_test(db_settings, CLARESIA_FERRETTI_ENTERPRISE_KEY=READONLY_KEY)
    assert missing.returncode == 3
    assert "ferretti/designer -> rbac_group_ferretti_nope MISSING" in missing.stdout
    assert (
        "claresia-sync: error: archetype ferretti/designer: rbac group rbac_group_ferretti_nope is "
        "not in organisation org_ferretti: fix its rbac_group in the tenants file"
    ) in missing.stderr

    del ferretti(world)["zero_retention"]
    apply(engine, world)
    refused = connection_test(db_settings, "--json")
    assert refused.returncode == 3
    report = json.loads(refused.stdout)
    assert report["ok"] is False
    assert "Zero retention: NOT attested (no API reports it)" in report["targets"][0]["lines"]


def test_claude_api_checks_each_workspace_key(
    engine: Engine, db_settings: Settings, world: dict[str, Any], emulator: EmulatorServer
) -> None:
    root = ferretti(world)
    root["targets"]["claude-api"] = {
        "org_id": "org_ferretti",
        "base_url": emulator.base_url,
        "workspace_keys": {APPS: "env:K_APPS", DATA: "env:K_DATA"},
    }
    root["workspaces"] = [{"id": APPS}, {"id": DATA}]
    apply(engine, yaml.safe_load(yaml.safe_dump(world)))
    ok = connection_test(db_settings, K_APPS=APPS_KEY, K_DATA=ANY_KEY)
    assert ok.returncode == 0, ok.stderr
    assert f"Workspace:      {DATA}: key valid and belongs to it" in ok.stdout
    assert "not eligible for zero data retention" in ok.stdout

    wrong = connection_test(db_settings, K_APPS=APPS_KEY, K_DATA=APPS_KEY)
    assert wrong.returncode == 3
    assert f"this API key belongs to workspace {APPS}, not to {DATA}" in wrong.stderr
    family = connection_test(db_settings, K_APPS=APPS_KEY, K_DATA=ENTERPRISE_KEY)
    assert family.returncode == 3
    assert "is a Claude Enterprise admin key, but a workspace API key is needed" in family.stderr
    assert DATA_KEY  # the seed's data key is the one a right configuration would use
