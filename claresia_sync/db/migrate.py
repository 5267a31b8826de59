"""Alembic, run from code: `upgrade` for `claresia-sync db upgrade` and the daemon's start.

The migration scripts live in the repository's top-level `migrations/`; the wheel carries them as
`claresia_sync/_migrations` (hatch force-include), so both an installed package and a checkout
find them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from claresia_sync.errors import UserError

_PACKAGE = Path(__file__).resolve().parent.parent
# Two processes upgrading the same database (daemon and CLI) take turns on this lock.
_LOCK_KEY = 0x436C617265736961  # "Claresia"


def migrations_dir() -> Path:
    for candidate in (_PACKAGE / "_migrations", _PACKAGE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"the migration scripts are missing (looked next to {_PACKAGE})")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@dataclass(frozen=True)
class Revision:
    id: str
    message: str

    def __str__(self) -> str:
        return f"{self.id} ({self.message})"


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None
    applied: list[Revision]
    """Revisions applied (upgrade) or undone (downgrade), in the order it happened."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class SchemaMissing(UserError):
    """The database has not (or no longer) got this version's schema."""

    def __init__(self, reason: str, *, then: str = "then the command again") -> None:
        super().__init__(
            f"the database lacks this version's schema ({reason}): run "
            f"`claresia-sync db upgrade`, {then}"
        )


def schema_behind(connection: Connection) -> str | None:
    """Why the schema is older than this program's, or None when it is the newest one or newer
    (a newer release migrated it: its migrations add, so this version keeps working)."""
    current, head = current_revision(connection), head_revision()
    if current == head:
        return None
    if current is None:
        return f"no schema; this version needs {head}"
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(current)
    except CommandError:  # a revision this program does not know
        return None
    return f"schema at {current}, this version needs {head}"


def require_schema(connection: Connection) -> None:
    """A cheap check that a schema is there (the daemon's readiness, every few seconds)."""
    present = connection.execute(
        text("SELECT to_regclass('alembic_version') IS NOT NULL")
    ).scalar_one()
    revision = (
        connection.execute(text("SELECT max(version_num) FROM alembic_version")).scalar_one()
        if present
        else None
    )
    if revision is None:
        raise SchemaMissing("no schema revision", then="and the daemon is ready again by itself")


def _between(upper: str | None, lower: str | None) -> list[Revision]:
    """Revisions after `lower` up to and including `upper`, oldest first."""
    if upper is None or upper == lower:
        return []
    script = ScriptDirectory.from_config(alembic_config())
    revs = script.iterate_revisions(upper, lower or "base")
    found = [Revision(r.revision, r.doc or "") for r in revs if r is not None]
    return list(reversed(found))


def _run(engine: Engine, target: str, *, down: bool) -> MigrationResult:
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = current_revision(conn)
        config = alembic_config(conn)
        if down:
            command.downgrade(config, target)
        else:
            command.upgrade(config, target)
        after = current_revision(conn)
    applied = _between(before, after)[::-1] if down else _between(after, before)
    return MigrationResult(before, after, applied)


def upgrade(engine: Engine, revision: str = "head") -> MigrationResult:
    """Migrate up to `revision` in one transaction; a database already there is left alone."""
    return _run(engine, revision, down=False)


def downgrade(engine: Engine, revision: str = "base") -> MigrationResult:
    return _run(engine, revision, down=True)
