"""Claude Code's OpenTelemetry log export, emulated (issues 16, 20): what a Claude Code client
sends to `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` with `OTEL_LOGS_EXPORTER=otlp`,
`OTEL_LOG_TOOL_DETAILS=1`, as Claude Code's monitoring guide and a public capture show it.

Per simulated prompt, in its session: a `claude_code.user_prompt`, sometimes the
`claude_code.api_request` that chose the skill, a `claude_code.skill_activated` (`skill.name`
`<plugin>:<skill>` with `plugin.name` and `marketplace.name` for a plugin's skill, bare
otherwise; `skill.source`; `invocation_trigger` one of `TRIGGERS`), then one or two more
`api_request` records (model, tokens, `cost_usd`, `duration_ms`; `skill.name` reads
`third-party` for a private marketplace's skill) one to two and a half export intervals later.
All carry the prompt's `prompt.id`, an increasing `event.sequence`, the session, a random
anonymous install id (`user.id`), the account (`user.account_uuid`, `user.account_id`,
`user.email`) and a UUID `organization.id`; the resource `service.name` `claude-code`. The body of
a record is its event name and `event.name` its short name, as Claude Code writes them.

Claude Code's batch log processor exports what was logged every `OTEL_LOGS_EXPORT_INTERVAL`
(5 s) or when 512 records wait: `export_batches` cuts the records the same way (in simulated
time), so a prompt's usage usually comes one or two exports after its activation;
`export_request` puts every record in one request. Sent as OTLP/HTTP (`http/protobuf` or
`http/json`, gzip optional) with a bearer token.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
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

MODELS = (("claude-sonnet-4-5", 3.0, 15.0), ("claude-haiku-4-5", 1.0, 5.0))
VERSION = "2.1.0"
TRIGGERS = ("user-slash", "claude-proactive", "nested-skill", "agent-preload")
"""`invocation_trigger` as documented (the last one seen in a capture)."""
EXPORT_INTERVAL_S = 5.0  # OTEL_LOGS_EXPORT_INTERVAL's default
MAX_EXPORT_BATCH = 512  # the batch log processor's default
PROMPT_SPACING_S = 0.25  # simulated time between two prompts' starts
_NS = 1_000_000_000


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
    """The published name (`claresia-ferretti-prd-review`)."""
    plugin: bool = True
    """A skill of a plugin of the same name (claude-enterprise): `<name>:<name>`; else bare."""
    account_uuid: str = ""
    """The user's account (random when empty); `user.account_id` and the email follow it."""
    email: str = "dev@example.com"
    session_id: str = ""
    trigger: str = ""
    """`invocation_trigger` (random among `TRIGGERS` when empty)."""


@dataclass(frozen=True)
class _Record:
    at: int  # time_unix_nano
    name: str
    attrs: dict[str, Any]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _records(
    prompts: Sequence[Prompt], rng: random.Random, start: int, interval_s: float
) -> list[_Record]:
    """Every prompt's records in simulated time from `start`, in time order."""
    organization = _uuid(rng)
    out: list[_Record] = []
    for i, prompt in enumerate(prompts):
        account = prompt.account_uuid or _uuid(rng)
        common = {
            "session.id": prompt.session_id or _uuid(rng),
            "user.id": f"{rng.getrandbits(256):064x}",  # the install's anonymous id
            "user.account_uuid": account,
            "user.account_id": f"user_{hashlib.sha256(account.encode()).hexdigest()[:24]}",
            "user.email": prompt.email,
            "organization.id": organization,
            "terminal.type": "vscode",
            "prompt.id": _uuid(rng),
        }
        at = start + int(i * PROMPT_SPACING_S * _NS)
        activated = at + int(rng.uniform(1.0, 2.0) * _NS)
        events: list[tuple[int, str, dict[str, Any]]] = [
            (at, "user_prompt", {"prompt_length": rng.randint(10, 400)})
        ]
        if rng.random() < 0.5:  # the request that chose the skill, before it
            events.append((activated - int(0.5 * _NS), "api_request", _usage(rng, None)))
        name = f"{prompt.skill}:{prompt.skill}" if prompt.plugin else prompt.skill
        plugin = (
            {"plugin.name": prompt.skill, "marketplace.name": "organization"}
            if prompt.plugin
            else {}
        )
        events.append(
            (
                activated,
                "skill_activated",
                {
                    "skill.name": name,
                    "skill.source": "plugin" if prompt.plugin else "projectSettings",
                    **plugin,
                    "invocation_trigger": prompt.trigger or rng.choice(TRIGGERS),
                },
            )
        )
        later = activated + int(rng.uniform(1.0, 2.5) * interval_s * _NS)
        for n in range(rng.choice((1, 2))):  # usage: one or two exports later
            skill = "third-party" if prompt.plugin else prompt.skill
            events.append((later + n * 1000, "api_request", _usage(rng, skill)))
        for seq, (t, event, attrs) in enumerate(sorted(events, key=lambda e: e[0])):
            stamp = dt.datetime.fromtimestamp(t / _NS, dt.UTC).isoformat(timespec="milliseconds")
            full = {
                **common,
                "event.name": event,
                "event.timestamp": stamp.replace("+00:00", "Z"),
                "event.sequence": seq,
                **attrs,
            }
            out.append(_Record(t, event, full))
    out.sort(key=lambda r: r.at)
    return out


def _usage(rng: random.Random, skill: str | None) -> dict[str, Any]:
    model, price_in, price_out = rng.choice(MODELS)
    tokens_in, tokens_out = rng.randint(500, 6000), rng.randint(50, 1500)
    cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000
    return {
        "model": model,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cache_read_tokens": 0,
        "cache_creation_tokens": 0,
        "cost_usd": round(cost, 6),
        "duration_ms": rng.randint(400, 9000),
        **({"skill.name": skill} if skill else {}),
    }


def _request(records: Iterable[_Record]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(
        _kvs({"service.name": "claude-code", "service.version": VERSION, "os.type": "linux"})
    )
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "com.anthropic.claude_code.events"
    scope.scope.version = VERSION
    for r in records:
        record = scope.log_records.add()
        record.time_unix_nano = r.at
        record.observed_time_unix_nano = r.at
        record.severity_text = "INFO"
        record.body.string_value = f"claude_code.{r.name}"
        record.attributes.extend(_kvs(r.attrs))
    return request


def _start(prompts: int, interval_s: float) -> int:
    """A start such that the simulated records end about now (none in the future)."""
    span = prompts * PROMPT_SPACING_S + 4 * interval_s
    return time.time_ns() - int(span * _NS)


def export_request(
    prompts: Sequence[Prompt], *, seed: int | None = None
) -> ExportLogsServiceRequest:
    """Every record of these prompts in one request (one resource, one scope)."""
    rng = random.Random(seed)
    return _request(_records(prompts, rng, _start(len(prompts), EXPORT_INTERVAL_S), 0.0))


def export_batches(
    prompts: Sequence[Prompt],
    *,
    seed: int | None = None,
    interval_s: float = EXPORT_INTERVAL_S,
    max_batch: int = MAX_EXPORT_BATCH,
) -> list[ExportLogsServiceRequest]:
    """The requests Claude Code's batch exporter would send for these prompts: what was logged
    during each `interval_s` of simulated time, at most `max_batch` records each, in order."""
    rng = random.Random(seed)
    start = _start(len(prompts), interval_s)
    windows: dict[int, list[_Record]] = {}
    for record in _records(prompts, rng, start, interval_s):
        windows.setdefault(int((record.at - start) / (interval_s * _NS)), []).append(record)
    return [
        _request(window[i : i + max_batch])
        for _, window in sorted(windows.items())
        for i in range(0, len(window), max_batch)
    ]


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
    interval_s: float = EXPORT_INTERVAL_S,
    pace: bool = True,
    seed: int | None = None,
    timeout: float = 10.0,
) -> list[int]:
    """Send the prompts' records to `endpoint` (…/v1/logs) as Claude Code's batch exporter
    does (`export_batches`), waiting `interval_s` between two exports when `pace`; the HTTP
    status of each export."""
    statuses = []
    with httpx2.Client(timeout=timeout) as client:
        for i, request in enumerate(
            export_batches(list(prompts), seed=seed, interval_s=interval_s)
        ):
            if pace and i:
                time.sleep(interval_s)
            body, headers = encode(request, protocol, compress)
            headers["authorization"] = f"Bearer {token}"
            statuses.append(client.post(endpoint, content=body, headers=headers).status_code)
    return statuses
