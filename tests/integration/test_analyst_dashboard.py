"""The analysts' Grafana dashboard (issue 24): every query of deploy/grafana/dashboards/
claresia-analysts.json, its macros and variables substituted as Grafana's PostgreSQL data source
does, runs as claresia_analyst on rows of every source and gives `telemetry report --by-source`'s
totals; the data source is provisioned beside the operations dashboard's."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, text

from claresia_sync.config import Settings
from claresia_sync.telemetry.report import source_report
from tests.cli import ROOT, clean_env, run_cli
from tests.fixtures.analyst import DAY3, SINCE, fill_every_source

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "claresia-analysts.json"
FROM = dt.datetime.combine(SINCE, dt.time(), dt.UTC)
TO = dt.datetime.combine(DAY3, dt.time(23, 59, 59, 999000), dt.UTC)
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]")


def _rfc3339(at: dt.datetime) -> str:
    """Go's time.RFC3339Nano of a UTC instant, as Grafana writes it into a query."""
    text_ = at.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text_ + "Z"


def grafana_sql(
    sql: str, variables: dict[str, list[str]], start: dt.datetime = FROM, end: dt.datetime = TO
) -> str:
    """The query Grafana sends: its PostgreSQL macros (pkg/tsdb/grafana-postgresql-datasource
    macros.go: `$__timeFilter(c)` is `c BETWEEN 'from' AND 'to'`, `$__timeFrom()` / `$__timeTo()`
    the quoted instants, RFC 3339 in UTC) and multi-value variables (each value quoted, commas
    between: the SQL data sources' interpolation). An unknown macro or variable fails."""
    low, high = f"'{_rfc3339(start)}'", f"'{_rfc3339(end)}'"
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)", rf"\1 BETWEEN {low} AND {high}", sql)
    sql = sql.replace("$__timeFrom()", low).replace("$__timeTo()", high)
    assert "$__" not in sql, f"a macro this test does not know: {sql}"

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        assert name in variables, f"unknown variable {name!r} in {sql}"
        return ",".join("'" + v.replace("'", "''") + "'" for v in variables[name])

    return _VARIABLE.sub(value, sql)


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _queries() -> dict[str, str]:
    return {
        f"{p['title']} [{t['refId']}]": t["rawSql"]
        for p in _dashboard()["panels"]
        for t in p["targets"]
    }


def _all_values(conn: Connection) -> dict[str, list[str]]:
    """The variables' values as Grafana lists them (All selected), each query run in turn."""
    chosen: dict[str, list[str]] = {}
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        sql = grafana_sql(variable["query"], chosen)
        chosen[variable["name"]] = [str(v) for v in conn.execute(text(sql)).scalars()]
    return chosen


def _run(conn: Connection, title: str, variables: dict[str, list[str]]) -> list[Any]:
    (sql,) = [s for name, s in _queries().items() if name.startswith(title + " [")]
    return list(conn.execute(text(grafana_sql(sql, variables))))


def test_every_query_runs_as_the_analyst_and_gives_the_reports_totals(
    engine: Engine, db_settings: Settings
) -> None:
    fill_every_source(engine)
    done = run_cli(
        "telemetry",
        "report",
        "--by-source",
        "--since",
        SINCE.isoformat(),
        "--format",
        "json",
        env=clean_env(db_settings),
    )
    assert done.returncode == 0, done.stderr
    report = {(r["tenant_slug"], r["skill_id"]): r for r in json.loads(done.stdout)}

    def total(name: str) -> Decimal:
        return sum((Decimal(str(r[name] or 0)) for r in report.values()), Decimal(0))

    with engine.connect() as conn:
        conn.execute(text("SET ROLE claresia_analyst"))
        every = _all_values(conn)
        assert set(every["tenant"]) == {"dainese", "dainese-eng", "ferretti"}
        assert "" in every["skill"]  # the unnamed skill's rows are selectable too
        for name, sql in _queries().items():
            rows = conn.execute(text(grafana_sql(sql, every))).all()
            assert rows, f"{name}: no rows over rows of every source"

        table = {(r.tenant, r.skill): r for r in _run(conn, "Per tenant and skill", every)}
        assert set(table) == set(report)
        columns = {
            "audit_runs": "audit_runs",
            "audit_failures": "audit_failures",
            "claude_code": "claude_code_activations",
            "invocations": "invocations",
            "cost_usd": "cost_usd",
            "tokens": "tokens",
            "apps_uses": "apps_invocations",
            "apps_overage_usd": "apps_overage_spend_usd",
            "apps_list_usd": "apps_list_price_usd",
            "lifecycle": "lifecycle_events",
        }
        for key, row in table.items():
            for mine, theirs in columns.items():
                assert Decimal(str(getattr(row, mine) or 0)) == Decimal(
                    str(report[key][theirs] or 0)
                ), (key, mine)
        assert list(table) == list(report)  # in the report's order

        (uses,) = _run(conn, "Uses (audit log + Claude Code)", every)
        assert uses.uses == total("invocations") == 10
        (cost,) = _run(conn, "Cost (audit log + Claude Code)", every)
        assert cost.cost_usd == total("cost_usd")
        (apps,) = _run(conn, "Claude apps uses (skills analytics)", every)
        assert apps.apps_uses == total("apps_invocations") == 19
        (rate,) = _run(conn, "Failure rate (audit log)", every)
        assert round(rate.failure_rate, 9) == round(
            total("audit_failures") / total("audit_runs"), 9
        )

        per_day = _run(conn, "Uses per day by source", every)
        assert sum(r.audit_log + r.claude_code for r in per_day) == total("invocations")
        assert sum(r.claude_apps for r in per_day) == total("apps_invocations")
        assert all(isinstance(r.time, dt.datetime) for r in per_day)  # a time column
        costs = _run(conn, "Cost per day by source", every)
        assert sum(r.audit_log + r.claude_code for r in costs) == total("cost_usd")
        assert sum(r.claude_apps_overage_estimate for r in costs) == total("apps_overage_spend_usd")
        adoption = {(r.tenant, r.skill): r for r in _run(conn, "Adoption across sources", every)}
        prd = adoption[("ferretti", "prd-review")]
        assert (prd.claude_code_days, prd.claude_apps_days, prd.audit_days) == (2, 2, 0)
        events = _run(conn, "Lifecycle events (activity feed)", every)
        assert sum(r.events for r in events) == total("lifecycle_events") == 3

        # one tenant chosen: the figures of `telemetry report --by-source --tenant ferretti`
        one = {**every, "tenant": ["ferretti"]}
        (uses,) = _run(conn, "Uses (audit log + Claude Code)", one)
        (apps,) = _run(conn, "Claude apps uses (skills analytics)", one)
    with engine.connect() as conn:
        ferretti = source_report(conn, since=SINCE, tenant="ferretti")
    assert uses.uses == sum(f.invocations for f in ferretti) == 3
    assert apps.apps_uses == sum(f.apps_invocations or 0 for f in ferretti)


def test_a_day_outside_the_time_range_is_left_out(engine: Engine) -> None:
    fill_every_source(engine)
    with engine.connect() as conn:
        conn.execute(text("SET ROLE claresia_analyst"))
        every = _all_values(conn)
        sql = grafana_sql(_queries()["Uses (audit log + Claude Code) [A]"], every, end=FROM)
        (uses,) = conn.execute(text(sql)).scalars()
    assert uses == 0  # 1 November: nothing; the rows before it are out too


def test_the_data_source_is_provisioned_beside_the_operations_dashboard() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "postgresql.yml").read_text()
    )
    (source,) = provisioned["datasources"]
    dashboard = _dashboard()
    assert source["type"] == "grafana-postgresql-datasource"
    chooser = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert chooser["query"] == source["type"] and chooser["current"]["value"] == source["uid"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": source["type"], "uid": "${datasource}"}, panel
    # the one dashboards provider reads the folder both dashboards are in
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "claresia-sync.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {p.name for p in (GRAFANA / "dashboards").glob("*.json")} == {
        "claresia-sync.json",
        "claresia-analysts.json",
    }
    ids = [json.loads(p.read_text())["uid"] for p in (GRAFANA / "dashboards").glob("*.json")]
    assert len(set(ids)) == 2
    compose: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    for variable in re.findall(r"\$\{(\w+)\}", yaml.safe_dump(source)):
        assert variable in grafana["environment"], variable
    login = compose["services"]["grafana-login"]
    assert grafana["environment"]["CLARESIA_GRAFANA_DB_USER"] in login["command"][-1]
    assert "IN ROLE claresia_analyst" in login["command"][-1]


def test_every_panel_reads_the_analyst_view() -> None:
    for name, sql in _queries().items():
        assert re.findall(r"FROM (\w+)", sql) == ["skill_usage_by_source"], name
