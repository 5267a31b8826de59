"""`OrgClient`: the one async client of the Anthropic organisation API
(docs/interfaces.md section 3).

- The admin key is only `.reveal()`ed inside an `httpx2.Auth` flow that sets the header on the
  outgoing request; it is never a default header of the (possibly shared) `httpx2.AsyncClient`,
  and no error built here keeps a reference to an httpx2 request (whose headers hold the key).
- Retries: the pool's transport (`api/retry.py`, the SDK's too) retries and counts every
  request, under this client's `Backoff` (exponential backoff with full jitter, or the server's
  `retry-after-ms` / `retry-after`; a bounded number of attempts): 408/409/429/5xx, connection
  errors and timeouts, a write only when it cannot have been acted on. Other 4xx answers fail
  at once. Every attempt is counted by (method, route template, status) in the pool's count
  behind `/metrics` and in this client's `CallCounter`, which can be shared by many clients (a
  job's stats).
- A 2xx answer is not trusted blindly: a body over `max_body_bytes` is refused while streaming
  (never buffered whole), and one that is not JSON, does not fit its model, or is a list page
  breaking the list contract (more items than `limit`, ids not ascending, a `last_id` that is
  not its last item's: the poller checkpoints `last_id`, so a lying one would skip events)
  raises `UnexpectedResponseError`. GETs try it again, as an answer whose body was cut off
  (`api.retry.repeat_read`, within the same attempts: the transport reads no 2xx body); writes
  do not, because the write may well have happened: the caller's next run reads the server's
  state, and a create that already happened is answered 409 and adopted, so no twin.
- Errors name the call as `METHOD /concrete/path` (organisation and skill ids, never the key).
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterable, Mapping
from itertools import pairwise
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx2
import orjson
from httpx2._utils import get_environment_proxies
from pydantic import BaseModel, ValidationError

from claresia_sync.api.aiohttp_transport import AiohttpTransport
from claresia_sync.api.call_metrics import API_CALLS
from claresia_sync.api.call_metrics import CallCounter as CallCounter  # re-exported
from claresia_sync.api.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    UnexpectedResponseError,
    error_from_response,
)
from claresia_sync.api.models import (
    AuditEvent,
    Organization,
    Page,
    RbacGroup,
    Skill,
    SkillDeleted,
    Workspace,
)
from claresia_sync.api.retry import (
    Backoff,
    Call,
    RetryTransport,
    Sleep,
    calling,
    repeat_read,
    retry_after,
)
from claresia_sync.secrets import AdminKey
from claresia_sync.transpile import ClaudeSkill

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
SKILL_EVENT_TYPES = ("skill.invoked", "skill.failed")
MAX_PAGE = 1000
# A 1,000-event audit page is about 0.7 MB; anything near this is not an answer we can trust.
DEFAULT_MAX_BODY_BYTES = 32 * 2**20

M = TypeVar("M", bound=BaseModel)
# Query parameters: a mapping, or pairs where a name repeats (`activity_types[]`).
Pairs = list[tuple[str, str | int | float | bool | None]]
Query = Mapping[str, str | int] | Pairs
T = TypeVar("T")

# Route templates: the label under which calls are counted, and the path they expand to.
R_ME = "/v1/organizations/me"
R_WORKSPACES = "/v1/organizations/workspaces"
R_RBAC_GROUPS = "/v1/organizations/rbac_groups"
R_SKILLS = "/v1/organizations/{org_id}/skills"
R_SKILL = "/v1/organizations/{org_id}/skills/{skill_id}"
R_SKILL_VERSIONS = "/v1/organizations/{org_id}/skills/{skill_id}/versions"
R_SKILL_ACCESS = "/v1/organizations/{org_id}/skills/{skill_id}/access"
R_AUDIT_LOGS = "/v1/organizations/{org_id}/audit_logs"
R_ACTIVITIES = "/v1/compliance/activities"
ACTIVITY_MAX_PAGE = 5000


class _AdminKeyAuth(httpx2.Auth):
    """Sets `x-api-key` on the outgoing request only; the key never sits on a shared client."""

    def __init__(self, key: AdminKey) -> None:
        self._key = key

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["x-api-key"] = self._key.reveal().strip()
        yield request

    def __repr__(self) -> str:
        return f"_AdminKeyAuth({self._key!r})"


def _path(route: str, path_params: Mapping[str, str] | None = None) -> str:
    return route.format_map({k: quote(v, safe="") for k, v in (path_params or {}).items()})


def _label(method: str, route: str, path_params: Mapping[str, str] | None = None) -> str:
    """`METHOD /concrete/path`: how errors name a call."""
    return f"{method} {_path(route, path_params)}"


def _short(value: object) -> str:
    """A server-given value in an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# A JSON number of 19+ digits, made findable with one `bytes.translate` (a regex is 15x slower):
# digits become "0" and what may precede a number becomes "#". Digits inside ids ("inv_8a0123...")
# follow a letter, "_" or a quote, so they do not count.
_NUMBER_START = b":,[- \t\n\r"
_SCAN = bytes.maketrans(b"123456789" + _NUMBER_START, b"0" * 9 + b"#" * len(_NUMBER_START))
_LONG_NUMBER = b"0" * 19


def _decode(raw: bytes) -> Any:
    """The JSON of a body, as the stdlib reads it, mostly with orjson (half the time). orjson
    refuses NaN, lone surrogates and a BOM, and turns integers beyond 64 bits (19+ digits) into
    floats: such bodies are read by the stdlib, so that the one odd event in a page is
    quarantined as before rather than the page refused or the number changed."""
    scan = raw.translate(_SCAN)
    if scan.find(b"#" + _LONG_NUMBER) < 0 and not scan.startswith(_LONG_NUMBER):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return jsonlib.loads(raw)


def _parser(model: type[M]) -> Callable[[Any], M]:
    return lambda body: _parse_model(model, body)


class _Malformed(Exception):
    """A 2xx answer that breaks the contract; the message says how (no key, no body dump)."""


def _check_page(
    ids: list[str | None],
    last_id: str | None,
    *,
    limit: int,
    after_id: str | None,
    redelivery: bool = False,
) -> None:
    """The list contract: at most `limit` items, ascending ids, `last_id` = the last item's id.

    With `redelivery` (audit pages: at-least-once delivery) already-served items (id <=
    `after_id`) may lead the page, at most `limit` of them, and ids may repeat. An item without
    an id (a malformed event, quarantined later) cannot be ordered and is skipped by the checks.
    """
    known = [i for i in ids if i is not None]
    again = sum(1 for i in known if after_id is not None and i <= after_id) if redelivery else 0
    if len(ids) - again > limit or again > limit:
        raise _Malformed(f"the page holds {len(ids)} items but limit={limit} was asked for")
    for before, item in pairwise(known):
        if item < before or (item == before and not redelivery):
            raise _Malformed(f"ids are not ascending: {_short(item)} comes after {_short(before)}")
    if not ids:
        return
    if last_id is None:
        raise _Malformed(f"a page of {len(ids)} items has no last_id")
    if ids[-1] is not None and last_id != ids[-1]:
        raise _Malformed(
            f"last_id {_short(last_id)} is not the id of the page's last item "
            f"({_short(ids[-1])}): "
            "following it could skip items"
        )
    if ids[-1] is None and known and last_id < known[-1]:
        raise _Malformed(
            f"last_id {_short(last_id)} is before the page's items (up to {_short(known[-1])})"
        )


def _parse_model(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the answer"
        raise _Malformed(
            f"answer does not match {model.__name__}: {exc.error_count()} problem(s), first: "
            f"{where}: {first['msg']}"
        ) from None


def _audit_page(body: Any, *, limit: int, after_id: str | None) -> Page[AuditEvent]:
    """An audit page: its shape strictly, its events leniently (a bad event is quarantined by
    the poller, not a reason to refuse its neighbours). Events are not validated here: the
    poller reads well-formed ones from their raw dicts (`AuditEvent`)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise _Malformed("audit log page without a data list")
    has_more = body.get("has_more")
    if not isinstance(has_more, bool):
        raise _Malformed(f"has_more is {_short(has_more)}, not true or false")
    cursors = {k: body.get(k) for k in ("first_id", "last_id")}
    for name, value in cursors.items():
        if value is not None and not isinstance(value, str):
            raise _Malformed(f"{name} is {type(value).__name__} {_short(value)}, not a string")
    events = [AuditEvent.from_raw(item) for item in body["data"]]
    _check_page(
        [e.id or None for e in events],
        cursors["last_id"],
        limit=limit,
        after_id=after_id,
        redelivery=True,
    )
    return Page[AuditEvent](
        data=events,
        has_more=has_more,
        first_id=cursors["first_id"],
        last_id=cursors["last_id"],
    )


class ActivityPage(BaseModel):
    """One page of the Compliance activity feed, newest first (items kept as raw dicts: a bad
    one is quarantined by the ingester, not a reason to refuse its neighbours)."""

    data: list[dict[str, Any]]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


def _activity_page(body: Any, *, limit: int) -> ActivityPage:
    """The feed's page contract: at most `limit` items, ids strictly descending, `first_id` /
    `last_id` the first and last item's (the ingester checkpoints on them)."""
    page = _parse_model(ActivityPage, body)
    if len(page.data) > limit:
        raise _Malformed(f"the page holds {len(page.data)} items but limit={limit} was asked for")
    ids = [i.get("id") if isinstance(i.get("id"), str) else None for i in page.data]
    known = [i for i in ids if i is not None]
    for newer, older in pairwise(known):
        if not older < newer:
            raise _Malformed(f"ids are not newest first: {_short(older)} after {_short(newer)}")
    if page.data and (page.first_id != ids[0] or page.last_id != ids[-1]):
        raise _Malformed(
            f"first_id/last_id {_short(page.first_id)}/{_short(page.last_id)} are not the "
            "page's first and last items: following them could skip activities"
        )
    return page


# The one size of connection pool (`make_http_pool`): a daemon's publisher and pollers share one.
POOL_CONNECTIONS = 64
POOL_KEEPALIVE = 32
# Seconds one request may take unless the entry point hands down CLARESIA_API_TIMEOUT_S (the
# setting's default is this value: tests/unit/test_layers.py checks that they agree).
DEFAULT_TIMEOUT_S = 30.0


@functools.cache
def _tls() -> ssl.SSLContext:
    """The process's one verifying TLS context, as httpx2 builds it (SSL_CERT_FILE and
    SSL_CERT_DIR read once). Building one loads the CA bundle, 10-40 ms of CPU: once per pool it
    sat on every job's path before its first call. A context is safe to share across pools."""
    return httpx2.create_ssl_context()


def make_http_pool(
    *,
    max_connections: int = POOL_CONNECTIONS,
    max_keepalive: int = POOL_KEEPALIVE,
    timeout: float | httpx2.Timeout = DEFAULT_TIMEOUT_S,
) -> httpx2.AsyncClient:
    """The one place an HTTP connection pool is built: shared by the `OrgClient`s and SDK
    callers of many tenants (close it yourself), or owned by a client opened without one.
    `timeout`: the setting CLARESIA_API_TIMEOUT_S, handed down by the entry point.

    Every request goes through a `RetryTransport` (api/retry.py: the one retry policy, every
    attempt counted in `API_CALLS`), over the connection pool's transport (aiohttp's,
    `api/aiohttp_transport.py`: a third less client CPU a call than httpcore2's); the proxy
    variables (`HTTPS_PROXY`, `NO_PROXY`, ...) are read as httpx2 reads them for a client it
    builds, each proxy's transport wrapped the same way."""
    limits = httpx2.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(max_keepalive, max_connections),
    )

    def transport(proxy: str | None = None) -> RetryTransport:
        return RetryTransport(
            AiohttpTransport(limits=limits, proxy=proxy, verify=_tls()),
            counter=API_CALLS,
        )

    # httpx2 reads the environment's proxies only for a client whose transport it builds.
    proxies = get_environment_proxies()
    return httpx2.AsyncClient(
        transport=transport(),
        mounts={
            pattern: None if url is None else transport(url) for pattern, url in proxies.items()
        },
        timeout=timeout,
        follow_redirects=False,
    )


def _version_body(skill: ClaudeSkill) -> dict[str, Any]:
    return {
        "display_title": skill.display_title,
        "description": skill.description,
        "files": [{"path": f.path, "content": f.content} for f in skill.files],
        "metadata": dict(skill.metadata),
    }


async def collect(items: AsyncIterator[T]) -> list[T]:
    """All items of one of the client's iterators."""
    return [item async for item in items]


class OrgClient:
    """One organisation's admin API, through one admin key. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        key: AdminKey,
        *,
        max_attempts: int = 5,
        timeout: float | httpx2.Timeout | None = None,
        http: httpx2.AsyncClient | None = None,
        backoff: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_cap: float = 60.0,
        counter: CallCounter | None = None,
        sleep: Sleep | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self.max_body_bytes = max_body_bytes
        self.base_url = base_url.rstrip("/")
        self._key_hint = str(key)
        self._auth = _AdminKeyAuth(key)
        if timeout is None:  # a shared pool carries the setting; else its default
            timeout = http.timeout if http is not None else DEFAULT_TIMEOUT_S
        self._timeout = timeout if isinstance(timeout, httpx2.Timeout) else httpx2.Timeout(timeout)
        self._owns_http = http is None
        self._http = http or make_http_pool(timeout=self._timeout)
        self.retry = Backoff(max_attempts, backoff, backoff_max, retry_after_cap)  # api/retry.py
        self._sleep = sleep
        self.calls = counter or CallCounter()

    def __repr__(self) -> str:
        return f"OrgClient(base_url={self.base_url!r}, key={self._key_hint!r})"

    @property
    def key_hint(self) -> str:
        """The admin key as logs may show it: its last 4 chars."""
        return self._key_hint

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        route: str,
        path_params: Mapping[str, str] | None = None,
        *,
        parse: Callable[[Any], T],
        params: Query | None = None,
        json: Any = None,
    ) -> T:
        """`parse` of the decoded JSON body of a 2xx answer (the pool's transport retrying what
        may be retried); raises an `APIError` otherwise (`parse` raises `_Malformed` for an
        answer that breaks the contract)."""
        path = _path(route, path_params)
        call = Call(route=route, counter=self.calls, policy=self.retry, sleep=self._sleep)
        with calling(call):
            return await repeat_read(
                call,
                method,
                lambda: self._attempt(method, route, path, params, json, parse),
                (UnexpectedResponseError, APIConnectionError),
            )

    async def _attempt(
        self,
        method: str,
        route: str,
        path: str,
        params: Query | None,
        json: Any,
        parse: Callable[[Any], T],
    ) -> T:
        label = f"{method} {path}"
        status, headers, raw = await self._send(method, route, path, params, json)
        request_id = headers.get("request-id")
        try:
            body = _decode(raw) if raw else None
        except ValueError:
            body = None
        if status >= 400:
            raise error_from_response(
                status,
                body,
                request_id=request_id,
                route=label,
                retry_after=retry_after(headers),
            )
        if body is None:
            kind = headers.get("content-type") or "no content type"
            problem = f"the answer is not JSON ({kind}, {len(raw)} bytes)" if raw else "no body"
        else:
            try:
                return parse(body)
            except _Malformed as exc:
                problem = str(exc)
        # Raised outside the except block: the traceback shows the problem, not a parse frame.
        raise UnexpectedResponseError(problem, status=status, request_id=request_id, route=label)

    async def _send(
        self,
        method: str,
        route: str,
        path: str,
        params: Query | None,
        json: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange (the transport's attempts), reduced to plain data so no httpx2
        request (whose headers hold the key) outlives it in an exception, its context or a
        traceback frame. The body is read in chunks and refused past `max_body_bytes` (the rest
        is never read)."""
        label = f"{method} {path}"
        failure: APIError | None = None
        started = time.perf_counter()
        status, size = 0, 0
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        response: httpx2.Response | None = None
        try:
            async with self._http.stream(
                method,
                self.base_url + path,
                params=params,
                json=json,
                headers={"anthropic-version": ANTHROPIC_VERSION, "accept": "application/json"},
                auth=self._auth,
                timeout=self._timeout,
            ) as response:
                status = response.status_code
                headers = {
                    k: response.headers[k]
                    for k in ("request-id", "retry-after", "retry-after-ms", "content-type")
                    if k in response.headers
                }
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_body_bytes:
                    size = int(declared)
                else:
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_body_bytes:
                            break
                        chunks.append(chunk)
        except httpx2.TimeoutException as exc:
            failure = APITimeoutError(
                f"{type(exc).__name__}: no answer from {self.base_url} in time", route=label
            )
        except httpx2.TransportError as exc:
            # The base URL is named: a tenant file without `base_url` goes to the public API,
            # and "connection refused" alone does not say which server refused.
            failure = APIConnectionError(
                f"{type(exc).__name__} reaching {self.base_url}: {exc}", route=label
            )
        except httpx2.DecodingError as exc:
            failure = UnexpectedResponseError(
                f"the answer's content encoding is broken ({type(exc).__name__})",
                status=status,
                request_id=headers.get("request-id"),
                route=label,
            )
        response = None  # its request holds the key: not kept in a frame a traceback shows
        if failure is None and size > self.max_body_bytes:
            failure = UnexpectedResponseError(
                f"the answer is larger than max_body_bytes={self.max_body_bytes} "
                f"(at least {size} bytes): refused, the rest left unread",
                status=status,
                request_id=headers.get("request-id"),
                route=label,
            )
        if failure is not None:
            # Raised outside the except block so the httpx2 exception is not its __context__.
            raise failure
        log.debug(
            "%s %s -> %d in %.0f ms (request %s)",
            method,
            path,
            status,
            (time.perf_counter() - started) * 1000,
            headers.get("request-id"),
        )
        return status, headers, b"".join(chunks)

    async def _page(
        self,
        model: type[M],
        route: str,
        path_params: Mapping[str, str] | None,
        *,
        limit: int,
        after_id: str | None,
        extra: Mapping[str, str] | None = None,
    ) -> Page[M]:
        params: dict[str, str | int] = {"limit": limit, **(extra or {})}
        if after_id:
            params["after_id"] = after_id

        def parse(body: Any) -> Page[M]:
            page = _parse_model(Page[model], body)  # type: ignore[valid-type]
            ids = [getattr(item, "id", None) for item in page.data]
            _check_page(ids, page.last_id, limit=limit, after_id=after_id)
            return page

        return await self._request("GET", route, path_params, params=params, parse=parse)

    async def _all_pages(
        self,
        model: type[M],
        route: str,
        path_params: Mapping[str, str] | None = None,
        *,
        page_size: int,
        extra: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[M, None]:
        after_id: str | None = None
        while True:
            page = await self._page(
                model, route, path_params, limit=page_size, after_id=after_id, extra=extra
            )
            for item in page.data:
                yield item
            if not page.has_more:
                return
            if not page.last_id or page.last_id == after_id:
                raise UnexpectedResponseError(
                    "has_more is true but the page did not advance",
                    status=200,
                    route=_label("GET", route, path_params),
                )
            after_id = page.last_id

    # -- organisation ------------------------------------------------------------------------

    async def get_organization(self) -> Organization:
        return await self._request("GET", R_ME, parse=_parser(Organization))

    def list_workspaces(self, *, page_size: int = 100) -> AsyncGenerator[Workspace, None]:
        return self._all_pages(Workspace, R_WORKSPACES, page_size=page_size)

    def list_rbac_groups(self, *, page_size: int = 100) -> AsyncGenerator[RbacGroup, None]:
        return self._all_pages(RbacGroup, R_RBAC_GROUPS, page_size=page_size)

    # -- skills ------------------------------------------------------------------------------

    async def create_skill(self, org_id: str, skill: ClaudeSkill | Mapping[str, Any]) -> Skill:
        """POST a skill (the transpiled skill; a raw body only to test the server's checks); a
        taken name raises ConflictError(existing_id)."""
        body = skill.payload() if isinstance(skill, ClaudeSkill) else dict(skill)
        return await self._request(
            "POST", R_SKILLS, {"org_id": org_id}, json=body, parse=_parser(Skill)
        )

    async def create_skill_version(
        self, org_id: str, skill_id: str, skill: ClaudeSkill | Mapping[str, Any]
    ) -> Skill:
        """A new version of the skill's files, metadata, display title and description (the
        name is fixed at creation)."""
        body = _version_body(skill) if isinstance(skill, ClaudeSkill) else dict(skill)
        return await self._request(
            "POST",
            R_SKILL_VERSIONS,
            {"org_id": org_id, "skill_id": skill_id},
            json=body,
            parse=_parser(Skill),
        )

    async def set_skill_access(
        self,
        org_id: str,
        skill_id: str,
        workspace_ids: Iterable[str],
        rbac_group_ids: Iterable[str],
    ) -> Skill:
        """Replace the whole ACL of a skill."""
        return await self._request(
            "PUT",
            R_SKILL_ACCESS,
            {"org_id": org_id, "skill_id": skill_id},
            json={"workspace_ids": list(workspace_ids), "rbac_group_ids": list(rbac_group_ids)},
            parse=_parser(Skill),
        )

    def list_skills(
        self, org_id: str, *, name_prefix: str | None = None, page_size: int = 100
    ) -> AsyncGenerator[Skill, None]:
        extra = {"name_prefix": name_prefix} if name_prefix else None
        return self._all_pages(
            Skill, R_SKILLS, {"org_id": org_id}, page_size=page_size, extra=extra
        )

    async def get_skill(self, org_id: str, skill_id: str) -> Skill:
        ids = {"org_id": org_id, "skill_id": skill_id}
        return await self._request("GET", R_SKILL, ids, parse=_parser(Skill))

    async def delete_skill(self, org_id: str, skill_id: str) -> SkillDeleted:
        ids = {"org_id": org_id, "skill_id": skill_id}
        return await self._request("DELETE", R_SKILL, ids, parse=_parser(SkillDeleted))

    # -- compliance activity feed ----------------------------------------------------------

    async def compliance_activities(
        self,
        *,
        after_id: str | None = None,
        before_id: str | None = None,
        limit: int = 1000,
        activity_types: Iterable[str] = (),
    ) -> ActivityPage:
        """One page of `GET /v1/compliance/activities` (newest first: `after_id` pages back in
        time, `before_id` forward). Not in the SDK: raw HTTP with this client's retries."""
        params: Pairs = [("limit", limit)]
        if after_id:
            params.append(("after_id", after_id))
        if before_id:
            params.append(("before_id", before_id))
        params += [("activity_types[]", t) for t in activity_types]
        return await self._request(
            "GET",
            R_ACTIVITIES,
            params=params,
            parse=lambda body: _activity_page(body, limit=limit),
        )

    # -- audit log ---------------------------------------------------------------------------

    async def audit_events(
        self,
        org_id: str,
        after_id: str | None = None,
        limit: int = MAX_PAGE,
        event_types: Iterable[str] | None = SKILL_EVENT_TYPES,
    ) -> Page[AuditEvent]:
        """One page of audit events after `after_id` (the poller checkpoints per page).

        Events are parsed leniently: one that does not fit keeps its raw dict and a `problem`.
        Delivery is at least once, so a page may repeat events seen before.
        """
        params: dict[str, str | int] = {"limit": limit}
        if event_types:
            params["event_types"] = ",".join(event_types)
        if after_id:
            params["after_id"] = after_id
        return await self._request(
            "GET",
            R_AUDIT_LOGS,
            {"org_id": org_id},
            params=params,
            parse=lambda body: _audit_page(body, limit=limit, after_id=after_id),
        )
