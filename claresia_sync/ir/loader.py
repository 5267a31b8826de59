"""Reads Skill IR files and reports every problem of every file at once.

A problem names the file, the JSON pointer (RFC 6901) of the bad field, and why. One bad file never
hides the others: `load_catalog` returns the good skills alongside the problems.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from claresia_sync.ir.models import (
    INPUT_NAME_PATTERN,
    SEMVER_PATTERN,
    SKILL_ID_PATTERN,
    TOOL_PATTERN,
    SkillIR,
)

MAX_FILE_BYTES = 16 * 1024 * 1024  # resources may hold 4 MiB of text, JSON-escaped
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    file: str
    pointer: str  # "" is the whole document
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer or '(document)'}: {self.reason}"


@dataclass(frozen=True)
class LoadedSkill:
    path: Path
    ir: SkillIR
    raw: dict[str, Any]
    ir_hash: str  # "sha256:<hex>" of `raw` as compact JSON, key order kept (`canonical_hash`)


@dataclass
class CatalogLoad:
    skills: list[LoadedSkill] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class IRError(Exception):
    """Raised by `load_skill_file` when the file is not a valid skill; carries every problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def canonical_hash(raw: Any) -> str:
    """The IR's identity: its JSON without whitespace, keys in the author's order (the order is
    part of the output: an example input's keys are rendered in it)."""
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def pointer(loc: Iterable[int | str]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in loc)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(f"duplicate key {key!r}: each key may appear once")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON: use a finite number or null")


_PATTERN_HINTS = {
    SKILL_ID_PATTERN: "must be lowercase letters and digits in words joined by single hyphens, "
    "e.g. 'incident-postmortem'",
    INPUT_NAME_PATTERN: "must be a lowercase identifier such as 'due_date'",
    SEMVER_PATTERN: "must be a semantic version such as '1.4.0'",
    TOOL_PATTERN: "must be one tool without spaces, such as 'Read' or 'Bash(git:*)'",
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(err: ErrorDetails) -> str:
    kind, msg = err["type"], err["msg"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key: not a Skill IR v1 field (extensions must start with 'x-')"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(str(err.get("ctx", {}).get("pattern")), msg)
        return f"{hint}; got {_shown(got)}"
    if kind == "literal_error" and err["loc"] == ("ir_version",):
        return f'must be "1" (this loader reads Skill IR version 1); got {_shown(got)}'
    text = (msg[0].lower() + msg[1:] if msg else kind).replace(" after validation", "")
    if kind in ("string_too_long", "string_too_short"):
        text += f"; got {len(got)}" if isinstance(got, str) else ""
    if kind in ("too_long", "too_short") and isinstance(got, list):
        text = re.sub(r", not \d+$", "", text) + f"; got {len(got)}"
    if kind.endswith("_type") or kind == "literal_error":
        text += f"; got {type(got).__name__} {_shown(got)}"
    return text


# C0 controls other than tab/newline/CR, and lone surrogates (JSON can escape them, UTF-8 cannot
# carry them): neither belongs in a skill's text and both break the published files.
_BAD_CHAR = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ud800-\\udfff]")


_MAYBE_BAD_ESCAPE = re.compile(r"\\u(00[01][0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _bad_strings(
    node: Any, loc: tuple[int | str, ...]
) -> Iterator[tuple[tuple[int | str, ...], str]]:
    if isinstance(node, str):
        m = _BAD_CHAR.search(node)
        if m:
            yield loc, f"must not contain the control or surrogate character U+{ord(m.group()):04X}"
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _bad_strings(value, (*loc, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _bad_strings(value, (*loc, i))


def parse_ir(data: bytes, file: str) -> LoadedSkill | list[Problem]:
    """Decode and validate one IR document; the problems if it is not a valid skill."""

    def problem(ptr: str, reason: str) -> list[Problem]:
        return [Problem(file, ptr, reason)]

    if len(data) > MAX_FILE_BYTES:
        return problem("", f"file is {len(data)} bytes, larger than {MAX_FILE_BYTES}")
    if data.startswith(_BOM):
        return problem("", "file starts with a UTF-8 byte order mark (BOM): save it without one")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return problem("", f"not UTF-8 text: invalid byte at offset {exc.start}")
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        if not text.strip():
            return problem("", "file is empty: a skill is one JSON object")
        return problem("", f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except ValueError as exc:  # duplicate keys, NaN/Infinity
        return problem("", str(exc))
    if not isinstance(raw, dict):
        return problem("", f"a skill must be a JSON object, not {type(raw).__name__}")
    problems = (
        [Problem(file, pointer(loc), why) for loc, why in _bad_strings(raw, ())]
        if _MAYBE_BAD_ESCAPE.search(text)  # strict JSON has them only as escapes: skip the walk
        else []
    )
    try:
        ir = SkillIR.model_validate(raw)
    except ValidationError as exc:
        seen = {p.pointer for p in problems}
        problems += [
            Problem(file, ptr, _explain(e))
            for e in exc.errors()
            if (ptr := pointer(e["loc"])) not in seen
        ]
    if problems:
        return problems
    return LoadedSkill(Path(file), ir, raw, canonical_hash(raw))


def load_skill_file(path: Path) -> LoadedSkill:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IRError([Problem(str(path), "", f"cannot read: {exc.strerror}")]) from None
    result = parse_ir(data, str(path))
    if isinstance(result, list):
        raise IRError(result)
    return result


def _expand(paths: Sequence[Path | str]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not found:
                problems.append(Problem(str(path), "", "folder holds no .json files"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), "", "no such file or folder"))
    return files, problems


def load_catalog(paths: Sequence[Path | str]) -> CatalogLoad:
    """Load every IR file under `paths` (files, or folders searched for *.json)."""
    files, problems = _expand(paths)
    result = CatalogLoad(problems=problems)
    first_file: dict[str, Path] = {}
    for path in files:
        try:
            skill = load_skill_file(path)
        except IRError as exc:
            result.problems += exc.problems
            continue
        sid = skill.ir.skill_id
        if sid in first_file:
            result.problems.append(
                Problem(
                    str(path), "/skill_id", f"skill_id {sid!r} is also used by {first_file[sid]}"
                )
            )
            continue
        first_file[sid] = path
        result.skills.append(skill)
    return result
