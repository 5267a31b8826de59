"""Settings from the environment: a bad value is one clear line naming the variable."""

from __future__ import annotations

import pytest

from claresia_sync.config import env_seconds
from claresia_sync.errors import UserError
from tests.cli import clean_env, run_cli


def test_env_seconds_reads_a_positive_number_or_the_default() -> None:
    assert env_seconds("X_S", 30, {}) == 30
    assert env_seconds("X_S", 30, {"X_S": " 1.5 "}) == 1.5
    for bad in ("soon", "0", "-3", "nan", "inf"):
        with pytest.raises(UserError, match=rf"X_S='{bad}': give a positive number of seconds"):
            env_seconds("X_S", 30, {"X_S": bad})


def test_the_daemon_refuses_a_bad_duration_in_one_line(database_url: str) -> None:
    env = clean_env(CLARESIA_DATABASE_URL=database_url, CLARESIA_JOB_STALE_AFTER_S="soon")
    done = run_cli("run", "--ops-host", "127.0.0.1", "--ops-port", "0", env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "claresia-sync: error: CLARESIA_JOB_STALE_AFTER_S='soon': give a positive number of "
        "seconds, such as 30"
    ]


def test_the_daemon_refuses_a_bad_api_timeout_at_start(database_url: str) -> None:
    env = clean_env(CLARESIA_DATABASE_URL=database_url, CLARESIA_API_TIMEOUT_S="-1")
    done = run_cli("run", "--ops-host", "127.0.0.1", "--ops-port", "0", env=env, timeout=60)
    assert done.returncode == 1
    assert "CLARESIA_API_TIMEOUT_S='-1': give a positive number of seconds" in done.stderr
