"""Anthropic's real endpoints (docs/real-api.md), as the official `anthropic` SDK calls them:

- Plugins API of Claude Enterprise organisations (`/v1/organizations/plugins...`, beta header
  `ce-plugins-2026-09-01`, an Enterprise admin key `sk-ant-api01-` with `write:plugins` /
  `read:plugins`);
- rbac groups and their members (`/v1/organizations/rbac_groups...`, `read:rbac_groups`) and
  `/v1/organizations/me` for Enterprise admin keys (section 3 keys keep section 3's answers);
- the Skills API of Claude API workspaces (`/v1/skills...`, workspace API keys `sk-ant-api03-`,
  optional `anthropic-workspace-id` header).

Checks, in order: `anthropic-version` (400), the beta header where one is needed (404, as if the
endpoint did not exist, saying which header is missing), the key (401: `x-api-key`, or
`Authorization: Bearer` as the SDK 2.14 sends it), the key's family
(403 naming the family needed), a Claude Enterprise organisation (404 saying so), the scope
(403 naming it). Lists use `limit` and the `page`/`next_page` cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast, get_args

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from claresia_sync.emulator.activity import api_actor
from claresia_sync.emulator.common import (
    EmulatorError,
    ascending_page,
    bad_request,
    coded,
    cursor_limit,
    forbidden,
    not_found,
)
from claresia_sync.emulator.faults import FAULT_CODE, Faults
from claresia_sync.emulator.managed_settings import ManagedSettingsApi
from claresia_sync.emulator.plugins import BETA, PluginCatalog, Preference, setting_json
from claresia_sync.emulator.responses import guard, json_body, json_response, request_key
from claresia_sync.emulator.skills_api import WorkspaceSkills
from claresia_sync.emulator.state import (
    ENTERPRISE_KEY_PREFIX,
    WORKSPACE_KEY_PREFIX,
    EmulatorState,
    KeyRecord,
    OrgState,
)
from claresia_sync.emulator.uploads import read_upload

PLUGINS = "/v1/organizations/plugins"
PLUGIN = PLUGINS + "/{plugin_id}"
SETTINGS = PLUGIN + "/installation_settings"
GROUPS = "/v1/organizations/rbac_groups"
# Seed groups and memberships have no history: one fixed creation time.
_SEED_TIME = "2026-01-05T09:00:00.000Z"


def _fault(request: Request) -> str | None:
    code: str | None = request.scope.get(FAULT_CODE)
    return code


def _query(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


class RealApi:
    """Handlers of the real endpoints over the emulator's state and faults."""

    def __init__(self, state: EmulatorState, faults: Faults) -> None:
        self.state = state
        self.faults = faults

    def routes(self) -> list[Route]:
        r = [
            (PLUGINS, self.create_plugin, "POST"),
            (PLUGINS, self.list_plugins, "GET"),
            (PLUGIN, self.get_plugin, "GET"),
            (PLUGIN, self.update_plugin, "POST"),
            (PLUGIN, self.delete_plugin, "DELETE"),
            (PLUGIN + "/versions", self.create_version, "POST"),
            (PLUGIN + "/versions", self.list_versions, "GET"),
            (PLUGIN + "/versions/{version}", self.get_version, "GET"),
            (PLUGIN + "/versions/{version}/content", self.download, "GET"),
            (SETTINGS, self.list_settings, "GET"),
            (SETTINGS + "/{target}", self.set_setting, "POST"),
            (SETTINGS + "/{target}", self.remove_setting, "DELETE"),
            ("/v1/organizations/analytics/skills", self.skill_analytics, "GET"),
            ("/v1/compliance/activities", self.activities, "GET"),
            (GROUPS + "/{rbac_group_id}", self.get_group, "GET"),
            (GROUPS + "/{rbac_group_id}/members", self.group_members, "GET"),
            ("/v1/skills", self.create_skill, "POST"),
            ("/v1/skills", self.list_skills, "GET"),
            ("/v1/skills/{skill_id}", self.get_skill, "GET"),
            ("/v1/skills/{skill_id}", self.delete_skill, "DELETE"),
            ("/v1/skills/{skill_id}/versions", self.create_skill_version, "POST"),
            ("/v1/skills/{skill_id}/versions", self.list_skill_versions, "GET"),
            ("/v1/skills/{skill_id}/versions/{version}", self.get_skill_version, "GET"),
            ("/v1/skills/{skill_id}/versions/{version}", self.delete_skill_version, "DELETE"),
            ("/v1/skills/{skill_id}/versions/{version}/content", self.download_skill, "GET"),
        ]
        routes = [Route(path, guard(fn), methods=[method]) for path, fn, method in r]
        return routes + ManagedSettingsApi(self).routes()

    # -- who is calling ------------------------------------------------------------------------

    def key(self, request: Request) -> KeyRecord:
        return authenticate(self.state, request)

    def enterprise(self, request: Request, *scopes: str, beta: bool | str = True) -> OrgState:
        """The Claude Enterprise organisation of an admin key holding one of `scopes`; `beta`:
        the Plugins API's header (True), none (False) or that of another beta API."""
        betas = request.headers.get("anthropic-beta", "").replace(" ", "").split(",")
        needed = BETA if beta is True else beta
        if needed and needed not in betas:
            if not request.headers.get("anthropic-version"):
                raise bad_request("the anthropic-version header is required")
            api = "the Plugins API" if needed == BETA else "this API"
            raise not_found(
                f"Not found: {request.url.path} needs the beta header 'anthropic-beta: {needed}' "
                f"({api} is in beta)"
            )
        key = self.key(request)
        if key.family == "workspace":
            raise forbidden(
                "a workspace API key cannot call the Admin API: use a Claude Enterprise admin key "
                f"({ENTERPRISE_KEY_PREFIX}...) made in claude.ai"
            )
        org = self.state.org(key.org_id)
        if not org.claude_enterprise:
            api = (
                "the Plugins API"
                if beta is True
                else "the RBAC Groups API"
                if beta is False
                else "the Claude Code Managed Settings API"
            )
            raise not_found(
                f"organization {org.id} is not a Claude Enterprise organization: {api} is "
                "available to Claude Enterprise organizations only"
            )
        if scopes and not key.scopes.intersection(scopes):
            raise forbidden(
                f"this API key lacks the scope {scopes[0]}, required for {request.method} "
                f"{request.url.path}: make a Claude Enterprise admin key with {scopes[0]}"
            )
        return org

    def catalog(self, request: Request, write: bool = False) -> PluginCatalog:
        org = self.enterprise(
            request, *(("write:plugins",) if write else ("read:plugins", "read:org_audit"))
        )
        assert org.plugins is not None  # every Claude Enterprise organisation has one
        return org.plugins

    def actor(self, request: Request) -> dict[str, Any]:
        return {"type": "api_actor", "api_key_id": self.key(request).key_id}

    def workspace(self, request: Request) -> WorkspaceSkills:
        """The skills of the workspace a workspace API key acts on."""
        key = self.key(request)
        if key.family != "workspace":
            raise forbidden(
                "admin keys are for the Admin API, not for /v1/skills: use the workspace's API "
                f"key ({WORKSPACE_KEY_PREFIX}...)"
            )
        org = self.state.org(key.org_id)
        asked = request.headers.get("anthropic-workspace-id")
        ws = key.workspace or asked
        if ws is None:
            raise bad_request(
                "this API key can act on several workspaces: name one in the "
                "anthropic-workspace-id header"
            )
        if asked is not None and asked != ws:
            raise forbidden(f"this API key belongs to workspace {ws}, not to {asked}")
        if ws not in org.workspace_skills:
            raise not_found(f"workspace {ws!r} not found")
        if org.workspaces[ws]["archived_at"]:
            raise forbidden(f"workspace {ws} is archived")
        return org.workspace_skills[ws]

    def page(
        self, request: Request, maximum: int, lister: Callable[[int, str | None], dict[str, Any]]
    ) -> Response:
        """One page of a `limit` (1 to `maximum`) + `page`/`next_page` list."""
        limit = cursor_limit(_query(request, "limit"), maximum)
        with self.state.lock:
            return json_response(lister(limit, _query(request, "page")))

    # -- analytics ----------------------------------------------------------------------------

    async def skill_analytics(self, request: Request) -> Response:
        """Per-skill usage of one UTC day (`date`), optionally `group_by[]`, paged."""
        org = self.enterprise(request, "read:analytics", beta=False)
        q = request.query_params
        group_by = q.getlist("group_by[]") or q.getlist("group_by")
        with self.state.lock:
            body = org.analytics.page(
                q.get("date"), group_by, q.get("limit"), _query(request, "page")
            )
        return json_response(body)

    async def activities(self, request: Request) -> Response:
        """The Compliance activity feed, newest first (emulator/activity.py)."""
        org = self.enterprise(request, "read:compliance_activities", beta=False)
        q = request.query_params
        types = q.getlist("activity_types[]") or q.getlist("activity_types")
        with self.state.lock:
            body = org.activity.page(
                q.get("limit"), _query(request, "after_id"), _query(request, "before_id"), types
            )
        return json_response(body)

    def _activity(self, request: Request, org_id: str, activity_type: str, **fields: Any) -> None:
        client = request.client.host if request.client else "127.0.0.1"
        actor = api_actor(self.key(request).key_id, client, request.headers.get("user-agent", ""))
        self.state.record_activity(org_id, activity_type, actor, **fields)

    # -- organisation --------------------------------------------------------------------------

    def me(self, request: Request) -> Response:
        org = self.enterprise(request, beta=False)  # any scope
        return json_response({"id": org.id, "type": "organization", "name": org.name})

    def list_groups(self, request: Request) -> Response:
        org = self.enterprise(request, "read:rbac_groups", beta=False)
        groups = list(org.rbac_groups)
        return self.page(request, 1000, lambda n, p: ascending_page(groups, n, p, _group_json(org)))

    async def get_group(self, request: Request) -> Response:
        org = self.enterprise(request, "read:rbac_groups", beta=False)
        group_id = request.path_params["rbac_group_id"]
        if group_id not in org.rbac_groups:
            raise coded(
                404, "not_found_error", f"rbac group {group_id!r} not found", "rbac_group_not_found"
            )
        return json_response(_group_json(org)(group_id))

    async def group_members(self, request: Request) -> Response:
        org = self.enterprise(request, "read:rbac_groups", beta=False)
        group_id = request.path_params["rbac_group_id"]
        if group_id not in org.rbac_groups:
            raise coded(
                404, "not_found_error", f"rbac group {group_id!r} not found", "rbac_group_not_found"
            )
        members = sorted(u for u, user in org.users.items() if group_id in user.rbac_groups)

        def member(user_id: str) -> dict[str, Any]:
            return {
                "type": "rbac_group_member",
                "rbac_group_id": group_id,
                "user_id": user_id,
                "email": org.users[user_id].email,
                "created_at": _SEED_TIME,
            }

        return self.page(request, 1000, lambda n, p: ascending_page(members, n, p, member))

    # -- plugins -------------------------------------------------------------------------------

    async def create_plugin(self, request: Request) -> Response:
        catalog = self.catalog(request, write=True)
        upload = await read_upload(request, archives=True)
        market = upload.fields.get("marketplace_id")
        if market is not None and market != catalog.marketplace_id:
            raise not_found(f"plugin marketplace {market!r} not found")
        with self.state.lock:
            plugin = catalog.create(
                upload, self.actor(request), _fault(request), upload.fields.get("release_notes")
            )
            self._activity(
                request, catalog.org_id, "claude_plugin_created", **plugin_subject(plugin)
            )
            return json_response(catalog.to_json(plugin))

    async def list_plugins(self, request: Request) -> Response:
        catalog, owner = self.catalog(request), _query(request, "owner_type")
        market = _query(request, "marketplace_id")
        if market not in (None, catalog.marketplace_id):
            owner = "user"  # another marketplace: none is emulated, so nothing is in it
        return self.page(request, 100, lambda n, p: catalog.list_plugins(n, p, owner))

    async def get_plugin(self, request: Request) -> Response:
        catalog = self.catalog(request)
        with self.state.lock:
            return json_response(catalog.to_json(catalog.get(request.path_params["plugin_id"])))

    async def update_plugin(self, request: Request) -> Response:
        catalog = self.catalog(request, write=True)
        body = await json_body(request)
        version = body.get("served_version_id")
        if not isinstance(version, str) or version == "latest":
            raise bad_request("served_version_id must name a version (pluginver_...)")
        with self.state.lock:
            plugin = catalog.serve(request.path_params["plugin_id"], version)
            self._activity(
                request, catalog.org_id, "claude_plugin_updated", **plugin_subject(plugin)
            )
            return json_response(catalog.to_json(plugin))

    async def delete_plugin(self, request: Request) -> Response:
        catalog = self.catalog(request, write=True)
        plugin_id = request.path_params["plugin_id"]
        with self.state.lock:
            subject = plugin_subject(catalog.get(plugin_id))
            catalog.delete(plugin_id)
            self._activity(request, catalog.org_id, "claude_plugin_deleted", **subject)
        return json_response({"type": "plugin_deleted", "id": plugin_id})

    async def create_version(self, request: Request) -> Response:
        catalog = self.catalog(request, write=True)
        upload = await read_upload(request, archives=True)
        with self.state.lock:
            version = catalog.add_version(
                request.path_params["plugin_id"],
                upload,
                self.actor(request),
                _fault(request),
                upload.fields.get("release_notes"),
            )
            plugin = catalog.get(request.path_params["plugin_id"])
            self._activity(
                request, catalog.org_id, "claude_plugin_replaced", **plugin_subject(plugin)
            )
            return json_response(version.to_json())

    async def list_versions(self, request: Request) -> Response:
        catalog, plugin_id = self.catalog(request), request.path_params["plugin_id"]
        return self.page(request, 1000, lambda n, p: catalog.list_versions(plugin_id, n, p))

    async def get_version(self, request: Request) -> Response:
        catalog = self.catalog(request)
        p = request.path_params
        with self.state.lock:
            return json_response(catalog.version(p["plugin_id"], p["version"]).to_json())

    async def download(self, request: Request) -> Response:
        catalog = self.catalog(request)
        p = request.path_params
        with self.state.lock:
            name, data = catalog.archive(p["plugin_id"], p["version"])
        return _zip_response(name, data)

    # -- installation settings -----------------------------------------------------------------

    def _target(self, request: Request) -> str:
        target: str = request.path_params["target"]
        if target == "organization":
            return target
        org = self.state.org(self.key(request).org_id)
        if target.startswith("rbac_group_"):
            if target not in org.rbac_groups:
                raise coded(
                    404,
                    "not_found_error",
                    f"rbac group {target!r} is not one of organization {org.id}'s groups",
                    "rbac_group_not_found",
                )
            return target
        raise bad_request(f"target must be 'organization' or an rbac group id, not {target!r}")

    async def list_settings(self, request: Request) -> Response:
        catalog, plugin_id = self.catalog(request), request.path_params["plugin_id"]
        kind = _query(request, "target_type")
        if kind not in (None, "organization", "rbac_group"):
            raise bad_request(f"target_type must be organization or rbac_group, not {kind!r}")
        return self.page(request, 100, lambda n, p: catalog.list_settings(plugin_id, n, p, kind))

    async def set_setting(self, request: Request) -> Response:
        catalog = self.catalog(request, write=True)
        target = self._target(request)
        body = await json_body(request)
        preference = body.get("installation_preference")
        if preference not in get_args(Preference):
            raise bad_request(
                f"installation_preference must be one of {list(get_args(Preference))}, "
                f"not {preference!r}"
            )
        plugin_id = request.path_params["plugin_id"]
        async with self._one_write(request, catalog, plugin_id):
            with self.state.lock:
                setting = catalog.set_setting(plugin_id, target, cast(Preference, preference))
                self._activity(
                    request,
                    catalog.org_id,
                    "plugin_installation_preference_updated",
                    **preference_subject(self.state.org(catalog.org_id), plugin_id, target),
                    action="updated",
                    installation_preference=preference,
                )
                return json_response(setting_json(plugin_id, target, setting))

    async def remove_setting(self, request: Request) -> Response:
        catalog = self.catalog(request, write=True)
        target = self._target(request)
        plugin_id = request.path_params["plugin_id"]
        async with self._one_write(request, catalog, plugin_id):
            with self.state.lock:
                catalog.remove_setting(plugin_id, target)
                self._activity(
                    request,
                    catalog.org_id,
                    "plugin_installation_preference_updated",
                    **preference_subject(self.state.org(catalog.org_id), plugin_id, target),
                    action="deleted",
                    installation_preference=None,
                )
        return json_response(
            {
                "type": "plugin_installation_setting_deleted",
                "plugin_id": plugin_id,
                "target": {"type": "organization"}
                if target == "organization"
                else {"type": "rbac_group", "rbac_group_id": target},
            }
        )

    def _one_write(self, request: Request, catalog: PluginCatalog, plugin_id: str) -> _OneWrite:
        with self.state.lock:
            plugin = catalog.get(plugin_id)
        busy = _fault(request) == "settings_busy" or plugin.settings_busy
        return _OneWrite(plugin, busy, self.faults.config.settings_write_ms / 1000)

    # -- Skills API ----------------------------------------------------------------------------

    async def create_skill(self, request: Request) -> Response:
        skills = self.workspace(request)
        upload = await read_upload(request, archives=False)
        with self.state.lock:
            skill = skills.create(upload)
            self._skill_version_activity(request, "platform_skill_version_created", skill.id)
            return json_response(skill.to_json())

    async def list_skills(self, request: Request) -> Response:
        skills, source = self.workspace(request), _query(request, "source")
        return self.page(request, 1000, lambda n, p: skills.list_skills(n, p, source))

    async def get_skill(self, request: Request) -> Response:
        skills = self.workspace(request)
        with self.state.lock:
            return json_response(skills.get(request.path_params["skill_id"]).to_json())

    async def delete_skill(self, request: Request) -> Response:
        skills = self.workspace(request)
        skill_id = request.path_params["skill_id"]
        with self.state.lock:
            skills.delete(skill_id)
        return json_response({"type": "skill_deleted", "id": skill_id})

    async def create_skill_version(self, request: Request) -> Response:
        skills = self.workspace(request)
        upload = await read_upload(request, archives=False)
        with self.state.lock:
            version = skills.add_version(request.path_params["skill_id"], upload)
            self._skill_version_activity(
                request, "platform_skill_version_created", request.path_params["skill_id"]
            )
            return json_response(version.to_json())

    async def list_skill_versions(self, request: Request) -> Response:
        skills, skill_id = self.workspace(request), request.path_params["skill_id"]
        return self.page(request, 1000, lambda n, p: skills.list_versions(skill_id, n, p))

    async def get_skill_version(self, request: Request) -> Response:
        skills = self.workspace(request)
        p = request.path_params
        with self.state.lock:
            return json_response(skills.get(p["skill_id"]).version(p["version"]).to_json())

    async def delete_skill_version(self, request: Request) -> Response:
        skills = self.workspace(request)
        p = request.path_params
        with self.state.lock:
            version_id = skills.get(p["skill_id"]).version(p["version"]).id
            self._skill_version_activity(
                request, "platform_skill_version_deleted", p["skill_id"], p["version"]
            )
            skills.delete_version(p["skill_id"], p["version"])
        return json_response({"type": "skill_version_deleted", "id": version_id})

    async def download_skill(self, request: Request) -> Response:
        skills = self.workspace(request)
        p = request.path_params
        with self.state.lock:
            name, data = skills.archive(p["skill_id"], p["version"])
        return _zip_response(name, data)

    def _skill_version_activity(
        self, request: Request, activity_type: str, skill_id: str, version: str | None = None
    ) -> None:
        key = self.key(request)
        ws = key.workspace or request.headers.get("anthropic-workspace-id") or ""
        skill = self.state.org(key.org_id).workspace_skills[ws].get(skill_id)
        version = version or skill.versions[-1].id
        self._activity(request, key.org_id, activity_type, skill_id=skill_id, version=version)


def plugin_subject(plugin: Any) -> dict[str, Any]:
    """The fields a `claude_plugin_*` activity names its plugin by."""
    return {"plugin_id": plugin.id, "plugin_name": plugin.name}


def preference_subject(org: OrgState, plugin_id: str, target: str) -> dict[str, Any]:
    """What a `plugin_installation_preference_updated` activity names: the plugin by name and
    marketplace (no id), the group (null for the organisation's own setting)."""
    assert org.plugins is not None
    group = None if target == "organization" else target
    return {
        "marketplace_id": org.plugins.marketplace_id,
        "plugin_name": org.plugins.get(plugin_id).name,
        "group_id": group,
        "group_name": org.rbac_groups[group]["name"] if group else None,
    }


def authenticate(state: EmulatorState, request: Request) -> KeyRecord:
    """The key of a request: `anthropic-version` (400), then the key (401)."""
    if not request.headers.get("anthropic-version"):
        raise bad_request("the anthropic-version header is required")
    value = request_key(request.headers)
    if not value:
        raise EmulatorError(401, "authentication_error", "x-api-key header is required")
    key = state.key(value)
    if key is None:
        raise EmulatorError(401, "authentication_error", "invalid x-api-key")
    return key


class _OneWrite:
    """Installation-setting writes of one plugin go one at a time: a write that finds another
    in progress (or a `settings_busy` fault) is answered 503 with `x-should-retry: true`."""

    def __init__(self, plugin: Any, busy: bool, hold_s: float) -> None:
        self.plugin, self.busy, self.hold_s = plugin, busy, hold_s

    async def __aenter__(self) -> None:
        if self.busy:
            raise EmulatorError(
                503,
                "api_error",
                f"another installation-setting write for plugin {self.plugin.id} is being "
                "applied: send this one again in a second or two",
                headers={"x-should-retry": "true"},
            )
        self.plugin.settings_busy = True
        if self.hold_s:
            await asyncio.sleep(self.hold_s)

    async def __aexit__(self, *exc: object) -> None:
        if not self.busy:
            self.plugin.settings_busy = False


def _group_json(org: OrgState) -> Any:
    def render(group_id: str) -> dict[str, Any]:
        return {
            "type": "rbac_group",
            "id": group_id,
            "name": org.rbac_groups[group_id]["name"],
            "created_at": _SEED_TIME,
            "updated_at": _SEED_TIME,
            "role_ids": [],
            "source_type": "direct",
        }

    return render


def _zip_response(name: str, data: bytes) -> Response:
    """A version's archive, as the download endpoints of both APIs answer it."""
    return Response(
        data,
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}.zip"'},
    )
