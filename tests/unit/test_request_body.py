"""The retry transport hands a multipart upload (a plugin's files) to the connection pool as one
body, so that httpcore2 writes it at once rather than four chunks a file, and sends the same
bytes again when the upload is retried."""

from __future__ import annotations

import asyncio

import httpx2

from claresia_sync.api.retry import Backoff, RetryTransport

FILES = [
    ("files[]", (".claude-plugin/plugin.json", b'{"name": "claresia-x"}', "application/json")),
    ("files[]", ("skills/claresia-x/SKILL.md", b"---\nname: claresia-x\n---\n" * 50, "text/md")),
]


class _Recording(httpx2.AsyncBaseTransport):
    """Answers 503 once, then 201; keeps each attempt's body stream as the pool would get it."""

    def __init__(self) -> None:
        self.streams: list[object] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.streams.append(request.stream)
        return httpx2.Response(503 if len(self.streams) == 1 else 201, json={})


def test_a_multipart_upload_leaves_as_one_body_and_whole_again_on_retry() -> None:
    inner = _Recording()

    async def upload() -> httpx2.Response:
        transport = RetryTransport(inner, policy=Backoff(backoff=0))
        async with httpx2.AsyncClient(transport=transport) as http:
            return await http.post("http://api.test/v1/organizations/plugins", files=FILES)

    assert asyncio.run(upload()).status_code == 201
    assert len(inner.streams) == 2  # the 503 was retried
    first, second = inner.streams
    assert isinstance(first, httpx2.ByteStream) and isinstance(second, httpx2.ByteStream)
    body = b"".join(first)
    assert body == b"".join(second)
    for _, (path, content, _kind) in FILES:
        assert f'filename="{path}"'.encode() in body and content in body
