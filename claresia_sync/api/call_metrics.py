"""Every Anthropic API call this process makes, counted where it is sent.

`make_http_pool` (the one builder of connection pools) puts a `RetryTransport` (api/retry.py)
under every pool: every attempt of every request through it (polls, publish jobs, connection
checks, `OrgClient` and the SDK alike) is counted in `API_CALLS` by method, route template and
status: the HTTP code, `timeout` or `connection_error`. The daemon's `/metrics` exports it as
`claresia_api_calls_total`, so the 401/403 and 429 alerts see publishing as well as polling.

The route is the template the caller names for its call (`api.retry.Call.route`: `OrgClient`
and `SdkCaller` do), else the path with its id-like segments replaced by `{id}`, so that labels
stay few whatever calls a future client makes.
"""

from __future__ import annotations

import re
from collections import Counter

_ID_SEGMENT = re.compile(
    r"(?:[a-z]+_)+[A-Za-z0-9]{6,}"  # org_..., skill_01..., wrkspc_..., rbac_group_...
    r"|\d+"  # versions, numeric ids
    r"|[0-9a-fA-F-]{32,36}"  # uuids
)


class CallCounter:
    """Attempts by (method, route template, status); status is the HTTP code, "timeout" or
    "connection_error". Label-shaped so a Prometheus counter can be fed from `samples()`."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, method: str, route: str, status: str) -> None:
        self._counts[(method, route, status)] += 1

    def samples(self) -> list[tuple[dict[str, str], int]]:
        return [
            ({"method": m, "route": r, "status": s}, n)
            for (m, r, s), n in sorted(self._counts.items())
        ]

    def total(
        self, *, method: str | None = None, route: str | None = None, status: str | None = None
    ) -> int:
        return sum(
            n
            for (m, r, s), n in self._counts.items()
            if (method is None or m == method)
            and (route is None or r == route)
            and (status is None or s == status)
        )


API_CALLS = CallCounter()
"""Every call of this process through a pool built by `make_http_pool` (one per process, as
Prometheus's own default registry: the calls are the process's, whoever made them)."""


def route_template(path: str) -> str:
    """`/v1/organizations/org_x/skills/skill_01abc` -> `/v1/organizations/{id}/skills/{id}`."""
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(seg) else seg for seg in path.split("/"))
