"""Fault injection for the emulator, and its call statistics.

Faults apply to the API routes (`/v1/...`) only, never to the `/_emulator/` control routes.
A `script` answers the next matching requests in order (deterministic, for tests: e.g.
`[503, "pass", "corrupt:truncated", 429]`); the probabilities add noise (for benchmarks and soak
runs); `rate_limit_rps` is a token bucket per admin key.

Corrupt answers (`rate_corrupt`, `corrupt_modes`, script steps `"corrupt:<mode>"`) are decided
AFTER the real handler ran, so a write really happened when its answer is garbage (a POST that
created a skill and answered junk: the client must not make a twin on the next run). Only 2xx
answers are corrupted; error answers pass unchanged. Modes:
- `truncated`: the JSON body cut in half;
- `not_json`: an HTML page, as a misbehaving proxy serves;
- `wrong_types`: list answers get `has_more: "yes"` and integer ids, single objects an integer
  id; audit pages keep their shape but every other event gets a number for `created_at` and a
  list for `workspace_id` (ids kept, so the quarantine rows can be told apart);
- `missing_fields`: list answers lose `data`, single objects their `id`; audit pages keep their
  shape but every other event loses `id`, `type` or `created_at` in turn;
- `huge_page`: list answers hold 50 times the `limit` asked for (the real items: the request is
  re-run with the larger limit); other answers carry a `padding` of `huge_body_bytes`;
- `bad_cursor` (list answers only, others pass unchanged): only the first `limit` items with the
  `last_id` of twice as many (a cursor that would skip items), or, when nothing lies beyond,
  the items in descending order.

Error codes of the real API (`ErrorCode`: script steps by name, `code_rates` by probability)
are decided by the handler of a route they apply to (`CODE_ROUTES`), since each changes state
as the real API would: `plugin_name_taken` (an administrator's plugin of that name appears
first), `skill_name_taken`, `registration_pending` (the plugin or version is stored, 503),
`scan_pending` / `scan_failed` / `scan_errored` / `scan_unknown` (the version is stored with that
content scan: `processing`, assessment `fail`, status `errored`, assessment `unknown`; not served)
and `settings_busy` (an installation-setting write answered 503 with `x-should-retry: true`). A
code step at the head of the script waits for the first request it applies to; others pass by.
`code_headers` gives the headers an error code's answer carries instead of its own (e.g. a
`registration_pending` that says `x-should-retry: true` and `retry-after`: the SDK's docstring
says never to retry that create, whatever it says).

A `lost` script step lets the real handler run (a write happens) and answers 504 instead, as a
gateway does whose upstream answer never came back: the client's retry then meets the state the
first attempt made (a removal repeated is answered 404).

`retry_after_ms`, when set, adds `retry-after-ms` (the SDK reads it before `retry-after`) to the
answers that carry `retry-after` (429s).
`settings_write_ms` makes each installation-setting write hold its plugin that long, so that
writes sent together for one plugin really collide.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

CorruptMode = Literal[
    "truncated", "not_json", "wrong_types", "missing_fields", "huge_page", "bad_cursor"
]
CORRUPT_MODES: tuple[CorruptMode, ...] = get_args(CorruptMode)
ErrorCode = Literal[
    "plugin_name_taken",
    "skill_name_taken",
    "registration_pending",
    "scan_pending",
    "scan_failed",
    "scan_errored",
    "scan_unknown",
    "settings_busy",
]
_UPLOADS = frozenset(
    {"POST /v1/organizations/plugins", "POST /v1/organizations/plugins/{plugin_id}/versions"}
)
_SETTING = "/v1/organizations/plugins/{plugin_id}/installation_settings/{target}"
CODE_ROUTES: dict[str, frozenset[str]] = {
    "plugin_name_taken": frozenset({"POST /v1/organizations/plugins"}),
    "skill_name_taken": _UPLOADS,
    "registration_pending": _UPLOADS,
    "scan_pending": _UPLOADS,
    "scan_failed": _UPLOADS,
    "scan_errored": _UPLOADS,
    "scan_unknown": _UPLOADS,
    "settings_busy": frozenset({f"POST {_SETTING}", f"DELETE {_SETTING}"}),
}
# Scope key: the error code a handler must produce for this request.
FAULT_CODE = "emulator.fault_code"
ScriptStep = (
    int
    | ErrorCode
    | Literal[
        "pass",  # answer this one normally
        "reset",
        "timeout",
        "lost",  # the handler runs, the answer is a 504
        "corrupt:truncated",
        "corrupt:not_json",
        "corrupt:wrong_types",
        "corrupt:missing_fields",
        "corrupt:huge_page",
        "corrupt:bad_cursor",
    ]
)
# List routes (the only ones `huge_page` and `bad_cursor` re-run with a larger limit).
LIST_ROUTES = frozenset(
    {
        "/v1/organizations/workspaces",
        "/v1/organizations/rbac_groups",
        "/v1/organizations/{org_id}/skills",
        "/v1/organizations/{org_id}/audit_logs",
    }
)
AUDIT_ROUTE = "/v1/organizations/{org_id}/audit_logs"
# Scope key: the handler may serve more than the API's maximum `limit` (huge_page, bad_cursor).
LIMIT_UNCAPPED = "emulator.limit_uncapped"
HUGE_PAGE_FACTOR = 50
_JSON = b"application/json"
_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>proxy error</body></html>"


class FaultConfig(BaseModel):
    """What `POST /_emulator/faults` accepts; `{}` clears every fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0, ge=0)
    latency_jitter_ms: float = Field(default=0, ge=0)
    rate_429: float = Field(default=0, ge=0, le=1)
    retry_after_s: int = Field(default=1, ge=0)
    retry_after_ms: int | None = Field(default=None, ge=0)
    rate_500: float = Field(default=0, ge=0, le=1)
    rate_503: float = Field(default=0, ge=0, le=1)
    rate_529: float = Field(default=0, ge=0, le=1)
    rate_reset: float = Field(default=0, ge=0, le=1)
    rate_timeout: float = Field(default=0, ge=0, le=1)
    rate_corrupt: float = Field(default=0, ge=0, le=1)
    corrupt_modes: list[CorruptMode] = Field(
        default_factory=lambda: list(CORRUPT_MODES), min_length=1
    )
    huge_body_bytes: int = Field(default=33 * 2**20, ge=0)  # just over the client's 32 MiB cap
    timeout_s: float = Field(default=60, ge=0)
    duplicate_rate: float = Field(default=0, ge=0, le=1)
    duplicate_count: int = Field(default=3, ge=1)
    rate_limit_rps: float | None = Field(default=None, gt=0)
    code_rates: dict[ErrorCode, float] = Field(default_factory=dict)
    code_headers: dict[ErrorCode, dict[str, str]] = Field(default_factory=dict)
    settings_write_ms: float = Field(default=0, ge=0)
    script: list[ScriptStep] = Field(default_factory=list)
    routes: list[str] | None = None  # route templates ("GET /v1/organizations/me" or a path)
    seed: int | None = None


@dataclass(frozen=True)
class Fault:
    """What to do to one request: answer `status` (with retry-after), reset, time out, lose
    the real answer (a 504 after the handler ran) or corrupt it (`mode`)."""

    kind: Literal["status", "reset", "timeout", "lost", "corrupt", "code"]
    status: int = 0
    retry_after: int | None = None
    retry_after_ms: int | None = None
    mode: CorruptMode | None = None
    code: ErrorCode | None = None


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._script: deque[ScriptStep] = deque(config.script)
            self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
            # Answers corrupted, by (mode, route template): tests prove a fault was injected.
            self.corrupted: Counter[tuple[str, str]] = Counter()

    def clear(self) -> None:
        self.configure(FaultConfig())

    def applies(self, method: str, route: str) -> bool:
        routes = self.config.routes
        return routes is None or route in routes or f"{method} {route}" in routes

    def latency(self) -> float:
        """Seconds to wait before answering."""
        cfg = self.config
        if not cfg.latency_ms and not cfg.latency_jitter_ms:
            return 0.0
        with self._lock:
            jitter = self._rng.uniform(0, cfg.latency_jitter_ms)
        return (cfg.latency_ms + jitter) / 1000

    def pick(self, api_key: str | None, call: str = "") -> Fault | None:
        """The fault for this request (`call`: "METHOD route"), if any (consumes one script
        step; an error-code step only on a call it applies to)."""
        cfg = self.config
        with self._lock:
            if self._script and self._script[0] in CODE_ROUTES:
                code = self._script[0]
                if call not in CODE_ROUTES[code]:
                    return None
                self._script.popleft()
                return Fault("code", code=code)  # type: ignore[arg-type]
            if self._script:
                step = self._script.popleft()
                if step == "pass":
                    return None
                if step == "reset" or step == "timeout" or step == "lost":
                    return Fault(step)
                if isinstance(step, str):
                    return self._corrupt(step.removeprefix("corrupt:"))
                return self._status(int(step), cfg.retry_after_s)
            limited = self._rate_limited(api_key)
            if limited is not None:
                return self._status(429, limited)
            roll = self._rng.random()
            for kind, rate, status in (
                ("reset", cfg.rate_reset, 0),
                ("timeout", cfg.rate_timeout, 0),
                ("status", cfg.rate_429, 429),
                ("status", cfg.rate_500, 500),
                ("status", cfg.rate_503, 503),
                ("status", cfg.rate_529, 529),
                ("corrupt", cfg.rate_corrupt, 0),
            ):
                if roll < rate:
                    if kind == "corrupt":
                        return self._corrupt(self._rng.choice(cfg.corrupt_modes))
                    if kind == "status":
                        return self._status(status, cfg.retry_after_s)
                    return Fault("reset" if kind == "reset" else "timeout")
                roll -= rate
            for code, rate in cfg.code_rates.items():
                if call in CODE_ROUTES[code] and self._rng.random() < rate:
                    return Fault("code", code=code)
        return None

    def _status(self, status: int, retry_after: int) -> Fault:
        """An error answer; a 429 says when to retry (`retry-after`, and `retry-after-ms`)."""
        if status != 429:
            return Fault("status", status)
        return Fault("status", 429, retry_after, self.config.retry_after_ms)

    def _corrupt(self, mode: str) -> Fault:
        if mode not in CORRUPT_MODES:
            raise ValueError(f"unknown corrupt mode {mode!r}")
        return Fault("corrupt", mode=mode)

    def _rate_limited(self, api_key: str | None) -> int | None:
        """Seconds to wait if this key is over its rate, else None (a token bucket per key)."""
        rps = self.config.rate_limit_rps
        if rps is None or api_key is None:
            return None
        burst = max(1.0, rps)
        now = time.monotonic()
        tokens, at = self._buckets.get(api_key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rps)
        if tokens >= 1:
            self._buckets[api_key] = (tokens - 1, now)
            return None
        self._buckets[api_key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / rps))

    def redeliver(self) -> int:
        """How many already-served audit events to serve again on this page."""
        cfg = self.config
        if not cfg.duplicate_rate:
            return 0
        with self._lock:
            return cfg.duplicate_count if self._rng.random() < cfg.duplicate_rate else 0


def fetch_factor(mode: CorruptMode, method: str, route: str) -> int:
    """How many times the asked `limit` the real handler must serve for `mode` to lie with."""
    if method != "GET" or route not in LIST_ROUTES:
        return 1
    return {"huge_page": HUGE_PAGE_FACTOR, "bad_cursor": 2}.get(mode, 1)


def corrupt_answer(
    mode: CorruptMode, route: str, body: bytes, limit: int, huge_body_bytes: int
) -> tuple[bytes, bytes | None]:
    """The corrupt form of a real 2xx answer: (body, content type, None to keep the answer's).
    `limit` is what the client asked for (the handler may have served more: `fetch_factor`).
    A body that is not JSON (a version's zip archive) is only ever truncated or replaced."""
    if mode == "truncated":
        return body[: len(body) // 2], None
    if mode == "not_json":
        return _HTML, b"text/html; charset=utf-8"
    try:
        answer = json.loads(body)
    except ValueError:
        return body, None
    page = isinstance(answer, dict) and isinstance(answer.get("data"), list)
    if page and route == AUDIT_ROUTE and mode in ("wrong_types", "missing_fields"):
        answer["data"] = [
            _corrupt_event(mode, e, i // 2) if i % 2 == 0 and isinstance(e, dict) else e
            for i, e in enumerate(answer["data"])
        ]
    elif page:
        _corrupt_page(mode, answer, limit)
    elif isinstance(answer, dict):
        if mode == "wrong_types":
            answer["id"] = 4242
        elif mode == "missing_fields":
            answer.pop("id", None)
        elif mode == "huge_page":
            answer["padding"] = "x" * huge_body_bytes
    return json.dumps(answer, separators=(",", ":")).encode(), _JSON


def _corrupt_page(mode: CorruptMode, page: dict[str, Any], limit: int) -> None:
    data: list[Any] = page["data"]
    if mode == "wrong_types":
        page["has_more"] = "yes"
        for i, item in enumerate(data):
            if isinstance(item, dict):
                item["id"] = 1000 + i
    elif mode == "missing_fields":
        del page["data"]
    elif mode == "bad_cursor":
        if len(data) > limit:  # last_id stays that of the whole answer: it skips the rest
            page["data"] = data[:limit]
            page["has_more"] = True
        elif len(data) > 1:
            page["data"] = data[::-1]
    # huge_page: the handler already served HUGE_PAGE_FACTOR times the limit.


def _corrupt_event(mode: CorruptMode, event: dict[str, Any], n: int) -> dict[str, Any]:
    event = dict(event)
    if mode == "wrong_types":
        event["created_at"] = 1763712000
        event["workspace_id"] = [event.get("workspace_id")]
    else:
        event.pop(("id", "type", "created_at")[n % 3], None)
    return event


class CallStats:
    """API calls by (method, route template, status), for tests that must prove "no writes"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()
        # API calls of each organisation under way now, and the most at once since the reset:
        # what a client's bound of calls per organisation (its rate limit) is judged by.
        self._in_flight: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        # When each organisation's latest successful write was answered (epoch seconds): when a
        # change reached it, for benchmarks (bench/kill_switch.py).
        self._last_write: dict[str, float] = {}

    def add(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def enter(self, org_id: str) -> None:
        with self._lock:
            self._in_flight[org_id] += 1
            self._peak[org_id] = max(self._peak[org_id], self._in_flight[org_id])

    def leave(self, org_id: str, *, wrote: bool = False) -> None:
        with self._lock:
            self._in_flight[org_id] -= 1
            if wrote:
                self._last_write[org_id] = time.time()

    def peak_in_flight(self) -> dict[str, int]:
        """The most API calls of each organisation under way at once since the last reset."""
        with self._lock:
            return dict(self._peak)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._peak = Counter({org: n for org, n in self._in_flight.items() if n})
            self._last_write.clear()

    def count(
        self, method: str | None = None, route: str | None = None, status: int | None = None
    ) -> int:
        with self._lock:
            return sum(
                n
                for (m, r, s), n in self._counts.items()
                if (method is None or m == method)
                and (route is None or r == route)
                and (status is None or s == status)
            )

    def writes(self) -> int:
        """Calls that could have changed something (any method but GET)."""
        with self._lock:
            return sum(n for (m, _, _), n in self._counts.items() if m != "GET")

    def to_json(self) -> dict[str, object]:
        with self._lock:
            calls = [
                {"method": m, "route": r, "status": s, "count": n}
                for (m, r, s), n in sorted(self._counts.items())
            ]
        return {
            "calls": calls,
            "total": sum(c["count"] for c in calls),  # type: ignore[misc]
            "writes": sum(c["count"] for c in calls if c["method"] != "GET"),  # type: ignore[misc]
            "peak_in_flight": self.peak_in_flight(),
            "last_write_at": self.last_write_at(),
        }

    def last_write_at(self) -> dict[str, float]:
        """Each organisation's latest successful write since the reset, as epoch seconds."""
        with self._lock:
            return dict(self._last_write)
