"""Malformed Skill IR: each file in tests/ir_corpus/bad is rejected with file, pointer, reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claresia_sync.ir import load_catalog, load_skill_file, parse_ir
from claresia_sync.ir.models import MAX_RESOURCE_BYTES

CORPUS = Path(__file__).resolve().parents[1] / "ir_corpus"
BAD = CORPUS / "bad"
GOOD = CORPUS / "mixed" / "good-action-items.json"
EXPECTED: dict[str, dict[str, str]] = json.loads((BAD / "EXPECTED.json").read_text())


def test_corpus_is_large_and_fully_described() -> None:
    files = {p.name for p in BAD.glob("*.json") if p.name != "EXPECTED.json"}
    assert len(files) >= 25
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_rejected_with_pointer_and_reason(name: str) -> None:
    path = BAD / name
    problems = parse_ir(path.read_bytes(), str(path))
    assert isinstance(problems, list), f"{name} was accepted"
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert problem.file == str(path)
    assert problem.pointer == EXPECTED[name]["pointer"]
    assert EXPECTED[name]["reason"] in problem.reason.lower()
    assert str(problem).startswith(f"{path}: ")


def test_oversize_resources_are_rejected() -> None:
    raw = load_skill_file(GOOD).raw
    chunk = "x" * (MAX_RESOURCE_BYTES // 4)
    raw["resources"] = [{"path": f"references/part-{i}.md", "content": chunk} for i in range(5)]
    problems = parse_ir(json.dumps(raw).encode(), "big.json")
    assert isinstance(problems, list)
    assert [(p.pointer, "4 mib" in p.reason.lower()) for p in problems] == [("/resources", True)]


def test_every_problem_of_every_file_is_reported_and_good_files_come_through() -> None:
    result = load_catalog([CORPUS / "mixed"])
    good = sorted(p.name for p in (CORPUS / "mixed").glob("good*.json"))
    bad = sorted(p.name for p in (CORPUS / "mixed").glob("bad*.json"))
    assert sorted(s.path.name for s in result.skills) == good
    assert sorted({Path(p.file).name for p in result.problems}) == bad


def test_one_file_reports_all_its_problems_at_once() -> None:
    raw = load_skill_file(GOOD).raw
    raw.update(title="two\nlines", version="1.0", extra_key=True)
    problems = parse_ir(json.dumps(raw).encode(), "many.json")
    assert isinstance(problems, list)
    assert {p.pointer for p in problems} == {"/title", "/version", "/extra_key"}


def test_duplicate_skill_ids_across_files_are_a_problem(tmp_path: Path) -> None:
    raw = load_skill_file(GOOD).raw
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(raw))
    result = load_catalog([tmp_path])
    assert len(result.skills) == 1
    [problem] = result.problems
    assert problem.file.endswith("b.json") and problem.pointer == "/skill_id"


def test_extension_keys_are_ignored_but_kept_in_the_hash() -> None:
    raw = load_skill_file(GOOD).raw
    a = parse_ir(json.dumps(raw).encode(), "a.json")
    b = parse_ir(json.dumps({**raw, "x-editor": {"v": 2}}).encode(), "b.json")
    assert not isinstance(a, list) and not isinstance(b, list)
    assert a.ir == b.ir
    assert a.ir_hash != b.ir_hash


# Rules JSON Schema cannot state (the schema's description lists them); the loader enforces them.
SCHEMA_CANNOT_SAY = {
    "control-character-in-step.json",
    "default-enum-not-in-list.json",
    "duplicate-input-names.json",
    "duplicate-json-key.json",
    "resource-path-duplicate.json",
}


def test_json_schema_agrees_with_the_models() -> None:
    import jsonschema

    schema = json.loads(
        (CORPUS.parents[1] / "skills_ir/schema/skill-ir.v1.schema.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    good = [*(CORPUS.parents[1] / "skills_ir/catalog").glob("*.json"), GOOD]
    for path in good:
        assert validator.is_valid(json.loads(path.read_text())), path
    for name in sorted(EXPECTED):
        try:
            doc = json.loads((BAD / name).read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue  # not JSON at all: nothing for a schema to judge
        assert validator.is_valid(doc) == (name in SCHEMA_CANNOT_SAY), name
