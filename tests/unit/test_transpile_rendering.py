"""What the transpiler writes, line by line, for a small IR that uses every feature of the
template (issue 21: mutation testing showed the rendered SKILL.md was checked only by the
reference validator, which accepts a wrong description, type or fence). The expected text is
worked out by hand from templates/SKILL.md.j2, not from the code under test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from claresia_sync.ir.models import SkillIR
from claresia_sync.transpile import transpile
from claresia_sync.transpile.transpiler import build_description, bytes_hash, fenced, yaml_str

IR: dict[str, Any] = {
    "ir_version": "1",
    "skill_id": "trip-report",
    "title": "Trip Report",
    "summary": "Writes a  trip report\nfor a visit to a città.",
    "when_to_use": ["After a site visit.", "Before the monthly review;"],
    "inputs": [
        {"name": "city", "type": "string", "description": "Where.", "required": True},
        {"name": "kind", "type": "enum", "description": "Why.", "enum": ["sales", "audit"]},
        {"name": "day", "type": "date", "description": "When."},
        {"name": "notes", "type": "text", "description": "What  was\nseen."},
        {"name": "nights", "type": "integer", "description": "How long.", "default": 3},
        {"name": "billable", "type": "boolean", "description": "Bill it?", "default": False},
        {"name": "owner", "type": "string", "description": "Who.", "default": "me"},
    ],
    "steps": ["Read the notes.", "Write the report:\n\n- visits\n- findings"],
    "output": {"format": "json", "sections": ["Summary", "Findings"]},
    "examples": [
        {
            "title": "Milano",
            "input": {"city": "Milano", "nights": 2, "note": "città"},
            "output": 'Use ``` fences: {"ok": true}',
        }
    ],
    "resources": [
        {"path": "references/template.md", "content": "# Template\n"},
        {"path": "references/deep/notes.md", "content": "notes\n"},
    ],
    "allowed_tools": ["Read", "Write"],
}

SKILL_MD = """\
---
name: claresia-acme-trip-report
description: "Writes a trip report for a visit to a città. Use when: After a site visit; \
Before the monthly review."
allowed-tools: "Read Write"
metadata:
  claresia.tenant: "acme"
  claresia.skill_id: "trip-report"
  claresia.skill_version: "1.2.0"
---
# Trip Report

Writes a  trip report
for a visit to a città.

## When to use

- After a site visit.
- Before the monthly review;

## Inputs

Before you start, ask the user in one message for every **required** input below that they have not
already given; never invent a value for a required input. For an optional input the user does not
give, use its default, or leave it out if it has none.

- `city` (string) **required**: Where.
- `kind` (one of `sales`, `audit`) optional: Why.
- `day` (date, YYYY-MM-DD) optional: When.
- `notes` (text, may span several lines) optional: What was seen.
- `nights` (integer) optional, default `3`: How long.
- `billable` (boolean) optional, default `false`: Bill it?
- `owner` (string) optional, default `me`: Who.

## Steps

1. Read the notes.
2. Write the report:

   - visits
   - findings

## Output

Reply with a single JSON object and nothing else, so that it can be parsed as is.

Use these sections, in this order:

1. Summary
2. Findings

## Examples

### Example 1: Milano

Input:

```json
{
  "city": "Milano",
  "nights": 2,
  "note": "città"
}
```

Output:

````json
Use ``` fences: {"ok": true}
````

## Files in this skill

- [`references/template.md`](references/template.md)
- [`references/deep/notes.md`](references/deep/notes.md)

---
*Published by Claresia for acme from skill `trip-report` version 1.2.0.*
"""


def ir(**changes: Any) -> SkillIR:
    return SkillIR.model_validate({**IR, "version": "1.2.0", **changes})


def test_the_skill_md_of_every_template_feature() -> None:
    skill = transpile(ir(), "acme")
    assert [f.path for f in skill.files] == [
        "claresia-acme-trip-report/SKILL.md",
        "claresia-acme-trip-report/references/deep/notes.md",
        "claresia-acme-trip-report/references/template.md",
    ]
    assert skill.files[0].content == SKILL_MD
    assert skill.files[2].content == "# Template\n"
    assert skill.description == (
        "Writes a trip report for a visit to a città. Use when: After a site visit; "
        "Before the monthly review."
    )
    assert (skill.name, skill.display_title) == ("claresia-acme-trip-report", "Trip Report")


def test_each_output_format_has_its_instruction_and_fence() -> None:
    lines = {
        "markdown": ("Format the reply as Markdown.", "````markdown"),
        "table": (
            "Present the result as a Markdown table, with a short lead-in sentence at most.",
            "````text",
        ),
        "text": ("Reply in plain text, without Markdown formatting.", "````text"),
    }
    for fmt, (instruction, fence) in lines.items():
        text = transpile(ir(output={"format": fmt}), "acme").files[0].content
        assert f"## Output\n\n{instruction}\n\n## Examples" in text, fmt
        assert f"Output:\n\n{fence}\nUse ``` fences" in text, fmt


def test_the_written_bundle_and_its_json(tmp_path: Path) -> None:
    skill = transpile(ir(), "acme")
    folder = skill.write(tmp_path / "out" / "deeper")  # parents are made
    assert (folder / "SKILL.md").read_bytes() == SKILL_MD.encode()
    assert (folder / "references" / "template.md").read_text(encoding="utf-8") == "# Template\n"
    assert (folder / "references" / "deep" / "notes.md").read_bytes() == b"notes\n"
    written = (tmp_path / "out" / "deeper" / "claresia-acme-trip-report.json").read_bytes()
    assert written == (json.dumps(skill.payload(), ensure_ascii=False, indent=2) + "\n").encode()
    assert "città".encode() in written and written.endswith(b"}\n")
    payload = json.loads(written)
    assert payload["description"] == skill.description
    assert payload["files"][2] == {
        "path": "claresia-acme-trip-report/references/template.md",
        "content": "# Template\n",
    }
    assert payload["metadata"]["claresia.content_hash"] == skill.content_hash
    assert sorted(p.name for p in (tmp_path / "out" / "deeper").iterdir()) == [
        "claresia-acme-trip-report",
        "claresia-acme-trip-report.json",
    ]  # no staging folder left behind


def test_a_bundle_hash_is_over_paths_in_order_whatever_the_order_given() -> None:
    a, b = ("a/SKILL.md", b"zzz"), ("b/x.md", b"aaa")
    by_path = "sha256:" + hashlib.sha256(b"10:a/SKILL.md3:zzz" + b"6:b/x.md3:aaa").hexdigest()
    assert bytes_hash([b, a]) == bytes_hash([a, b]) == by_path
    assert bytes_hash([a, b]) != bytes_hash([("a/SKILL.md", b"aaa"), ("b/x.md", b"zzz")])


def test_a_description_exactly_at_the_limit_keeps_its_last_item() -> None:
    head, two = "s" * 500, ["a" * 200, "b" * 200]
    # "<head> Use when: <a>; <b>; <c>." is 500 + 11 + 200 + 2 + 200 + 2 + len(c) + 1: 1024 at 108.
    exact = build_description(ir(summary=head, when_to_use=[*two, "c" * 108]))
    assert len(exact) == 1024 and exact.endswith("; " + "c" * 108 + ".")
    over = build_description(ir(summary=head, when_to_use=[*two, "c" * 109]))
    assert over == f"{head} Use when: {two[0]}; {two[1]}."


def test_a_description_without_use_cases_is_the_summary() -> None:
    assert build_description(ir(when_to_use=[])) == "Writes a trip report for a visit to a città."


def test_yaml_strings_escape_what_frontmatter_readers_would_split_or_fold() -> None:
    assert yaml_str("a --- b") == '"a -\\u002d- b"'
    assert yaml_str("----") == '"-\\u002d--"'  # as it always was: its hash unchanged
    for run in range(5, 12):  # one pass left '---' behind (a property test's find)
        quoted = yaml_str("-" * run)
        assert "---" not in quoted and json.loads(quoted) == "-" * run
    assert yaml_str("line\u2028sep\x85") == '"line\\u2028sep\\u0085"'
    assert yaml_str("città") == '"città"'


def test_a_fence_keeps_the_text_but_its_trailing_newlines() -> None:
    assert fenced("\n x  \n\n", "json") == "```json\n\n x  \n```"
    assert fenced("a ```` b", "text") == "`````text\na ```` b\n`````"
