"""The official `anthropic` SDK on the one HTTP stack, for the real targets (`publish/targets/`)
and the telemetry sources that read the real API.

SDK clients are built with `max_retries=0` on a pool of `make_http_pool` (the daemon's shared one,
or the caller's own): its `RetryTransport` (`api/retry.py`, `OrgClient`'s too) retries and counts
every request. `SdkCaller.call` names the call for it (route template, counter, this caller's
`Backoff`): what the API says may succeed later is retried (429, 5xx, 408, connection errors and
timeouts; a write only when it cannot have been acted on) unless it answers `x-should-retry: false`
(a 409 `plugin_name_taken`), and a 409 or 503 that says `x-should-retry: true` (a busy
installation-setting write) is. A 503 `registration_pending` is never retried, whatever its
headers: the SDK's docstring says the plugin was stored and a retried create would only answer
`plugin_name_taken` (the target completes it with a version instead). Errors become the target
seam's `TargetError` naming the call (method and path, never a header: the request holds the key),
with a one-line hint; `retryable` says whether the job's next round may try it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2

from claresia_sync.api.call_metrics import CallCounter
from claresia_sync.api.client import make_http_pool
from claresia_sync.api.connect import TenantConnection, connection_key
from claresia_sync.api.errors import SkillGone, TargetError
from claresia_sync.api.retry import (
    NEVER_RETRIED,
    Backoff,
    Call,
    Sleep,
    answer_says_retry,
    calling,
    retry_after,
)

if TYPE_CHECKING:
    import anthropic

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def preload() -> None:
    """Import the SDK now: a long-lived process (the daemon) pays its ~1.7 s of CPU at start,
    not in the middle of its first job (a republish-all's split waited 2 s behind it)."""
    import anthropic  # noqa: F401


class SdkFailure(TargetError):
    """A failed SDK call: `status`, `code` (`error.details.error_code`) and `details` kept."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: str | None,
        details: dict[str, Any],
        hint: str = "",
        retryable: bool = False,
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.retry_after: float | None = None
        self.api_message = ""  # the server's own words, without the call's name
        self.status = status
        self.code = code
        self.details = details


def _should_retry(exc: anthropic.APIStatusError) -> bool:
    """Whether the same call may succeed later (the transport's rule of answers)."""
    if exc.error_code in NEVER_RETRIED:
        return False
    return answer_says_retry(exc.status_code, exc.response.headers)


def _details(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return dict(details) if isinstance(details, dict) else {}


def translate(
    exc: Exception, what: str, hints: Callable[[int, str | None, str], str]
) -> TargetError:
    """An SDK exception as the seam's error; `hints(status, code, message)` is the target's."""
    import anthropic  # imported by the caller already (see SdkCaller)

    if isinstance(exc, anthropic.APIStatusError):
        message = exc.api_message or str(exc.message)
        code = exc.error_code
        text = f"{what}: {exc.status_code} {code or exc.type or 'error'}: {message}"
        cls = SkillGone if exc.status_code == 404 and code is None else SdkFailure
        failure = SdkFailure(
            text,
            status=exc.status_code,
            code=code,
            details=_details(exc),
            hint=hints(exc.status_code, code, message),
            retryable=_should_retry(exc),
        )
        if cls is SkillGone:
            return SkillGone(text, hint=failure.hint)
        failure.api_message = message
        failure.retry_after = retry_after(exc.response.headers)
        return failure
    if isinstance(exc, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return SdkFailure(
            f"{what}: {type(exc).__name__.removesuffix('Error').lower()} error",
            status=None,
            code=None,
            details={},
            hint="the API did not answer: check the base URL and the network; the next run retries",
            retryable=True,
        )
    raise exc


class SdkCaller:
    """One SDK client of a connection plus the retry policy and call counting."""

    def __init__(
        self,
        conn: TenantConnection,
        *,
        http: httpx2.AsyncClient | None,
        counter: CallCounter | None,
        hints: Callable[[int, str | None, str], str],
        max_attempts: int = MAX_ATTEMPTS,
        default_headers: dict[str, str] | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        key = connection_key(conn)  # ConnectionKeyError when it cannot be resolved
        # The one kind of pool (`make_http_pool`: the retry transport, the timeout the entry
        # point handed down), shared or this caller's own.
        self._owns_http = http is None
        http = http if http is not None else make_http_pool()
        # The SDK's import costs ~1.7 s of CPU (its pydantic types): paid by the processes that
        # call a real target, not by every command that only imports the publish package.
        import anthropic

        self.sdk = anthropic.AsyncAnthropic(
            api_key=key.reveal(),
            base_url=conn.base_url,
            max_retries=0,
            timeout=http.timeout,
            http_client=http,
            default_headers=default_headers,
        )
        self.key_hint = str(key)
        self.key_fingerprint = key.fingerprint
        self.counter = counter or CallCounter()
        self.hints = hints
        self.retry = Backoff(max_attempts)  # the transport's policy for this caller's calls
        self._sleep = sleep  # tests observe the waits instead of waiting

    def __repr__(self) -> str:
        return f"SdkCaller(key={self.key_hint!r})"

    async def call(self, method: str, route: str, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()`, its requests retried by the pool's transport and each attempt counted as
        (method, `route`, status); an SDK error raised as the seam's `TargetError`. `method`
        names the call's own requests (the transport counts each under its real method)."""
        import anthropic  # loaded by __init__: a lookup in sys.modules

        call = Call(route=route, counter=self.counter, policy=self.retry, sleep=self._sleep)
        with calling(call):
            try:
                return await fn()
            except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
                raise translate(exc, what, self.hints) from None

    async def aclose(self) -> None:
        if self._owns_http:  # a shared pool is closed by its owner
            await self.sdk.close()
