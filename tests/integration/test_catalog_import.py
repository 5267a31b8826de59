"""`catalog import`: good skills go in, a changed file updates its row and hash, problems fail."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from claresia_sync.catalog_store import import_catalog
from claresia_sync.config import Settings
from claresia_sync.db.models import CatalogSkill
from claresia_sync.ir import load_catalog
from tests.cli import clean_env, run_cli

CATALOG = Path(__file__).resolve().parents[2] / "skills_ir" / "catalog"


def _copy(tmp_path: Path, *ids: str) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir()
    for sid in ids:
        shutil.copy(CATALOG / f"{sid}.json", folder)
    return folder


def test_import_then_change_updates_row_and_hash(session: Session, tmp_path: Path) -> None:
    folder = _copy(tmp_path, "prd-review", "standup-notes")
    first = import_catalog(session, load_catalog([folder]).skills)
    session.commit()
    assert (first.added, first.updated) == (["prd-review", "standup-notes"], [])
    row = session.get_one(CatalogSkill, "prd-review")
    old_hash = row.ir_hash
    assert old_hash.startswith("sha256:") and row.ir["skill_id"] == "prd-review"
    assert row.source_path == str(folder / "prd-review.json")

    again = import_catalog(session, load_catalog([folder]).skills)
    assert (again.added, again.updated, again.unchanged) == (
        [],
        [],
        ["prd-review", "standup-notes"],
    )

    path = folder / "prd-review.json"
    ir = json.loads(path.read_text())
    ir["version"], ir["deprecated"] = "9.0.0", True
    path.write_text(json.dumps(ir))
    changed = import_catalog(session, load_catalog([folder]).skills)
    session.commit()
    assert changed.updated == ["prd-review"] and changed.unchanged == ["standup-notes"]
    session.expire_all()
    row = session.get_one(CatalogSkill, "prd-review")
    assert row.ir_hash != old_hash
    assert (row.version, row.deprecated, row.ir["version"]) == ("9.0.0", True, "9.0.0")


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("catalog", "import", *args, env=clean_env(settings))


def test_cli_imports_good_skills_and_fails_on_problems(
    session: Session, db_settings: Settings, tmp_path: Path
) -> None:
    folder = _copy(tmp_path, "prd-review")
    (folder / "broken.json").write_text('{"ir_version": "1", "skill_id": "claude-x"}')
    result = _cli(db_settings, str(folder))
    assert result.returncode != 0
    assert "added prd-review" in result.stdout
    assert str(folder / "broken.json") in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("claresia-sync: error: 1 added, 0 updated, 0 unchanged; ")
    )
    ids = session.scalars(select(CatalogSkill.skill_id)).all()
    assert ids == ["prd-review"]

    whole = _cli(db_settings, str(CATALOG))
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.strip().splitlines()[-1].endswith("0 updated, 1 unchanged"), whole.stdout
