"""The one retry and backoff policy of every Anthropic API call, as an httpx2 transport.

`make_http_pool` (api/client.py) builds every pool on a `RetryTransport` wrapping the connection
pool's own transport, as httpx composes transports; `OrgClient` (the org-skills API) and the
official SDK (`api/sdk.py`: `AsyncAnthropic(http_client=pool, max_retries=0)`) send through it,
so both retry by the same rule, wait the same way and are counted in the same place.

- **Which outcomes are tried again** (`may_retry`): the SDK's rule (`_base_client.py`,
  `_should_retry` and `_should_retry_failure`) is our spec. The server's `x-should-retry: true`
  or `false` decides first; else 408, 409, 429 and 5xx answers are retried, other answers are
  not; a failure without an answer is retried unless an answer's head said `false`. Tighter than
  the SDK (which sends POSTs again, keyed by an idempotency header the Anthropic API client does
  not set): a request that is not idempotent (POST, PATCH) is sent again only when it cannot have
  been acted on: no connection was made (connect error or timeout, no pool slot), or the answer
  says it was refused before any work (408, 429, 503, 529), or the server says `x-should-retry:
  true`. A POST answered 500, 502 or 504, or whose answer never came, may have created what it
  asked for (the Skills API keeps a second skill of one name, a twin): the caller's next run
  reads the server's state instead. An answer whose `error.details.error_code` is one the API
  says never to send again (`NEVER_RETRIED`: `registration_pending`, the plugin is stored) is
  not retried whatever its headers say.
- **How long to wait** (`Backoff.wait`): the server's `retry-after-ms` / `retry-after`
  (`retry_after`, read as the SDK reads them), capped at `retry_after_cap`; else exponential
  backoff with full jitter. At most `max_attempts` attempts of a request; one log line per retry
  naming the method, the route template, the attempt and why (never a header: the request holds
  the key).
- **Counting**: every attempt, by (method, route template, status: the HTTP code, `timeout` or
  `connection_error`), in the pool's counter (`API_CALLS`, `/metrics`'
  `claresia_api_calls_total`) and in the call's own (`CallCounter` of a client: a job's stats).
- **An organisation's bound** (its rate limit): a caller working for one organisation sets
  `ORG_REQUESTS` (`org_requests`) to its semaphore; each attempt of every request sent from that
  task, or from tasks it starts (a target's reads at once, a listing's), holds a slot of it
  while it is under way (not while it waits to retry). The publisher sets it per organisation
  (`publish.applier.CallBounds`).
- **The call a request belongs to** (`Call`, set with `calling(...)` around the call): its route
  template, its counter, its `Backoff` (a connection check asks fewer attempts) and the sleep
  (tests record the waits). A context variable, not a request extension: the SDK builds its
  requests itself and takes no extension. A request outside any call gets the pool's policy.

What the transport does not do: read a 2xx body. Bodies stream to the caller, which caps their
size (`OrgClient`'s `max_body_bytes`, refused while streaming); only an error answer the rule
would retry is read here, at most `ERROR_BODY_MAX` bytes, for its error code. So two cases stay
with the caller, both "the answer arrived but could not be read": a 2xx that is not JSON or breaks
its contract, and a connection lost while its body streamed. `OrgClient` retries both on GETs (a
read is safe to repeat, and such answers are mostly a passing proxy fault) with `repeat_read`,
within the same attempt budget (the transport's attempts count against it); never on a write,
which may have happened. The SDK raises them as connection or validation errors, which its
targets report as retryable failures for the job's next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx2
import orjson

from claresia_sync.api.call_metrics import API_CALLS, CallCounter, route_template

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Answers that say the request was refused before any work: safe to send again, even a POST.
REFUSED_UNDONE = frozenset({408, 429, 503, 529})
# Error codes whose request must never be sent again, whatever the answer's headers say (the
# SDK's docstring: the plugin or version is stored; a second create answers plugin_name_taken).
NEVER_RETRIED = frozenset({"registration_pending"})
# An error answer is read (for its code) up to this size; a larger one is not an API error body.
ERROR_BODY_MAX = 64 * 1024
# Failures that happen before the request leaves: it cannot have been acted on.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


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

    def wait(self, attempts: int, asked: float | None) -> float:
        """Seconds to wait after `attempts` attempts: what the server asked (capped), else a
        uniform draw up to `backoff * 2**(attempts - 1)` (full jitter), at most `backoff_max`."""
        if asked is not None:
            return min(asked, self.retry_after_cap)
        return random.uniform(0, min(self.backoff_max, self.backoff * 2 ** (attempts - 1)))


def answer_says_retry(status: int, headers: Mapping[str, str]) -> bool:
    """The SDK's `_should_retry`: `x-should-retry` first, else 408, 409, 429 and 5xx."""
    said = headers.get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return status in (408, 409, 429) or status >= 500


def may_retry(
    method: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    sent: bool = True,
) -> bool:
    """Whether an attempt may be made again: its answer (`status`, `headers`), or a failure
    without one (`status` None; `sent` False when the request never left)."""
    said = (headers or {}).get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    undone = method in IDEMPOTENT
    if status is None:  # the SDK's `_should_retry_failure`: retried (if it cannot have been done)
        return undone or not sent
    return answer_says_retry(status, headers or {}) and (undone or status in REFUSED_UNDONE)


def error_code(body: bytes) -> str | None:
    """`error.details.error_code` of an error body (the real API's), else None."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    code = details.get("error_code") if isinstance(details, dict) else None
    return code if isinstance(code, str) else None


@dataclass
class Call:
    """The call a request belongs to, as the transport needs it (see the module docstring)."""

    route: str | None = None
    counter: CallCounter | None = None
    policy: Backoff = field(default_factory=Backoff)
    sleep: Sleep | None = None
    attempts: int = 0  # made so far, by every request of the call
    budget: int | None = None  # attempts the next request may make (None: policy.max_attempts)


_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("claresia_call", default=None)


ORG_REQUESTS: contextvars.ContextVar[asyncio.Semaphore | None] = contextvars.ContextVar(
    "claresia_org_requests", default=None
)
"""The requests in flight of the organisation this task works for, at most (None: no bound)."""


@contextlib.contextmanager
def org_requests(bound: asyncio.Semaphore | None) -> Iterator[None]:
    """Requests sent within (and by the tasks started within) hold a slot of `bound`."""
    token = ORG_REQUESTS.set(bound)
    try:
        yield
    finally:
        ORG_REQUESTS.reset(token)


@contextlib.contextmanager
def calling(call: Call) -> Iterator[Call]:
    """The requests sent within belong to `call`."""
    token = _CALL.set(call)
    try:
        yield call
    finally:
        _CALL.reset(token)


async def pause(
    call: Call, *, attempt: int, of: int, what: str, why: str, asked: float | None
) -> None:
    """Log one retry and wait before it."""
    seconds = call.policy.wait(attempt, asked)
    log.warning(
        "retrying %s (attempt %d of %d, in %.2fs) after %s", what, attempt + 1, of, seconds, why
    )
    await (asyncio.sleep if call.sleep is None else call.sleep)(seconds)


async def repeat_read(
    call: Call,
    method: str,
    fn: Callable[[], Awaitable[T]],
    unreadable: tuple[type[BaseException], ...],
) -> T:
    """`fn()` (one request of `call`), repeated on a GET whose answer was `unreadable`, while the
    call's attempts last (see the module docstring). Not for writes: raised at once."""
    while True:
        try:
            return await fn()
        except unreadable as exc:
            made = call.attempts
            if method != "GET" or made >= call.policy.max_attempts:
                raise
            why = f"{type(exc).__name__}: {exc}"
        call.budget = call.policy.max_attempts - made
        what = f"{method} {call.route}"
        await pause(call, attempt=made, of=call.policy.max_attempts, what=what, why=why, asked=None)


class RetryTransport(httpx2.AsyncBaseTransport):
    """Sends each request through `inner` under the policy above; counts every attempt."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        *,
        policy: Backoff | None = None,
        counter: CallCounter = API_CALLS,
    ) -> None:
        self._inner = inner
        self._policy = policy or Backoff()
        self._counter = counter

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        call = _CALL.get() or Call(policy=self._policy)
        budget = call.budget or call.policy.max_attempts
        call.budget = None  # a budget narrowed by `repeat_read` is for this request only
        before = call.policy.max_attempts - budget  # the call's attempts before this request
        method = request.method
        route = call.route or route_template(request.url.path)
        if not isinstance(request.stream, httpx2.ByteStream):
            # A multipart body (a plugin upload) is read whole once, here (uploads are at most
            # 8 MiB): every attempt sends the same bytes, in one write (the pool's transport,
            # `aiohttp_transport`, sends a body whole; httpcore2 wrote its chunks one by one).
            await request.aread()
        attempt = 0
        while True:
            attempt += 1
            call.attempts += 1
            last = attempt >= budget
            try:
                response = await self._attempt(request)
            except httpx2.TransportError as exc:
                self._count(
                    call,
                    method,
                    route,
                    "timeout" if isinstance(exc, httpx2.TimeoutException) else "connection_error",
                )
                if last or not may_retry(method, sent=not isinstance(exc, _NOT_SENT)):
                    raise
                why, asked = f"{type(exc).__name__}: {exc}", None
            else:
                status = response.status_code
                self._count(call, method, route, str(status))
                if (
                    status < 400
                    or last
                    or not may_retry(method, status=status, headers=response.headers)
                ):
                    return response
                body = await _error_body(response)
                if body is not None and error_code(body) in NEVER_RETRIED:
                    return _answered(response, body, request)
                rid = response.headers.get("request-id")
                why = f"HTTP {status}" + (f" (request {rid})" if rid else "")
                asked = retry_after(response.headers)
            await pause(
                call,
                attempt=before + attempt,
                of=call.policy.max_attempts,
                what=f"{method} {route}",
                why=why,
                asked=asked,
            )

    async def _attempt(self, request: httpx2.Request) -> httpx2.Response:
        bound = ORG_REQUESTS.get()
        if bound is None:
            return await self._inner.handle_async_request(request)
        async with bound:
            return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _count(self, call: Call, method: str, route: str, status: str) -> None:
        self._counter.add(method, route, status)
        if call.counter is not None and call.counter is not self._counter:
            call.counter.add(method, route, status)


async def _error_body(response: httpx2.Response) -> bytes | None:
    """The (decoded) body of an error answer, read to its end so the connection is reused, or
    None when larger than `ERROR_BODY_MAX` or broken (the connection is closed then)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > ERROR_BODY_MAX:
                return None
            chunks.append(chunk)
    except httpx2.HTTPError:
        return None
    finally:
        await response.aclose()
    return b"".join(chunks)


def _answered(response: httpx2.Response, body: bytes, request: httpx2.Request) -> httpx2.Response:
    """A read answer handed on as it came (its body already decoded)."""
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=request,
        extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
    )
