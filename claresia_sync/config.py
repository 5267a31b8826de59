"""Settings from the environment: where the database is and where local state lives.

`CLARESIA_DATABASE_URL` names an existing PostgreSQL; without it the program starts an embedded
one whose data lives under `CLARESIA_STATE_DIR` (default: the per-user data dir).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from claresia_sync.errors import UserError

APP_NAME = "claresia-sync"
DATABASE_URL_ENV = "CLARESIA_DATABASE_URL"
STATE_DIR_ENV = "CLARESIA_STATE_DIR"


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    """`postgresql+psycopg://...`, or None for the embedded server."""
    state_dir: Path
    """Local state: the embedded server's data lives in `state_dir / "pgdata"`."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        url = env.get(DATABASE_URL_ENV, "").strip() or None
        state = env.get(STATE_DIR_ENV, "").strip()
        state_dir = (
            Path(state).expanduser() if state else Path(platformdirs.user_data_dir(APP_NAME))
        )
        return cls(database_url=url, state_dir=state_dir)


def load_settings() -> Settings:
    """The settings of this process (read from the environment each call)."""
    return Settings.from_env()


def env_seconds(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """A positive duration in seconds from the environment variable `name` (else `default`),
    read when needed, so that a bad value is a clear error rather than a failed import."""
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UserError(f"{name}={raw!r}: give a positive number of seconds, such as {default:g}")
    return value
