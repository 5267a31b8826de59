"""Claude Code's OpenTelemetry log export, emulated (issue 16): what a Claude Code client sends
to `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` with `OTEL_LOGS_EXPORTER=otlp`, `OTEL_LOG_TOOL_DETAILS=1`.

Per simulated prompt, in one session: a `claude_code.user_prompt`, a
`claude_code.skill_activated` (`skill.name`, `skill.source`, `invocation_trigger`) and one or
two `claude_code.api_request` (model, tokens, `cost_usd`, `duration_ms`), all with the prompt's
`prompt.id` and an increasing `event.sequence`; the resource carries `service.name`
`claude-code`, and each record the session, user and organisation attributes. The body of a
record is its event name and `event.name` its short name, as Claude Code writes them.
Sent as OTLP/HTTP (`http/protobuf` or `http/json`, gzip optional) with a bearer token.
"""

from __future__ import annotations

import gzip
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

MODELS = (("claude-sonnet-4-5", 3.0, 15.0), ("claude-haiku-4-5", 1.0, 5.0))
VERSION = "2.1.0"


def _value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in attrs.items()]


@dataclass(frozen=True)
class Prompt:
    skill: str
    user_id: str = "user_cc_1"
    email: str = "dev@example.com"
    session_id: str = ""


def export_request(
    prompts: Sequence[Prompt], *, seed: int | None = None
) -> ExportLogsServiceRequest:
    """The log records Claude Code would export for these prompts (one resource, one scope)."""
    rng = random.Random(seed)
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        _kvs({"service.name": "claude-code", "service.version": VERSION, "os.type": "linux"})
    )
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "com.anthropic.claude_code.events"
    scope.scope.version = VERSION
    now = time.time_ns()
    for i, prompt in enumerate(prompts):
        session = prompt.session_id or str(uuid.UUID(int=rng.getrandbits(128)))
        common = {
            "session.id": session,
            "user.id": prompt.user_id,
            "user.account_uuid": prompt.user_id,
            "user.email": prompt.email,
            "organization.id": "a1b2c3d4-0000-4000-8000-000000000000",
            "terminal.type": "vscode",
            "prompt.id": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        at = now + i * 1_000_000  # 1 ms apart
        events: list[tuple[str, dict[str, Any]]] = [
            ("user_prompt", {"prompt_length": rng.randint(10, 400)}),
            (
                "skill_activated",
                {
                    "skill.name": prompt.skill,
                    "skill.source": "plugin",
                    "invocation_trigger": "model",
                },
            ),
        ]
        for _ in range(rng.choice((1, 2))):
            model, price_in, price_out = rng.choice(MODELS)
            tokens_in, tokens_out = rng.randint(500, 6000), rng.randint(50, 1500)
            cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000
            events.append(
                (
                    "api_request",
                    {
                        "model": model,
                        "input_tokens": tokens_in,
                        "output_tokens": tokens_out,
                        "cache_read_tokens": 0,
                        "cost_usd": round(cost, 6),
                        "duration_ms": rng.randint(400, 9000),
                    },
                )
            )
        for seq, (name, attrs) in enumerate(events):
            record: LogRecord = scope.log_records.add()
            record.time_unix_nano = at + seq * 1000
            record.observed_time_unix_nano = record.time_unix_nano
            record.severity_text = "INFO"
            record.body.string_value = f"claude_code.{name}"
            record.attributes.extend(
                _kvs({**common, "event.name": name, "event.sequence": seq, **attrs})
            )
    return request


def encode(
    request: ExportLogsServiceRequest, protocol: str, compress: bool
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one OTLP/HTTP export (`http/protobuf` or `http/json`)."""
    if protocol == "http/json":
        body = json_format.MessageToJson(request, indent=None).encode()
        headers = {"content-type": "application/json"}
    else:
        body = request.SerializeToString()
        headers = {"content-type": "application/x-protobuf"}
    if compress:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return body, headers


def export(
    endpoint: str,
    token: str,
    prompts: Iterable[Prompt],
    *,
    protocol: str = "http/protobuf",
    compress: bool = True,
    batch: int = 100,
    seed: int | None = None,
    timeout: float = 10.0,
) -> list[int]:
    """Send the prompts' records to `endpoint` (…/v1/logs), `batch` prompts per request, as
    Claude Code's batch exporter does; the HTTP status of each request."""
    statuses = []
    pending = list(prompts)
    with httpx2.Client(timeout=timeout) as client:
        for start in range(0, len(pending), batch):
            request = export_request(pending[start : start + batch], seed=seed)
            body, headers = encode(request, protocol, compress)
            headers["authorization"] = f"Bearer {token}"
            statuses.append(client.post(endpoint, content=body, headers=headers).status_code)
    return statuses
