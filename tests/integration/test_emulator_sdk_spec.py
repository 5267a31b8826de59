"""The official SDK is the spec of the real endpoints, mechanically: every endpoint of the emulator
that the `anthropic` SDK covers is driven through the SDK (with the `anthropic-version` and beta
headers the SDK itself sends), and every JSON answer is checked strictly against the SDK's own
response type: pydantic validation of the type (required fields present, types right) and no
field that the type does not know, at any depth (the SDK's models accept extra fields silently,
so they are found through `model_extra`). Where the emulator and the SDK disagree, the SDK wins.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic._constants import ANTHROPIC_API_VERSION
from anthropic._error_classes import ERROR_CLASSES
from anthropic.pagination import SyncPage, SyncPageCursor
from anthropic.types import DeletedSkill, OrganizationInfo, Skill
from anthropic.types.beta.organization import BetaDeletedPlugin, BetaPlugin
from anthropic.types.beta.organization.claude_code.managed_settings import (
    BetaClaudeCodeManagedSettingsConfiguration,
    BetaClaudeCodeRBACGroupDefaultManagedSettings,
    BetaClaudeCodeRBACGroupManagedSettings,
    BetaClaudeCodeRBACGroupManagedSettingsSummary,
    BetaDeletedClaudeCodeRBACGroupManagedSettings,
)
from anthropic.types.beta.organization.plugins import (
    BetaDeletedPluginInstallationSetting,
    BetaPluginInstallationSetting,
    BetaPluginVersion,
)
from anthropic.types.organization import AnalyticsSkillActivity, RBACGroup, Workspace
from anthropic.types.organization.rbac_groups import RBACGroupMember
from anthropic.types.skills import DeletedSkillVersion, SkillVersion
from pydantic import BaseModel, ValidationError

from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.app import build_app
from claresia_sync.emulator.state import DEMO_SEED, EmulatorState, load_seed
from tests.fixtures.emulator import DAINESE_KEY
from tests.fixtures.real_api import (
    APPS_KEY,
    ENGINEERS,
    ENTERPRISE_KEY,
    plugin_files,
    skill_files,
)
from tests.fixtures.sources import use_skills

PLUGIN = r"/v1/organizations/plugins/plugin_\w+"
SKILL = r"/v1/skills/skill_\w+"
SETTINGS = r"/v1/organizations/claude_code/managed_settings"
# (method, path pattern) -> the SDK's response type and whether it comes in a page (True: the
# `page`/`next_page` cursor page; "page": the `after_id` page of the Admin API).
ROUTES: list[tuple[str, str, type[BaseModel], bool | str]] = [
    ("POST", r"/v1/organizations/plugins", BetaPlugin, False),
    ("GET", r"/v1/organizations/plugins", BetaPlugin, True),
    ("GET", PLUGIN, BetaPlugin, False),
    ("POST", PLUGIN, BetaPlugin, False),
    ("DELETE", PLUGIN, BetaDeletedPlugin, False),
    ("POST", PLUGIN + "/versions", BetaPluginVersion, False),
    ("GET", PLUGIN + "/versions", BetaPluginVersion, True),
    ("GET", PLUGIN + r"/versions/\w+", BetaPluginVersion, False),
    ("GET", PLUGIN + "/installation_settings", BetaPluginInstallationSetting, True),
    ("POST", PLUGIN + r"/installation_settings/\w+", BetaPluginInstallationSetting, False),
    ("DELETE", PLUGIN + r"/installation_settings/\w+", BetaDeletedPluginInstallationSetting, False),
    ("POST", r"/v1/skills", Skill, False),
    ("GET", r"/v1/skills", Skill, True),
    ("GET", SKILL, Skill, False),
    ("DELETE", SKILL, DeletedSkill, False),
    ("POST", SKILL + "/versions", SkillVersion, False),
    ("GET", SKILL + "/versions", SkillVersion, True),
    ("GET", SKILL + r"/versions/\w+", SkillVersion, False),
    ("DELETE", SKILL + r"/versions/\w+", DeletedSkillVersion, False),
    ("GET", r"/v1/organizations/me", OrganizationInfo, False),
    ("GET", r"/v1/organizations/workspaces", Workspace, "page"),
    ("GET", r"/v1/organizations/rbac_groups", RBACGroup, True),
    ("GET", r"/v1/organizations/rbac_groups/\w+", RBACGroup, False),
    ("GET", r"/v1/organizations/rbac_groups/\w+/members", RBACGroupMember, True),
    ("GET", r"/v1/organizations/analytics/skills", AnalyticsSkillActivity, True),
    ("GET", SETTINGS + "/configuration", BetaClaudeCodeManagedSettingsConfiguration, False),
    ("POST", SETTINGS + "/configuration", BetaClaudeCodeManagedSettingsConfiguration, False),
    ("GET", SETTINGS + "/rbac_groups", BetaClaudeCodeRBACGroupManagedSettingsSummary, True),
    ("GET", SETTINGS + r"/rbac_groups/\w+", BetaClaudeCodeRBACGroupManagedSettings, False),
    ("POST", SETTINGS + r"/rbac_groups/\w+", BetaClaudeCodeRBACGroupManagedSettings, False),
    (
        "DELETE",
        SETTINGS + r"/rbac_groups/\w+",
        BetaDeletedClaudeCodeRBACGroupManagedSettings,
        False,
    ),
    ("GET", SETTINGS + "/rbac_group_default", BetaClaudeCodeRBACGroupDefaultManagedSettings, False),
    (
        "POST",
        SETTINGS + "/rbac_group_default",
        BetaClaudeCodeRBACGroupDefaultManagedSettings,
        False,
    ),
]
PAGE_FIELDS = {
    True: set(SyncPageCursor.model_fields),  # data, next_page
    "page": set(SyncPage.model_fields),  # data, has_more, first_id, last_id
}


# Endpoints the SDK covers whose answer is not JSON (a version's zip): read, not type-checked.
DOWNLOADS = {
    ("GET", "/v1/organizations/plugins/{plugin_id}/versions/{version}/content"),
    ("GET", "/v1/skills/{skill_id}/versions/{version}/content"),
}
_SDK_CALL = re.compile(
    r'self\._(get_api_list|get|post|put|patch|delete)\(\s*(?:path_template\()?\s*"(/v1/[^"]*)"'
)


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def sdk_endpoints() -> set[tuple[str, str]]:
    """(method, path with `{}` for each parameter) of every call in the SDK's resources."""
    found = set()
    for source in (Path(anthropic.__file__).parent / "resources").rglob("*.py"):
        for kind, path in _SDK_CALL.findall(source.read_text(encoding="utf-8")):
            found.add(("GET" if kind == "get_api_list" else kind.upper(), _shape(path)))
    return found


def unknown_fields(value: Any, where: str) -> Iterator[str]:
    """The fields of a validated SDK object, at any depth, that its type does not declare."""
    if isinstance(value, BaseModel):
        for name in sorted(value.model_extra or {}):
            yield f"{where}.{name}"
        for name in type(value).model_fields:
            yield from unknown_fields(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from unknown_fields(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from unknown_fields(item, f"{where}[{key!r}]")


def error_disagreements(status: int, body: Any, where: str) -> list[str]:
    """How an error answer departs from what the SDK reads: the envelope
    `{type: error, error: {type, message, details?}, request_id}`, and a coded error
    (`error.details.error_code`) must be one the SDK maps at that status (`ERROR_CLASSES`), its
    details of that class's type, strictly."""
    if not isinstance(body, dict) or body.get("type") != "error":
        return [f"{where}: not the error envelope: {body!r}"]
    found = [f"{where}: envelope field {k!r}" for k in sorted(set(body) - ENVELOPE)]
    error = body.get("error")
    if not isinstance(error, dict) or not all(isinstance(error.get(k), str) for k in TYPED):
        return [*found, f"{where}: error must hold type and message: {error!r}"]
    found += [f"{where}: error field {k!r}" for k in sorted(set(error) - {*TYPED, "details"})]
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    if code is None:
        return found
    cls = ERROR_CLASSES.get((status, code))
    if cls is None:
        return [*found, f"{where}: ({status}, {code!r}) is not an error the SDK knows"]
    model = cls.__annotations__["details"]
    return found + disagreements(model, details, f"{where} details")


ENVELOPE = {"type", "error", "request_id"}
TYPED = ("type", "message")


def disagreements(model: type[BaseModel], body: Any, where: str) -> list[str]:
    """How `body` (one JSON answer) departs from the SDK type `model`."""
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        return [f"{where}: {e['loc']}: {e['msg']}" for e in exc.errors()]
    return [f"{p}: not a field of {model.__name__}" for p in unknown_fields(parsed, where)]


@dataclass
class Recorder:
    """Every answer the SDK received, with the headers it sent."""

    answers: list[tuple[str, str, int, bytes, str]] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    def __call__(self, response: httpx2.Response) -> None:
        response.read()
        request = response.request
        self.versions.add(request.headers.get("anthropic-version", ""))
        kind = response.headers.get("content-type", "")
        self.answers.append(
            (request.method, request.url.path, response.status_code, response.content, kind)
        )

    def check(self) -> tuple[list[str], set[tuple[str, str]]]:
        problems: list[str] = []
        seen: set[tuple[str, str]] = set()
        for method, path, status, content, kind in self.answers:
            if not kind.startswith("application/json"):
                continue
            if status >= 400:
                problems += error_disagreements(status, json.loads(content), f"{method} {path}")
                continue
            route = next((r for r in ROUTES if r[0] == method and re.fullmatch(r[1], path)), None)
            if route is None:
                problems.append(f"{method} {path}: no SDK type listed for this answer")
                continue
            seen.add((route[0], route[1]))
            body, where = json.loads(content), f"{method} {path}"
            if route[3]:
                extra = sorted(set(body) - PAGE_FIELDS[route[3]])
                problems += [f"{where}: page field {k!r} is not the SDK's" for k in extra]
                for i, item in enumerate(body.get("data", [])):
                    problems += disagreements(route[2], item, f"{where} data[{i}]")
            else:
                problems += disagreements(route[2], body, where)
        return problems, seen


def sdk(emulator: EmulatorServer, key: str, recorder: Recorder) -> anthropic.Anthropic:
    http = httpx2.Client(event_hooks={"response": [recorder]})
    return anthropic.Anthropic(
        base_url=emulator.base_url, api_key=key, max_retries=0, http_client=http
    )


def test_strict_check_finds_what_the_sdk_lets_through() -> None:
    """The check itself: an unknown field at depth and a missing required field are reported."""
    body = {
        "type": "rbac_group",
        "id": "rbac_group_x",
        "name": "X",
        "source_type": "direct",
        "created_at": "2026-01-05T09:00:00Z",
        "updated_at": "2026-01-05T09:00:00Z",
    }
    assert disagreements(RBACGroup, body, "g") == []
    assert disagreements(RBACGroup, {**body, "colour": "red"}, "g") == [
        "g.colour: not a field of RBACGroup"
    ]
    skill = {
        "type": "skill",
        "id": "skill_x",
        "display_name": "X",
        "latest_version_id": "skillver_x",
        "source": {"type": "custom", "origin": "upload"},  # one level down
        "created_at": "2026-01-05T09:00:00Z",
        "updated_at": "2026-01-05T09:00:00Z",
    }
    assert disagreements(Skill, skill, "s") == ["s.source.origin: not a field of Skill"]
    missing = disagreements(RBACGroup, {k: v for k, v in body.items() if k != "name"}, "g")
    assert missing and "name" in missing[0]


def test_every_endpoint_the_sdk_covers_is_checked() -> None:
    """Every route of the emulator that the SDK also calls is in ROUTES (or is a download), so
    a new endpoint cannot escape the check; the routes the SDK does not know are org-skills'
    (docs/interfaces.md section 3) and the activity feed (not in the SDK)."""
    app = build_app(EmulatorState(load_seed(DEMO_SEED)))
    served = {
        (method, route.path)
        for route in app.starlette.routes
        if route.path.startswith("/v1/")
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD"
    }
    covered = {(m, p) for m, p in served if (m, _shape(p)) in sdk_endpoints()}
    assert len(covered) > 30 and covered >= DOWNLOADS

    def sample(path: str) -> str:
        return re.sub(
            r"\{(\w+)\}",
            lambda m: {"plugin_id": "plugin_x", "skill_id": "skill_x"}.get(m[1], "x"),
            path,
        )

    unchecked = [
        (m, p)
        for m, p in sorted(covered - DOWNLOADS)
        if not any(r[0] == m and re.fullmatch(r[1], sample(p)) for r in ROUTES)
    ]
    assert unchecked == []
    others = sorted(p for m, p in served - covered)
    assert all("/{org_id}/" in p or p == "/v1/compliance/activities" for p in others), others


def test_every_answer_is_the_sdk_type(emulator: EmulatorServer) -> None:
    recorder = Recorder()
    admin = sdk(emulator, ENTERPRISE_KEY, recorder)
    plugins = admin.beta.organization.plugins

    # Plugins API: create, list, retrieve, versions, settings, serve, delete.
    plugin = plugins.create(files=plugin_files(), release_notes="first")
    # Skills analytics of a day with usage of its skill (seen by everyone until set otherwise).
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    use_skills(emulator, day, 5, seed=1, skill="pr-review")
    admin.organization.analytics.skills.list(date=day, limit=5)
    admin.organization.analytics.skills.list(date=day, group_by=["user_id"], limit=5)
    plugins.list(limit=1)
    plugins.retrieve(plugin.id)
    version = plugins.versions.create(plugin.id, files=plugin_files(), release_notes="second")
    plugins.versions.list(plugin.id)
    plugins.versions.retrieve(version.id, plugin_id=plugin.id)
    plugins.versions.download(version.id, plugin_id=plugin.id).read()
    settings = plugins.installation_settings
    settings.set("organization", plugin_id=plugin.id, installation_preference="not_available")
    settings.set(ENGINEERS, plugin_id=plugin.id, installation_preference="auto_install")
    settings.list(plugin.id)
    settings.remove(ENGINEERS, plugin_id=plugin.id)
    plugins.update(plugin.id, served_version_id=plugin.latest_version_id)

    # Organisation: me, rbac groups and their members.
    admin.organization.retrieve()
    admin.organization.rbac_groups.list(limit=1)
    admin.organization.rbac_groups.retrieve(ENGINEERS)
    admin.organization.rbac_groups.members.list(ENGINEERS, limit=2)

    # Claude Code managed settings.
    managed = admin.beta.organization.claude_code.managed_settings
    managed.configuration.retrieve()
    managed.rbac_groups.set(ENGINEERS, settings={"env": {"A": "1"}})
    managed.rbac_groups.retrieve(ENGINEERS)
    managed.rbac_groups.list()
    managed.rbac_group_default.update(settings={"env": {"B": "2"}})
    managed.rbac_group_default.retrieve()
    current = managed.configuration.retrieve()
    managed.configuration.update(
        rbac_group_order=[ENGINEERS],
        rbac_group_order_version=current.rbac_group_order_version,
    )
    managed.rbac_groups.delete(ENGINEERS)
    plugins.delete(plugin.id)

    # A Console admin key's workspaces (the Admin API; its `me` is org-skills', docs/interfaces.md
    # section 3, which adds fields the real API does not have).
    sdk(emulator, DAINESE_KEY, recorder).organization.workspaces.list(limit=2)

    # Skills API of a workspace.
    skills = sdk(emulator, APPS_KEY, recorder).skills
    created = skills.create(files=skill_files(), display_name="PR Review")
    skills.list(limit=1)
    skills.retrieve(created.id)
    second = skills.versions.create(created.id, files=skill_files(body="Again."))
    skills.versions.list(created.id)
    skills.versions.retrieve(second.id, skill_id=created.id)
    skills.versions.delete(created.latest_version_id, skill_id=created.id)
    skills.delete(created.id)

    problems, seen = recorder.check()
    assert problems == [], "\n".join(problems)
    assert len(seen) == len(ROUTES), sorted({(m, p) for m, p, *_ in ROUTES} - seen)
    assert recorder.versions == {ANTHROPIC_API_VERSION}  # the SDK's own, on every request


def test_errors_are_the_sdk_envelope(emulator: EmulatorServer) -> None:
    """An error is what the SDK reads: `{type: error, error: {type, message}, request_id}`."""
    recorder = Recorder()
    with pytest.raises(anthropic.NotFoundError) as refused:
        sdk(emulator, ENTERPRISE_KEY, recorder).beta.organization.plugins.retrieve("plugin_nope")
    assert refused.value.request_id and refused.value.type == "not_found_error"
    body = refused.value.body
    assert isinstance(body, dict) and set(body) <= {"type", "error", "request_id"}


def test_coded_errors_are_the_sdks(emulator: EmulatorServer) -> None:
    """Each error the emulator names by a code is one the SDK maps at that status, raised as the
    SDK's own exception class, its details of that class's type; a 409 the SDK documents without
    a code has none."""
    recorder = Recorder()
    admin = sdk(emulator, ENTERPRISE_KEY, recorder)
    plugins = admin.beta.organization.plugins
    plugin = plugins.create(files=plugin_files())

    def raised(status: int, code: str) -> Any:
        return pytest.raises(ERROR_CLASSES[(status, code)])

    with raised(409, "plugin_name_taken"):
        plugins.create(files=plugin_files())
    answer = httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/org_ferretti/org_skills", json={"name": "triage"}
    )
    assert answer.status_code == 201
    with raised(409, "skill_name_taken"):
        plugins.create(files=plugin_files("claresia-ferretti-triage", "triage"))
    emulator.set_faults(script=["registration_pending"])
    with raised(503, "registration_pending"):
        plugins.create(files=plugin_files("claresia-ferretti-other", "other"))
    emulator.set_faults(script=["scan_pending"])
    pending = plugins.versions.create(plugin.id, files=plugin_files())
    with raised(409, "scan_pending"):
        plugins.update(plugin.id, served_version_id=pending.id)
    emulator.set_faults(script=["scan_failed"])
    failed = plugins.versions.create(plugin.id, files=plugin_files())
    with raised(400, "scan_failed"):
        plugins.update(plugin.id, served_version_id=failed.id)
    with raised(404, "rbac_group_not_found"):
        plugins.installation_settings.set(
            "rbac_group_nope", plugin_id=plugin.id, installation_preference="available"
        )
    with raised(404, "rbac_group_not_found"):
        admin.organization.rbac_groups.retrieve("rbac_group_nope")
    managed = admin.beta.organization.claude_code.managed_settings
    with raised(404, "rbac_group_managed_settings_not_found"):
        managed.rbac_groups.retrieve(ENGINEERS)
    with pytest.raises(anthropic.ConflictError) as stale:
        managed.configuration.update(rbac_group_order=[], rbac_group_order_version="ov_0")
    assert stale.value.error_code is None

    problems, _ = recorder.check()
    assert problems == [], "\n".join(problems)
    assert sum(status >= 400 for _, _, status, *_ in recorder.answers) == 9
