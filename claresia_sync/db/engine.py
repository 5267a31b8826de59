"""Engine and session factory from a database URL (one URL form: `postgresql+psycopg://`)."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from claresia_sync.errors import UserError

DRIVER = "postgresql+psycopg"
_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
# SQLSTATEs of a server going away or not yet back: connection exceptions (class 08), and
# admin_shutdown, crash_shutdown, cannot_connect_now (starting up or shutting down).
_UNAVAILABLE_CLASS = "08"
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}


def normalize_url(url: str | URL) -> URL:
    """Parse a PostgreSQL URL and pin the driver to psycopg 3 (`postgres://` is accepted too)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise UserError(
            "the database URL is not a URL: expected postgresql+psycopg://user:password@host/db"
        ) from None
    if parsed.drivername not in _POSTGRES_SCHEMES:
        raise UserError(
            f"the database URL uses {parsed.drivername!r}: only PostgreSQL is supported "
            "(postgresql+psycopg://user:password@host/db)"
        )
    return parsed.set(drivername=DRIVER)


def display_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return normalize_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """A pooled engine; `pool_pre_ping` because the embedded server may restart between uses."""
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(normalize_url(url), **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects stay readable after commit (commands print them).
    return sessionmaker(engine, expire_on_commit=False)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) says the database cannot be reached: refused,
    dropped, shutting down or starting up. Errors in a statement (a deadlock, a lock timeout, a
    constraint) are not: retrying them after an outage would not help."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        orig = current.orig if isinstance(current, DBAPIError) else current
        if isinstance(orig, psycopg.OperationalError):
            state = orig.sqlstate
            # No SQLSTATE: the client failed to connect, or the connection broke under it.
            if state is None or state[:2] == _UNAVAILABLE_CLASS or state in _UNAVAILABLE_STATES:
                return True
        current = current.__cause__
    return False
