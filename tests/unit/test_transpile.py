"""The transpiler on the example catalog, checked by the reference validator and by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import skills_ref
from skills_ref.parser import parse_frontmatter

from claresia_sync.ir import LoadedSkill, load_catalog, load_skill_file
from claresia_sync.ir.models import SkillIR
from claresia_sync.transpile import transpile
from claresia_sync.transpile.transpiler import build_description

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "skills_ir" / "catalog"
AGENTSKILLS = Path(sys.executable).with_name("agentskills")


def catalog_skills() -> list[LoadedSkill]:
    result = load_catalog([CATALOG])
    assert result.problems == []
    return result.skills


def test_example_catalog_is_valid_and_large_enough() -> None:
    skills = catalog_skills()
    assert len(skills) >= 8
    ids = {s.ir.skill_id for s in skills}
    assert {"incident-postmortem", "prd-review", "standup-notes"} <= ids
    types = {i.type for s in skills for i in s.ir.inputs}
    assert types == {"string", "text", "integer", "number", "boolean", "date", "enum"}
    assert any(s.ir.resources for s in skills)
    assert any(s.ir.examples for s in skills)
    assert any(s.ir.allowed_tools for s in skills)
    for s in skills:
        assert s.path.name == f"{s.ir.skill_id}.json"


@pytest.mark.parametrize("tenant", ["dainese", "dainese-eng", "a-very-long-tenant-slug-for-names"])
def test_every_catalog_bundle_passes_skills_ref(tmp_path: Path, tenant: str) -> None:
    for skill in catalog_skills():
        folder = transpile(skill.ir, tenant).write(tmp_path)
        assert skills_ref.validate(folder) == [], skill.path


def test_agentskills_command_accepts_a_bundle(tmp_path: Path) -> None:
    skill = load_skill_file(CATALOG / "incident-postmortem.json")
    folder = transpile(skill.ir, "dainese").write(tmp_path)
    done = subprocess.run(
        [str(AGENTSKILLS), "validate", str(folder)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_payload_has_the_contract_shape() -> None:
    skill = load_skill_file(CATALOG / "incident-postmortem.json")
    claude = transpile(skill.ir, "dainese")
    payload = claude.payload()
    assert payload["name"] == "claresia-dainese-incident-postmortem"
    assert payload["display_title"] == skill.ir.title
    assert set(payload["metadata"]) == {
        "claresia.tenant",
        "claresia.skill_id",
        "claresia.skill_version",
        "claresia.content_hash",
    }
    assert payload["metadata"]["claresia.skill_version"] == skill.ir.version
    assert payload["files"][0]["path"] == "claresia-dainese-incident-postmortem/SKILL.md"
    resources = {f"claresia-dainese-incident-postmortem/{r.path}" for r in skill.ir.resources}
    assert {f["path"] for f in payload["files"][1:]} == resources


def test_body_asks_for_missing_required_inputs_and_lays_out_the_skill() -> None:
    skill = load_skill_file(CATALOG / "incident-postmortem.json")
    meta, body = parse_frontmatter(transpile(skill.ir, "dainese").files[0].content)
    assert "ask the user" in body and "**required**" in body
    for inp in skill.ir.inputs:
        assert f"`{inp.name}`" in body
    for i, step in enumerate(skill.ir.steps, 1):
        assert f"{i}. {step.splitlines()[0]}" in body
    for section in skill.ir.output.sections or []:
        assert section in body
    for ex in skill.ir.examples:
        assert ex.title in body
    assert meta["metadata"]["claresia.tenant"] == "dainese"


def test_same_input_gives_byte_identical_files(tmp_path: Path) -> None:
    for skill in catalog_skills():
        a = transpile(skill.ir, "dainese").write(tmp_path / "a")
        b = transpile(load_skill_file(skill.path).ir, "dainese").write(tmp_path / "b")
        files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        assert (tmp_path / "a" / f"{a.name}.json").read_bytes() == (
            tmp_path / "b" / f"{b.name}.json"
        ).read_bytes()
        for rel in files_a:
            assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_content_hash_tells_changed_from_unchanged() -> None:
    raw = load_skill_file(CATALOG / "incident-postmortem.json").raw
    base = transpile(SkillIR.model_validate(raw), "dainese").content_hash
    assert transpile(SkillIR.model_validate(dict(raw)), "dainese").content_hash == base
    changed = {**raw, "steps": [*raw["steps"][:-1], raw["steps"][-1] + " Then stop."]}
    assert transpile(SkillIR.model_validate(changed), "dainese").content_hash != base
    assert transpile(SkillIR.model_validate(raw), "acme").content_hash != base


def test_rewriting_a_bundle_drops_stale_files(tmp_path: Path) -> None:
    raw = load_skill_file(CATALOG / "incident-postmortem.json").raw
    assert raw["resources"], "the example must carry a resource for this test"
    folder = transpile(SkillIR.model_validate(raw), "dainese").write(tmp_path)
    stale = folder / raw["resources"][0]["path"]
    assert stale.exists()
    transpile(SkillIR.model_validate({**raw, "resources": []}), "dainese").write(tmp_path)
    assert not stale.exists()
    assert skills_ref.validate(folder) == []


def test_description_stays_within_1024_chars_with_every_field_at_its_limit() -> None:
    raw = load_skill_file(CATALOG / "incident-postmortem.json").raw
    ir = SkillIR.model_validate(
        {**raw, "summary": "s" * 500, "when_to_use": [f"case {i} " + "w" * 190 for i in range(10)]}
    )
    description = build_description(ir)
    assert len(description) <= 1024
    assert description.startswith("s" * 500) and "Use when: case 0" in description
