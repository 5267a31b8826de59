"""What a Claude skill upload must meet (docs/interfaces.md section 2, upload checks of section 3).

The product's one statement of "what the API would accept"; the emulator judges uploads by its
own reading of the documents (`emulator/skill_rules.py`), so that the two can disagree.
Frontmatter is checked by the reference validator (`skills_ref`), which parses it with strictyaml
just as `agentskills validate` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from skills_ref.errors import ParseError
from skills_ref.parser import parse_frontmatter
from skills_ref.validator import validate_metadata

from claresia_sync.naming import MAX_NAME, NAME_RE, reserved_word_in

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_DESCRIPTION = 1024
_XML_TAG = re.compile(r"<[^>]*>")


def has_xml_tag(text: str) -> bool:
    return bool(_XML_TAG.search(text))


def check_name(name: object) -> list[str]:
    if not isinstance(name, str) or not name:
        return ["name: must be a non-empty string"]
    problems = []
    if len(name) > MAX_NAME:
        problems.append(f"name: {name!r} is longer than {MAX_NAME} characters")
    if not NAME_RE.fullmatch(name):
        problems.append(f"name: {name!r} must match ^[a-z0-9]+(-[a-z0-9]+)*$")
    word = reserved_word_in(name)
    if word:
        problems.append(f"name: {name!r} contains the reserved word {word!r}")
    return problems


def check_description(description: object, where: str = "description") -> list[str]:
    if not isinstance(description, str) or not description.strip():
        return [f"{where}: must be a non-empty string"]
    problems = []
    if len(description) > MAX_DESCRIPTION:
        problems.append(f"{where}: {len(description)} characters, at most {MAX_DESCRIPTION}")
    if has_xml_tag(description):
        problems.append(f"{where}: must not contain XML tags")
    return problems


def check_path(path: object, name: str) -> str | None:
    """Why a file path is unacceptable, or None."""
    if not isinstance(path, str) or not path:
        return "path must be a non-empty string"
    if "\\" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return f"path {path!r} must be relative and use '/'"
    parts = PurePosixPath(path).parts
    if ".." in path.split("/") or "." in path.split("/") or "" in path.split("/"):
        return f"path {path!r} must not contain '..', '.' or empty segments"
    if len(parts) < 2 or parts[0] != name:
        return f"path {path!r} must be inside the top-level folder {name!r}"
    return None


def validate_upload(payload: Mapping[str, Any]) -> list[str]:
    """Problems with a skill upload (POST body of docs/interfaces.md section 2/3); empty means
    valid."""
    name = payload.get("name")
    problems = check_name(name)
    if problems:
        return problems
    assert isinstance(name, str)
    problems += check_description(payload.get("description"))
    title = payload.get("display_title")
    if title is not None and (not isinstance(title, str) or not title.strip() or "\n" in title):
        problems.append("display_title: must be a non-empty single-line string")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        problems.append("metadata: must map strings to strings")

    files = payload.get("files")
    if not isinstance(files, list) or not files:
        return [*problems, "files: must be a non-empty list of {path, content}"]
    seen: set[str] = set()
    total = 0
    skill_md: str | None = None
    for i, entry in enumerate(files):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("content"), str):
            problems.append(f"files[{i}]: must be an object with string 'path' and 'content'")
            continue
        path, content = entry.get("path"), entry["content"]
        why = check_path(path, name)
        if why:
            problems.append(f"files[{i}]: {why}")
            continue
        assert isinstance(path, str)
        if path in seen:
            problems.append(f"files[{i}]: duplicate path {path!r}")
        seen.add(path)
        total += len(content.encode("utf-8"))
        if path == f"{name}/SKILL.md":
            skill_md = content
    if total > MAX_UPLOAD_BYTES:
        problems.append(f"files: {total} bytes in all, at most {MAX_UPLOAD_BYTES}")
    if skill_md is None:
        problems.append(f"files: {name}/SKILL.md is missing")
    else:
        problems += check_skill_md(skill_md, name)
    return problems


def check_skill_md(content: str, name: str) -> list[str]:
    """Frontmatter per the Agent Skills format, judged by the reference validator."""
    try:
        meta, body = parse_frontmatter(content)
    except ParseError as exc:
        return [f"SKILL.md: {exc}"]
    problems = [f"SKILL.md: {p}" for p in validate_metadata(meta, Path(name))]
    description = meta.get("description")
    if isinstance(description, str):
        problems += check_description(description, "SKILL.md: description")
    if "metadata" in meta and not isinstance(meta["metadata"], dict):
        problems.append("SKILL.md: metadata must be a mapping of strings")
    if not body.strip():
        problems.append("SKILL.md: the instructions after the frontmatter are empty")
    return problems
