"""The one retry and backoff policy of every Anthropic API call: `OrgClient`'s (the org-skills
API) and `SdkCaller`'s (the official SDK, for the real targets and sources).

- Which failures are retried is the caller's (it knows its errors): an `APIError` or a
  `TargetError` whose `retryable` says the same call may succeed later.
- How long to wait is this module's: the server's `retry-after-ms` / `retry-after` when it gives
  one (read as the official SDK reads them: `retry_after`), capped, else exponential backoff with
  full jitter; at most `max_attempts` attempts; each retry logged in one line.

tenacity is the engine (`retrying`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait, read as the official SDK reads them: `retry-after-ms`
    (milliseconds) first, else `retry-after` as seconds (a float is accepted), else as an HTTP
    date; None when none is given or the wait is negative (backoff then)."""
    seconds: float | None = None
    millis, value = headers.get("retry-after-ms"), headers.get("retry-after")
    if millis is not None:
        with contextlib.suppress(ValueError):
            seconds = float(millis) / 1000
    if seconds is None and value is not None:
        try:
            seconds = float(value)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
    return seconds if seconds is not None and seconds >= 0 else None


@dataclass(frozen=True)
class Backoff:
    """Attempts at most (the first included) and the waits between them."""

    max_attempts: int = 5
    backoff: float = 0.5  # the exponential backoff's multiplier, seconds
    backoff_max: float = 20.0
    retry_after_cap: float = 60.0  # a server's retry-after longer than this is cut to it

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


class _RetryAfterOrBackoff(wait_base):
    """The failure's `retry_after` (seconds the server asked) if given, capped, else backoff."""

    def __init__(self, policy: Backoff) -> None:
        self._backoff = wait_random_exponential(multiplier=policy.backoff, max=policy.backoff_max)
        self._cap = policy.retry_after_cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        asked = getattr(exc, "retry_after", None)
        if isinstance(asked, int | float) and asked >= 0:
            return min(float(asked), self._cap)
        return float(self._backoff(retry_state))


def retrying(
    policy: Backoff,
    retryable: Callable[[BaseException], bool],
    *,
    sleep: Callable[[float], Awaitable[None]] | Callable[[float], Any] | None = None,
) -> AsyncRetrying:
    """The policy as a tenacity retrier: `await retrying(...)(fn, *args)`; the last failure is
    raised as it is (`reraise`). `sleep`: tests observe the waits instead of waiting."""

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "retrying (attempt %d of %d, in %.2fs) after %s",
            state.attempt_number + 1,
            policy.max_attempts,
            state.upcoming_sleep,
            exc,
        )

    kw: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=_RetryAfterOrBackoff(policy),
        retry=retry_if_exception(retryable),
        before_sleep=log_retry,
        reraise=True,
        **kw,
    )
