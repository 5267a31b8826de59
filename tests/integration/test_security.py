"""Security checks: an admin key never reaches logs, the database, /metrics or error messages;
SQL is built only with bound parameters; the analyst role reads telemetry and nothing else."""

from __future__ import annotations

import ast
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable

import httpx2
import pytest
from psycopg import sql
from sqlalchemy import Engine, text

from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.state import ENTERPRISE_SCOPES, KeyRecord
from tests.fixtures.daemon import ROOT, DaemonProcess, wait_until
from tests.fixtures.emulator import DAINESE_ORG

PACKAGE = ROOT / "claresia_sync"
_SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|DROP|CREATE|ALTER|TRUNCATE|LISTEN|NOTIFY|COPY|"
    r"WHERE|VALUES)\b"
)
# SQL assembled from Python values, each interpolating identifiers fixed in code or read from
# the catalog, never a value from input: (file, the start of the expression).
ALLOWED_DYNAMIC_SQL = {
    # the channel name is a module constant; LISTEN takes no bound parameter
    ("claresia_sync/daemon/service.py", "f'LISTEN {NOTIFY_CHANNEL}'"),
    # COPY's column list comes from the ORM table definition
    ("claresia_sync/telemetry/load.py", "f\"COPY telemetry_event ({', '.join(COPY_COLUMNS)})"),
    # a partition name read from pg_inherits (telemetry_event_YYYY_MM); DROP takes no parameter
    ("claresia_sync/telemetry/retention.py", "f'DROP TABLE IF EXISTS \"{name}\"'"),
}


def _literal_text(node: ast.AST) -> str:
    return " ".join(
        str(n.value)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def dynamic_sql(source: str) -> list[tuple[int, str]]:
    """Expressions that build SQL text from values: f-strings with fields, `%` or `+` on
    strings, and `"...".format(...)`, whose literal parts read like SQL."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            dynamic = any(isinstance(v, ast.FormattedValue) for v in node.values)
        elif isinstance(node, ast.BinOp):
            dynamic = isinstance(node.op, ast.Mod | ast.Add)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            dynamic = node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
        else:
            dynamic = False
        if dynamic and _SQL_WORDS.search(_literal_text(node)):
            found.append((getattr(node, "lineno", 0), ast.unparse(node)))
    return found


def test_the_sql_scanner_catches_interpolated_values() -> None:
    bad = (
        "conn.execute(text(f\"SELECT * FROM tenant WHERE slug = '{slug}'\"))\n"
        'q = "DELETE FROM publication WHERE id = %s" % pub_id\n'
        "q = \"UPDATE tenant SET name = '{}'\".format(name)\n"
        'q = "SELECT 1 FROM t WHERE a = " + value\n'
    )
    assert sorted(line for line, _ in dynamic_sql(bad)) == [1, 2, 3, 4]
    good = 'conn.execute(text("SELECT * FROM tenant WHERE slug = :s"), {"s": slug})\n'
    good += 'log.info(f"polled {org}: {n} new event(s)")\n'
    assert dynamic_sql(good) == []


def test_sql_is_built_only_with_bound_parameters() -> None:
    offenders = []
    seen = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for line, expr in dynamic_sql(path.read_text()):
            allowed = next(
                (a for a in ALLOWED_DYNAMIC_SQL if a[0] == rel and expr.startswith(a[1])), None
            )
            if allowed is None:
                offenders.append(f"{rel}:{line}: {expr[:120]}")
            else:
                seen.add(allowed)
    assert not offenders, "SQL built from values (use bound parameters):\n" + "\n".join(offenders)
    assert seen == ALLOWED_DYNAMIC_SQL, f"stale allow-list entries: {ALLOWED_DYNAMIC_SQL - seen}"


def test_analyst_role_can_select_telemetry_and_nothing_else(engine: Engine) -> None:
    with engine.connect() as conn:
        relations = conn.execute(
            text(
                "SELECT c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
            )
        ).all()
        assert len(relations) > 10
        for name, kind in relations:
            privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"]
            if kind == "S":
                privileges = ["USAGE", "UPDATE"]
            granted = {
                p
                for p in privileges
                if conn.execute(
                    text(
                        "SELECT has_table_privilege('claresia_analyst', c.oid, :p) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relname = :r"
                    )
                    if kind != "S"
                    else text("SELECT has_sequence_privilege('claresia_analyst', :r, :p)"),
                    {"r": name, "p": p},
                ).scalar_one()
            }
            if name in (
                "telemetry_event",
                "telemetry_daily",
                "telemetry_quarantine",
                "skill_usage_daily",
                "org_activity",
                "skill_usage_by_source",
                "telemetry_invocation",
                "claude_code_prompt",
                "claude_code_request",
                "claude_code_activation",
                "publication_history",
                "telemetry_by_release",
            ):
                assert granted == {"SELECT"}, (name, granted)
            elif name.startswith("telemetry") and kind != "S":
                assert granted <= {"SELECT"}, (name, granted)  # partitions: through the parent
            else:
                assert not granted, (name, kind, granted)
        assert not conn.execute(
            text("SELECT has_schema_privilege('claresia_analyst', 'public', 'CREATE')")
        ).scalar_one()
        # As the role for real: telemetry reads, writes and other tables are refused.
        conn.execute(text("SET ROLE claresia_analyst"))
        conn.execute(text("SELECT count(*) FROM telemetry_event")).scalar_one()
        for statement in (
            "SELECT count(*) FROM org_connection",
            "DELETE FROM telemetry_event",
            "CREATE TABLE analyst_table (x int)",
        ):
            nested = conn.begin_nested()
            with pytest.raises(Exception, match="permission denied"):
                conn.execute(text(statement))
            nested.rollback()
        conn.rollback()


def _text_columns(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (r.table_name, r.column_name)
            for r in conn.execute(
                text(
                    "SELECT c.table_name, c.column_name FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
                    "AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')"
                )
            )
        ]


def test_a_canary_key_never_reaches_logs_database_metrics_or_errors(
    start_daemon: Callable[..., DaemonProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
) -> None:
    canary = f"sk-ant-admin01-dainese-CANARY-{secrets.token_hex(24)}"
    secret = canary[len("sk-ant-") : -4]  # masking may keep the kind and the last 4 chars
    emulator.state.add_admin_key(DAINESE_ORG, canary)
    # The claude-enterprise target's key family too (issue 15), through the official SDK.
    enterprise = f"sk-ant-api01-ferretti-CANARY-{secrets.token_hex(24)}"
    enterprise_secret = enterprise[len("sk-ant-") : -4]
    emulator.state.add_admin_key("org_ferretti", enterprise, scopes=ENTERPRISE_SCOPES)
    # And claude-api's: a workspace API key (the example tenant vespucci's workspace).
    workspace = f"sk-ant-api03-vespucci-CANARY-{secrets.token_hex(24)}"
    workspace_secret = workspace[len("sk-ant-") : -4]
    with emulator.state.lock:
        emulator.state.keys[workspace] = KeyRecord(
            key=workspace,
            org_id="org_vespucci",
            name="canary",
            scopes=frozenset(),
            workspaces=None,
            family="workspace",
            workspace="wrkspc_vespucci_support",
        )
    env = {
        "CLARESIA_DAINESE_ADMIN_KEY": canary,
        "CLARESIA_FERRETTI_ENTERPRISE_KEY": enterprise,
        "CLARESIA_VESPUCCI_SUPPORT_API_KEY": workspace,
    }
    daemon = start_daemon(env=env)
    with engine.begin() as conn:
        job = conn.execute(text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")).scalar()

    def status() -> str:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT status FROM publish_job WHERE id = :i"), {"i": job}
                ).scalar_one()
            )

    wait_until(lambda: status() == "succeeded", 60, "a publish with the canary key")
    emulator.state.generate_invocations(DAINESE_ORG, 200, failure_rate=0.3, seed=4)

    def ingested() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM telemetry_event")).scalar_one())

    wait_until(lambda: ingested() == 200, 60, "usage ingested")
    # Failures too: every call fails for a while, then the key is revoked (401s).
    emulator.set_faults(rate_500=1.0)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO publish_job (force) VALUES (true)"))
    time.sleep(3)
    with emulator.state.lock:
        del emulator.state.keys[canary]
        del emulator.state.keys[enterprise]
        del emulator.state.keys[workspace]
    emulator.set_faults()
    time.sleep(3)
    metrics = httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5).text
    assert daemon.stop(timeout=15)[0] == 0

    errors = subprocess.run(
        [sys.executable, "-m", "claresia_sync", "publish", "--tenant", "dainese", "--wait"],
        env={**daemon_env, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert errors.returncode != 0  # the key was revoked: the command fails, saying so
    logs = daemon.log.read_text()
    assert "401" in logs or "unauthori" in logs.lower() or "authentic" in logs.lower()
    for where, content in (
        ("daemon logs", logs),
        ("/metrics", metrics),
        ("CLI output", errors.stdout + errors.stderr),
    ):
        assert secret not in content, f"the key leaked into {where}"
        assert enterprise_secret not in content, f"the Enterprise key leaked into {where}"
        assert workspace_secret not in content, f"the workspace key leaked into {where}"

    columns = _text_columns(engine)
    assert len(columns) > 20
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        for table, column in columns:
            query = sql.SQL("SELECT count(*) FROM {} WHERE position(%s in {}::text) > 0").format(
                sql.Identifier(table), sql.Identifier(column)
            )
            for leaked in (secret, enterprise_secret, workspace_secret):
                cursor.execute(query, (leaked,))
                row = cursor.fetchone()
                assert row is not None and row[0] == 0, f"the key is stored in {table}.{column}"
        # The reference, not the key, is what the database holds.
        cursor.execute("SELECT admin_key_ref FROM org_connection WHERE org_id = %s", (DAINESE_ORG,))
        assert cursor.fetchone() == ("env:CLARESIA_DAINESE_ADMIN_KEY",)
