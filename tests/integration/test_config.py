"""Settings: one object from flags and `CLARESIA_*` variables alike; a bad value is one line
naming the flag or variable and what it expects, with its own exit code, never a traceback."""

from __future__ import annotations

import json

import pytest

from claresia_sync.config import Settings, env_name, load_settings
from claresia_sync.errors import ExitCode, UserError
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.cli import clean_env, run_cli

FLAGS = ("--ops-host", "127.0.0.1", "--ops-port", "0")


@pytest.fixture
def no_claresia_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    return monkeypatch


def test_flags_win_over_variables_over_defaults(no_claresia_env: pytest.MonkeyPatch) -> None:
    assert Settings.load().poll_interval == 60 and Settings.load().ops_host == "0.0.0.0"
    no_claresia_env.setenv("CLARESIA_POLL_INTERVAL", " 15 ")
    no_claresia_env.setenv("CLARESIA_OPS_PORT", "")  # empty: not set
    settings = Settings.load({"publish_workers": 4, "ops_port": None})
    assert (settings.poll_interval, settings.publish_workers, settings.ops_port) == (15, 4, 9464)
    assert settings.source_of("poll_interval") == "env"
    assert settings.source_of("publish_workers") == "flag"
    assert settings.source_of("drift_interval") == "default"
    assert Settings.load({"poll_interval": 30}).poll_interval == 30


def test_the_values_read_deep_in_the_stack_are_settings_too(
    no_claresia_env: pytest.MonkeyPatch,
) -> None:
    no_claresia_env.setenv("CLARESIA_API_TIMEOUT_S", "2.5")
    no_claresia_env.setenv("CLARESIA_JOB_STALE_AFTER_S", "300")
    no_claresia_env.setenv("CLARESIA_TELEMETRY_STORE_EMAILS", "true")
    no_claresia_env.setenv("CLARESIA_TELEMETRY_RETENTION_DAYS", "30")
    settings = load_settings()
    assert (settings.api_timeout_s, settings.job_stale_after_s) == (2.5, 300)
    assert settings.telemetry == TelemetrySettings(retention_days=30, store_emails=True)


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        ({"poll_interval": 0.5}, "--poll-interval 0.5: must be greater than or equal to 1"),
        ({"poll_interval": 0}, "--poll-interval 0: must be greater than or equal to 1"),
        ({"poll_interval": -5}, "--poll-interval -5: must be greater than or equal to 1"),
        ({"ops_port": 99999}, "--ops-port 99999: must be less than or equal to 65535"),
        ({"publish_workers": 0}, "--publish-workers 0: must be greater than or equal to 1"),
        ({"drift_interval": 0}, "--drift-interval 0: must be greater than or equal to 1"),
        ({"log_format": "xml"}, "--log-format xml: must be 'json' or 'console'"),
    ],
)
def test_a_bad_flag_is_a_usage_error_naming_it(
    no_claresia_env: pytest.MonkeyPatch, flags: dict[str, object], line: str
) -> None:
    with pytest.raises(UserError) as refused:
        Settings.load(flags)
    assert str(refused.value).startswith(line)
    assert refused.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CLARESIA_API_TIMEOUT_S", "soon", "must be a valid number"),
        ("CLARESIA_API_TIMEOUT_S", "0", "must be greater than 0"),
        ("CLARESIA_JOB_STALE_AFTER_S", "inf", "must be a finite number"),
        ("CLARESIA_TELEMETRY_RETENTION_DAYS", "0", "must be greater than or equal to 1"),
        ("CLARESIA_TELEMETRY_STORE_EMAILS", "maybe", "must be a valid boolean"),
        ("CLARESIA_HUB_RECORD_URL", "https://hub/{nope}", "not a valid link template"),
        ("CLARESIA_PUBLISH_WORKERS", "0", "must be greater than or equal to 1"),
    ],
)
def test_a_bad_variable_is_a_configuration_error_naming_it(
    no_claresia_env: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    no_claresia_env.setenv(name, value)
    with pytest.raises(UserError) as refused:
        Settings.load()
    assert str(refused.value).startswith(f"{name}={value!r}: {expected}")
    assert "\n" not in str(refused.value)
    assert refused.value.exit_code == ExitCode.ERROR


def test_every_bad_value_is_named_at_once(no_claresia_env: pytest.MonkeyPatch) -> None:
    no_claresia_env.setenv("CLARESIA_API_TIMEOUT_S", "-1")
    with pytest.raises(UserError) as refused:
        Settings.load({"ops_port": 70000})
    message = str(refused.value)
    assert "CLARESIA_API_TIMEOUT_S='-1'" in message and "--ops-port 70000" in message
    assert refused.value.exit_code == ExitCode.USAGE  # a flag was wrong


@pytest.mark.parametrize(
    "args",
    [
        ("--poll-interval", "0.5"),
        ("--poll-interval", "0"),
        ("--poll-interval", "-5"),
        ("--ops-port", "99999"),
        ("--publish-workers", "0"),
        ("--drift-interval", "0"),
    ],
)
def test_the_daemon_refuses_a_bad_flag_in_one_line(args: tuple[str, str]) -> None:
    # No database is named: the flags are refused before anything starts.
    done = run_cli("run", *args, env=clean_env(CLARESIA_STATE_DIR="/nonexistent"), timeout=60)
    assert done.returncode == ExitCode.USAGE, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"claresia-sync: error: {args[0]} ")
    assert "must be" in line


def test_the_daemon_refuses_a_bad_variable_in_one_line(database_url: str) -> None:
    env = clean_env(CLARESIA_DATABASE_URL=database_url, CLARESIA_JOB_STALE_AFTER_S="soon")
    done = run_cli("run", *FLAGS, env=env, timeout=60)
    assert done.returncode == ExitCode.ERROR
    assert done.stderr.strip().splitlines() == [
        "claresia-sync: error: CLARESIA_JOB_STALE_AFTER_S='soon': must be a valid number — "
        "seconds without heartbeat after which a running publish job is requeued"
    ]


def test_config_show_masks_the_database_password_and_says_where_values_come_from() -> None:
    env = clean_env(
        CLARESIA_DATABASE_URL="postgresql+psycopg://claresia:hunter2-secret@db:5432/claresia",
        CLARESIA_POLL_INTERVAL="15",
    )
    done = run_cli("config", "show", "--json", env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    shown = {s["env"]: s for s in json.loads(done.stdout)["settings"]}
    assert set(shown) == {env_name(n) for n in Settings.model_fields}
    assert shown["CLARESIA_DATABASE_URL"]["value"] == (
        "postgresql+psycopg://claresia:***@db:5432/claresia"
    )
    assert shown["CLARESIA_POLL_INTERVAL"] == {
        **shown["CLARESIA_POLL_INTERVAL"],
        "value": 15.0,
        "source": "env",
        "flag": "run --poll-interval",
    }
    assert shown["CLARESIA_OPS_HOST"]["source"] == "default"
    table = run_cli("config", "show", env=env, timeout=60)
    assert table.returncode == 0 and "hunter2" not in table.stdout
    # off a terminal nothing is cut at 80 columns
    assert "CLARESIA_JOB_FALLBACK_INTERVAL" in table.stdout
    assert any(len(line) > 120 for line in table.stdout.splitlines())


def test_a_bad_variable_does_not_break_help() -> None:
    done = run_cli("--help", env=clean_env(CLARESIA_API_TIMEOUT_S="soon"), timeout=60)
    assert done.returncode == 0 and "config" in done.stdout
