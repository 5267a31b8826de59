"""`plan_group`: the read-modify-write of one group's Claude Code managed settings, on documents
alone (no API): ours set or removed, everything else as it was."""

from __future__ import annotations

from typing import Any

from claresia_sync.publish.claude_code_settings import (
    SECRET_ENV,
    TELEMETRY_ENV,
    Owned,
    plan_group,
    wanted_env,
)

WANT = wanted_env("https://r.example:4318/", "tok-0123456789abcdef")
G = "rbac_group_x"


def test_wanted_env_points_at_v1_logs_with_the_token() -> None:
    assert list(WANT) == list(TELEMETRY_ENV)
    assert WANT["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == "https://r.example:4318/v1/logs"
    assert WANT[SECRET_ENV] == "Authorization=Bearer tok-0123456789abcdef"


def test_a_group_without_settings_gets_a_document_of_ours_and_loses_it_again() -> None:
    made = plan_group(G, None, WANT, None)
    assert made.after == {"env": WANT} and made.writes
    assert made.owned == Owned(TELEMETRY_ENV, created=True)
    assert "Bearer ****" in made.diff() and "tok-" not in made.diff()
    gone = plan_group(G, made.after, None, made.owned)
    assert gone.after is None and gone.writes and gone.owned is None
    assert plan_group(G, None, None, None).writes is False


def test_other_settings_are_kept_and_a_same_valued_entry_is_not_claimed() -> None:
    theirs: dict[str, Any] = {"env": {"A": "1", "OTEL_LOGS_EXPORTER": "otlp"}, "model": "m"}
    plan = plan_group(G, theirs, WANT, None)
    assert plan.after == {"env": {**theirs["env"], **WANT}, "model": "m"}
    assert plan.owned is not None and "OTEL_LOGS_EXPORTER" not in plan.owned.env
    assert plan.owned.created is False
    assert plan_group(G, plan.after, WANT, plan.owned).writes is False  # idempotent
    off = plan_group(G, plan.after, None, plan.owned)
    assert off.after == theirs  # theirs back exactly, their OTEL_LOGS_EXPORTER included


def test_an_entry_of_ours_set_otherwise_by_someone_else_is_a_conflict() -> None:
    theirs = {"env": {"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=theirs"}}
    plan = plan_group(G, theirs, WANT, None)
    assert plan.conflict is not None and "OTEL_EXPORTER_OTLP_HEADERS" in plan.conflict
    assert "theirs" not in plan.conflict and plan.writes is False
    assert plan_group(G, {"env": "x"}, WANT, None).conflict is not None


def test_a_new_endpoint_or_token_changes_only_those_entries() -> None:
    first = plan_group(G, {"model": "m"}, WANT, None)
    rotated = wanted_env("https://r.example:4318", "tok-fedcba9876543210")
    plan = plan_group(G, first.after, rotated, first.owned)
    assert [(op, name) for op, name, _ in plan.changes] == [("~", SECRET_ENV)]
    assert plan.diff() == f"~ {SECRET_ENV}=Authorization=Bearer ****"
