"""Fault injection for the emulator, and its call statistics.

Faults apply to the API routes (`/v1/...`) only, never to the `/_emulator/` control routes.
A `script` answers the next matching requests in order (deterministic, for tests: e.g.
`[503, 503, 429]`); the probabilities add noise (for benchmarks and soak runs); `rate_limit_rps`
is a token bucket per admin key.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ScriptStep = int | Literal["reset", "timeout"]


class FaultConfig(BaseModel):
    """What `POST /_emulator/faults` accepts; `{}` clears every fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0, ge=0)
    latency_jitter_ms: float = Field(default=0, ge=0)
    rate_429: float = Field(default=0, ge=0, le=1)
    retry_after_s: int = Field(default=1, ge=0)
    rate_500: float = Field(default=0, ge=0, le=1)
    rate_503: float = Field(default=0, ge=0, le=1)
    rate_529: float = Field(default=0, ge=0, le=1)
    rate_reset: float = Field(default=0, ge=0, le=1)
    rate_timeout: float = Field(default=0, ge=0, le=1)
    timeout_s: float = Field(default=60, ge=0)
    duplicate_rate: float = Field(default=0, ge=0, le=1)
    duplicate_count: int = Field(default=3, ge=1)
    rate_limit_rps: float | None = Field(default=None, gt=0)
    script: list[ScriptStep] = Field(default_factory=list)
    routes: list[str] | None = None  # route templates ("GET /v1/organizations/me" or a path)
    seed: int | None = None


@dataclass(frozen=True)
class Fault:
    """What to do to one request: answer `status` (with retry-after), reset, or time out."""

    kind: Literal["status", "reset", "timeout"]
    status: int = 0
    retry_after: int | None = None


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

    def pick(self, api_key: str | None) -> Fault | None:
        """The fault for this request, if any (consumes one script step)."""
        cfg = self.config
        with self._lock:
            if self._script:
                step = self._script.popleft()
                if step == "reset" or step == "timeout":
                    return Fault(step)
                return Fault("status", int(step), cfg.retry_after_s if step == 429 else None)
            limited = self._rate_limited(api_key)
            if limited is not None:
                return Fault("status", 429, limited)
            roll = self._rng.random()
            for kind, rate, status in (
                ("reset", cfg.rate_reset, 0),
                ("timeout", cfg.rate_timeout, 0),
                ("status", cfg.rate_429, 429),
                ("status", cfg.rate_500, 500),
                ("status", cfg.rate_503, 503),
                ("status", cfg.rate_529, 529),
            ):
                if roll < rate:
                    if kind == "status":
                        retry = cfg.retry_after_s if status == 429 else None
                        return Fault("status", status, retry)
                    return Fault("reset" if kind == "reset" else "timeout")
                roll -= rate
        return None

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


class CallStats:
    """API calls by (method, route template, status), for tests that must prove "no writes"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def add(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

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
        }
