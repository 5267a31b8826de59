"""Claude Code managed settings of a Claude Enterprise organisation (beta
`ce-claude-code-managed-settings-2026-10-06`), as the official SDK's
`beta.organization.claude_code.managed_settings` resources and types describe them:

- `configuration`: the mode (`organization`: every member gets the organisation settings set in
  claude.ai; `rbac_groups`: each member gets the first group's in `rbac_group_order`) and that
  order with its opaque version;
- `rbac_groups/{id}`: one whole settings document per group (`set` replaces it and appends the
  group to the order, `delete` removes both; a group without settings is 404
  `rbac_group_managed_settings_not_found`); the list gives summaries, highest precedence first;
- `rbac_group_default`: the document of members in no listed group (`null` clears it).

Every call needs the beta header (404 without) and an Enterprise admin key with
`read:claude_code_managed_settings` or `write:claude_code_managed_settings` (403 naming it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from claresia_sync.emulator.common import (
    EmulatorError,
    bad_request,
    coded,
    cursor_limit,
    iso_now,
    not_found,
)
from claresia_sync.emulator.responses import guard, json_body, json_response

BETA = "ce-claude-code-managed-settings-2026-10-06"
READ = "read:claude_code_managed_settings"
WRITE = "write:claude_code_managed_settings"
ROOT = "/v1/organizations/claude_code/managed_settings"
MAX_DOCUMENT_BYTES = 1024 * 1024


@dataclass
class GroupDocument:
    settings: dict[str, Any]
    created_at: str
    updated_at: str


@dataclass
class ManagedSettings:
    """One organisation's documents; the caller holds the emulator's lock."""

    mode: str = "organization"
    mode_updated_at: str | None = None
    order: list[str] = field(default_factory=list)
    order_version: int = 1
    groups: dict[str, GroupDocument] = field(default_factory=dict)
    default: dict[str, Any] | None = None
    default_updated_at: str | None = None
    writes: int = 0  # every accepted write: tests see that a no-op run wrote nothing
    enabled: bool = True  # False: an organisation not enabled for the beta (404, as no header)

    def configuration_json(self) -> dict[str, Any]:
        return {
            "type": "claude_code_managed_settings_configuration",
            "mode": {"type": self.mode},
            "mode_updated_at": self.mode_updated_at,
            "rbac_group_order": list(self.order),
            "rbac_group_order_version": f"ov_{self.order_version}",
        }

    def group_json(self, group_id: str, status: str, summary: bool = False) -> dict[str, Any]:
        doc = self.groups[group_id]
        out: dict[str, Any] = {
            "type": "claude_code_rbac_group_managed_settings" + ("_summary" if summary else ""),
            "rbac_group_id": group_id,
            "rbac_group_status": {"type": status},
            "created_at": doc.created_at,
            "updated_at": doc.updated_at,
        }
        if not summary:
            out["settings"] = doc.settings
        return out

    def set_group(self, group_id: str, settings: dict[str, Any]) -> None:
        now = iso_now()
        held = self.groups.get(group_id)
        if held is None:
            self.groups[group_id] = GroupDocument(settings, now, now)
            self.order.append(group_id)  # new settings join the end of the order
            self.order_version += 1
        else:
            held.settings, held.updated_at = settings, now
        self.writes += 1

    def delete_group(self, group_id: str) -> None:
        self._held(group_id)
        del self.groups[group_id]
        self.order.remove(group_id)
        self.order_version += 1
        self.writes += 1

    def _held(self, group_id: str) -> GroupDocument:
        doc = self.groups.get(group_id)
        if doc is None:
            raise coded(
                404,
                "not_found_error",
                f"rbac group {group_id!r} has no Claude Code managed settings",
                "rbac_group_managed_settings_not_found",
            )
        return doc

    def update_configuration(self, body: dict[str, Any]) -> None:
        order, version = body.get("rbac_group_order"), body.get("rbac_group_order_version")
        if (order is None) != (version is None):
            raise bad_request("rbac_group_order and rbac_group_order_version go together")
        if order is not None:
            if version != f"ov_{self.order_version}":
                # A 409 without an error code: the SDK documents no code for it.
                raise EmulatorError(
                    409,
                    "conflict_error",
                    "the rbac group order changed since it was read: read it again and retry",
                )
            if not isinstance(order, list) or sorted(order) != sorted(self.order):
                raise bad_request("rbac_group_order must list every group with settings once")
            self.order = list(order)
            self.order_version += 1
        mode = body.get("mode")
        if mode is not None:
            kind = mode.get("type") if isinstance(mode, dict) else None
            if kind not in ("organization", "rbac_groups"):
                raise bad_request("mode must be {'type': 'organization' | 'rbac_groups'}")
            if kind != self.mode:
                self.mode, self.mode_updated_at = kind, iso_now()
        self.writes += 1


def settings_document(body: dict[str, Any], nullable: bool = False) -> dict[str, Any] | None:
    """The `settings` of a write: a JSON object (or `null` where allowed) of at most 1 MiB."""
    settings = body.get("settings", ...)
    if settings is None and nullable:
        return None
    if not isinstance(settings, dict):
        raise bad_request("settings must be a JSON object (the whole settings document)")
    if len(json.dumps(settings).encode()) > MAX_DOCUMENT_BYTES:
        raise bad_request("settings is larger than 1 MiB")
    return settings


class ManagedSettingsApi:
    """The handlers; `enterprise(request, scope, beta=...)` is RealApi's caller check."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def routes(self) -> list[Route]:
        group = ROOT + "/rbac_groups/{rbac_group_id}"
        r = [
            (ROOT + "/configuration", self.get_configuration, "GET"),
            (ROOT + "/configuration", self.update_configuration, "POST"),
            (ROOT + "/rbac_groups", self.list_groups, "GET"),
            (group, self.get_group, "GET"),
            (group, self.set_group, "POST"),
            (group, self.delete_group, "DELETE"),
            (ROOT + "/rbac_group_default", self.get_default, "GET"),
            (ROOT + "/rbac_group_default", self.set_default, "POST"),
        ]
        return [Route(path, guard(fn), methods=[method]) for path, fn, method in r]

    def _org(self, request: Request, scope: str) -> Any:
        scopes = (WRITE,) if scope == WRITE else (READ, WRITE)
        org = self.real.enterprise(request, *scopes, beta=BETA)
        if not org.claude_code_settings.enabled:
            raise not_found(
                f"Not found: organization {org.id} is not enabled for the beta {BETA} "
                "(the Claude Code Managed Settings API)"
            )
        return org

    def _state(self, org: Any) -> ManagedSettings:
        state: ManagedSettings = org.claude_code_settings
        return state

    def _status(self, org: Any, group_id: str) -> str:
        return "active" if group_id in org.rbac_groups else "deleted"

    async def get_configuration(self, request: Request) -> Response:
        org = self._org(request, READ)
        with self.real.state.lock:
            return json_response(self._state(org).configuration_json())

    async def update_configuration(self, request: Request) -> Response:
        org = self._org(request, WRITE)
        body = await json_body(request)
        with self.real.state.lock:
            self._state(org).update_configuration(body)
            return json_response(self._state(org).configuration_json())

    async def list_groups(self, request: Request) -> Response:
        org = self._org(request, READ)
        limit = cursor_limit(request.query_params.get("limit"), 100)
        page = request.query_params.get("page") or None
        with self.real.state.lock:
            state = self._state(org)
            start = int(page.removeprefix("page_")) if page and page.startswith("page_") else 0
            chosen = state.order[start : start + limit]
            more = start + limit < len(state.order)
            return json_response(
                {
                    "data": [
                        state.group_json(g, self._status(org, g), summary=True) for g in chosen
                    ],
                    "next_page": f"page_{start + limit}" if more else None,
                }
            )

    async def get_group(self, request: Request) -> Response:
        org = self._org(request, READ)
        group_id = request.path_params["rbac_group_id"]
        with self.real.state.lock:
            state = self._state(org)
            state._held(group_id)
            return json_response(state.group_json(group_id, self._status(org, group_id)))

    async def set_group(self, request: Request) -> Response:
        org = self._org(request, WRITE)
        group_id = request.path_params["rbac_group_id"]
        settings = settings_document(await json_body(request))
        assert settings is not None
        with self.real.state.lock:
            if group_id not in org.rbac_groups:
                raise coded(
                    404,
                    "not_found_error",
                    f"rbac group {group_id!r} is not one of organization {org.id}'s groups",
                    "rbac_group_not_found",
                )
            state = self._state(org)
            state.set_group(group_id, settings)
            return json_response(state.group_json(group_id, "active"))

    async def delete_group(self, request: Request) -> Response:
        org = self._org(request, WRITE)
        group_id = request.path_params["rbac_group_id"]
        with self.real.state.lock:
            self._state(org).delete_group(group_id)
        return json_response(
            {"type": "claude_code_rbac_group_managed_settings_deleted", "rbac_group_id": group_id}
        )

    def _default_json(self, state: ManagedSettings) -> dict[str, Any]:
        return {
            "type": "claude_code_rbac_group_default_managed_settings",
            "settings": state.default,
            "updated_at": state.default_updated_at,
        }

    async def get_default(self, request: Request) -> Response:
        org = self._org(request, READ)
        with self.real.state.lock:
            return json_response(self._default_json(self._state(org)))

    async def set_default(self, request: Request) -> Response:
        org = self._org(request, WRITE)
        settings = settings_document(await json_body(request), nullable=True)
        with self.real.state.lock:
            state = self._state(org)
            state.default = settings
            state.default_updated_at = None if settings is None else iso_now()
            state.writes += 1
            return json_response(self._default_json(state))
