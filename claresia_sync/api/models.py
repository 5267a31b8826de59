"""Typed answers of the Anthropic organisation API (docs/interfaces.md section 3).

Resource models ignore fields they do not know (the API may add some). Audit events are lenient
on purpose: any event type, any missing or odd field; the raw dict is always kept, because the
poller stores it for provenance and quarantines what it cannot attribute.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StrictBool,
    ValidationError,
)
from pydantic_core import core_schema

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


class TypedAuditEvent(_Lenient):
    """The typed view of an audit event (`AuditEvent.view`): lax, unknown fields kept."""

    id: str = ""
    type: str = ""
    created_at: str | None = None
    organization_id: str | None = None
    workspace_id: str | None = None
    actor: AuditActor | None = None
    skill: AuditSkill | None = None
    invocation: AuditInvocation | None = None
    error: AuditError | None = None


def _typed(item: Any) -> tuple[TypedAuditEvent, str | None]:
    """The typed view of a served item and why it is incomplete (None: it is not)."""
    if not isinstance(item, dict):
        return TypedAuditEvent(), f"event is a {type(item).__name__}, not an object"
    try:
        view = TypedAuditEvent.model_validate(item)
    except ValidationError as exc:
        ident, kind = item.get("id"), item.get("type")
        partial = TypedAuditEvent(
            id=ident if isinstance(ident, str) else "",
            type=kind if isinstance(kind, str) else "",
        )
        return partial, "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
    if not view.id or not view.type:
        return view, "event has no id or no type"
    return view, None


class AuditEvent:
    """One audit event as served. `raw` is always whole (the poller stores it for provenance
    and quarantines what it cannot attribute); the typed view and `problem` (why that view is
    incomplete) are validated on first use only, because the poller normalises well-formed
    events from `raw` directly: a pydantic model per event was a quarter of its CPU."""

    __slots__ = ("_item", "_typed", "raw")

    def __init__(self, item: Any) -> None:
        self._item = item
        self.raw: dict[str, Any] = item if isinstance(item, dict) else {"value": item}
        self._typed: tuple[TypedAuditEvent, str | None] | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> AuditEvent:
        return cls(raw)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(cls)  # so that `Page[AuditEvent]` holds them

    def __repr__(self) -> str:
        return f"AuditEvent({self._item!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AuditEvent) and other._item == self._item

    __hash__ = None  # type: ignore[assignment]  # mutable raw dict

    @property
    def id(self) -> str:
        """The event's id if it is a string, else "" (as in the typed view, unvalidated)."""
        ident = self.raw.get("id") if self.raw is self._item else None
        return ident if isinstance(ident, str) else ""

    @property
    def type(self) -> str:
        kind = self.raw.get("type") if self.raw is self._item else None
        return kind if isinstance(kind, str) else ""

    @property
    def served(self) -> Any:
        """The item as the API served it (`raw` wraps one that is not an object)."""
        return self._item

    @property
    def is_object(self) -> bool:
        return self.raw is self._item

    def _checked(self) -> tuple[TypedAuditEvent, str | None]:
        if self._typed is None:
            self._typed = _typed(self._item)
        return self._typed

    @property
    def view(self) -> TypedAuditEvent:
        return self._checked()[0]

    @property
    def problem(self) -> str | None:
        return self._checked()[1]


class Page(BaseModel, Generic[T]):
    """One page of a list call: ascending by id; `last_id` is the cursor for the next page."""

    model_config = ConfigDict(frozen=True)

    data: list[T]
    has_more: StrictBool  # lax mode would read "yes" or "false" as a bool
    first_id: str | None = None
    last_id: str | None = None
