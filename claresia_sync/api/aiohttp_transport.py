"""An httpx2 transport over aiohttp's connection pool and C HTTP parser.

Every API call's client CPU was mostly the HTTP stack: httpcore2's pool assignment (it scans
every connection for every request), h11's pure-Python parsing and a cancel scope per socket
operation. aiohttp does the same HTTP/1.1 work for about two thirds of the client CPU per call
(bench/RESULTS.md, "Session 8: the HTTP transport"), and the official SDK offers it too (its
`aiohttp` extra vendors httpx-aiohttp's transport). Ours is that transport's shape, for one
reason: its exception mapping turns every `ClientConnectionError` into `httpx.ConnectError`,
which `api/retry.py` (like httpx) reads as "never sent": a POST whose connection dropped after
the server took it would be sent again, and the Skills API keeps the second skill of one name.
Here only a failure to connect (or to get a pool slot) means "not sent"; a dropped connection,
a reset or a read timeout is a failure after sending, which a write never repeats.

The client above it (`httpx2.AsyncClient`, `RetryTransport`) is unchanged: requests, answers,
streaming bodies, timeouts (connect, read, pool) and proxies (one transport per proxy mount, as
`make_http_pool` builds them) keep their meaning. aiohttp's session is made on the first
request, in the event loop that sends it, and closed with the transport.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx2

CHUNK = 64 * 1024


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """aiohttp's errors as httpx2's, "sent" or not as `api/retry.py` must read them."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # no connection (or pool slot) in time
        raise httpx2.ConnectTimeout(str(exc) or "connect timeout") from exc
    except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS: the request never left
        raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
    except aiohttp.ServerTimeoutError as exc:  # sent, then no answer in time
        raise httpx2.ReadTimeout(str(exc) or "read timeout") from exc
    except aiohttp.ServerDisconnectedError as exc:  # sent, then the server hung up
        raise httpx2.RemoteProtocolError(str(exc) or "server disconnected") from exc
    except (
        aiohttp.ClientPayloadError,
        aiohttp.ClientOSError,
        aiohttp.ClientConnectionResetError,
    ) as exc:  # broken mid-exchange
        raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx2.UnsupportedProtocol(str(exc)) from exc
    except aiohttp.ClientError as exc:  # anything else after the request may have left
        raise httpx2.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool once read; closed if it was not


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 over one aiohttp session: at most `limits.max_connections` connections, idle
    ones kept `limits.keepalive_expiry` seconds; TLS verified with `verify`; through `proxy`
    when given (no proxy variables are read here: `make_http_pool` mounts one per proxy)."""

    def __init__(
        self,
        *,
        limits: httpx2.Limits,
        verify: ssl.SSLContext,
        proxy: str | None = None,
    ) -> None:
        self._limits = limits
        self._verify = verify
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 5.0,
            ssl=self._verify,
        )
        # No automatic headers, decompression or cookies: httpx2 set the headers and decodes
        # the body; the API is stateless.
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            trust_env=False,
        )
        # aiohttp sends a GET, PUT or DELETE again, at once and uncounted, when a kept-alive
        # connection drops: `RetryTransport` is the one retry policy (every attempt counted and
        # waited for). Its only switch is this attribute (aiohttp 3.10 to 3.14).
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._session is None or self._session.closed:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _mapped():
            response = await self._session.request(
                request.method,
                str(request.url),
                # The body is whole (read above): aiohttp sets its length, never chunks it.
                headers=[
                    (k, v) for k, v in request.headers.multi_items() if k != "transfer-encoding"
                ],
                data=body or None,
                allow_redirects=False,
                compress=False,
                proxy=self._proxy,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
