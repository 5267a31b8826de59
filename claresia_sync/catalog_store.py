"""The Skill IR catalog in the database (`catalog_skill`): import loaded skills, by hash, and
make a release of the result when it changed (release_store.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from claresia_sync.db.models import CatalogSkill
from claresia_sync.ir import LoadedSkill, canonical_hash
from claresia_sync.release_store import current_release, cut_release


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    release: int | None = None
    """The release this import made (None: the catalog is as the newest release has it)."""
    current: int | None = None
    """The current release after the import."""


def import_catalog(
    session: Session,
    skills: Sequence[LoadedSkill],
    *,
    by: str | None = None,
    note: str | None = None,
    hold: bool = False,
) -> ImportResult:
    """Insert new skills and update those whose IR changed (by hash, key order included: it is
    part of the transpiled output); others stay as they are. A changed catalog makes a release
    (`by`: who, else the OS user; current unless `hold`).

    Skills missing from `skills` stay in the catalog: grants may still name them, and a skill is
    retired by marking it `deprecated` in its IR (then it is unpublished everywhere).
    """
    result = ImportResult()
    for skill in sorted(skills, key=lambda s: s.ir.skill_id):
        ir = skill.ir
        values = {
            "version": ir.version,
            "title": ir.title,
            "deprecated": ir.deprecated,
            "ir": skill.raw,
            "ir_hash": skill.ir_hash,
            "source_path": str(skill.path),
        }
        row = session.get(CatalogSkill, ir.skill_id)
        if row is None:
            session.add(CatalogSkill(skill_id=ir.skill_id, **values))
            result.added.append(ir.skill_id)
        elif row.ir_hash != skill.ir_hash or canonical_hash(row.ir) != skill.ir_hash:
            # The second test: a row stored before 0004 holds its IR in jsonb's key order.
            for key, value in values.items():
                setattr(row, key, value)
            flag_modified(row, "ir")  # dicts in another key order compare equal: write it anyway
            result.updated.append(ir.skill_id)
        else:
            row.source_path = str(skill.path)  # same IR found elsewhere: not a change
            result.unchanged.append(ir.skill_id)
    session.flush()
    result.release = cut_release(session, by=by, note=note, hold=hold)
    result.current = current_release(session)
    return result
