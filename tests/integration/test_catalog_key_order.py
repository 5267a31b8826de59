"""The published skill is what `claresia-sync transpile` prints (issue 13 item 11;
docs/interfaces.md section 2: same IR and tenant, byte-identical output), with IR keys that jsonb
would reorder: jsonb puts shorter keys first, so `{"zeta_last_name": .., "a": ..}` came back as
`{"a": ..}` first and the publish path rendered another SKILL.md, with another content hash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.catalog_store import import_catalog
from claresia_sync.db.engine import make_engine
from claresia_sync.db.migrate import upgrade
from claresia_sync.db.models import CatalogSkill
from claresia_sync.ir import canonical_hash, load_catalog
from claresia_sync.publish import desired_state
from tests.cli import run_cli
from tests.integration.test_publish_e2e import CATALOG, world

__all__ = ["world"]  # the fixture: example catalog imported, demo tenants applied

SKILL = "incident-postmortem"
TENANT = "dainese-eng"  # granted incident-postmortem in the demo tenants file
PUBLISHED = f"claresia-{TENANT}-{SKILL}"


def _reordered_ir(folder: Path) -> Path:
    """The catalog's incident-postmortem with an example input whose keys jsonb reorders."""
    raw = json.loads((CATALOG / f"{SKILL}.json").read_text())
    example = raw["examples"][0]
    example["input"] = {"zeta_last_key": "z", **example["input"], "a": "first in jsonb"}
    folder.mkdir(exist_ok=True)
    path = folder / f"{SKILL}.json"
    path.write_text(json.dumps(raw, indent=2))
    return path


def _transpiled_hash(ir_file: Path, out: Path) -> tuple[str, str]:
    """(content hash, SKILL.md) of `claresia-sync transpile IR --tenant TENANT`."""
    done = run_cli("transpile", str(ir_file), "--tenant", TENANT, "--out", str(out))
    assert done.returncode == 0, done.stderr
    skill = json.loads((out / f"{PUBLISHED}.json").read_text())
    skill_md = next(f["content"] for f in skill["files"] if f["path"].endswith("/SKILL.md"))
    return skill["metadata"]["claresia.content_hash"], skill_md


def _published(engine: Engine) -> tuple[str | None, str]:
    """(content hash, SKILL.md) of the skill as the publish path computes it from the database."""
    with Session(engine) as s:
        (skill,) = [d for o in desired_state(s, TENANT) for d in o.skills if d.name == PUBLISHED]
    assert skill.skill is not None, skill.error
    return skill.content_hash, skill.skill.files[0].content


def _import(engine: Engine, folder: Path) -> Any:
    loaded = load_catalog([folder])
    assert loaded.ok, loaded.problems
    with Session(engine) as s:
        result = import_catalog(s, loaded.skills)
        s.commit()
    return result


def test_published_skill_is_what_transpile_prints(
    engine: Engine, world: dict[str, Any], tmp_path: Path
) -> None:
    # The example catalog's own file already has keys jsonb reorders (incident_title, severity).
    want, _ = _transpiled_hash(CATALOG / f"{SKILL}.json", tmp_path / "catalog")
    assert _published(engine)[0] == want

    ir_file = _reordered_ir(tmp_path / "ir")
    assert _import(engine, tmp_path / "ir").updated == [SKILL]
    want, want_md = _transpiled_hash(ir_file, tmp_path / "out")
    got, got_md = _published(engine)
    assert got_md.index("zeta_last_key") < got_md.index('"a": "first in jsonb"')
    assert (got, got_md) == (want, want_md)


def test_rows_stored_before_0004_keep_working_and_import_restores_the_order(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    engine = make_engine(make_database())
    try:
        upgrade(engine, "0003")
        ir_file = _reordered_ir(tmp_path)
        raw = json.loads(ir_file.read_text())
        with engine.begin() as conn:  # as 0003's jsonb column stored it
            conn.execute(
                text(
                    "INSERT INTO catalog_skill (skill_id, version, title, ir, ir_hash) "
                    "VALUES (:id, :v, :t, CAST(:ir AS jsonb), :h)"
                ),
                {
                    "id": SKILL,
                    "v": raw["version"],
                    "t": raw["title"],
                    "ir": json.dumps(raw),
                    "h": canonical_hash(raw),
                },  # only its stored key order differs
            )
        upgrade(engine)
        with Session(engine) as s:
            row = s.get(CatalogSkill, SKILL)
            assert row is not None and row.ir == raw  # the same IR, in jsonb's order
            assert next(iter(row.ir["examples"][0]["input"])) == "a"
        assert _import(engine, tmp_path).updated == [SKILL]
        assert _import(engine, tmp_path).unchanged == [SKILL]  # a second import: no change
        with Session(engine) as s:
            row = s.get(CatalogSkill, SKILL)
            assert row is not None
            assert next(iter(row.ir["examples"][0]["input"])) == "zeta_last_key"
    finally:
        engine.dispose()
