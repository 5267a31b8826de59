"""Skill IR version "1" (docs/interfaces.md section 1) as pydantic models.

Strict mode: IR is untrusted input from authoring tools, so `"true"` is not a boolean and `"3"` is
not an integer. Every rule of the contract lives here; `skills_ir/schema/skill-ir.v1.schema.json`
states the same rules for other tools, and a test keeps the two in agreement.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from claresia_sync.naming import reserved_word_in

SKILL_ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
INPUT_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
# semver.org's reference regex
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
RESOURCE_ROOTS = ("references", "assets", "scripts")
MAX_RESOURCE_BYTES = 4 * 1024 * 1024
InputType = Literal["string", "text", "integer", "number", "boolean", "date", "enum"]
OutputFormat = Literal["markdown", "json", "table", "text"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


def _no_tags(value: str) -> str:
    if "<" in value or ">" in value:
        raise ValueError("must not contain '<' or '>': the skill description may not hold XML tags")
    return value


def _bounded(hi: int) -> StringConstraints:
    return StringConstraints(min_length=1, max_length=hi)


_NotBlank = AfterValidator(_not_blank)
_OneLine = AfterValidator(_one_line)
_NoTags = AfterValidator(_no_tags)
Title = Annotated[str, _bounded(120), _NotBlank, _OneLine]
Line = Annotated[str, _bounded(200), _NotBlank, _OneLine]
Description = Annotated[str, _bounded(300), _NotBlank]
Summary = Annotated[str, _bounded(500), _NotBlank, _NoTags]
WhenToUse = Annotated[str, _bounded(200), _NotBlank, _OneLine, _NoTags]
Step = Annotated[str, _bounded(2000), _NotBlank]
ExampleOutput = Annotated[str, _bounded(20_000), _NotBlank]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SkillInput(_Strict):
    name: Annotated[str, StringConstraints(pattern=INPUT_NAME_PATTERN, max_length=64)]
    type: InputType
    description: Description
    required: bool = False
    # validate_default: the rule "enum only and always for type enum" must run when enum is absent.
    enum: Annotated[
        list[Line] | None, Field(min_length=1, max_length=100, validate_default=True)
    ] = None
    default: Any = None  # checked against `type` below, so one clear error

    @field_validator("enum")
    @classmethod
    def _enum_fits_type(cls, enum: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kind = info.data.get("type")
        if kind == "enum" and enum is None:
            raise ValueError("an input of type 'enum' needs a non-empty 'enum' list")
        if kind not in (None, "enum") and enum is not None:
            raise ValueError(f"'enum' is only allowed on inputs of type 'enum', not {kind!r}")
        if enum is not None and len(set(enum)) != len(enum):
            raise ValueError("'enum' values must be unique")
        return enum

    @field_validator("default")
    @classmethod
    def _default_fits_type(cls, default: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if default is not None and kind is not None:
            _check_default(default, kind, info.data.get("enum"))
        return default


def _check_default(d: Any, kind: str, enum: list[str] | None) -> None:
    ok = {
        "string": isinstance(d, str),
        "text": isinstance(d, str),
        "integer": isinstance(d, int) and not isinstance(d, bool),
        "number": isinstance(d, int | float) and not isinstance(d, bool),
        "boolean": isinstance(d, bool),
        "date": isinstance(d, str) and _is_iso_date(d),
        "enum": isinstance(d, str) and enum is not None and d in enum,
    }[kind]
    if not ok:
        expected = {
            "date": "an ISO date string such as 2026-01-31",
            "enum": f"one of {enum}",
            "number": "a number",
            "integer": "an integer",
            "boolean": "true or false",
        }.get(kind, "a string")
        raise ValueError(f"default {d!r} does not fit type {kind!r}: expected {expected}")


def _is_iso_date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


class SkillOutput(_Strict):
    format: OutputFormat
    sections: Annotated[list[Line], Field(max_length=30)] | None = None


class SkillExample(_Strict):
    title: Title
    input: dict[str, Any]
    output: ExampleOutput


class SkillResource(_Strict):
    path: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    content: str

    @field_validator("path")
    @classmethod
    def _safe_path(cls, v: str) -> str:
        if v.startswith("/") or "\\" in v or re.match(r"^[A-Za-z]:", v):
            raise ValueError(f"{v!r} must be a relative path using '/'")
        segments = v.split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise ValueError(f"{v!r} must not contain '..', '.' or empty segments")
        if len(segments) < 2 or segments[0] not in RESOURCE_ROOTS:
            raise ValueError(f"{v!r} must be a file under references/, assets/ or scripts/")
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", v):
            raise ValueError(f"{v!r} may use only letters, digits, '.', '_', '-' and '/'")
        return v


TOOL_PATTERN = r"^[^\s]+$"  # frontmatter `allowed-tools` is space-delimited
Tool = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TOOL_PATTERN)]


class SkillIR(_Strict):
    """One skill, as authored. Top-level `x-*` keys are extensions and are dropped here."""

    ir_version: Literal["1"]
    skill_id: Annotated[
        str, StringConstraints(min_length=1, max_length=48, pattern=SKILL_ID_PATTERN)
    ]
    title: Title
    summary: Summary
    when_to_use: Annotated[list[WhenToUse], Field(max_length=10)] = []
    inputs: Annotated[list[SkillInput], Field(max_length=20)] = []
    steps: Annotated[list[Step], Field(min_length=1, max_length=50)]
    output: SkillOutput
    examples: Annotated[list[SkillExample], Field(max_length=5)] = []
    resources: Annotated[list[SkillResource], Field(max_length=20)] = []
    allowed_tools: list[Tool] | None = None
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] | None = None
    owner: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    version: Annotated[str, StringConstraints(max_length=64, pattern=SEMVER_PATTERN)]
    deprecated: bool = False

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))
            }
        return data

    @field_validator("skill_id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        word = reserved_word_in(v)
        if word:
            raise ValueError(f"must not contain the reserved word {word!r}")
        return v

    @field_validator("inputs")
    @classmethod
    def _unique_inputs(cls, v: list[SkillInput]) -> list[SkillInput]:
        names = [i.name for i in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input names must be unique; repeated: {', '.join(dupes)}")
        return v

    @field_validator("resources")
    @classmethod
    def _resources_total(cls, v: list[SkillResource]) -> list[SkillResource]:
        paths = [r.path for r in v]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ValueError(f"resource paths must be unique; repeated: {', '.join(dupes)}")
        total = sum(len(r.content.encode("utf-8")) for r in v)
        if total > MAX_RESOURCE_BYTES:
            raise ValueError(
                f"resources hold {total} bytes in all; at most {MAX_RESOURCE_BYTES} (4 MiB)"
            )
        return v
