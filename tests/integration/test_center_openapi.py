"""The Command Center's OpenAPI document, checked by schemathesis against a real daemon: for
inputs generated from the document (valid and invalid), no route answers a 5xx, and every error
is the API's envelope. Bounded (a few examples per operation) to stay well under a minute."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fixtures.center import CenterProcess

EXAMPLES = 8  # per operation and mode (valid, invalid)


def test_no_input_makes_the_api_fail(center: Callable[..., CenterProcess]) -> None:
    c = center()
    schema = schemathesis.openapi.from_url(c.url + "/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {c.operator_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    seen: dict[str, set[int]] = {}
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _checker(operation, mode, c.url, headers, seen)()
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations, {elapsed:.1f}s, statuses {seen}")
    assert set(seen) == {f"{o.method.upper()} {o.path}" for o in operations}
    assert elapsed < 60


def _checker(
    operation: Any,
    mode: GenerationMode,
    url: str,
    headers: dict[str, str],
    seen: dict[str, set[int]],
) -> Callable[[], None]:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=30)
        seen.setdefault(label, set()).add(response.status_code)
        assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["status"] == response.status_code and error["message"], label

    return check
