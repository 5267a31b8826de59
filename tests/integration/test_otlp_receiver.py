"""Claude Code's OTLP/HTTP logs into `telemetry_event` (issue 16): the receiver on loopback over
real PostgreSQL; exports shaped as Claude Code sends them (`emulator.claude_code`) and from the
OpenTelemetry SDK's own exporter."""

from __future__ import annotations

import gzip
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.claude_code import Prompt, encode, export, export_request
from claresia_sync.telemetry import otlp
from claresia_sync.telemetry.otlp_receiver import OtlpReceiver
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.fixtures.otlp import TOKEN, apply_otlp_tenants, receiver_url, serve

SKILL = "claresia-ferretti-prd-review"
OTHER = "claresia-acme-prd-review"  # a skill of another tenant


@pytest.fixture
def tenants(session: Session, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    apply_otlp_tenants(session, monkeypatch)


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT i.event_id, i.tenant_slug, i.skill_id, i.model, i.input_tokens, "
                    "i.cost_usd, i.duration_ms, i.invocation_id, i.occurred_at, i.ingested_at, "
                    "e.raw, i.footer_md FROM telemetry_invocation i "
                    "JOIN telemetry_event e ON e.event_id = i.event_id "
                    "WHERE i.event_type = 'claude_code.skill_activated'"
                )
            )
        )


def _quarantined(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT event_id, reason FROM telemetry_quarantine")))


def _post(url: str, body: bytes, headers: dict[str, str], **kw: Any) -> httpx2.Response:
    return httpx2.post(url, content=body, headers=headers, **kw)


def _auth(headers: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    return {**headers, "authorization": f"Bearer {token}"}


def test_claude_code_exports_become_rows_with_their_prompts_usage(
    engine: Engine, tenants: None
) -> None:
    with receiver_url(engine) as url:
        sent = time.time()
        statuses = export(url, TOKEN, [Prompt(SKILL)] * 3, seed=1, interval_s=0.5, pace=False)
        assert len(statuses) >= 2 and set(statuses) == {200}  # the usage came later
        body, headers = encode(export_request([Prompt(SKILL)], seed=2), "http/json", True)
        reply = _post(url, body, _auth(headers))
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    rows = _rows(engine)
    assert len(rows) == 4
    for row in rows:
        assert row.tenant_slug == "ferretti" and row.skill_id == "prd-review"
        assert row.model and row.input_tokens > 0 and row.cost_usd > 0 and row.duration_ms > 0
        assert row.invocation_id  # the prompt
        assert "user.email" not in row.raw["attributes"]  # not stored unless configured
        assert abs(row.occurred_at.timestamp() - sent) < 60  # seconds old
        assert (row.ingested_at - row.occurred_at).total_seconds() < 60
        assert "[View record](https://hub.ferretti.claresia.com/records/rec_" in row.footer_md


def test_a_retried_export_after_a_timeout_is_stored_once(engine: Engine, tenants: None) -> None:
    class Slow(OtlpReceiver):
        def _store(self, batch: list[tuple[str, otlp.Normalised]]) -> None:
            time.sleep(1.0)  # the client gives up first; the server still commits
            super()._store(batch)

    body, headers = encode(export_request([Prompt(SKILL)] * 5, seed=3), "http/protobuf", True)
    with serve(Slow(engine, TelemetrySettings())) as url:
        with pytest.raises(httpx2.TimeoutException):
            _post(url, body, _auth(headers), timeout=0.3)
        deadline = time.monotonic() + 15  # a loaded machine may take more than the 1 s
        while not _rows(engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_rows(engine)) == 5  # the first attempt was stored
        retried = _post(url, body, _auth(headers), timeout=10)
    assert retried.status_code == 200
    assert len(_rows(engine)) == 5  # and the retry added nothing
    reply = ExportLogsServiceResponse.FromString(retried.content)
    assert reply.partial_success.rejected_log_records == 0


def test_exports_waiting_together_share_a_transaction_and_a_bad_one_fails_alone(
    engine: Engine, tenants: None
) -> None:
    """Group commit: exports that wait while the writers are busy (here one) are stored in one
    transaction; when that transaction fails, each export is tried alone, and only the bad one
    is refused."""
    batches: list[list[int]] = []

    class Grouping(OtlpReceiver):
        def _store(self, batch: list[tuple[str, otlp.Normalised]]) -> None:
            sizes = [len(n.rows) for _, n in batch]
            batches.append(sizes)
            time.sleep(0.5 if len(batches) == 1 else 0)  # the others queue up meanwhile
            if 3 in sizes:  # the export of 3 prompts cannot be stored
                raise RuntimeError("the bad export")
            super()._store(batch)

    def body(prompts: int, seed: int) -> tuple[bytes, dict[str, str]]:
        return encode(export_request([Prompt(SKILL)] * prompts, seed=seed), "http/protobuf", True)

    bodies = [body(1, 10), body(2, 11), body(2, 12), body(3, 13), body(2, 14)]
    with serve(Grouping(engine, TelemetrySettings(), max_writers=1)) as url:
        answers: list[httpx2.Response] = []
        first = threading.Thread(
            target=lambda: answers.append(_post(url, bodies[0][0], _auth(bodies[0][1])))
        )
        first.start()
        time.sleep(0.2)  # the first export is being written
        with ThreadPoolExecutor(4) as pool:
            rest = list(pool.map(lambda b: _post(url, b[0], _auth(b[1]), timeout=10), bodies[1:]))
        first.join()
    assert answers[0].status_code == 200
    assert [a.status_code for a in rest] == [200, 200, 503, 200]
    assert "the bad export" in Status.FromString(rest[2].content).message
    assert any(len(b) > 1 for b in batches), batches  # some exports shared a transaction
    assert len(_rows(engine)) == 1 + 2 + 2 + 2  # all but the bad one, each once


def test_malformed_exports_are_refused_and_nothing_is_stored(engine: Engine, tenants: None) -> None:
    good, headers = encode(export_request([Prompt(SKILL)] * 2, seed=4), "http/protobuf", False)
    json_headers = {"content-type": "application/json"}
    bomb = gzip.compress(b"\0" * 50_000)
    with receiver_url(engine, max_body_bytes=8192) as url:
        cases = [
            # (body, headers, status, words in the reason)
            (b"\xff\xfe not protobuf", _auth(headers), 400, "not a protobuf"),
            (b'{"resourceLogs": "x"}', _auth(json_headers), 400, "not an OTLP JSON"),
            (
                b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
                _auth(json_headers),
                400,
                "not an OTLP JSON",
            ),
            (good, _auth({**headers, "content-type": "text/plain"}), 400, "not OTLP/HTTP"),
            (good, _auth({**headers, "content-encoding": "gzip"}), 400, "not gzip"),
            (b"x" * 9000, _auth(headers), 413, "over 8192 bytes"),
            (bomb, _auth({**headers, "content-encoding": "gzip"}), 413, "inflates"),
            (good, _auth(headers, "not-the-token-0123456789"), 401, "bearer token"),
            (good, headers, 401, "bearer token"),
        ]
        for body, sent_headers, status, words in cases:
            answer = _post(url, body, sent_headers)
            assert answer.status_code == status, (words, answer.status_code)
            kind = answer.headers["content-type"]
            reason = (
                answer.json()["message"]
                if kind == "application/json"
                else Status.FromString(answer.content).message
            )
            assert words in reason, (status, reason)
    assert _rows(engine) == [] and _quarantined(engine) == []


def test_records_of_another_tenant_are_rejected_as_a_partial_success(
    engine: Engine, tenants: None
) -> None:
    request = export_request([Prompt(SKILL), Prompt(OTHER), Prompt("pdf-tools")], seed=5)
    body, headers = encode(request, "http/protobuf", True)
    with receiver_url(engine) as url:
        first = _post(url, body, _auth(headers))
        again = _post(url, body, _auth(headers))
    for answer in (first, again):
        assert answer.status_code == 200
        reply = ExportLogsServiceResponse.FromString(answer.content)
        assert reply.partial_success.rejected_log_records == 1
        assert "belongs to tenant 'acme'" in reply.partial_success.error_message
    assert [r.skill_id for r in _rows(engine)] == ["prd-review"]  # not "pdf-tools": not ours
    (entry,) = _quarantined(engine)  # once, though sent twice
    assert entry.event_id.startswith("otlp_") and "acme" in entry.reason


def test_back_pressure_and_an_unavailable_database(engine: Engine, tenants: None) -> None:
    body, headers = encode(export_request([Prompt(SKILL)], seed=6), "http/protobuf", False)
    with receiver_url(engine, max_waiting=0) as url:
        busy = _post(url, body, _auth(headers))
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    from sqlalchemy import create_engine

    gone = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with receiver_url(gone) as url:
        down = _post(url, body, _auth(headers))
    assert down.status_code == 503 and int(down.headers["retry-after"]) > 0
    assert _rows(engine) == []


def test_the_opentelemetry_sdk_exporter_is_an_outside_client(engine: Engine, tenants: None) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    with receiver_url(engine) as url:
        provider = LoggerProvider(resource=Resource.create({"service.name": "claude-code"}))
        exporter = OTLPLogExporter(endpoint=url, headers={"authorization": f"Bearer {TOKEN}"})
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("com.anthropic.claude_code.events")
        common = {"session.id": "s-1", "prompt.id": "p-1", "user.id": "u-1"}
        logger.emit(
            body="claude_code.skill_activated",
            event_name="claude_code.skill_activated",
            attributes={**common, "skill.name": SKILL, "event.sequence": 1},
        )
        logger.emit(
            body="claude_code.api_request",
            attributes={
                **common,
                "event.name": "api_request",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1200,
                "output_tokens": 300,
                "cost_usd": 0.0081,
                "duration_ms": 2300,
            },
        )
        provider.shutdown()
    (row,) = _rows(engine)
    # one request each: the api_request came in another export, and is the row's usage
    assert row.skill_id == "prd-review" and row.invocation_id == "p-1"
    assert (row.model, row.cost_usd, row.duration_ms) == (
        "claude-sonnet-4-5",
        Decimal("0.0081"),
        2300,
    )


def test_records_postgresql_cannot_hold_are_quarantined_not_retried_forever(
    engine: Engine, tenants: None
) -> None:
    """A NUL (valid in a protobuf string, refused by PostgreSQL's text and jsonb) in an
    activation's attribute or an api_request's: the activation is quarantined with a readable
    copy, the request adds nothing, the rest of the export is stored and answered 200."""
    request = export_request([Prompt(SKILL)] * 3, seed=11)
    records = request.resource_logs[0].scope_logs[0].log_records
    activations = [r for r in records if otlp.event_name(r) == otlp.SKILL_ACTIVATED]
    poisoned = next(kv for kv in activations[0].attributes if kv.key == "terminal.type")
    poisoned.value.string_value = "vs\x00code"
    for record in records:
        if otlp.event_name(record) == otlp.API_REQUEST:
            model = next(kv for kv in record.attributes if kv.key == "model")
            model.value.string_value = "claude\x00"
            break
    body, headers = encode(request, "http/protobuf", False)
    with receiver_url(engine) as url:
        first = _post(url, body, _auth(headers))
        again = _post(url, body, _auth(headers))
    for answer in (first, again):
        assert answer.status_code == 200, Status.FromString(answer.content).message
        reply = ExportLogsServiceResponse.FromString(answer.content)
        assert reply.partial_success.rejected_log_records == 1
        assert "NUL" in reply.partial_success.error_message
    assert len(_rows(engine)) == 2
    (entry,) = _quarantined(engine)
    assert "terminal.type" in entry.reason
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT raw FROM telemetry_quarantine")).scalar_one()
        models = conn.execute(text("SELECT model FROM claude_code_prompt")).scalars().all()
    assert raw["attributes"]["terminal.type"] == "vs\ufffdcode"
    assert all(m is None or "\x00" not in m for m in models)
