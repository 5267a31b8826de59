"""`claresia-sync db upgrade` as an operator runs it: embedded default, configured URL, bad URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from claresia_sync.cli import describe_database_failure
from claresia_sync.config import Settings
from claresia_sync.db import open_database
from claresia_sync.db.embedded import is_running
from claresia_sync.db.migrate import head_revision
from tests.cli import clean_env, run_cli


@pytest.mark.slow
def test_fresh_machine_uses_embedded_server(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = clean_env(CLARESIA_STATE_DIR=str(state))

    first = run_cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert f"embedded PostgreSQL in {state / 'pgdata'}" in first.stdout
    assert f"applied {head_revision()}" in first.stdout
    assert (state / "pgdata" / "PG_VERSION").is_file()
    assert not is_running(state), "the embedded server must stop when the command ends"

    second = run_cli("db", "upgrade", env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert "applied" not in second.stdout

    # The schema is there on the reused server.
    with open_database(Settings(database_url=None, state_dir=state)) as engine:
        assert {"tenant", "publication", "telemetry_event"} <= set(
            inspect(engine).get_table_names()
        )
        assert is_running(state)
    assert not is_running(state)


def test_upgrade_configured_database(make_database: Callable[[], str]) -> None:
    url = make_database()
    env = clean_env(CLARESIA_DATABASE_URL=url)
    first = run_cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert "schema now at" in first.stdout
    current = run_cli("db", "current", env=env)
    assert "up to date" in current.stdout


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = clean_env(CLARESIA_DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/x")
    result = run_cli("db", "upgrade", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("claresia-sync: error: cannot connect")
    assert "hunter2" not in result.stderr + result.stdout


def test_a_database_without_the_schema_says_to_upgrade(make_database: Callable[[], str]) -> None:
    env = clean_env(CLARESIA_DATABASE_URL=make_database())
    result = run_cli("tenants", "list", env=env)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "lacks this version's schema" in line and "claresia-sync db upgrade" in line
    assert "Traceback" not in result.stderr + result.stdout


def test_a_database_lost_mid_command_is_one_line_saying_what_to_do() -> None:
    # Unit test of the message: losing the server mid-command cannot be timed from outside.
    orig = psycopg.OperationalError("server closed the connection unexpectedly\n  This probably")
    message = describe_database_failure(OperationalError("SELECT 1", {}, orig))
    assert "\n" not in message
    assert message.startswith("the database failed during the command: server closed")
    assert "run the command again" in message
