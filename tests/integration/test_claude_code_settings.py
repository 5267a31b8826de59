"""The opt-in that points a tenant's Claude Code at the OTLP receiver through the managed-settings
API: real PostgreSQL, the emulator over loopback, the official SDK on both sides (claresia-sync,
and an administrator editing the same groups)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from psycopg import sql
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from claresia_sync.config import Settings
from claresia_sync.db.models import ClaudeCodeSettings
from claresia_sync.emulator import EmulatorServer
from claresia_sync.errors import UserError
from claresia_sync.logs import configure_logging
from claresia_sync.publish.claude_code_settings import ConfigureResult, configure_tenant
from claresia_sync.tenancy.apply import apply_tenants
from claresia_sync.tenancy.schema import TenantConfigError, parse_tenants
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import FERRETTI_ENTERPRISE_KEY
from tests.fixtures.real_api import DESIGNERS, ENGINEERS, READONLY_KEY, client
from tests.integration.test_publish_e2e import apply, publish
from tests.integration.test_publish_e2e import world as world  # the fixture
from tests.integration.test_security import _text_columns

ENDPOINT = "https://claresia-sync.ferretti.example:4318"
TOKEN_ENV = "CLARESIA_FERRETTI_OTLP_TOKEN"
OURS = {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": ENDPOINT + "/v1/logs",
    "OTEL_LOG_TOOL_DETAILS": "1",
}
ADMIN_DOC = {
    "env": {"ACME_PROXY": "http://proxy.ferretti.example:3128", "OTEL_LOG_TOOL_DETAILS": "1"},
    "permissions": {"deny": ["Bash(curl:*)"]},
    "model": "claude-sonnet-4-5",
}


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    canary = f"otlp-CANARY-{secrets.token_hex(20)}"
    monkeypatch.setenv(TOKEN_ENV, canary)
    return canary


@pytest.fixture
def opted_in(engine: Engine, world: dict[str, Any], token: str) -> Iterator[dict[str, Any]]:
    """The demo tenants with ferretti's opt-in on (its groups: engineers, designers)."""
    root = next(t for t in world["tenants"] if t["slug"] == "ferretti")
    root["otlp_token"] = f"env:{TOKEN_ENV}"
    root["otlp"] = {"manage_claude_code_settings": True, "endpoint": ENDPOINT}
    apply(engine, world)
    yield world


def configure(engine: Engine, dry_run: bool = False) -> ConfigureResult:
    return asyncio.run(configure_tenant(engine, "ferretti", dry_run=dry_run))


def settings_of(emulator: EmulatorServer, group: str) -> dict[str, Any] | None:
    with emulator.state.lock:
        doc = emulator.state.orgs["org_ferretti"].claude_code_settings.groups.get(group)
        return None if doc is None else dict(doc.settings)


def writes(emulator: EmulatorServer) -> int:
    return emulator.state.orgs["org_ferretti"].claude_code_settings.writes


def test_set_for_each_group_others_kept_idempotent_and_removed_when_off(
    engine: Engine, emulator: EmulatorServer, opted_in: dict[str, Any], token: str
) -> None:
    admin = client(emulator).beta.organization.claude_code.managed_settings
    admin.rbac_groups.set(ENGINEERS, settings=ADMIN_DOC)  # an administrator's own settings

    dry = configure(engine, dry_run=True)
    assert dry.failed == 0 and writes(emulator) == 1  # the administrator's write only
    assert settings_of(emulator, DESIGNERS) is None
    assert dry.lines[0].startswith(f"ferretti {DESIGNERS}: would be created: + CLAUDE_CODE_")
    assert "+ OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer ****" in dry.lines[0]
    assert dry.lines[1].startswith(f"ferretti {ENGINEERS}: would be updated: ")
    assert "OTEL_LOG_TOOL_DETAILS" not in dry.lines[1]  # already the administrator's

    done = configure(engine)
    assert done.failed == 0, done.lines
    assert [line.split(":")[0] for line in done.lines[:2]] == [
        f"ferretti {DESIGNERS}",
        f"ferretti {ENGINEERS}",
    ]
    assert "organization` mode" in done.lines[2]  # the mode is the owner's to switch
    auth = {"OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {token}"}
    assert settings_of(emulator, DESIGNERS) == {"env": {**OURS, **auth}}
    eng = settings_of(emulator, ENGINEERS)
    assert eng == {**ADMIN_DOC, "env": {**ADMIN_DOC["env"], **OURS, **auth}}
    with Session(engine) as s:
        owned = s.scalars(select(ClaudeCodeSettings)).one().owned
    assert set(owned[DESIGNERS]["env"]) == set(OURS | auth) and owned[DESIGNERS]["created"]
    assert "OTEL_LOG_TOOL_DETAILS" not in owned[ENGINEERS]["env"]
    assert owned[ENGINEERS]["created"] is False

    # The administrator changes something of theirs; the next run writes nothing.
    eng_doc = {**eng, "model": "claude-opus-4-1"}
    admin.rbac_groups.set(ENGINEERS, settings=eng_doc)
    before = writes(emulator)
    again = configure(engine)
    assert writes(emulator) == before, again.lines
    assert again.lines[:2] == [
        f"ferretti {DESIGNERS}: unchanged",
        f"ferretti {ENGINEERS}: unchanged",
    ]
    assert settings_of(emulator, ENGINEERS) == eng_doc

    # Off: ours removed, theirs kept (their OTEL_LOG_TOOL_DETAILS too); our document deleted.
    root = next(t for t in opted_in["tenants"] if t["slug"] == "ferretti")
    root["otlp"]["manage_claude_code_settings"] = False
    apply(engine, opted_in)
    off = configure(engine)
    assert off.failed == 0, off.lines
    assert off.lines[0].startswith(f"ferretti {DESIGNERS}: removed")
    assert settings_of(emulator, DESIGNERS) is None
    assert settings_of(emulator, ENGINEERS) == {**ADMIN_DOC, "model": "claude-opus-4-1"}
    assert emulator.state.orgs["org_ferretti"].claude_code_settings.order == [ENGINEERS]
    with Session(engine) as s:
        assert s.scalars(select(ClaudeCodeSettings)).one().owned == {}
    before = writes(emulator)
    assert configure(engine).lines == [
        "ferretti: Claude Code settings opt-in off; none of ours remain"
    ]
    assert writes(emulator) == before


def test_a_publish_job_applies_the_opt_in_with_the_plugins(
    engine: Engine, emulator: EmulatorServer, opted_in: dict[str, Any], token: str
) -> None:
    """The daemon's publish job calls the command's function after the tenant's plugins: the
    groups get our settings, a second job writes nothing, a conflict makes the job partial."""
    first = publish(engine, "ferretti")
    assert first.status == "succeeded", first.errors
    assert first.stats["claude_code_settings"] == {"written": 2, "failed": 0}
    assert settings_of(emulator, ENGINEERS) == settings_of(emulator, DESIGNERS) is not None
    before = writes(emulator)
    again = publish(engine, "ferretti")
    assert again.stats["claude_code_settings"] == {"written": 0, "failed": 0}
    assert writes(emulator) == before

    admin = client(emulator).beta.organization.claude_code.managed_settings
    admin.rbac_groups.set(DESIGNERS, settings={"env": {"OTEL_LOG_TOOL_DETAILS": "0"}})
    with Session(engine) as s:  # as if the group were new to us
        row = s.scalars(select(ClaudeCodeSettings)).one()
        row.owned = {g: o for g, o in row.owned.items() if g != DESIGNERS}
        s.commit()
    partial = publish(engine, None)  # the hourly drift check's scope: every tenant
    assert partial.status == "partial", partial.errors
    assert partial.stats["claude_code_settings"] == {"written": 0, "failed": 1}
    [error] = [e for e in partial.errors if e["name"] == f"claude code settings {DESIGNERS}"]
    assert error["tenant"] == "ferretti" and "OTEL_LOG_TOOL_DETAILS" in error["error"]
    assert token not in repr(partial.errors) + repr(partial.stats)


def test_the_token_is_masked_even_in_the_sdk_debug_log(
    engine: Engine,
    emulator: EmulatorServer,
    opted_in: dict[str, Any],
    token: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With ANTHROPIC_LOG=debug the SDK logs each request's body (our write holds the token):
    our logging keeps it at WARNING, and masks a bearer token wherever one shows up."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("anthropic").level)
    try:
        configure_logging("console", logging.DEBUG)
        logging.getLogger("anthropic").setLevel(logging.DEBUG)  # as ANTHROPIC_LOG=debug does
        assert configure(engine).failed == 0
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("anthropic").setLevel(saved[2])
    logged = capfd.readouterr().err
    assert "Request options" in logged and "Bearer ****" in logged  # the body was logged
    assert token not in logged


def test_an_archetype_dropped_loses_ours_and_a_tenant_with_settings_is_not_removed(
    engine: Engine, emulator: EmulatorServer, opted_in: dict[str, Any]
) -> None:
    assert configure(engine).failed == 0
    root = next(t for t in opted_in["tenants"] if t["slug"] == "ferretti")
    root["archetypes"] = [a for a in root["archetypes"] if a["rbac_group"] == ENGINEERS]
    apply(engine, opted_in)
    result = configure(engine)
    assert result.lines[0].startswith(f"ferretti {DESIGNERS}: removed"), result.lines
    assert settings_of(emulator, DESIGNERS) is None and settings_of(emulator, ENGINEERS)

    opted_in["tenants"] = [t for t in opted_in["tenants"] if t["slug"] != "ferretti"]
    with pytest.raises(TenantConfigError) as refused, Session(engine) as s:
        apply_tenants(
            s, parse_tenants(yaml.safe_dump(opted_in), "t.yaml"), source="t.yaml", prune=True
        )
    assert any(
        "ferretti" in p and "Claude Code settings are still in 1 rbac group" in p
        for p in refused.value.problems
    ), refused.value.problems


def test_a_setting_of_ours_held_by_someone_else_is_a_conflict_left_alone(
    engine: Engine, emulator: EmulatorServer, opted_in: dict[str, Any]
) -> None:
    admin = client(emulator).beta.organization.claude_code.managed_settings
    theirs = {"env": {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://collector.ferretti.example"}}
    admin.rbac_groups.set(ENGINEERS, settings=theirs)
    result = configure(engine)
    assert result.failed == 1
    line = next(x for x in result.lines if ENGINEERS in x)
    assert "conflict, nothing written: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT already set" in line
    assert settings_of(emulator, ENGINEERS) == theirs
    assert settings_of(emulator, DESIGNERS) is not None  # the other group is done


def test_missing_scope_and_beta_are_one_line_naming_what_to_do(
    engine: Engine,
    emulator: EmulatorServer,
    opted_in: dict[str, Any],
    db_settings: Settings,
    token: str,
) -> None:
    env = clean_env(db_settings, **{TOKEN_ENV: token})
    env["CLARESIA_FERRETTI_ENTERPRISE_KEY"] = READONLY_KEY
    scope = run_cli("otlp", "configure", "--tenant", "ferretti", env=env)
    assert scope.returncode == 1 and scope.stdout == ""
    [line] = scope.stderr.strip().splitlines()
    assert "403" in line and "read:claude_code_managed_settings" in line
    assert "make one with them" in line

    env["CLARESIA_FERRETTI_ENTERPRISE_KEY"] = FERRETTI_ENTERPRISE_KEY
    emulator.state.orgs["org_ferretti"].claude_code_settings.enabled = False
    beta = run_cli("otlp", "configure", "--tenant", "ferretti", env=env)
    assert beta.returncode == 1
    [line] = beta.stderr.strip().splitlines()
    assert "ce-claude-code-managed-settings-2026-10-06" in line and "ask Anthropic" in line

    emulator.state.orgs["org_ferretti"].claude_code_settings.enabled = True
    dry = run_cli("otlp", "configure", "--tenant", "ferretti", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would be created") == 2 and "Bearer ****" in dry.stdout
    done = run_cli(
        "otlp", "configure", "--tenant", "ferretti", env={**env, "ANTHROPIC_LOG": "debug"}
    )
    assert done.returncode == 0, done.stderr
    assert settings_of(emulator, ENGINEERS) is not None
    for where, content in (
        ("the CLI's output", scope.stdout + scope.stderr + beta.stderr + dry.stdout + done.stdout),
        ("the CLI's logs", done.stderr),
    ):
        assert token not in content, f"the OTLP token leaked into {where}"
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        for table, column in _text_columns(engine):
            query = sql.SQL("SELECT count(*) FROM {} WHERE position(%s in {}::text) > 0").format(
                sql.Identifier(table), sql.Identifier(column)
            )
            cursor.execute(query, (token,))
            row = cursor.fetchone()
            assert row is not None and row[0] == 0, f"the token is stored in {table}.{column}"


def test_the_opt_in_needs_endpoint_token_and_claude_enterprise(
    engine: Engine, world: dict[str, Any]
) -> None:
    root = next(t for t in world["tenants"] if t["slug"] == "ferretti")
    root["otlp"] = {"manage_claude_code_settings": True, "endpoint": ENDPOINT + "/v1/logs"}
    with pytest.raises(TenantConfigError) as refused:
        apply(engine, world)
    at = f"t.yaml: tenants[{world['tenants'].index(root)}].otlp"
    assert refused.value.problems == [
        f"{at}.endpoint: give the receiver's base URL without /v1/logs (it is added)",
        f"{at}.manage_claude_code_settings: needs `otlp_token: env:NAME` on the tenant (the "
        "token Claude Code sends to the receiver)",
    ]
    del root["targets"]["claude-enterprise"]
    root["targets"]["claude-api"] = {
        "org_id": "org_ferretti",
        "workspace_keys": {},
    }
    root["otlp"] = {"manage_claude_code_settings": True, "endpoint": ENDPOINT}
    root["otlp_token"] = f"env:{TOKEN_ENV}"
    with pytest.raises(TenantConfigError) as refused:
        apply(engine, world)
    assert refused.value.problems == [
        f"{at}.manage_claude_code_settings: needs the claude-enterprise target (the "
        "managed-settings API is Claude Enterprise's): add targets.claude-enterprise"
    ]
    with pytest.raises(UserError, match="has no `otlp:` in the tenants file"):
        configure(engine)
