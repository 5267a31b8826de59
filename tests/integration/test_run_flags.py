"""`claresia-sync run` takes the Command Center's and the OTLP receiver's settings as flags like
every other daemon setting (issue 24); the variables still work, and a flag wins over them."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from claresia_sync.cli.daemon import run_command
from claresia_sync.config import Settings, flag_name, has_flag
from claresia_sync.errors import ExitCode
from tests.cli import clean_env, run_cli
from tests.fixtures.daemon import DaemonProcess, free_port, wait_until

NEW = (
    "center_host",
    "center_port",
    "center_tokens",
    "otlp_host",
    "otlp_port",
    "otlp_max_body_bytes",
)


def test_every_flag_setting_is_a_run_option_listed_by_help() -> None:
    flagged = {name for name in Settings.model_fields if has_flag(name)}
    assert set(NEW) <= flagged
    assert set(inspect.signature(run_command).parameters) == flagged | {"migrate"}
    shown = run_cli("run", "--help", env=clean_env(COLUMNS="200"), timeout=60)
    assert shown.returncode == 0, shown.stderr
    for name in flagged:
        assert flag_name(name) in shown.stdout, name


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--center-port", "99999"), "--center-port 99999"),
        (("--otlp-port", "-1"), "--otlp-port -1"),
        (("--otlp-max-body-bytes", "10"), "--otlp-max-body-bytes 10"),
        (("--center-tokens", "alice:admin:env:NOPE_TOKEN"), "--center-tokens:"),
    ],
)
def test_a_bad_flag_is_refused_in_one_line(args: tuple[str, str], named: str) -> None:
    done = run_cli("run", *args, env=clean_env(CLARESIA_STATE_DIR="/nonexistent"), timeout=60)
    assert done.returncode == ExitCode.USAGE, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"claresia-sync: error: {named}"), line
    if args[0] == "--center-tokens":
        assert "NOPE_TOKEN" not in line  # a secret setting's value is not echoed


def test_the_daemon_serves_the_center_and_the_receiver_from_flags(
    start_daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    center, receiver = free_port(), free_port()
    # the variables say otherwise: the flags win
    daemon = start_daemon(
        "--center-tokens",
        "ops:operator:env:FLAG_CENTER_TOKEN",
        "--center-host",
        "127.0.0.1",
        "--center-port",
        str(center),
        "--otlp-host",
        "127.0.0.1",
        "--otlp-port",
        str(receiver),
        "--otlp-max-body-bytes",
        "2048",
        env={"FLAG_CENTER_TOKEN": token, "CLARESIA_CENTER_PORT": "1", "CLARESIA_OTLP_PORT": "0"},
    )

    def answers(url: str, method: str = "GET", **kw: object) -> int | None:
        daemon.get("/healthz")  # fails the test if the daemon exited
        try:
            return httpx2.request(method, url, timeout=2, **kw).status_code  # type: ignore[arg-type]
        except httpx2.HTTPError:
            return None

    base = f"http://127.0.0.1:{center}/api/v1/whoami"
    wait_until(lambda: answers(base) is not None, 20, "the Command Center on --center-port")
    assert answers(base, headers={"Authorization": f"Bearer {token}"}) == 200
    logs = f"http://127.0.0.1:{receiver}/v1/logs"
    wait_until(lambda: answers(logs, "POST", content=b"") is not None, 20, "the receiver")
    headers = {"content-type": "application/x-protobuf", "authorization": "Bearer x"}
    assert answers(logs, "POST", content=b"", headers=headers) == 401  # the receiver's answer
