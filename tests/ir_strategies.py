"""Hypothesis strategies for Skill IR documents that the models must accept.

Text is drawn from printable Unicode plus the characters that break naive YAML or Markdown
(quotes, colons, '#', '---', backticks, YAML line separators, DEL/C1), so a transpiler that
quotes or escapes carelessly fails here.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_TRICKY = [
    "---",
    ": ",
    "#",
    '"',
    "'",
    "`",
    "```",
    "\\",
    "|",
    "*",
    "\u2028",
    "\x85",
    "\x7f",
    "é",
    "😀",
]
_chars = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="<>\u2028\u2029\x85")


def _text(max_size: int, *, newlines: bool = False, tags: bool = True) -> st.SearchStrategy[str]:
    pieces = st.one_of(
        st.text(_chars, min_size=1, max_size=12),
        st.sampled_from(
            [*_TRICKY, *(["\n", "\n\n"] if newlines else []), *(["<b>"] if tags else [])]
        ),
    )
    return (
        st.lists(pieces, min_size=1, max_size=8)
        .map("".join)
        .map(lambda s: s[:max_size])
        .filter(lambda s: s.strip() != "")
        .filter(lambda s: newlines or ("\n" not in s and "\r" not in s))
    )


slug = st.from_regex(r"\A[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,4}\Z").filter(
    lambda s: "claude" not in s and "anthropic" not in s
)
skill_ids = slug.filter(lambda s: len(s) <= 48)
tenants = st.from_regex(r"\A[a-z0-9]{1,20}(-[a-z0-9]{1,20}){0,3}\Z").filter(
    lambda s: "claude" not in s and "anthropic" not in s
)
line = _text(200)
no_tag_line = _text(200, tags=False).filter(lambda s: "<" not in s and ">" not in s)
ident = st.from_regex(r"\A[a-z_][a-z0-9_]{0,20}\Z")


@st.composite
def inputs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["string", "text", "integer", "number", "boolean", "date", "enum"]))
    inp: dict[str, Any] = {
        "name": draw(ident),
        "type": kind,
        "description": draw(_text(300, newlines=True)),
        "required": draw(st.booleans()),
    }
    if kind == "enum":
        inp["enum"] = draw(st.lists(line, min_size=1, max_size=5, unique=True))
    if draw(st.booleans()):
        inp["default"] = draw(
            {
                "string": line,
                "text": _text(100, newlines=True),
                "integer": st.integers(-(10**6), 10**6),
                "number": st.floats(allow_nan=False, allow_infinity=False, width=32),
                "boolean": st.booleans(),
                "date": st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10),
                "enum": st.sampled_from(inp.get("enum", ["x"])),
            }[kind]
        )
    return inp


@st.composite
def skill_irs(draw: st.DrawFn) -> dict[str, Any]:
    ins = draw(st.lists(inputs(), max_size=6, unique_by=lambda i: i["name"]))
    doc: dict[str, Any] = {
        "ir_version": "1",
        "skill_id": draw(skill_ids),
        "title": draw(_text(120)),
        "summary": draw(_text(500, newlines=True, tags=False)),
        "when_to_use": draw(st.lists(no_tag_line, max_size=10)),
        "inputs": ins,
        "steps": draw(st.lists(_text(2000, newlines=True), min_size=1, max_size=6)),
        "output": {
            "format": draw(st.sampled_from(["markdown", "json", "table", "text"])),
            "sections": draw(st.lists(line, max_size=4)),
        },
        "examples": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "title": line,
                        "input": st.dictionaries(ident, st.one_of(line, st.integers())),
                        "output": _text(500, newlines=True),
                    }
                ),
                max_size=3,
            )
        ),
        "resources": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "path": st.from_regex(
                            r"\A(references|assets|scripts)/[a-z0-9_]{1,10}(/[a-z0-9_-]{1,10}){0,2}\.(md|txt|py)\Z"
                        ),
                        "content": st.text(
                            st.characters(blacklist_categories=("Cs", "Cc"))
                            | st.sampled_from("\n\t"),
                            max_size=200,
                        ),
                    }
                ),
                max_size=3,
                unique_by=lambda r: r["path"],
            )
        ),
        "version": draw(
            st.from_regex(r"\A(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]?)\.(0|[1-9])(-rc---[0-9])?\Z")
        ),
    }
    if draw(st.booleans()):
        doc["allowed_tools"] = draw(
            st.lists(st.sampled_from(["Read", "Grep", "Bash(git:*)", "Write"]))
        )
    if draw(st.booleans()):
        doc["x-origin"] = {"tool": "hypothesis"}
    return doc
