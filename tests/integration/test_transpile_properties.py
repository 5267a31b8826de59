"""Properties of the transpiler over any IR the loader accepts (hypothesis)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import skills_ref
from hypothesis import HealthCheck, given, settings
from skills_ref.parser import parse_frontmatter

from claresia_sync.ir import LoadedSkill, parse_ir
from claresia_sync.naming import NAME_RE, published_name
from claresia_sync.skill_format import validate_upload
from claresia_sync.transpile import transpile
from tests.ir_strategies import skill_ids, skill_irs, tenants

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "skills_ir/schema/skill-ir.v1.schema.json").read_text())
settings.register_profile("ci", max_examples=150, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def _accept(doc: dict[str, Any]) -> LoadedSkill:
    loaded = parse_ir(json.dumps(doc).encode(), "generated.json")
    assert not isinstance(loaded, list), [str(p) for p in loaded]
    return loaded


@given(doc=skill_irs(), tenant=tenants)
def test_accepted_ir_transpiles_to_an_upload_the_api_accepts(
    doc: dict[str, Any], tenant: str
) -> None:
    skill = transpile(_accept(doc).ir, tenant)

    assert validate_upload(skill.payload()) == []
    meta, body = parse_frontmatter(skill.files[0].content)
    assert meta["name"] == skill.name
    assert meta["description"] == skill.description  # escaping survived the YAML round trip
    assert meta["metadata"]["claresia.skill_version"] == doc["version"]
    for step in doc["steps"]:
        assert step.strip().splitlines()[0] in body
    paths = [f.path for f in skill.files]
    assert paths[0] == f"{skill.name}/SKILL.md"
    assert sorted(paths[1:]) == sorted(f"{skill.name}/{r['path']}" for r in doc["resources"])


@given(doc=skill_irs(), tenant=tenants)
def test_transpiling_is_deterministic(doc: dict[str, Any], tenant: str) -> None:
    first = transpile(_accept(doc).ir, tenant)
    again = transpile(_accept(json.loads(json.dumps(doc))).ir, tenant)
    assert again.payload_json() == first.payload_json()
    assert again.content_hash == first.content_hash


@settings(max_examples=25)
@given(doc=skill_irs(), tenant=tenants)
def test_written_bundles_pass_the_reference_validator(doc: dict[str, Any], tenant: str) -> None:
    skill = transpile(_accept(doc).ir, tenant)
    with tempfile.TemporaryDirectory() as tmp:
        assert skills_ref.validate(skill.write(Path(tmp))) == []


@given(tenant=tenants, skill_id=skill_ids)
def test_published_names_are_valid_and_at_most_64_chars(tenant: str, skill_id: str) -> None:
    name = published_name(tenant, skill_id)
    assert NAME_RE.fullmatch(name)
    assert len(name) <= 64
    assert name.startswith("claresia-")
    full = f"claresia-{tenant}-{skill_id}"
    assert name == full if len(full) <= 64 else name != full


@given(doc=skill_irs())
def test_ir_the_models_accept_also_fits_the_json_schema(doc: dict[str, Any]) -> None:
    _accept(doc)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
