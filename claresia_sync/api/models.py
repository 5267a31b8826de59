"""Typed answers of the Anthropic organisation API (CONTRACT.md section 3).

Resource models ignore fields they do not know (the API may add some). Audit events are lenient
on purpose: any event type, any missing or odd field; the raw dict is always kept, because the
poller stores it for provenance and quarantines what it cannot attribute.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Organization(_Model):
    id: str
    name: str
    workspace_count: int | None = None
    zero_data_retention: bool = False


class Workspace(_Model):
    id: str
    name: str
    archived_at: str | None = None


class RbacGroup(_Model):
    id: str
    name: str


class SkillAccess(_Model):
    workspace_ids: list[str] = Field(default_factory=list)
    rbac_group_ids: list[str] = Field(default_factory=list)


class Skill(_Model):
    id: str
    name: str
    display_title: str | None = None
    description: str | None = None
    latest_version: str | None = None
    content_hash: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    access: SkillAccess = Field(default_factory=SkillAccess)
    created_at: str | None = None
    updated_at: str | None = None


class SkillDeleted(_Model):
    id: str
    type: str = "skill_deleted"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class AuditActor(_Lenient):
    type: str | None = None
    user_id: str | None = None
    email: str | None = None


class AuditSkill(_Lenient):
    id: str | None = None
    name: str | None = None
    version: str | None = None


class AuditUsage(_Lenient):
    input_tokens: int | None = None
    output_tokens: int | None = None


class AuditInvocation(_Lenient):
    id: str | None = None
    model: str | None = None
    duration_ms: int | None = None
    usage: AuditUsage | None = None
    cost_usd: str | None = None


class AuditError(_Lenient):
    type: str | None = None
    message: str | None = None


class AuditEvent(_Lenient):
    """One audit event. `problem` says why the typed view is incomplete (raw is always whole)."""

    id: str = ""
    type: str = ""
    created_at: str | None = None
    organization_id: str | None = None
    workspace_id: str | None = None
    actor: AuditActor | None = None
    skill: AuditSkill | None = None
    invocation: AuditInvocation | None = None
    error: AuditError | None = None
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True)
    problem: str | None = Field(default=None, exclude=True)

    @classmethod
    def from_raw(cls, raw: Any) -> AuditEvent:
        if not isinstance(raw, dict):
            return cls(
                problem=f"event is a {type(raw).__name__}, not an object", raw={"value": raw}
            )
        try:
            event = cls.model_validate({**raw, "raw": raw, "problem": None})
        except ValidationError as exc:
            ident = raw.get("id")
            kind = raw.get("type")
            return cls(
                id=ident if isinstance(ident, str) else "",
                type=kind if isinstance(kind, str) else "",
                raw=raw,
                problem="; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                ),
            )
        if not event.id or not event.type:
            return event.model_copy(update={"problem": "event has no id or no type"})
        return event


class Page(BaseModel, Generic[T]):
    """One page of a list call: ascending by id; `last_id` is the cursor for the next page."""

    model_config = ConfigDict(frozen=True)

    data: list[T]
    has_more: StrictBool  # lax mode would read "yes" or "false" as a bool
    first_id: str | None = None
    last_id: str | None = None
