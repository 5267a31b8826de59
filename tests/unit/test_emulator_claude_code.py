"""The fake Claude Code exporter (`emulator-claude-code`) exports as Claude Code does (issue 20):
batches on the export interval, a prompt's usage in later batches than its activation, a
plugin's skill named `<plugin>:<skill>`, documented `invocation_trigger` values, a random
anonymous `user.id`, a UUID `organization.id`."""

from __future__ import annotations

import itertools
import re
import uuid
from collections import defaultdict
from typing import Any

from claresia_sync.emulator.claude_code import (
    MAX_EXPORT_BATCH,
    TRIGGERS,
    Prompt,
    export_batches,
    export_request,
)
from claresia_sync.telemetry import otlp

SKILL = "claresia-ferretti-prd-review"


def _records(request: Any) -> list[tuple[str, dict[str, Any], int]]:
    return [
        (otlp.event_name(r) or "", otlp.attributes(r.attributes), r.time_unix_nano)
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]


def test_usage_comes_in_later_batches_than_its_activation() -> None:
    batches = export_batches([Prompt(SKILL)] * 200, seed=3, interval_s=5.0)
    assert len(batches) > 3
    where: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    times = []
    for k, batch in enumerate(batches):
        records = _records(batch)
        assert 0 < len(records) <= MAX_EXPORT_BATCH
        times.append([t for _, _, t in records])
        for name, attrs, _ in records:
            where[attrs["prompt.id"]][name].append(k)
    assert all(max(a) <= min(b) for a, b in itertools.pairwise(times))  # in order
    later = 0
    for events in where.values():
        (activation,) = events[otlp.SKILL_ACTIVATED]
        assert events[otlp.API_REQUEST], "each prompt has usage"
        later += max(events[otlp.API_REQUEST]) > activation
        assert min(events[otlp.API_REQUEST]) >= activation or len(events[otlp.API_REQUEST]) > 1
    assert later == len(where)  # every prompt's usage ends in a later export


def test_records_carry_what_claude_code_sends() -> None:
    records = _records(export_request([Prompt(SKILL), Prompt(SKILL, plugin=False)] * 50, seed=4))
    activations = [a for n, a, _ in records if n == otlp.SKILL_ACTIVATED]
    plugin = [a for a in activations if ":" in a["skill.name"]]
    bare = [a for a in activations if ":" not in a["skill.name"]]
    assert len(plugin) == len(bare) == 50
    assert {a["skill.name"] for a in plugin} == {f"{SKILL}:{SKILL}"}
    assert {a["plugin.name"] for a in plugin} == {SKILL} and all(
        "marketplace.name" in a for a in plugin
    )
    assert {a["skill.name"] for a in bare} == {SKILL} and not any("plugin.name" in a for a in bare)
    assert {a["invocation_trigger"] for a in activations} == set(TRIGGERS)
    assert set(TRIGGERS) >= {"user-slash", "claude-proactive", "nested-skill"}
    users = {a["user.id"] for _, a, _ in records}
    assert len(users) == 100 and all(re.fullmatch(r"[0-9a-f]{64}", u) for u in users)
    organizations = {a["organization.id"] for _, a, _ in records}
    (organization,) = organizations
    assert str(uuid.UUID(organization)) == organization
    for _, attrs, _ in records:
        assert uuid.UUID(attrs["user.account_uuid"]) and attrs["user.account_id"].startswith(
            "user_"
        )
    requests = [a for n, a, _ in records if n == otlp.API_REQUEST]
    assert "third-party" in {a.get("skill.name") for a in requests}  # a private marketplace's
