"""Catalog releases (docs/releases.md): immutable, numbered snapshots of `catalog_skill`.

`catalog import` edits the catalog (catalog_store.py), then `cut_release` snapshots it when it
differs from the newest release: each skill's IR hash (the IR itself is kept once per skill and
hash in `catalog_ir`, so releases share unchanged IR), who, when and a note. A tenant is on a
release (`tenant.release`; NULL: its parent's, else the current one), and publishing renders
that release's IR for it (publish/desired.py).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from claresia_sync.db.models import (
    CatalogIR,
    CatalogRelease,
    CatalogReleaseSkill,
    CatalogSkill,
    Tenant,
)
from claresia_sync.errors import UserError
from claresia_sync.tenancy.lookup import require_tenant

Snapshot = dict[str, tuple[str, bool]]
"""skill id -> (IR hash, deprecated)."""


def operator() -> str:
    """Who acts when `--by` is not given: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"


def current_release(session: Session) -> int | None:
    return session.scalar(select(CatalogRelease.number).where(CatalogRelease.is_current))


def release_numbers(session: Session) -> list[int]:
    return list(session.scalars(select(CatalogRelease.number).order_by(CatalogRelease.number)))


def require_release(session: Session, number: int) -> CatalogRelease:
    """Release `number`, or the one "unknown release" error (naming those that exist)."""
    release = session.get(CatalogRelease, number)
    if release is None:
        raise UserError(f"unknown release {number}; {_which_exist(release_numbers(session))}")
    return release


def _which_exist(numbers: list[int]) -> str:
    if not numbers:
        return "no release exists yet: `claresia-sync catalog import` makes the first"
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"releases {numbers[0]} to {numbers[-1]} exist (`release list`)"
    return f"existing: {', '.join(map(str, numbers))} (`release list`)"


def release_snapshot(session: Session, number: int) -> Snapshot:
    rows = session.execute(
        select(
            CatalogReleaseSkill.skill_id,
            CatalogReleaseSkill.ir_hash,
            CatalogReleaseSkill.deprecated,
        ).where(CatalogReleaseSkill.release == number)
    )
    return {skill_id: (ir_hash, deprecated) for skill_id, ir_hash, deprecated in rows}


def cut_release(
    session: Session, *, by: str | None = None, note: str | None = None, hold: bool = False
) -> int | None:
    """Make a release of the catalog as it stands, if it differs from the newest release (None:
    it does not). It becomes current unless `hold` (and there is a current release already).
    Releases are numbered without gaps: the table lock orders concurrent imports."""
    session.execute(text("LOCK TABLE catalog_release IN SHARE ROW EXCLUSIVE MODE"))
    rows = session.execute(
        select(
            CatalogSkill.skill_id, CatalogSkill.ir_hash, CatalogSkill.deprecated, CatalogSkill.ir
        )
    ).all()
    catalog: Snapshot = {r.skill_id: (r.ir_hash, r.deprecated) for r in rows}
    newest = session.scalar(select(func.max(CatalogRelease.number)))
    if not catalog or (newest is not None and release_snapshot(session, newest) == catalog):
        return None
    number = (newest or 0) + 1
    ir_rows: list[dict[str, Any]] = [
        {"skill_id": r.skill_id, "ir_hash": r.ir_hash, "ir": r.ir} for r in rows
    ]
    session.execute(insert(CatalogIR).on_conflict_do_nothing(), ir_rows)
    session.add(CatalogRelease(number=number, created_by=by or operator(), note=note))
    session.flush()
    session.execute(
        insert(CatalogReleaseSkill),
        [
            {"release": number, "skill_id": s, "ir_hash": h, "deprecated": d}
            for s, (h, d) in catalog.items()
        ],
    )
    if not hold or current_release(session) is None:
        set_current(session, number)
    return number


def set_current(session: Session, number: int) -> None:
    """Name release `number` the current one: tenants not pinned publish it from now on."""
    require_release(session, number)
    session.execute(
        update(CatalogRelease)
        .where(CatalogRelease.is_current, CatalogRelease.number != number)
        .values(is_current=False)
    )
    session.execute(
        update(CatalogRelease).where(CatalogRelease.number == number).values(is_current=True)
    )


def pin_tenant(session: Session, tenant_slug: str, number: int | None) -> Tenant:
    """Put a tenant on release `number`, or (None) back on the current release."""
    tenant = require_tenant(session, tenant_slug)
    if number is not None:
        require_release(session, number)
    tenant.release = number
    session.flush()
    return tenant


@dataclass(frozen=True)
class ReleaseView:
    number: int
    created_at: dt.datetime
    created_by: str
    note: str | None
    current: bool
    skills: int
    tenants: list[str]
    """The tenants pinned to it (the current release also has every tenant not pinned)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "note": self.note,
            "current": self.current,
            "skills": self.skills,
            "pinned_tenants": self.tenants,
        }


def list_releases(session: Session) -> list[ReleaseView]:
    counts = dict(
        session.execute(
            select(CatalogReleaseSkill.release, func.count()).group_by(CatalogReleaseSkill.release)
        ).all()
    )
    pinned: dict[int, list[str]] = {}
    for slug, number in session.execute(
        select(Tenant.slug, Tenant.release).where(Tenant.release.is_not(None)).order_by(Tenant.slug)
    ):
        if number is not None:
            pinned.setdefault(number, []).append(slug)
    return [
        ReleaseView(
            r.number,
            r.created_at,
            r.created_by,
            r.note,
            r.is_current,
            counts.get(r.number, 0),
            pinned.get(r.number, []),
        )
        for r in session.scalars(select(CatalogRelease).order_by(CatalogRelease.number))
    ]


def show_release(session: Session, number: int) -> tuple[ReleaseView, Snapshot]:
    require_release(session, number)
    view = next(v for v in list_releases(session) if v.number == number)
    return view, release_snapshot(session, number)


Change = Literal["added", "changed", "removed"]


@dataclass(frozen=True)
class SkillChange:
    skill_id: str
    change: Change
    old_hash: str | None
    new_hash: str | None
    deprecated: bool | None
    """In the newer release (None: removed)."""
    text_diff: str | None = None
    """The SKILL.md diff as a tenant gets it (`diff --tenant`)."""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "skill_id": self.skill_id,
            "change": self.change,
            "old_ir_hash": self.old_hash,
            "new_ir_hash": self.new_hash,
            "deprecated": self.deprecated,
        }
        if self.text_diff is not None:
            out["skill_md_diff"] = self.text_diff
        return out


def diff_releases(session: Session, a: int, b: int) -> list[SkillChange]:
    """Per skill, what release `b` changes against release `a` (the SKILL.md diff of a changed
    skill as a tenant gets it: publish/release_diff.py)."""
    require_release(session, a)
    require_release(session, b)
    old, new = release_snapshot(session, a), release_snapshot(session, b)
    out = []
    for skill_id in sorted(old.keys() | new.keys()):
        before, after = old.get(skill_id), new.get(skill_id)
        if before == after:
            continue
        change: Change = "added" if before is None else "removed" if after is None else "changed"
        out.append(
            SkillChange(
                skill_id,
                change,
                before[0] if before else None,
                after[0] if after else None,
                after[1] if after else None,
            )
        )
    return out
