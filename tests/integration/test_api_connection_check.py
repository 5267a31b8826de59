"""`connection test` against the emulator: the report, and the operator messages of seeds/002."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.orm import Session

from claresia_sync.api import OrgClient
from claresia_sync.api.connect import TenantConnection
from claresia_sync.config import Settings
from claresia_sync.connection_check import ConnectionReport, check_client
from claresia_sync.emulator import EmulatorServer
from claresia_sync.secrets import AdminKey
from claresia_sync.tenancy import apply_tenants, parse_tenants
from tests.cli import run_cli
from tests.fixtures.emulator import (
    DAINESE_ENGONLY_KEY,
    DAINESE_KEY,
    DAINESE_ORG,
    DAINESE_READONLY_KEY,
    admin_key,
)


async def check_connection(base_url: str, key: AdminKey) -> ConnectionReport:
    """`connection test --base-url URL --key-ref REF` without the CLI: the checks on a client."""
    async with OrgClient(base_url, key, timeout=10.0, max_attempts=2) as client:
        return await check_client(client, TenantConnection.ad_hoc("", base_url))


@pytest.mark.anyio
async def test_report_of_a_good_key(emulator: EmulatorServer) -> None:
    report = await check_connection(emulator.base_url, admin_key())
    assert report.ok and report.problems == ()
    assert (report.organization_name, report.workspace_count, report.zero_data_retention) == (
        "Dainese S.p.A.",
        3,
        True,
    )
    assert set(report.verified_scopes) == {"skills:read", "audit:read", "workspaces:read"}
    assert emulator.stats.writes() == 0  # a connection test never writes
    limited = await check_connection(emulator.base_url, admin_key(DAINESE_ENGONLY_KEY))
    assert limited.ok


@pytest.mark.anyio
async def test_missing_scope_zero_retention_and_bad_key(emulator: EmulatorServer) -> None:
    readonly = await check_connection(emulator.base_url, admin_key(DAINESE_READONLY_KEY))
    assert readonly.missing_scopes == ("audit:read",)
    assert "re-mint" in readonly.problems[0] and "audit:read" in readonly.problems[0]

    emulator.state.set_zero_data_retention(DAINESE_ORG, False)
    no_zdr = await check_connection(emulator.base_url, admin_key())
    assert not no_zdr.ok and no_zdr.zero_data_retention is False
    assert "Claresia refuses to publish" in no_zdr.problems[0]
    assert "Settings → Privacy" in no_zdr.problems[0]

    wrong = await check_connection(emulator.base_url, admin_key("sk-ant-admin01-typo-0000000"))
    assert wrong.organization_name is None
    assert "re-paste the key (most common: trailing space)" in wrong.problems[0]


def _cli(emulator: EmulatorServer, env_key: str) -> subprocess.CompletedProcess[str]:
    url, ref = emulator.base_url, "env:CLARESIA_TEST_KEY"
    env = {**os.environ, "CLARESIA_TEST_KEY": env_key}
    return run_cli("connection", "test", "--base-url", url, "--key-ref", ref, env=env, timeout=60)


def test_cli_prints_the_organisation_and_strips_a_trailing_space(
    emulator: EmulatorServer,
) -> None:
    done = _cli(emulator, DAINESE_KEY + " \n")
    assert done.returncode == 0, done.stderr
    assert "Dainese S.p.A." in done.stdout and "Workspaces:     3" in done.stdout
    assert "Zero retention: enabled" in done.stdout
    assert "whitespace" in done.stderr and DAINESE_KEY not in done.stdout + done.stderr


def test_cli_fails_with_the_operator_message(emulator: EmulatorServer) -> None:
    emulator.state.set_zero_data_retention(DAINESE_ORG, False)
    done = _cli(emulator, DAINESE_KEY)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("claresia-sync: error: Zero-retention not enabled")
    assert "NOT enabled" in done.stdout


def test_cli_tenant_reads_its_connection_from_the_database(
    emulator: EmulatorServer, session: Session, db_settings: Settings
) -> None:
    tenants = f"""
version: 1
tenants:
  - slug: dainese
    display_name: Dainese S.p.A.
    connection:
      org_id: org_dainese
      admin_key: env:CLARESIA_DAINESE_ADMIN_KEY
      base_url: {emulator.base_url}
    sub_tenants:
      - slug: dainese-eng
  - slug: acme
    display_name: Acme Corp
    connection:
      org_id: org_acme
      admin_key: env:CLARESIA_DAINESE_ADMIN_KEY
      base_url: {emulator.base_url}
"""
    apply_tenants(session, parse_tenants(tenants, "t.yaml"), source="t.yaml")
    session.commit()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    env |= {
        "CLARESIA_DATABASE_URL": str(db_settings.database_url),
        "CLARESIA_DAINESE_ADMIN_KEY": DAINESE_KEY,
    }

    def run(tenant: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "claresia_sync", "connection", "test", "--tenant", tenant],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    sub = run("dainese-eng")  # a sub-tenant uses its parent's connection
    assert sub.returncode == 0, sub.stderr
    assert "Dainese S.p.A." in sub.stdout and emulator.base_url in sub.stdout
    wrong_org = run("acme")  # acme's entry points at Dainese's key
    assert wrong_org.returncode != 0
    assert "belongs to org_dainese, not to org_acme" in wrong_org.stderr
    unknown = run("nobody")
    assert unknown.returncode != 0 and "nobody" in unknown.stderr
