"""Which `claude_code.skill_activated` records are ours (issue 20): Claude Code names a plugin's
skill `<plugin>:<skill>` (with `plugin.name`, `marketplace.name`), a skill outside a plugin bare;
ours are stored whichever form, only what is not ours is quarantined or left."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from claresia_sync.telemetry import otlp
from claresia_sync.telemetry.normalise import AttributionContext, SkillRef
from claresia_sync.telemetry.settings import TelemetrySettings

OURS = "claresia-ferretti-prd-review"
ACME = "claresia-acme-prd-review"


def _scope() -> otlp.TenantScope:
    skills = AttributionContext(
        org_id="org_ferretti",
        workspaces={},
        published={
            OURS: SkillRef("prd-review", owner_tenant="ferretti"),
            ACME: SkillRef("prd-review", owner_tenant="acme"),
        },
        tenant_slugs=frozenset({"ferretti", "acme"}),
        titles={"prd-review": "PRD Review"},
    )
    return otlp.TenantScope("ferretti", "org_ferretti", skills, frozenset({"ferretti"}))


def _request(*activations: dict[str, Any]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for i, attrs in enumerate(activations):
        record = records.add()
        record.time_unix_nano = 1_780_000_000_000_000_000 + i
        record.body.string_value = otlp.SKILL_ACTIVATED
        for key, value in {"prompt.id": f"p-{i}", "session.id": "s-1", **attrs}.items():
            record.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return request


def _plugin(plugin: str, skill: str) -> dict[str, str]:
    return {"skill.name": f"{plugin}:{skill}", "plugin.name": plugin, "marketplace.name": "m"}


@pytest.mark.parametrize(
    "attrs",
    [
        {"skill.name": OURS},  # bare: an org-skills skill
        _plugin(OURS, OURS),  # the plugin of the claude-enterprise target
        {"skill.name": OURS, "plugin.name": OURS},  # bare name, plugin beside it
    ],
)
def test_our_skill_is_stored_bare_or_namespaced(attrs: dict[str, str]) -> None:
    out = otlp.normalise_request(_request(attrs), _scope(), TelemetrySettings())
    assert (out.rejected, out.ignored) == (0, 0)
    (row,) = out.rows
    assert (row["tenant_slug"], row["skill_id"], row["skill_name"]) == (
        "ferretti",
        "prd-review",
        OURS,
    )
    assert "PRD Review" in row["footer_md"]


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        (_plugin(ACME, ACME), "belongs to tenant 'acme'"),
        (_plugin("acme-tools", OURS), "came in plugin 'acme-tools'"),
        (_plugin(OURS, "helper"), "came in plugin"),
        (_plugin(OURS, "claresia-ferretti-other"), "came in plugin"),
        ({"skill.name": "claresia-nobody-x"}, "no tenant publishes it"),
    ],
)
def test_what_is_in_our_namespace_but_not_ours_is_quarantined(
    attrs: dict[str, str], reason: str
) -> None:
    out = otlp.normalise_request(_request(attrs), _scope(), TelemetrySettings())
    assert out.rows == [] and out.rejected == 1
    assert reason in out.reasons[0], out.reasons


@pytest.mark.parametrize(
    "attrs",
    [{"skill.name": "pdf"}, _plugin("acme-tools", "pdf"), {}, {"skill.name": "third-party"}],
)
def test_what_is_outside_our_namespace_is_left(attrs: dict[str, str]) -> None:
    out = otlp.normalise_request(_request(attrs), _scope(), TelemetrySettings())
    assert (len(out.rows), out.rejected, out.ignored) == (0, 0, 1)
