"""Alembic environment: `claresia_sync.db.migrate` passes a connection; the alembic CLI uses
`sqlalchemy.url` from alembic.ini's caller or CLARESIA_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from claresia_sync.db.engine import make_engine
from claresia_sync.db.models import Base

config = context.config
target_metadata = Base.metadata


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Monthly partitions of telemetry_event are made by a function, not by the models.
    return not (
        type_ == "table"
        and name is not None
        and name.startswith("telemetry_event_")
        and name != "telemetry_event_id"
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CLARESIA_DATABASE_URL")
    if not url:
        raise SystemExit("set CLARESIA_DATABASE_URL (or use `claresia-sync db upgrade`)")
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run_migrations_online()
