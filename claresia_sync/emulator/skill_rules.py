"""The emulator's own reading of the documented rules a skill upload must meet, written from the
documents and not from the product, so that a bug in the product's validators or hash shows
against the emulator instead of being shared with it (a test keeps the emulator from importing
the product's modules: tests/unit/test_emulator_independent.py).

Read from:
- the Agent Skills format (agentskills.io/specification): `SKILL.md` opens with YAML
  frontmatter between `---` lines; `name` (1-64 characters, lowercase letters, digits and
  hyphens, not starting or ending with a hyphen, no two hyphens in a row, equal to the folder
  holding it) and `description` (1-1024 characters) are required; `license`, `compatibility`
  (at most 500 characters), `metadata` (string keys to string values) and `allowed-tools` are
  the only other fields;
- Anthropic's Agent Skills overview (platform.claude.com/docs/en/agents-and-tools/agent-skills/
  overview): a name holds no reserved word (`anthropic`, `claude`) and neither the name nor the
  description holds an XML tag;
- the SDK's `skills.create` docstring (`anthropic/resources/skills/skills.py`): all files in one
  top-level folder, `SKILL.md` at its root;
- docs/interfaces.md section 2: the content hash, byte for byte.

Frontmatter is read with PyYAML, not with the strictyaml of the reference validator that the
product uses: two parsers, so a bundle only one of them reads is caught.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from claresia_sync.emulator.uploads import check_paths

NAME_MAX = 64
DESCRIPTION_MAX = 1024
COMPATIBILITY_MAX = 500
RESERVED = ("anthropic", "claude")
FIELDS = frozenset({"name", "description", "license", "compatibility", "metadata", "allowed-tools"})
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# An XML tag: '<', an optional '/', a letter, anything but angle brackets, '>'.
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def name_problems(name: object, where: str = "name") -> list[str]:
    if not isinstance(name, str) or not name:
        return [f"{where}: must be a non-empty string"]
    found = []
    if len(name) > NAME_MAX:
        found.append(f"{where}: {name!r} has {len(name)} characters, at most {NAME_MAX}")
    if not set(name) <= _NAME_CHARS:
        found.append(f"{where}: {name!r} may hold only lowercase letters, digits and hyphens")
    if name.startswith("-") or name.endswith("-") or "--" in name:
        found.append(f"{where}: {name!r} must not start or end with '-' or hold '--'")
    for word in RESERVED:
        if word in name:
            found.append(f"{where}: {name!r} holds the reserved word {word!r}")
    if _TAG.search(name):
        found.append(f"{where}: must not hold XML tags")
    return found


def description_problems(text: object, where: str = "description") -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return [f"{where}: must be a non-empty string"]
    found = []
    if len(text) > DESCRIPTION_MAX:
        found.append(f"{where}: {len(text)} characters, at most {DESCRIPTION_MAX}")
    if _TAG.search(text):
        found.append(f"{where}: must not hold XML tags")
    return found


def read_frontmatter(content: str) -> tuple[dict[str, Any], str]:
    """(frontmatter, body) of a SKILL.md; ValueError saying why it has none."""
    lines = content.split("\n")
    if lines[0].rstrip("\r") != "---":
        raise ValueError("SKILL.md must open with a '---' line (YAML frontmatter)")
    for i, line in enumerate(lines[1:], start=1):
        if line.rstrip("\r") == "---":
            try:
                meta = yaml.safe_load("\n".join(lines[1:i]))
            except yaml.YAMLError as exc:
                raise ValueError(f"SKILL.md frontmatter is not YAML: {exc}") from None
            if not isinstance(meta, dict):
                raise ValueError("SKILL.md frontmatter must be a YAML mapping")
            return meta, "\n".join(lines[i + 1 :])
    raise ValueError("SKILL.md frontmatter has no closing '---' line")


def skill_md_problems(content: str, folder: str) -> list[str]:
    """What is wrong with a SKILL.md found in `folder`, as "SKILL.md: ..." lines."""
    try:
        meta, _ = read_frontmatter(content)
    except ValueError as exc:
        return [str(exc)]
    found = [f"SKILL.md: unknown frontmatter field {k!r}" for k in sorted(set(meta) - FIELDS)]
    if "name" not in meta:
        found.append("SKILL.md: frontmatter has no name")
    else:
        found += name_problems(meta["name"], "SKILL.md: name")
        if meta["name"] != folder:
            found.append(f"SKILL.md: name {meta['name']!r} must equal its folder {folder!r}")
    if "description" not in meta:
        found.append("SKILL.md: frontmatter has no description")
    else:
        found += description_problems(meta["description"], "SKILL.md: description")
    compatibility = meta.get("compatibility")
    if compatibility is not None and (
        not isinstance(compatibility, str) or len(compatibility) > COMPATIBILITY_MAX
    ):
        found.append(f"SKILL.md: compatibility must be text of at most {COMPATIBILITY_MAX}")
    metadata = meta.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        found.append("SKILL.md: metadata must map strings to strings")
    return found


def skill_md_fields(content: str) -> tuple[str, str]:
    """(name, description) of a SKILL.md that `skill_md_problems` accepted."""
    meta, _ = read_frontmatter(content)
    return str(meta["name"]), str(meta["description"])


def one_folder_problems(paths: Iterable[str]) -> tuple[str | None, list[str]]:
    """(the top folder, problems): every file inside one top-level folder holding SKILL.md."""
    paths = list(paths)
    tops = sorted({p.split("/", 1)[0] for p in paths if "/" in p})
    loose = [p for p in paths if "/" not in p]
    if loose or len(tops) != 1:
        return None, [
            "files: every file must be inside one top-level folder that holds SKILL.md "
            f"(found folders {tops} and loose files {loose})"
        ]
    if f"{tops[0]}/SKILL.md" not in paths:
        return tops[0], [f"files: {tops[0]}/SKILL.md is missing"]
    return tops[0], []


def content_hash(files: Iterable[tuple[str, bytes]]) -> str:
    """docs/interfaces.md section 2: for each file in ascending order of path, its path's byte
    length, ':', the path, its content's byte length, ':', the content; sha256 of it all."""
    digest = hashlib.sha256()
    for path, content in sorted((p.encode("utf-8"), c) for p, c in files):
        digest.update(str(len(path)).encode() + b":" + path)
        digest.update(str(len(content)).encode() + b":" + content)
    return f"sha256:{digest.hexdigest()}"


def text_files(files: Iterable[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
    """The `{path, content}` files of an org-skills upload as (path, UTF-8 bytes)."""
    return [(str(f["path"]), str(f["content"]).encode("utf-8")) for f in files]


def org_skill_problems(payload: Mapping[str, Any]) -> list[str]:
    """What is wrong with an org-skills upload (docs/interfaces.md section 3): the skill JSON of
    section 2, its files in one top-level folder equal to `name` holding a valid SKILL.md,
    relative paths without '..'. The size is the caller's (a 413, not a 400)."""
    name = payload.get("name")
    found = name_problems(name)
    if found:
        return found
    assert isinstance(name, str)
    found += description_problems(payload.get("description"))
    title = payload.get("display_title")
    if title is not None and (not isinstance(title, str) or not title.strip() or "\n" in title):
        found.append("display_title: must be one non-empty line")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        found.append("metadata: must map strings to strings")
    files = payload.get("files")
    if not isinstance(files, list) or not files:
        return [*found, "files: must be a non-empty list of {path, content}"]
    if not all(
        isinstance(f, Mapping) and all(isinstance(f.get(k), str) for k in ("path", "content"))
        for f in files
    ):
        return [*found, "files: each must be an object with string 'path' and 'content'"]
    listed = text_files(files)
    found += check_paths(listed)
    outside = [p for p, _ in listed if not p.startswith(f"{name}/")]
    if outside:
        found.append(f"files: {outside} are outside the top-level folder {name!r}")
    by_path = dict(listed)
    skill_md = by_path.get(f"{name}/SKILL.md")
    if skill_md is None:
        found.append(f"files: {name}/SKILL.md is missing")
    else:
        found += skill_md_problems(skill_md.decode("utf-8"), name)
    return found
