"""What every part of the emulator shares: the API error, timestamps, and the `page`/`next_page`
cursor lists of Anthropic's real endpoints (the official SDK's `SyncPageCursor`)."""

from __future__ import annotations

import base64
import bisect
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")


class EmulatorError(Exception):
    """An API error answer: status, error type, message, extra fields of the error object (such
    as `details`) and extra response headers (such as `x-should-retry`)."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def bad_request(message: str) -> EmulatorError:
    return EmulatorError(400, "invalid_request_error", message)


def not_found(message: str) -> EmulatorError:
    return EmulatorError(404, "not_found_error", message)


def forbidden(message: str) -> EmulatorError:
    return EmulatorError(403, "permission_error", message)


def coded(status: int, error_type: str, message: str, code: str, **details: Any) -> EmulatorError:
    """An error of the real API that names its cause in `error.details.error_code` (the SDK maps
    (status, code) to a typed exception). 4xx and this 503 say `x-should-retry: false`: the SDK
    would otherwise retry a 409 or a 503, and a repeated create is exactly what must not happen."""
    return EmulatorError(
        status,
        error_type,
        message,
        headers={"x-should-retry": "false"},
        details={"error_code": code, **details},
    )


def iso_now(ms: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if ms is None else ms
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def cursor_limit(raw: str | None, maximum: int) -> int:
    """`limit` of a `page`-cursor list: default 20, from 1 to `maximum`."""
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise bad_request(f"limit must be an integer from 1 to {maximum}, not {raw!r}")
    return limit


def _token(key: str) -> str:
    return "page_" + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _untoken(token: str) -> str:
    try:
        if not token.startswith("page_"):
            raise ValueError
        raw = token.removeprefix("page_")
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except ValueError:
        raise bad_request(f"page {token!r} is not a next_page token of this list") from None


def cursor_page(
    keys: Sequence[str],
    limit: int,
    page: str | None,
    render: Callable[[str], dict[str, Any]],
    keep: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """`{"data": [...], "next_page": token|null}` over `keys` (sorted ascending, served newest,
    i.e. largest, first). The token names the last key served, so items created or deleted
    between two pages neither repeat nor push others out."""
    end = bisect.bisect_left(keys, _untoken(page)) if page else len(keys)
    chosen: list[str] = []
    i = end - 1
    while i >= 0 and len(chosen) < limit:
        if keep is None or keep(keys[i]):
            chosen.append(keys[i])
        i -= 1
    more = any(keep is None or keep(keys[j]) for j in range(i, -1, -1)) if i >= 0 else False
    return {
        "data": [render(k) for k in chosen],
        "next_page": _token(chosen[-1]) if more and chosen else None,
    }


def ascending_page(
    keys: Sequence[str], limit: int, page: str | None, render: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """Like `cursor_page`, oldest (smallest key) first: rbac groups and their members."""
    start = bisect.bisect_right(keys, _untoken(page)) if page else 0
    chosen = keys[start : start + limit]
    more = start + limit < len(keys)
    return {
        "data": [render(k) for k in chosen],
        "next_page": _token(chosen[-1]) if more and chosen else None,
    }
