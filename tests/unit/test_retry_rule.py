"""The one retry rule (`api.retry.may_retry`): the SDK's `_should_retry` for answers and
`_should_retry_failure` for failures without one, never sending again a write that may have
been acted on unless the server says so; and the waits (`Backoff.wait`)."""

from __future__ import annotations

import pytest

from claresia_sync.api.retry import Backoff, answer_says_retry, error_code, may_retry


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, False), (400, False), (401, False), (404, False), (408, True), (409, True)]
    + [(s, True) for s in (429, 500, 502, 503, 504, 529)],
)
def test_answers_retried_as_the_sdk_retries_them(status: int, expected: bool) -> None:
    assert answer_says_retry(status, {}) is expected
    assert may_retry("GET", status=status, headers={}) is expected


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST", "PATCH"])
def test_the_servers_word_decides_first(method: str) -> None:
    assert may_retry(method, status=500, headers={"x-should-retry": "true"})
    assert may_retry(method, status=400, headers={"x-should-retry": "true"})
    assert not may_retry(method, status=429, headers={"x-should-retry": "false"})
    assert not may_retry(method, status=None, headers={"x-should-retry": "false"}, sent=False)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_write_is_sent_again_only_when_it_cannot_have_been_acted_on(method: str) -> None:
    for refused in (408, 429, 503, 529):  # refused before any work
        assert may_retry(method, status=refused, headers={}), refused
    for maybe_done in (409, 500, 502, 504):  # the write may have happened
        assert not may_retry(method, status=maybe_done, headers={}), maybe_done
    assert may_retry(method, sent=False)  # never left: connect error or timeout, no pool slot
    assert not may_retry(method, sent=True)  # reset or read timeout after it was sent


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_an_idempotent_request_is_sent_again_after_any_lost_answer(method: str) -> None:
    assert may_retry(method, sent=True) and may_retry(method, sent=False)
    assert may_retry(method, status=504, headers={})


def test_the_error_code_of_an_answer() -> None:
    body = b'{"error":{"type":"api_error","details":{"error_code":"registration_pending"}}}'
    assert error_code(body) == "registration_pending"
    assert error_code(b'{"error":{"type":"api_error"}}') is None
    assert error_code(b"<html>bad gateway</html>") is None
    assert error_code(b"[1, 2]") is None


def test_waits_follow_the_server_capped_else_full_jitter() -> None:
    policy = Backoff(max_attempts=5, backoff=0.5, backoff_max=4, retry_after_cap=60)
    assert policy.wait(1, 7.0) == 7.0 and policy.wait(3, 0.25) == 0.25
    assert policy.wait(1, 600.0) == 60
    for attempts, high in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        waits = [policy.wait(attempts, None) for _ in range(200)]
        assert all(0 <= w <= high for w in waits), (attempts, max(waits))
        assert max(waits) > high / 2  # drawn over the whole range, not a fixed delay
    with pytest.raises(ValueError, match="max_attempts"):
        Backoff(max_attempts=0)
