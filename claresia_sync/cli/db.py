"""`claresia-sync db ...`: schema migrations of the configured (or embedded) database."""

from __future__ import annotations

import typer

from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.db.engine import display_url
from claresia_sync.db.migrate import current_revision, head_revision, upgrade

db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


def _where() -> str:
    settings = load_settings()
    if settings.database_url:
        return display_url(settings.database_url)
    return f"embedded PostgreSQL in {settings.state_dir / 'pgdata'}"


@db_app.command("upgrade")
def upgrade_cmd() -> None:
    """Migrate the database to the newest schema (a database already there is left alone)."""
    print(f"database: {_where()}")
    with open_database(load_settings()) as engine:
        result = upgrade(engine)
    if not result.applied:
        print(f"schema already at {result.after} (newest): nothing to do")
        return
    for rev in result.applied:
        print(f"applied {rev}")
    print(f"schema now at {result.after} (was {result.before or 'empty'})")


@db_app.command("current")
def current_cmd() -> None:
    """Show the schema revision of the database and the newest one this program knows."""
    print(f"database: {_where()}")
    with open_database(load_settings()) as engine, engine.connect() as conn:
        current = current_revision(conn)
    head = head_revision()
    state = "up to date" if current == head else "run `claresia-sync db upgrade`"
    print(f"schema at {current or 'empty'}, newest {head}: {state}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
