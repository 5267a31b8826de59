"""The emulator is not us: it judges uploads and hashes content by its own reading of the written
rules (claresia_sync/emulator/skill_rules.py), never with the product's validators, naming rule
or hash, so that a bug in ours shows against it instead of being shared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from claresia_sync.emulator import skill_rules
from claresia_sync.ir.loader import load_catalog
from claresia_sync.transpile import transpile

EMULATOR = Path(__file__).resolve().parents[2] / "claresia_sync" / "emulator"
# What of the product the emulator may use: finding its shipped seed file. Nothing that judges
# or makes the product's output (skill_format, naming, transpile, secrets, the telemetry
# decoders) and not the reference validator the product judges with (skills_ref).
ALLOWED = {"claresia_sync.resources"}


def _imports(source: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of an emulator module, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the emulator package
                base = ["claresia_sync", "emulator"][: 3 - node.level]
                found.append((node.lineno, ".".join([*base, *filter(None, [node.module])])))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def _foreign(module: str) -> bool:
    if module == "skills_ref" or module.startswith("skills_ref."):
        return True
    if module != "claresia_sync" and not module.startswith("claresia_sync."):
        return False
    inside = module == "claresia_sync.emulator" or module.startswith("claresia_sync.emulator.")
    return not inside and module not in ALLOWED


def test_the_emulator_imports_nothing_of_the_product_that_judges() -> None:
    files = sorted(EMULATOR.glob("*.py"))
    assert len(files) > 10  # the scan sees the package
    bad = [
        f"{path.name}:{line}: {module}"
        for path in files
        for line, module in _imports(path.read_text(encoding="utf-8"))
        if _foreign(module)
    ]
    assert bad == [], "the emulator must judge by its own rules, not the product's: " + str(bad)


def test_the_scan_catches_a_product_import() -> None:
    assert _foreign("claresia_sync.skill_format")
    assert _foreign("claresia_sync.transpile.transpiler")
    assert _foreign("skills_ref.parser")
    assert not _foreign("claresia_sync.emulator.skill_rules")
    assert not _foreign("claresia_sync.resources")
    nested = "def f():\n    from .. import naming\n    from .common import x\n"
    assert _imports(nested) == [(2, "claresia_sync"), (3, "claresia_sync.emulator.common")]


def test_its_hash_is_the_written_rule() -> None:
    # Worked out by hand in tests/unit/test_pinned_formats.py (printf ... | sha256sum).
    files = [("demo/references/café.md", "naïve".encode()), ("demo/SKILL.md", b"hi\n")]
    assert skill_rules.content_hash(files) == (
        "sha256:f26d0e6ef26046dc21f4c6439df66cba226e9d006c5744ac5505ad2397457aa7"
    )


def test_two_readings_of_the_rules_agree_on_every_catalog_skill() -> None:
    """The transpiler's hash and the emulator's, written apart, give the same value; and every
    transpiled bundle passes the emulator's own checks (PyYAML reads what strictyaml read)."""
    catalog = load_catalog([Path(__file__).resolve().parents[2] / "skills_ir" / "catalog"])
    assert catalog.ok and catalog.skills
    for loaded in catalog.skills:
        skill = transpile(loaded.ir, "dainese")
        files = [(f.path, f.content.encode()) for f in skill.files]
        assert skill_rules.content_hash(files) == skill.content_hash, skill.name
        assert skill_rules.org_skill_problems(skill.payload()) == [], skill.name


def _skill_md(front: str, body: str = "# Do it\n") -> str:
    return f"---\n{front}\n---\n{body}"


GOOD = "name: claresia-a-b\ndescription: Does a thing."


@pytest.mark.parametrize(
    ("front", "folder", "fragment"),
    [
        ("name: claresia--a\ndescription: x", "claresia--a", "'--'"),
        ("name: -claresia-a\ndescription: x", "-claresia-a", "'-'"),
        ("name: Claresia-a\ndescription: x", "Claresia-a", "lowercase"),
        ("name: claresia-claude-a\ndescription: x", "claresia-claude-a", "reserved word 'claude'"),
        ("name: " + "a" * 65 + "\ndescription: x", "a" * 65, "at most 64"),
        ("name: claresia-a-b\ndescription: Has <b>tags</b>", "claresia-a-b", "XML"),
        ("name: claresia-a-b\ndescription: " + "d" * 1025, "claresia-a-b", "at most 1024"),
        ("name: claresia-a-b\ndescription: ''", "claresia-a-b", "non-empty"),
        (GOOD + "\nowner: me", "claresia-a-b", "unknown frontmatter field 'owner'"),
        (GOOD, "claresia-a-c", "must equal its folder"),
        (GOOD + "\nmetadata:\n  n: 1", "claresia-a-b", "strings to strings"),
        ("description: x", "claresia-a-b", "no name"),
        ("name: claresia-a-b", "claresia-a-b", "no description"),
        ("name: [unclosed\ndescription: x", "claresia-a-b", "not YAML"),
    ],
)
def test_documented_rules_refuse(front: str, folder: str, fragment: str) -> None:
    problems = skill_rules.skill_md_problems(_skill_md(front), folder)
    assert any(fragment in p for p in problems), problems


def test_frontmatter_must_open_and_close() -> None:
    assert skill_rules.skill_md_problems("# no frontmatter\n", "x") != []
    assert skill_rules.skill_md_problems("---\nname: x\ndescription: y\n", "x") != []
    assert skill_rules.skill_md_problems(_skill_md(GOOD), "claresia-a-b") == []
    assert skill_rules.skill_md_fields(_skill_md(GOOD)) == ("claresia-a-b", "Does a thing.")


def test_one_top_folder() -> None:
    assert skill_rules.one_folder_problems(["a/SKILL.md", "a/x.md"]) == ("a", [])
    assert skill_rules.one_folder_problems(["a/SKILL.md", "b/x.md"])[1] != []
    assert skill_rules.one_folder_problems(["SKILL.md"])[1] != []
    assert skill_rules.one_folder_problems(["a/x.md"])[1] == ["files: a/SKILL.md is missing"]
