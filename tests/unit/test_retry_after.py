"""How long the server asks to wait, read as the official SDK's `_parse_retry_after_header`
does: `retry-after-ms` first, then `retry-after` in seconds (a float too), then as an HTTP date."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from claresia_sync.api.retry import retry_after


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),
        ({"retry-after-ms": "1500.5"}, 1.5005),
        ({"retry-after-ms": "soon", "retry-after": "7"}, 7.0),  # unreadable: the next one
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-3"}, None),  # a negative wait: backoff instead
        ({"retry-after": "tomorrow"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    wait = retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert wait is not None and 28 <= wait <= 30
    assert retry_after({"retry-after": formatdate(time.time() - 30, usegmt=True)}) is None
