"""Migrations go up from empty, down to base and up again; the models match what they make."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from claresia_sync.db.engine import make_engine
from claresia_sync.db.migrate import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    migrations_dir,
    upgrade,
)
from claresia_sync.db.models import Base


def _include(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
    partition = name is not None and name.startswith("telemetry_event_") and type_ == "table"
    return not (partition and name != "telemetry_event_id")


# Every script in migrations/versions (named NNNN_what.py), in the order they chain: numbers
# are reserved ahead, so a script may land after a higher-numbered one and revise it.
FILES = sorted(p.name[:4] for p in (migrations_dir() / "versions").glob("[0-9]*.py"))
REVISIONS = [
    s.revision
    for s in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
]


def test_up_down_up_and_models_match(make_database: Callable[[], str]) -> None:
    engine = make_engine(make_database())
    try:
        first = upgrade(engine)
        assert first.before is None and first.after == head_revision()
        assert REVISIONS[:2] == ["0001", "0002"] and sorted(REVISIONS) == FILES
        assert [r.id for r in first.applied] == REVISIONS
        assert upgrade(engine).applied == []  # a second run is a no-op

        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(
                    conn, opts={"include_object": _include, "compare_type": True}
                ),
                Base.metadata,
            )
        assert diff == [], f"models and migrations disagree: {diff}"

        down = downgrade(engine)
        assert down.after is None and [r.id for r in down.applied] == REVISIONS[::-1]
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        with engine.connect() as conn:
            leftovers = conn.execute(
                text(
                    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
                    "WHERE nspname = 'public'"
                )
            ).scalars()
            assert list(leftovers) == []
            assert inspect(conn).get_view_names() == []

        again = upgrade(engine)
        assert again.after == head_revision()
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_0022_moves_counted_requests_onto_their_prompts_and_back(
    make_database: Callable[[], str],
) -> None:
    engine = make_engine(make_database())
    try:
        upgrade(engine, "0021")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO claude_code_prompt (tenant_slug, session_id, prompt_id, requests) "
                    "VALUES ('t', 's', 'p-1', 2), ('t', 's', 'p-2', 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO claude_code_request "
                    "(tenant_slug, session_id, prompt_id, request_key, received_at) VALUES "
                    "('t', 's', 'p-1', 7, '2026-12-01T10:00Z'), "
                    "('t', 's', 'p-1', -3, '2026-12-01T11:00Z')"
                )
            )
        assert upgrade(engine).applied[0].id == "0022"
        keys = "SELECT prompt_id, request_keys, counted_at FROM claude_code_prompt ORDER BY 1"
        listed = "SELECT prompt_id, request_key, received_at FROM claude_code_request ORDER BY 1, 2"
        eleven = dt.datetime(2026, 12, 1, 11, tzinfo=dt.UTC)
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text(keys))] == [
                ("p-1", [-3, 7], eleven),
                ("p-2", [], None),
            ]
            # the view lists what the table held (the latest receipt per prompt)
            assert [tuple(r) for r in conn.execute(text(listed))] == [
                ("p-1", -3, eleven),
                ("p-1", 7, eleven),
            ]
        downgrade(engine, "0021")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text(listed))] == [
                ("p-1", -3, eleven),
                ("p-1", 7, eleven),
            ]
    finally:
        engine.dispose()
