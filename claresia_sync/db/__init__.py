"""PostgreSQL: the daemon's state and the Hub's telemetry.

Every command gets its database through `open_database(settings)`, the settings its entry point
read: the server named by `CLARESIA_DATABASE_URL`, or else the embedded one under the state dir
(started, reused, stopped).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from claresia_sync.db.embedded import embedded_server
from claresia_sync.db.engine import display_url, make_engine, make_session_factory, normalize_url
from claresia_sync.db.migrate import MigrationResult, upgrade
from claresia_sync.errors import UserError

__all__ = [
    "DatabaseSettings",
    "MigrationResult",
    "database_url",
    "make_engine",
    "make_session_factory",
    "normalize_url",
    "open_database",
    "upgrade",
]


class DatabaseSettings(Protocol):
    """What of the settings (`config.Settings`) the database needs: `db` sits below `config`."""

    @property
    def database_url(self) -> str | None: ...

    @property
    def state_dir(self) -> Path: ...


@contextmanager
def database_url(settings: DatabaseSettings) -> Iterator[str]:
    """The configured URL, or the embedded server's for as long as the block runs."""
    if settings.database_url:
        yield normalize_url(settings.database_url).render_as_string(hide_password=False)
        return
    with embedded_server(settings.state_dir) as url:
        yield url


@contextmanager
def open_database(settings: DatabaseSettings, *, migrate: bool = False) -> Iterator[Engine]:
    """An engine on the configured (or embedded) database; `migrate=True` upgrades it first.

    The engine is disposed, and an embedded server stopped (unless another process uses it),
    when the block ends.
    """
    with ExitStack() as stack:
        url = stack.enter_context(database_url(settings))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        _check_connects(engine)
        if migrate:
            upgrade(engine)
        yield engine


def _check_connects(engine: Engine) -> None:
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = " ".join(str(exc.orig or exc).split())
        raise UserError(
            f"cannot connect to the database {display_url(engine.url)}: {reason} "
            "(check CLARESIA_DATABASE_URL, or unset it to use the embedded server)"
        ) from None
