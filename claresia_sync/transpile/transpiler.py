"""Skill IR + tenant slug -> Claude skill JSON (docs/interfaces.md section 2).

Pure and deterministic: the same IR and tenant always give byte-identical files, so the content
hash tells an unchanged skill from a changed one without asking the API.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from claresia_sync.ir.models import SkillInput, SkillIR
from claresia_sync.naming import published_name
from claresia_sync.skill_format import MAX_DESCRIPTION

_WS = re.compile(r"\s+")
_BACKTICKS = re.compile(r"`+")

_OUTPUT_INSTRUCTIONS = {
    "markdown": "Format the reply as Markdown.",
    "json": "Reply with a single JSON object and nothing else, so that it can be parsed as is.",
    "table": "Present the result as a Markdown table, with a short lead-in sentence at most.",
    "text": "Reply in plain text, without Markdown formatting.",
}


@dataclass(frozen=True, slots=True)
class SkillFile:
    path: str
    content: str


@dataclass(frozen=True, slots=True)
class ClaudeSkill:
    """A transpiled skill: the POST body of `/v1/organizations/{org_id}/skills`."""

    name: str
    display_title: str
    description: str
    files: tuple[SkillFile, ...]
    metadata: dict[str, str]

    @property
    def content_hash(self) -> str:
        return self.metadata["claresia.content_hash"]

    def payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_title": self.display_title,
            "description": self.description,
            "files": [{"path": f.path, "content": f.content} for f in self.files],
            "metadata": dict(self.metadata),
        }

    def payload_json(self) -> str:
        return json.dumps(self.payload(), ensure_ascii=False, indent=2) + "\n"

    def write(self, out_dir: Path) -> Path:
        """Write `<out>/<name>/...` (the bundle folder) and `<out>/<name>.json`; return the folder.

        The folder is built aside and swapped in, so a stale resource from an earlier run cannot
        survive and a crash never leaves half a bundle.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / self.name
        staging = Path(tempfile.mkdtemp(prefix=f".{self.name}.", dir=out_dir))
        try:
            for f in self.files:
                dest = staging / f.path.split("/", 1)[1]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(f.content, encoding="utf-8", newline="")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        (out_dir / f"{self.name}.json").write_text(self.payload_json(), encoding="utf-8")
        return target


def content_hash(files: tuple[SkillFile, ...]) -> str:
    """sha256 over the sorted paths and contents, each length-prefixed (no ambiguous joins)."""
    return bytes_hash((f.path, f.content.encode()) for f in files)


def bytes_hash(files: Iterable[tuple[str, bytes]]) -> str:
    """`content_hash` of files as bytes (path, UTF-8 content): what a downloaded archive holds."""
    h = hashlib.sha256()
    for path, content in sorted(files, key=lambda f: f[0]):
        encoded = path.encode()
        h.update(b"%d:%s%d:" % (len(encoded), encoded, len(content)))
        h.update(content)
    return "sha256:" + h.hexdigest()


def build_description(ir: SkillIR) -> str:
    """Summary plus "Use when: ..." items, on one line, within the 1024-char limit.

    Items that would overflow are left out here; the SKILL.md body still lists them all.
    """
    desc = _WS.sub(" ", ir.summary).strip()
    items = [_WS.sub(" ", i).strip().rstrip(".;") for i in ir.when_to_use]
    kept: list[str] = []
    for item in items:
        candidate = f"{desc} Use when: {'; '.join([*kept, item])}."
        if len(candidate) > MAX_DESCRIPTION:
            break
        kept.append(item)
    return f"{desc} Use when: {'; '.join(kept)}." if kept else desc


def transpile(ir: SkillIR, tenant: str) -> ClaudeSkill:
    name = published_name(tenant, ir.skill_id)
    description = build_description(ir)
    frontmatter_metadata = {
        "claresia.tenant": tenant,
        "claresia.skill_id": ir.skill_id,
        "claresia.skill_version": ir.version,
    }
    skill_md = _template().render(
        name=name,
        tenant=tenant,
        ir=ir,
        description=description,
        frontmatter_metadata=frontmatter_metadata,
        output_instruction=_OUTPUT_INSTRUCTIONS[ir.output.format],
    )
    files = (
        SkillFile(f"{name}/SKILL.md", skill_md),
        *sorted(
            (SkillFile(f"{name}/{r.path}", r.content) for r in ir.resources),
            key=lambda f: f.path,
        ),
    )
    metadata = {**frontmatter_metadata, "claresia.content_hash": content_hash(files)}
    return ClaudeSkill(name, ir.title, description, files, metadata)


# --- template filters -------------------------------------------------------------------------


# YAML (and so strictyaml) folds these line breaks inside quoted scalars or refuses these
# non-printables outright; written as escapes they survive the round trip unchanged.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def yaml_str(value: str) -> str:
    """A YAML double-quoted scalar. JSON string syntax is valid YAML; '---' is escaped because
    frontmatter readers split the file on it before parsing the YAML. Again until none is left:
    one pass over '-----' leaves '-\\u002d---' (runs of 3 and 4 come out as they always did)."""
    quoted = json.dumps(value, ensure_ascii=False)
    while "---" in quoted:
        quoted = quoted.replace("---", "-\\u002d-")
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def one_line(value: str) -> str:
    return _WS.sub(" ", value).strip()


def list_item(value: str) -> str:
    """Indent continuation lines so that a multi-line Markdown step stays inside its list item."""
    lines = value.strip("\n").splitlines()
    return "\n".join([lines[0]] + [f"   {ln}" if ln.strip() else "" for ln in lines[1:]])


def fenced(value: str, lang: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in _BACKTICKS.findall(value)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{value.rstrip(chr(10))}\n{fence}"


def fence_lang(output_format: str) -> str:
    return {"json": "json", "markdown": "markdown"}.get(output_format, "text")


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def input_type(inp: SkillInput) -> str:
    if inp.type == "enum":
        return "one of " + ", ".join(f"`{v}`" for v in inp.enum or [])
    if inp.type == "date":
        return "date, YYYY-MM-DD"
    if inp.type == "text":
        return "text, may span several lines"
    return inp.type


def input_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("claresia_sync.transpile", "templates"),
        autoescape=False,  # Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        yaml_str=yaml_str,
        one_line=one_line,
        list_item=list_item,
        fenced=fenced,
        fence_lang=fence_lang,
        pretty_json=pretty_json,
        input_type=input_type,
        input_value=input_value,
    )
    return env.get_template("SKILL.md.j2")
