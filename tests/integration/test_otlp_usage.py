"""A Claude Code prompt's usage that comes in another export than its activation (issue 20):
attributed to the activation whatever the order, the export or the replica, once under retried
exports, costed where analysts, `telemetry report`, the console and the card footer read it;
unmatched usage bounded. The receiver on loopback over real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.center import operations
from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry.normalise import render_footer
from claresia_sync.telemetry.report import skill_report
from claresia_sync.telemetry.retention import apply_retention
from tests.fixtures.otlp import TOKEN, apply_otlp_tenants, receiver_url

SKILL = "claresia-ferretti-prd-review"
PLUGIN_SKILL = f"{SKILL}:{SKILL}"  # as Claude Code names a plugin's skill
ACCOUNT_UUID = "0b7c3f7e-5d7a-4c61-9a51-3f1d2c4b5a69"
ACCOUNT_ID = "user_01JQ4X8ZK3M2V9W7T5R6Y1B0CD"


@pytest.fixture
def tenants(session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    apply_otlp_tenants(session, monkeypatch)


def _invocations(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT * FROM telemetry_invocation "
                    "WHERE event_type = 'claude_code.skill_activated' ORDER BY event_id"
                )
            )
        )


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def _today_cost(engine: Engine) -> Decimal:
    return Decimal(
        _scalar(
            engine,
            "SELECT coalesce(sum(cost_usd), 0) FROM telemetry_daily "
            "WHERE tenant_slug = 'ferretti' AND skill_id = 'prd-review'",
        )
    )


def test_usage_two_exports_after_its_activation_from_the_opentelemetry_sdk_is_stored_once_and_costed(  # noqa: E501
    engine: Engine, tenants: None
) -> None:
    """Claude Code's own exporter is the OpenTelemetry batch log processor: records wait for
    the export interval, so a prompt's api_request records leave one or more exports after its
    skill_activated. Here two: the activation, then another prompt's records, then the usage
    (sent twice, as an exporter retries)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogExportResult
    from opentelemetry.sdk.resources import Resource

    class Exporter(OTLPLogExporter):
        exports = 0

        def export(self, batch: Any) -> LogExportResult:
            Exporter.exports += 1
            result = super().export(batch)
            if Exporter.exports == 3:  # the usage's export, retried after a lost answer
                result = super().export(batch)
            return result

    common = {
        "session.id": "sess-1",
        "user.id": "9f2c" * 16,  # the install's anonymous id
        "user.account_uuid": ACCOUNT_UUID,
        "user.account_id": ACCOUNT_ID,
        "user.email": "dev@ferretti.example",
        "organization.id": "2f6b1c5e-8a43-4d2f-b0a7-1c9e5d3f7a21",
        "terminal.type": "vscode",
    }
    with receiver_url(engine) as url:
        resource = Resource.create({"service.name": "claude-code", "service.version": "2.1.0"})
        provider = LoggerProvider(resource=resource)
        exporter = Exporter(endpoint=url, headers={"authorization": f"Bearer {TOKEN}"})
        batches = BatchLogRecordProcessor(exporter, schedule_delay_millis=600_000)
        provider.add_log_record_processor(batches)
        logger = provider.get_logger("com.anthropic.claude_code.events", "2.1.0")

        def emit(name: str, prompt: str, seq: int, **attrs: Any) -> None:
            logger.emit(
                body=f"claude_code.{name}",
                attributes={
                    **common,
                    "event.name": name,
                    "event.sequence": seq,
                    "prompt.id": prompt,
                    **attrs,
                },
            )

        emit("user_prompt", "p-1", 1, prompt_length=42)
        emit(
            "skill_activated",
            "p-1",
            2,
            **{
                "skill.name": PLUGIN_SKILL,
                "plugin.name": SKILL,
                "marketplace.name": "ferretti-plugins",
                "skill.source": "plugin",
                "invocation_trigger": "user-slash",
            },
        )
        batches.force_flush()  # export 1: the activation, no usage yet
        emit("user_prompt", "p-2", 3, prompt_length=7)
        batches.force_flush()  # export 2: another prompt
        for seq, (model, cost, ms) in enumerate(
            [("claude-haiku-4-5", 0.25, 1200), ("claude-sonnet-4-5", 0.35, 1100)], start=4
        ):
            emit(
                "api_request",
                "p-1",
                seq,
                model=model,
                input_tokens=1000,
                output_tokens=200,
                cost_usd=cost,
                duration_ms=ms,
                **{"skill.name": "third-party"},  # a private marketplace's skill, as reported
            )
        batches.force_flush()  # export 3: p-1's usage (and its retry)
        provider.shutdown()
    assert Exporter.exports == 3

    (row,) = _invocations(engine)
    assert (row.tenant_slug, row.skill_id, row.invocation_id) == ("ferretti", "prd-review", "p-1")
    assert row.cost_usd == Decimal("0.60") and row.claude_code_requests == 2  # not 4
    assert (row.input_tokens, row.output_tokens, row.duration_ms) == (2000, 400, 2300)
    assert row.model == "claude-sonnet-4-5"  # the prompt's last request's
    assert " · $0.60 · 2.3s · [View record](https://hub.ferretti.claresia.com/" in row.footer_md
    assert (row.actor_user_id, row.actor_account_id) == (ACCOUNT_UUID, ACCOUNT_ID)
    counted = "SELECT count(*) FROM claude_code_request WHERE prompt_id = 'p-1'"
    assert _scalar(engine, counted) == 2
    # No email anywhere unless configured.
    for table in ("telemetry_event", "claude_code_activation", "claude_code_prompt"):
        found = _scalar(engine, f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%@%'")
        assert found == 0, table

    # What reads the cost: the daily view, `telemetry report`, the console's figures.
    assert _today_cost(engine) == Decimal("0.60")
    with engine.connect() as conn:
        (figures,) = skill_report(conn, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert figures.cost_usd == Decimal("0.60") and figures.invocations == 1
    (day,) = operations.telemetry_daily(engine, days=2, tenant_slug="ferretti", skill=None)
    assert Decimal(str(day["cost_usd"])) == Decimal("0.60")
    (summary,) = operations.telemetry_summary(
        engine, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=1), tenant_slug="ferretti"
    )
    assert Decimal(str(summary["cost_usd"])) == Decimal("0.60")


def _value(v: Any) -> AnyValue:
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _export(records: Sequence[tuple[str, dict[str, Any]]], at: int) -> bytes:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for i, (name, attrs) in enumerate(records):
        record = scope.log_records.add()
        record.time_unix_nano = at + i * 1_000_000
        record.body.string_value = f"claude_code.{name}"
        record.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in attrs.items())
    return request.SerializeToString()


def _post(url: str, body: bytes) -> int:
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {TOKEN}"}
    return httpx2.post(url, content=body, headers=headers, timeout=10).status_code


def _activation(prompt: str, seq: int) -> tuple[str, dict[str, Any]]:
    attrs = {"session.id": "s", "prompt.id": prompt, "event.sequence": seq}
    return "skill_activated", {**attrs, "skill.name": PLUGIN_SKILL, "plugin.name": SKILL}


def _request(prompt: str, seq: int, cost: float, ms: int = 1000) -> tuple[str, dict[str, Any]]:
    attrs = {"session.id": "s", "prompt.id": prompt, "event.sequence": seq, "model": "m"}
    return "api_request", {**attrs, "cost_usd": cost, "duration_ms": ms, "input_tokens": 10}


def test_usage_before_its_activation_and_at_another_replica_counts_once(
    engine: Engine, tenants: None
) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
    first = _export([_request("p-1", 1, 0.1)], now)  # the request that chose the skill
    second = _export([_activation("p-1", 2), _request("p-2", 1, 5.0)], now + 10**9)
    third = _export([_request("p-1", 3, 0.2)], now + 2 * 10**9)
    with receiver_url(engine) as one, receiver_url(engine) as other:
        assert _post(one, first) == 200
        assert _invocations(engine) == []  # usage alone is no activation
        assert _post(other, second) == 200
        assert _invocations(engine)[0].cost_usd == Decimal("0.1")  # known so far
        assert [_post(u, third) for u in (one, other, one)] == [200, 200, 200]  # retried
    (row,) = _invocations(engine)
    assert row.cost_usd == Decimal("0.3") and row.claude_code_requests == 2
    assert _today_cost(engine) == Decimal("0.3")  # p-2's 5.0 is no activation of ours


def test_a_prompt_that_activates_two_skills_counts_its_cost_once(
    engine: Engine, tenants: None
) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1e9)
    nested = ("skill_activated", {**_activation("p-1", 3)[1], "invocation_trigger": "nested-skill"})
    body = _export([_activation("p-1", 1), _request("p-1", 2, 0.4), nested], now)
    with receiver_url(engine) as url:
        assert _post(url, body) == 200
    first, second = _invocations(engine)
    assert (first.cost_usd, second.cost_usd) == (Decimal("0.4"), None)
    assert _today_cost(engine) == Decimal("0.4")


def test_usage_that_finds_no_activation_waits_a_bounded_time(engine: Engine, tenants: None) -> None:
    now = dt.datetime.now(dt.UTC)
    at = int(now.timestamp() * 1e9)
    body = _export([_activation("p-1", 1), _request("p-1", 2, 0.4), _request("p-9", 1, 0.7)], at)
    with receiver_url(engine) as url:
        assert _post(url, body) == 200

    def prompts() -> list[str]:
        with engine.connect() as conn:
            sql = "SELECT prompt_id FROM claude_code_prompt ORDER BY 1"
            return list(conn.execute(text(sql)).scalars())

    soon = apply_retention(engine, 365, now=now + dt.timedelta(hours=23))
    assert (soon.claude_code.unmatched, soon.claude_code.requests) == (0, 0)
    assert prompts() == ["p-1", "p-9"]
    later = apply_retention(engine, 365, now=now + dt.timedelta(hours=25), usage_wait_hours=24)
    assert later.claude_code.unmatched == 1 and prompts() == ["p-1"]  # p-9: no activation
    assert later.claude_code.requests == 2  # nothing is retried that late
    assert _invocations(engine)[0].cost_usd == Decimal("0.4")


def test_the_footer_with_usage_in_sql_is_the_footer_of_the_normaliser(engine: Engine) -> None:
    """The view adds cost and duration to a stored footer (`claresia_footer_with_usage`); it
    must write them as `render_footer` does, for every cost and duration."""
    rng = random.Random(20)
    costs = [Decimal(c) for c in ("0", "0.005", "0.00005", "0.009995", "0.01", "0.125", "0.6")]
    costs += [Decimal(rng.randint(0, 10**10)) / 10**6 for _ in range(300)]
    durations = [0, 50, 2250, 2350, 59949, 59950, 60000, 61999, 3_600_000]
    durations += [rng.randint(0, 10**7) for _ in range(300)]
    url = f"https://hub.ferretti.claresia.com/records/rec_{uuid.uuid4().hex}"
    plain = render_footer(
        title="PRD [Review] · x",
        failed=False,
        error_type=None,
        cost=None,
        duration_ms=None,
        record_url=url,
    )
    pairs = list(zip(costs * 2, durations * 2, strict=False))
    with engine.connect() as conn:
        got = conn.execute(
            text(
                "SELECT claresia_footer_with_usage(:footer, c, d) FROM unnest("
                "CAST(:costs AS numeric[]), CAST(:durations AS bigint[])) AS t(c, d)"
            ),
            {"footer": plain, "costs": [c for c, _ in pairs], "durations": [d for _, d in pairs]},
        ).scalars()
        for (cost, ms), footer in zip(pairs, got, strict=True):
            expected = render_footer(
                title="PRD [Review] · x",
                failed=False,
                error_type=None,
                cost=cost,
                duration_ms=ms,
                record_url=url,
            )
            assert footer == expected, (cost, ms)


def test_a_request_twice_in_one_transaction_counts_once(engine: Engine) -> None:
    """Group commit may put an export and its retry in one transaction."""
    from claresia_sync.telemetry import otlp_usage

    request = {
        "tenant_slug": "ferretti",
        "session_id": "s",
        "prompt_id": "p-1",
        "request_key": -42,
        "occurred_at": dt.datetime.now(dt.UTC),
        "model": "m",
        "input_tokens": 5,
        "output_tokens": 6,
        "cost_usd": Decimal("0.5"),
        "duration_ms": 700,
    }
    with engine.begin() as conn:
        otlp_usage.store(conn, [], [request, dict(request)])
    with engine.begin() as conn:
        otlp_usage.store(conn, [], [request])  # and a retry later
    assert _scalar(engine, "SELECT requests || ' ' || cost_usd FROM claude_code_prompt") == "1 0.5"


def test_an_export_with_a_counted_request_and_a_new_one_adds_only_the_new_one(
    engine: Engine,
) -> None:
    """A prompt's upsert skips a prompt that counted one of the export's requests already;
    the second pass adds the others (and the activation's first event id) to it."""
    from claresia_sync.telemetry import otlp_usage

    def request(key: int, cost: str) -> dict[str, Any]:
        return {
            "tenant_slug": "ferretti",
            "session_id": "s",
            "prompt_id": "p-1",
            "request_key": key,
            "occurred_at": dt.datetime.now(dt.UTC),
            "model": f"m{key}",
            "input_tokens": 5,
            "output_tokens": 6,
            "cost_usd": Decimal(cost),
            "duration_ms": 700,
        }

    activation = {
        "event_id": "otlp_01",
        "tenant_slug": "ferretti",
        "session_id": "s",
        "prompt_id": "p-1",
        "occurred_at": dt.datetime.now(dt.UTC),
        "account_uuid": None,
        "account_id": None,
    }
    other = {**request(9, "0.25"), "prompt_id": "p-2"}
    with engine.begin() as conn:
        otlp_usage.store(conn, [], [request(1, "0.5")])
    with engine.begin() as conn:  # p-1: request 1 again, request 2 new; p-2 new
        otlp_usage.store(conn, [activation], [request(1, "0.5"), request(2, "0.75"), other])
    with engine.begin() as conn:  # and all of it once more
        otlp_usage.store(conn, [activation], [request(1, "0.5"), request(2, "0.75"), other])
    got = "SELECT string_agg(concat_ws(' ', prompt_id, requests, cost_usd, first_event_id, model, "
    got += "array_to_string(request_keys, ',')), '; ' ORDER BY prompt_id) FROM claude_code_prompt"
    assert _scalar(engine, got) == "p-1 2 1.25 otlp_01 m2 1,2; p-2 1 0.25 m9 9"
    assert _scalar(engine, "SELECT count(*) FROM claude_code_request") == 3
