"""Catalog releases (issue 22; docs/releases.md): each changing import makes an immutable,
numbered release; a tenant publishes the release it is on; the publication history says what was
live when (docs/analytics.md)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from claresia_sync.catalog_store import ImportResult, import_catalog
from claresia_sync.config import Settings
from claresia_sync.db.models import CatalogIR, Publication, PublicationHistory, Tenant
from claresia_sync.emulator import EmulatorServer
from claresia_sync.ir import SkillIR, load_catalog
from claresia_sync.release_store import (
    current_release,
    diff_releases,
    operator,
    pin_tenant,
    release_snapshot,
    set_current,
)
from claresia_sync.transpile import transpile
from tests.cli import clean_env, run_cli
from tests.integration.test_publish_e2e import CATALOG, apply, publish
from tests.integration.test_publish_e2e import world as world  # the fixture

ROOT = Path(__file__).resolve().parents[2]
SKILL = "meeting-summary"  # granted to acme, dainese (org-skills), ferretti, vespucci
NEW_SUMMARY = "Turns meeting notes into a TL;DR, decisions and owners (release two)."


def _catalog_copy(tmp_path: Path, summary: str | None = None, *ids: str) -> Path:
    """The example catalog (or only `ids`) in a folder; `summary` changes meeting-summary's."""
    folder = tmp_path / f"catalog-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    for path in CATALOG.glob("*.json"):
        if not ids or path.stem in ids:
            shutil.copy(path, folder)
    if summary is not None:
        path = folder / f"{SKILL}.json"
        raw = json.loads(path.read_text())
        raw["summary"] = summary
        path.write_text(json.dumps(raw, indent=2))
    return folder


def _import(engine: Engine, folder: Path, **kw: Any) -> ImportResult:
    with Session(engine) as s:
        result = import_catalog(s, load_catalog([folder]).skills, **kw)
        s.commit()
    return result


def test_changing_imports_make_numbered_releases_sharing_unchanged_ir(
    engine: Engine, tmp_path: Path
) -> None:
    folder = _catalog_copy(tmp_path, None, "prd-review", "standup-notes")
    first = _import(engine, folder, by="alice", note="first catalog")
    assert (first.release, first.current) == (1, 1)
    assert _import(engine, folder).release is None  # nothing changed: no release

    path = folder / "prd-review.json"
    raw = json.loads(path.read_text())
    old_version, raw["version"] = raw["version"], "9.0.0"
    path.write_text(json.dumps(raw))
    assert _import(engine, folder).release == 2
    raw["version"] = "9.1.0"
    path.write_text(json.dumps(raw))
    held = _import(engine, folder, hold=True, note="not yet")
    assert (held.release, held.current) == (3, 2)

    with Session(engine) as s:
        one, two = release_snapshot(s, 1), release_snapshot(s, 2)
        assert one["standup-notes"] == two["standup-notes"]  # shared, stored once
        assert one["prd-review"] != two["prd-review"]
        assert s.scalar(select(text("count(*)")).select_from(CatalogIR)) == 4  # 2 + 1 + 1
        # The IR of release 1 stays readable, as it was.
        old = s.get_one(CatalogIR, ("prd-review", one["prd-review"][0]))
        assert old.ir["version"] == old_version
        rows = s.execute(
            text("SELECT number, created_by, note FROM catalog_release ORDER BY number")
        ).all()
        assert [tuple(r) for r in rows] == [
            (1, "alice", "first catalog"),
            (2, operator(), None),
            (3, operator(), "not yet"),
        ]
        assert [(c.skill_id, c.change) for c in diff_releases(s, 1, 3)] == [
            ("prd-review", "changed")
        ]
        set_current(s, 3)
        s.commit()
        assert current_release(s) == 3

    for statement in (
        "UPDATE catalog_release_skill SET deprecated = true",
        "UPDATE catalog_release SET note = 'rewritten' WHERE number = 1",
        "DELETE FROM catalog_ir",
    ):
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))


def _cli(settings: Settings, *args: str) -> Any:
    return run_cli(*args, env=clean_env(settings))


def test_cli_release_list_show_diff_and_unknown_release(
    engine: Engine, world: dict[str, Any], db_settings: Settings, tmp_path: Path
) -> None:
    folder = _catalog_copy(tmp_path, NEW_SUMMARY)
    done = _cli(db_settings, "catalog", "import", str(folder), "--by", "alice", "--note", "tldr")
    assert done.returncode == 0, done.stderr
    assert f"updated {SKILL}" in done.stdout and "release 2 (current)" in done.stdout

    listed = _cli(db_settings, "release", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    releases = json.loads(listed.stdout)
    assert [(r["number"], r["current"]) for r in releases] == [(1, False), (2, True)]
    assert (releases[1]["created_by"], releases[1]["note"]) == ("alice", "tldr")
    assert releases[1]["skills"] == len(list(CATALOG.glob("*.json")))

    diff = _cli(db_settings, "release", "diff", "1", "2", "--tenant", "acme")
    assert diff.returncode == 0, diff.stderr
    assert re.search(rf"{SKILL}\s.*changed", diff.stdout), diff.stdout
    assert f"+++ release 2/{SKILL}/SKILL.md" in diff.stdout
    assert f"\n+{NEW_SUMMARY}\n" in diff.stdout  # the body's summary, as acme gets it
    assert re.search(r"^-Summarises a meeting", diff.stdout, re.M), diff.stdout
    as_json = json.loads(_cli(db_settings, "release", "diff", "1", "2", "--json").stdout)
    assert [(c["skill_id"], c["change"]) for c in as_json] == [(SKILL, "changed")]

    unknown = _cli(db_settings, "release", "show", "7")
    assert unknown.returncode == 1
    assert "unknown release 7; existing: 1, 2 (`release list`)" in unknown.stderr


def _hashes(engine: Engine) -> dict[tuple[str, str], str | None]:
    """(tenant, target) -> content hash of meeting-summary, as recorded."""
    with Session(engine) as s:
        rows = s.execute(
            select(Tenant.slug, Publication.target, Publication.content_hash)
            .join(Tenant, Tenant.id == Publication.tenant_id)
            .where(Publication.skill_id == SKILL)
        ).all()
    return {(slug, target): h for slug, target, h in rows}


def _remote_skill_md(emulator: EmulatorServer, org: str, name: str) -> str:
    [record] = [r for r in emulator.state.org(org).skills.values() if r.name == name]
    return next(f["content"] for f in record.files if f["path"].endswith("SKILL.md"))


def _new_hash(tenant: str) -> str:
    raw = json.loads((CATALOG / f"{SKILL}.json").read_text())
    return transpile(SkillIR.model_validate({**raw, "summary": NEW_SUMMARY}), tenant).content_hash


def test_a_pinned_tenant_keeps_publishing_its_release(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], tmp_path: Path
) -> None:
    assert publish(engine).status == "succeeded"
    before = _hashes(engine)
    with Session(engine) as s:
        pin_tenant(s, "dainese", 1)  # its sub-tenants follow it
        pin_tenant(s, "ferretti", 1)
        s.commit()
    assert _import(engine, _catalog_copy(tmp_path, NEW_SUMMARY)).release == 2

    outcome = publish(engine)
    assert outcome.status == "succeeded", outcome.errors
    after = _hashes(engine)
    for pinned in (
        ("dainese", "org-skills"),
        ("dainese-corp", "org-skills"),
        ("ferretti", "claude-enterprise"),
    ):
        assert after[pinned] == before[pinned], pinned
    assert after[("acme", "org-skills")] == _new_hash("acme") != before[("acme", "org-skills")]
    vespucci = ("vespucci", "claude-api:wrkspc_vespucci_support")
    assert after[vespucci] == _new_hash("vespucci") != before[vespucci]
    assert NEW_SUMMARY in _remote_skill_md(emulator, "org_acme", f"claresia-acme-{SKILL}")
    dainese_md = _remote_skill_md(emulator, "org_dainese", f"claresia-dainese-{SKILL}")
    assert NEW_SUMMARY not in dainese_md and "Summarises a meeting" in dainese_md

    # The operator names release 1 current again: acme goes back; dainese, unpinned, moves on.
    with Session(engine) as s:
        set_current(s, 1)
        pin_tenant(s, "dainese", 2)
        s.commit()
    assert publish(engine).status == "succeeded"
    again = _hashes(engine)
    assert again[("acme", "org-skills")] == before[("acme", "org-skills")]
    assert again[("dainese", "org-skills")] == _new_hash("dainese")


def _live_at_query() -> str:
    """docs/analytics.md's "what a tenant had at an instant" query, as written there."""
    doc = (ROOT / "docs" / "analytics.md").read_text()
    [query] = [q for q in re.findall(r"```sql\n(.*?)```", doc, re.S) if "publication_history" in q]
    return query


def test_publication_history_says_what_was_live_when(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], tmp_path: Path
) -> None:
    def now() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT clock_timestamp()")).scalar_one()

    assert publish(engine, "dainese").status == "succeeded"
    published = now()
    assert _import(engine, _catalog_copy(tmp_path, NEW_SUMMARY)).release == 2
    assert publish(engine, "dainese").status == "succeeded"
    updated = now()
    dainese = world["tenants"][0]
    dainese["archetypes"][0]["grants"].remove(SKILL)  # revoked from dainese itself
    apply(engine, world)
    outcome = publish(engine, "dainese")
    assert outcome.status == "succeeded" and outcome.stats["deleted"] == 1
    revoked = now()

    def live_at(at: Any) -> dict[str, tuple[str, int]]:
        with engine.connect() as conn:
            conn.execute(text("SET ROLE claresia_analyst"))  # the analysts' role reads it
            rows = conn.execute(text(_live_at_query()), {"tenant": "dainese", "at": at}).all()
            conn.rollback()
        return {r.skill_id: (r.content_hash, r.release) for r in rows}

    old_hash = transpile(
        SkillIR.model_validate(json.loads((CATALOG / f"{SKILL}.json").read_text())), "dainese"
    ).content_hash
    first, second, third = live_at(published), live_at(updated), live_at(revoked)
    assert set(first) == {"customer-email-reply", SKILL, "weekly-status-report"}
    assert first[SKILL] == (old_hash, 1)
    assert second[SKILL] == (_new_hash("dainese"), 2)
    assert set(third) == {"customer-email-reply", "weekly-status-report"}
    assert first["weekly-status-report"] == third["weekly-status-report"]

    with Session(engine) as s:
        actions = s.scalars(
            select(PublicationHistory.action)
            .where(
                PublicationHistory.tenant_slug == "dainese", PublicationHistory.skill_id == SKILL
            )
            .order_by(PublicationHistory.id)
        ).all()
    assert actions == ["published", "updated", "unpublished"]
    with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text("DELETE FROM publication_history"))
