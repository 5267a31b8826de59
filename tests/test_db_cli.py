"""`claresia-sync db upgrade` as an operator runs it: embedded default, configured URL, bad URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect

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
