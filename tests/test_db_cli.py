"""`claresia-sync db upgrade` as an operator runs it: embedded default, configured URL, bad URL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect

from claresia_sync.config import Settings
from claresia_sync.db import open_database
from claresia_sync.db.embedded import is_running
from claresia_sync.db.migrate import head_revision


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claresia_sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_fresh_machine_uses_embedded_server(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = _env(CLARESIA_STATE_DIR=str(state))

    first = _cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert f"embedded PostgreSQL in {state / 'pgdata'}" in first.stdout
    assert f"applied {head_revision()}" in first.stdout
    assert (state / "pgdata" / "PG_VERSION").is_file()
    assert not is_running(state), "the embedded server must stop when the command ends"

    second = _cli("db", "upgrade", env=env)
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
    env = _env(CLARESIA_DATABASE_URL=url)
    first = _cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert "schema now at" in first.stdout
    current = _cli("db", "current", env=env)
    assert "up to date" in current.stdout


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = _env(CLARESIA_DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/x")
    result = _cli("db", "upgrade", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("claresia-sync: error: cannot connect")
    assert "hunter2" not in result.stderr + result.stdout
