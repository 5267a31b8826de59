"""The aiohttp transport's errors as the retry rule reads them: only a failed connect or pool
wait is "never sent" (api/aiohttp_transport.py); httpx-aiohttp's mapping made a dropped
connection a ConnectError, and a POST the server had taken would be sent again."""

from __future__ import annotations

import aiohttp
import httpx2
import pytest
from aiohttp.client_reqrep import ConnectionKey

from claresia_sync.api.aiohttp_transport import _mapped
from claresia_sync.api.retry import may_retry

KEY = ConnectionKey("api.example", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("raised", "expected", "sent"),
    [
        (aiohttp.ClientConnectorError(KEY, OSError(111, "refused")), httpx2.ConnectError, False),
        (aiohttp.ConnectionTimeoutError("pool"), httpx2.ConnectTimeout, False),
        (aiohttp.ServerDisconnectedError(), httpx2.RemoteProtocolError, True),
        (aiohttp.ClientOSError(104, "reset"), httpx2.ReadError, True),
        (aiohttp.ClientConnectionResetError("reset"), httpx2.ReadError, True),
        (aiohttp.SocketTimeoutError("read"), httpx2.ReadTimeout, True),
        (aiohttp.ClientPayloadError("cut"), httpx2.ReadError, True),
    ],
)
def test_errors_keep_whether_the_request_may_have_been_acted_on(
    raised: Exception, expected: type[Exception], sent: bool
) -> None:
    with pytest.raises(httpx2.TransportError) as mapped, _mapped():
        raise raised
    assert type(mapped.value) is expected
    not_sent = isinstance(mapped.value, (httpx2.ConnectError, httpx2.ConnectTimeout))
    assert not_sent is not sent
    assert may_retry("POST", sent=not not_sent) is not sent  # a write: again only if never sent
    assert may_retry("GET", sent=not not_sent)  # a read: always
