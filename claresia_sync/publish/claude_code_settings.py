"""Point a tenant's Claude Code at the OTLP receiver through Claude Enterprise's managed-settings
API (beta `ce-claude-code-managed-settings-2026-10-06`), per rbac group of its archetypes.
A step of every publish job (`job_run`, after the plugins) and `claresia-sync otlp configure`:
it lives with publishing, on the targets' SDK caller; telemetry only receives what it turns on.

Opt-in (`otlp.manage_claude_code_settings` in the tenants file). Each group's settings document
is read, only our `env` entries are changed, and it is written back whole (the API replaces
documents) only when it changed: every other setting and env var stays as it was. Which entries
are ours is remembered per group (`claude_code_settings.owned`, names only): an entry someone
else set to the same value is not claimed, one set to another value is a conflict left alone,
and turning the opt-in off (or dropping an archetype) removes exactly what we wrote, deleting
the document only if we made it. The token goes into `OTEL_EXPORTER_OTLP_HEADERS` (Claude Code
must send it); it is read from its reference when needed and is never logged, stored by us or
shown (the diff masks it).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.sdk import SdkCaller, SdkFailure
from claresia_sync.db.models import ClaudeCodeSettings, OtlpToken, Tenant
from claresia_sync.errors import UserError
from claresia_sync.publish.targets import KINDS
from claresia_sync.publish.targets.base import TargetError
from claresia_sync.secrets import KeyReferenceError, resolve_token
from claresia_sync.tenancy.lookup import require_tenant, tenant_targets, workspaces_and_groups

TELEMETRY_ENV = (
    "CLAUDE_CODE_ENABLE_TELEMETRY",
    "OTEL_LOGS_EXPORTER",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_LOG_TOOL_DETAILS",
)
SECRET_ENV = "OTEL_EXPORTER_OTLP_HEADERS"
MASKED = "Authorization=Bearer ****"
SCOPES = "read:claude_code_managed_settings and write:claude_code_managed_settings"
R_GROUP = "/v1/organizations/claude_code/managed_settings/rbac_groups/{rbac_group_id}"
R_CONFIGURATION = "/v1/organizations/claude_code/managed_settings/configuration"
log = logging.getLogger(__name__)


def wanted_env(endpoint: str, token: str) -> dict[str, str]:
    """The Claude Code environment that exports OTLP logs to the receiver at `endpoint`."""
    return {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": endpoint.rstrip("/") + "/v1/logs",
        SECRET_ENV: f"Authorization=Bearer {token}",
        "OTEL_LOG_TOOL_DETAILS": "1",  # without it Claude Code does not name the skill
    }


@dataclass(frozen=True)
class Owned:
    """What we wrote into one group's document: env names, and whether we made the document."""

    env: tuple[str, ...]
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {"env": list(self.env), "created": self.created}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Owned | None:
        if not raw:
            return None
        return cls(tuple(raw.get("env", ())), bool(raw.get("created")))


@dataclass
class GroupPlan:
    """One group's read-modify-write: `after` is None to delete the document we made."""

    group_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    owned: Owned | None
    changes: list[tuple[str, str, str | None]] = field(default_factory=list)
    conflict: str | None = None

    @property
    def writes(self) -> bool:
        return self.conflict is None and self.after != self.before

    def diff(self) -> str:
        """`+ NAME=value, ~ NAME=value, - NAME`, the token masked."""

        def show(name: str, value: str | None) -> str:
            if value is None:
                return name
            return f"{name}={MASKED if name == SECRET_ENV else value}"

        return ", ".join(f"{op} {show(name, value)}" for op, name, value in self.changes)


def plan_group(
    group_id: str,
    current: dict[str, Any] | None,
    want: Mapping[str, str] | None,
    owned: Owned | None,
) -> GroupPlan:
    """Our env entries of `want` set (or, `want` None, ours removed) in `current`, the group's
    document (None: it has none); nothing else in it is touched."""
    doc = copy.deepcopy(current) if current is not None else {}
    env_raw = doc.get("env", {})
    if not isinstance(env_raw, dict):
        return GroupPlan(
            group_id, current, current, owned, conflict="its settings' `env` is not an object"
        )
    env: dict[str, Any] = dict(env_raw)
    mine = set(owned.env) if owned else set()
    created = owned.created if owned else current is None
    plan = GroupPlan(group_id, current, None, None)
    if want is not None:
        taken = [k for k, v in want.items() if k not in mine and k in env and env[k] != v]
        if taken:
            plan.after, plan.owned = current, owned
            plan.conflict = (
                f"{', '.join(taken)} already set there by someone else: remove "
                f"{'it' if len(taken) == 1 else 'them'} from the group's managed settings to let "
                "claresia-sync manage the Claude Code telemetry, or turn the opt-in off"
            )
            return plan
        for name, value in want.items():
            if name in env and name not in mine:
                continue  # someone else's, already the value we need: not claimed
            if env.get(name) != value:
                plan.changes.append(("~" if name in env else "+", name, value))
                env[name] = value
            mine.add(name)
    else:
        for name in sorted(mine):
            if name in env:
                del env[name]
                plan.changes.append(("-", name, None))
        mine = set()
    if env:
        doc["env"] = env
    else:
        doc.pop("env", None)
    plan.owned = Owned(tuple(n for n in TELEMETRY_ENV if n in mine), created) if mine else None
    plan.after = None if (not doc and created and want is None) else doc
    if current is None and plan.after == {}:
        plan.after = None  # nothing to write into a group that has no document
    return plan


@dataclass
class ConfigureResult:
    lines: list[str] = field(default_factory=list)
    failed: int = 0
    written: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    """A publish job's error entries (`configure_for_job`), one per group or tenant failed."""


def _hints(status: int, code: str | None, message: str) -> str:
    if status == 403:
        return f"the claude-enterprise admin key needs the scopes {SCOPES}: make one with them"
    if status == 404 and code is None:
        return (
            "the managed-settings API answers 404 without its beta header "
            "(ce-claude-code-managed-settings-2026-10-06) or for an organisation not enabled for "
            "this beta: ask Anthropic to enable it, or turn otlp.manage_claude_code_settings off"
        )
    if code == "rbac_group_not_found":
        return "fix the archetype's rbac_group in the tenants file"
    return "the next run tries again"


@dataclass(frozen=True)
class _Tenant:
    slug: str
    manage: bool
    endpoint: str | None
    token_ref: str | None
    owned: dict[str, Owned]
    groups: list[str]
    connection: TenantConnection | None


def _load(session: Session, slug: str) -> _Tenant:
    tenant = require_tenant(session, slug)
    if tenant.parent is not None:
        raise UserError(
            f"tenant {slug!r} is a sub-tenant: the opt-in is its root's; use --tenant "
            f"{tenant.parent.slug}"
        )
    row = session.get(ClaudeCodeSettings, tenant.id)
    if row is None:
        raise UserError(
            f"tenant {slug!r} has no `otlp:` in the tenants file: add `otlp: "
            "{manage_claude_code_settings: true, endpoint: https://...}` and apply it"
        )
    token = session.get(OtlpToken, tenant.id)
    # The target whose organisation takes Claude Code's managed settings (claude-enterprise).
    targets = [c for c in tenant_targets(session, slug) if KINDS[c.target].claude_code_settings]
    owned = {g: o for g, raw in row.owned.items() if (o := Owned.from_json(raw)) is not None}
    return _Tenant(
        slug=slug,
        manage=row.manage,
        endpoint=row.endpoint,
        token_ref=token.token_ref if token else None,
        owned=owned,
        groups=workspaces_and_groups(session, slug)[1] if row.manage else [],
        connection=targets[0] if targets else None,
    )


def _record(engine: Engine, slug: str, group_id: str, owned: Owned | None) -> None:
    """What we now own in one group, committed right after its write."""
    with Session(engine) as session, session.begin():
        tenant = require_tenant(session, slug)
        row = session.scalar(
            select(ClaudeCodeSettings)
            .where(ClaudeCodeSettings.tenant_id == tenant.id)
            .with_for_update()
        )
        if row is None:
            return
        mine = dict(row.owned)
        if owned is None:
            mine.pop(group_id, None)
        else:
            mine[group_id] = owned.to_json()
        row.owned = mine


async def configure_tenant(
    engine: Engine,
    slug: str,
    *,
    dry_run: bool = False,
    caller: SdkCaller | None = None,
    http: httpx2.AsyncClient | None = None,
) -> ConfigureResult:
    """Bring the managed settings of tenant `slug`'s groups in line with its opt-in; one line
    per group. Errors that stop every group (key, scope, beta) raise `UserError` in one line."""
    with Session(engine) as session:
        t = _load(session, slug)
    result = ConfigureResult()
    visit = sorted(set(t.groups) | set(t.owned))
    if not visit:
        state = "on, but its archetypes name no rbac group" if t.manage else "off"
        result.lines.append(f"{slug}: Claude Code settings opt-in {state}; none of ours remain")
        return result
    if t.connection is None:
        raise UserError(
            f"tenant {slug!r}: the Claude Code managed settings need its claude-enterprise target "
            "(targets.claude-enterprise in the tenants file)"
        )
    want: dict[str, str] | None = None
    if t.manage:
        if t.endpoint is None or t.token_ref is None:
            raise UserError(f"tenant {slug!r}: otlp.endpoint and otlp_token are both needed")
        try:
            want = wanted_env(t.endpoint, resolve_token(t.token_ref))
        except KeyReferenceError as exc:
            raise UserError(f"tenant {slug!r}: otlp_token: {exc}") from None
    own = caller is None
    caller = caller or SdkCaller(t.connection, http=http, counter=None, hints=_hints)
    try:
        await _configure_groups(engine, t, visit, want, caller, dry_run, result)
    finally:
        if own:
            await caller.aclose()
    return result


def _fatal(t: _Tenant, exc: TargetError) -> UserError:
    assert t.connection is not None
    hint = f": {exc.hint}" if exc.hint else ""
    return UserError(f"tenant {t.slug!r}, {t.connection.describe()}: {exc}{hint}")


async def _configure_groups(
    engine: Engine,
    t: _Tenant,
    visit: list[str],
    want: dict[str, str] | None,
    caller: SdkCaller,
    dry_run: bool,
    result: ConfigureResult,
) -> None:
    api = caller.sdk.beta.organization.claude_code.managed_settings
    try:
        config = await caller.call(
            "GET", R_CONFIGURATION, "GET " + R_CONFIGURATION, api.configuration.retrieve
        )
    except TargetError as exc:
        raise _fatal(t, exc) from None
    for group_id in visit:
        path = R_GROUP.format(rbac_group_id=group_id)
        group_want = want if group_id in t.groups else None
        try:
            current = await _read_group(caller, api, group_id, path)
            plan = plan_group(group_id, current, group_want, t.owned.get(group_id))
            if plan.conflict is not None:
                result.failed += 1
                result.lines.append(
                    f"{t.slug} {group_id}: conflict, nothing written: {plan.conflict}"
                )
                result.errors.append(_error(t, group_id, f"conflict: {plan.conflict}"))
                continue
            verb = _verb(plan, dry_run)
            if not dry_run and plan.writes:
                await _write(caller, api, plan, path)
                result.written += 1
            if not dry_run and plan.owned != t.owned.get(group_id):
                _record(engine, t.slug, group_id, plan.owned)
        except TargetError as exc:
            if isinstance(exc, SdkFailure) and exc.status == 403:
                raise _fatal(t, exc) from None
            result.failed += 1
            hint = f" ({exc.hint})" if exc.hint else ""
            result.lines.append(f"{t.slug} {group_id}: error: {exc}{hint}")
            result.errors.append(_error(t, group_id, f"{exc}{hint}", exc.retryable))
            continue
        result.lines.append(f"{t.slug} {group_id}: {verb}")
    mode = config.mode.type
    if want is not None and mode != "rbac_groups":
        result.lines.append(
            f"note: organisation {t.connection.org_id if t.connection else ''} serves Claude Code "
            f"managed settings in `{mode}` mode: the groups' settings apply once an owner "
            "switches it to `rbac_groups` (claude.ai, or the configuration API); claresia-sync "
            "does not switch it, as that changes every member's settings"
        )


def _error(
    t: _Tenant | str, group_id: str | None, why: str, retryable: bool = False
) -> dict[str, Any]:
    """An entry of a publish job's `errors`, in the shape of the skills' ones."""
    connection = t.connection if isinstance(t, _Tenant) else None
    return {
        "org_id": connection.org_id if connection else None,
        "tenant": t.slug if isinstance(t, _Tenant) else t,
        "skill_id": None,
        "name": f"claude code settings {group_id}" if group_id else "claude code settings",
        "error": why,
        "retryable": retryable,
        "attempts": 1,
    }


async def configure_for_job(
    engine: Engine, tenant_slug: str | None, *, http: httpx2.AsyncClient | None = None
) -> ConfigureResult:
    """After a publish job: `configure_tenant` for each root tenant of its scope (all when
    None) whose opt-in is on or whose entries are still in some group; results merged."""
    # In a thread: every publish job (each unit of a republish-all, 8 at once) ends here, and
    # reading on the event loop stalled the other runs' calls for its round trips.
    roots = await asyncio.to_thread(managed_roots, engine, tenant_slug)
    merged = ConfigureResult()
    for slug in roots:
        try:
            done = await configure_tenant(engine, slug, http=http)
        except UserError as exc:
            log.warning("claude code settings of tenant %s: %s", slug, exc)
            merged.failed += 1
            merged.errors.append(_error(slug, None, str(exc)))
            continue
        for line in done.lines:
            log.info("claude code settings: %s", line)
        merged.lines += done.lines
        merged.failed += done.failed
        merged.written += done.written
        merged.errors += done.errors
    return merged


def managed_roots(engine: Engine, tenant_slug: str | None) -> list[str]:
    """The root tenants of the scope (`tenant_slug`'s root, or all) with settings to manage:
    the opt-in on, or entries of ours still in some group; sorted."""
    query = (
        select(Tenant.slug)
        .join(ClaudeCodeSettings, ClaudeCodeSettings.tenant_id == Tenant.id)
        .where(ClaudeCodeSettings.manage | (ClaudeCodeSettings.owned != {}))
    )
    with Session(engine) as session:
        if tenant_slug is not None:
            asked = require_tenant(session, tenant_slug)
            query = query.where(Tenant.id == (asked.parent_id or asked.id))
        return sorted(session.scalars(query))


def _verb(plan: GroupPlan, dry_run: bool) -> str:
    if not plan.writes:
        return "unchanged"
    would = "would be " if dry_run else ""
    if plan.after is None:
        what = f"{would}removed (the document claresia-sync made)"
    elif plan.before is None:
        what = f"{would}created"
    else:
        what = f"{would}updated"
    return f"{what}: {plan.diff()}"


async def _read_group(
    caller: SdkCaller, api: Any, group_id: str, path: str
) -> dict[str, Any] | None:
    try:
        doc = await caller.call(
            "GET", R_GROUP, "GET " + path, lambda: api.rbac_groups.retrieve(group_id)
        )
    except SdkFailure as exc:
        if exc.code == "rbac_group_managed_settings_not_found":
            return None
        raise
    if doc.settings is None:
        raise TargetError(
            f"GET {path}: the group's stored settings cannot be read (damaged)",
            hint="replace them in claude.ai, then run again",
        )
    return dict(doc.settings)


async def _write(caller: SdkCaller, api: Any, plan: GroupPlan, path: str) -> None:
    group_id = plan.group_id
    if plan.after is None:
        try:
            await caller.call(
                "DELETE", R_GROUP, "DELETE " + path, lambda: api.rbac_groups.delete(group_id)
            )
        except SdkFailure as exc:  # a retried delete whose first try went through
            if exc.code != "rbac_group_managed_settings_not_found":
                raise
        return
    settings = plan.after
    await caller.call(
        "POST", R_GROUP, "POST " + path, lambda: api.rbac_groups.set(group_id, settings=settings)
    )
