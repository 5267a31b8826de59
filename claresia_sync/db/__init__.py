"""PostgreSQL: the daemon's state and the Hub's telemetry.

Every command gets its database through `open_database(settings)`: the server named by
`CLARESIA_DATABASE_URL`, or else the embedded one under the state dir (started, reused, stopped).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from claresia_sync.config import Settings, load_settings
from claresia_sync.db.embedded import embedded_server
from claresia_sync.db.engine import display_url, make_engine, make_session_factory, normalize_url
from claresia_sync.db.migrate import MigrationResult, upgrade
from claresia_sync.errors import UserError

__all__ = [
    "MigrationResult",
    "database_url",
    "make_engine",
    "make_session_factory",
    "normalize_url",
    "open_database",
    "upgrade",
]


@contextmanager
def database_url(settings: Settings | None = None) -> Iterator[str]:
    """The configured URL, or the embedded server's for as long as the block runs."""
    settings = settings or load_settings()
    if settings.database_url:
        yield normalize_url(settings.database_url).render_as_string(hide_password=False)
        return
    with embedded_server(settings.state_dir) as url:
        yield url


@contextmanager
def open_database(settings: Settings | None = None, *, migrate: bool = False) -> Iterator[Engine]:
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
