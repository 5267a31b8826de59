"""One view of a skill's use across sources (issue 24): `skill_usage_by_source` read as the
analyst role over rows of every source (audit log, Claude Code, skills analytics, activity feed),
and `telemetry report` (default and `--by-source`) giving the same totals."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from claresia_sync.config import Settings
from claresia_sync.telemetry.report import SOURCES, source_daily, source_report
from tests.cli import ROOT, clean_env, run_cli
from tests.fixtures.analyst import DAY1, DAY2, DAY3, SINCE, fill_every_source

Key = tuple[str, str | None]


def _view(engine: Engine) -> list[Any]:
    with engine.connect() as c:
        c.execute(text("SET ROLE claresia_analyst"))
        return list(
            c.execute(text("SELECT * FROM skill_usage_by_source WHERE day >= :d"), {"d": SINCE})
        )


def _report(settings: Settings, *args: str) -> list[dict[str, Any]]:
    done = run_cli(
        "telemetry",
        "report",
        "--since",
        SINCE.isoformat(),
        "--format",
        "json",
        *args,
        env=clean_env(settings),
    )
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_the_view_shows_every_source_per_tenant_skill_and_day(engine: Engine) -> None:
    fill_every_source(engine)
    rows = {(r.tenant_slug, r.skill_id, r.day): r for r in _view(engine)}
    assert set(rows) == {
        ("dainese-eng", "incident-postmortem", DAY1),
        ("dainese-eng", "incident-postmortem", DAY2),
        ("dainese", "meeting-summary", DAY2),
        ("dainese-eng", None, DAY2),  # an event whose skill is unnamed keeps its row
        ("ferretti", "prd-review", DAY1),
        ("ferretti", "prd-review", DAY2),
        ("ferretti", "sprint-planning", DAY3),  # the activity feed alone
    }
    audit = rows[("dainese-eng", "incident-postmortem", DAY1)]
    assert (audit.audit_invocations, audit.audit_failures, audit.audit_users) == (4, 1, 3)
    assert audit.audit_cost_usd == Decimal("0.123") == audit.cost_usd
    assert (audit.audit_input_tokens, audit.audit_output_tokens) == (4800, 1200)
    assert (audit.parent_tenant_slug, audit.root_tenant_slug) == ("dainese", "dainese")
    assert audit.claude_code_activations == 0 and audit.daily_invocations is None

    code = rows[("ferretti", "prd-review", DAY1)]
    assert (code.claude_code_activations, code.claude_code_users) == (2, 1)
    # the prompt's usage, which came in its own records, once for its two activations
    assert code.claude_code_cost_usd == Decimal("0.0833") == code.cost_usd
    assert (code.claude_code_input_tokens, code.claude_code_output_tokens) == (7000, 900)
    assert code.daily_invocations == 12  # the user-breakdown row is not added
    assert code.daily_overage_spend_usd == Decimal("0.35")
    assert code.invocations == 2 and code.activity_events == 0

    day2 = rows[("ferretti", "prd-review", DAY2)]
    assert (day2.claude_code_activations, day2.daily_invocations) == (1, 7)
    assert (day2.activity_events, day2.activity_repairs) == (2, 1)
    assert day2.activity_types == "claude_plugin_deleted,claude_plugin_version_created"
    alone = rows[("ferretti", "sprint-planning", DAY3)]
    assert (alone.invocations, alone.activity_events, alone.root_tenant_slug) == (0, 1, "ferretti")


def _sums(rows: list[Any], *columns: str) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(columns, 0))
    for r in rows:
        for c in columns:
            out[(r.tenant_slug, r.skill_id)][c] += getattr(r, c) or 0
    return dict(out)


def test_telemetry_report_gives_the_views_totals(engine: Engine, db_settings: Settings) -> None:
    fill_every_source(engine)
    view = _view(engine)
    per_event = _sums(view, "invocations", "failures", "cost_usd")
    default = {(r["tenant_slug"], r["skill_id"]): r for r in _report(db_settings)}
    assert set(default) == {k for k, v in per_event.items() if v["invocations"]}
    for key, figures in default.items():
        assert (figures["invocations"], figures["failures"]) == (
            per_event[key]["invocations"],
            per_event[key]["failures"],
        ), key
        assert Decimal(figures["cost_usd"]) == per_event[key]["cost_usd"], key

    columns = {
        "audit_runs": "audit_invocations",
        "audit_failures": "audit_failures",
        "claude_code_activations": "claude_code_activations",
        "invocations": "invocations",
        "failures": "failures",
        "cost_usd": "cost_usd",
        "apps_invocations": "daily_invocations",
        "apps_overage_spend_usd": "daily_overage_spend_usd",
        "apps_list_price_usd": "daily_list_price_usd",
        "lifecycle_events": "activity_events",
    }
    sums = _sums(view, *columns.values(), "input_tokens", "output_tokens")
    by_source = {(r["tenant_slug"], r["skill_id"]): r for r in _report(db_settings, "--by-source")}
    assert set(by_source) == set(sums)  # every key of the view, the activity-only one too
    for key, figures in by_source.items():
        for mine, theirs in columns.items():
            assert Decimal(str(figures[mine] or 0)) == sums[key][theirs], (key, mine)
        assert figures["tokens"] == sums[key]["input_tokens"] + sums[key]["output_tokens"]
    # users are distinct over the period (user_1 on both days counts once), not summed per day
    assert by_source[("dainese-eng", "incident-postmortem")]["users"] == 3
    assert by_source[("ferretti", "prd-review")]["users"] == 2

    table = run_cli(
        "telemetry",
        "report",
        "--since",
        SINCE.isoformat(),
        "--by-source",
        env=clean_env(db_settings),
    )
    lines = table.stdout.splitlines()
    assert lines[0].split()[:6] == [
        "tenant",
        "skill",
        "audit_runs",
        "audit_failures",
        "claude_code",
        "invocations",
    ]
    assert any(line.split()[:2] == ["ferretti", "sprint-planning"] for line in lines[2:])


def test_a_parent_tenant_covers_its_sub_tenants(engine: Engine) -> None:
    fill_every_source(engine)
    with engine.connect() as conn:
        dainese = source_report(conn, since=SINCE, tenant="dainese")
        eng = source_report(conn, since=SINCE, tenant="dainese-eng")
    assert {(f.tenant_slug, f.skill_id) for f in dainese} == {
        ("dainese-eng", "incident-postmortem"),
        ("dainese-eng", None),
        ("dainese", "meeting-summary"),
    }
    assert {f.tenant_slug for f in eng} == {"dainese-eng"}


def test_the_report_filters_by_skill_and_source_and_gives_each_source_per_day(
    engine: Engine, db_settings: Settings
) -> None:
    """The filters of the console's Telemetry page and `report --by-source --skill --source`
    (one query), and the per-day series of its charts, against the view's own sums."""
    fill_every_source(engine)
    with engine.connect() as conn:
        prd = source_report(conn, since=SINCE, skill="prd-review")
        keys = {
            name: {
                (f.tenant_slug, f.skill_id) for f in source_report(conn, since=SINCE, source=name)
            }
            for name in SOURCES
        }
        daily = {d["day"]: d for d in source_daily(conn, since=SINCE, tenant="ferretti")}
        everyone = source_daily(conn, since=SINCE)
    assert [(f.tenant_slug, f.skill_id) for f in prd] == [("ferretti", "prd-review")]
    assert keys == {
        "audit-poller": {
            ("dainese-eng", "incident-postmortem"),
            ("dainese", "meeting-summary"),
            ("dainese-eng", None),
        },
        "claude-code-otlp": {("ferretti", "prd-review")},
        "skills-analytics": {("ferretti", "prd-review")},
        "activity-feed": {("ferretti", "prd-review"), ("ferretti", "sprint-planning")},
    }
    assert set(daily) == {DAY1, DAY2, DAY3}
    one = daily[DAY1]
    assert (one["claude_code_activations"], one["apps_invocations"], one["audit_runs"]) == (
        2,
        12,
        0,
    )
    assert (daily[DAY2]["lifecycle_events"], daily[DAY3]["lifecycle_events"]) == (2, 1)
    sums = _sums(_view(engine), "audit_invocations", "daily_invocations", "activity_events")
    for column, mine in (
        ("audit_invocations", "audit_runs"),
        ("daily_invocations", "apps_invocations"),
        ("activity_events", "lifecycle_events"),
    ):
        assert sum(v[column] for v in sums.values()) == sum(d[mine] or 0 for d in everyone)

    filtered = _report(db_settings, "--by-source", "--source", "activity-feed")
    assert {(r["tenant_slug"], r["skill_id"]) for r in filtered} == keys["activity-feed"]
    done = run_cli("telemetry", "report", "--source", "nope", "--by-source",
                   env=clean_env(db_settings))  # fmt: skip
    assert done.returncode == 1 and "--source 'nope': use one of audit-poller" in done.stderr
    done = run_cli("telemetry", "report", "--skill", "prd-review", env=clean_env(db_settings))
    assert done.returncode == 1 and "go with --by-source" in done.stderr


def test_the_docs_name_every_column_of_the_view_and_no_other(engine: Engine) -> None:
    docs = (ROOT / "docs" / "analytics.md").read_text()
    section = docs.split("### `skill_usage_by_source`", 1)[1].split("\n### ", 1)[0]
    documented = {
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([a-z_]+)`", line.split(" | ")[0])
    }
    with engine.connect() as conn:
        columns = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'skill_usage_by_source'"
                )
            ).scalars()
        )
    assert documented == columns
