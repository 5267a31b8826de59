"""Run `python -m claresia_sync` as a real subprocess, the way an operator does.

The environment starts from this process's with every CLARESIA_* variable removed, so a test
sees only what it passes (a database url, demo keys, a state dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from claresia_sync.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def clean_env(settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """os.environ without CLARESIA_*; with `settings`, its database url and state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    if settings is not None:
        if settings.database_url is not None:
            env["CLARESIA_DATABASE_URL"] = settings.database_url
        env["CLARESIA_STATE_DIR"] = str(settings.state_dir)
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`claresia-sync ARGS` with `env` (default: `clean_env()`); output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "claresia_sync", *args],
        env=clean_env() if env is None else env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
