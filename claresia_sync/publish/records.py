"""Writes of the publisher to the `publication` table (one upsert per batch of results), and of
each change to `publication_history`, in the same transaction (what was live when)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from claresia_sync.db.models import EMPTY_ACL, Publication, PublicationHistory, Tenant
from claresia_sync.publish.targets import ORG_SKILLS, Access

NO_ACCESS: dict[str, Any] = json.loads(EMPTY_ACL)  # the column's own default


@dataclass(frozen=True)
class PublicationState:
    """What one (tenant, skill) is after an item ran: its whole row, as far as we know."""

    tenant_id: int
    skill_id: str
    published_name: str
    status: str  # published | failed | unpublished
    remote_skill_id: str | None
    remote_version: str | None
    content_hash: str | None
    access: Access | None
    """None: no access (an unpublished skill)."""
    last_error: str | None
    published_at: dt.datetime | None
    target: str = ORG_SKILLS.name
    """`TenantConnection.target_key`: one row per tenant, skill and target."""
    release: int | None = None
    """The catalog release of the live content (None: none live, or not this run's)."""


def record_publications(
    engine: Engine, states: Sequence[PublicationState], job_id: int | None
) -> None:
    """Upsert the rows (by tenant, skill and target); `published_at` keeps its value when not
    live. Each row that changes gets a `publication_history` row in the same transaction."""
    if not states:
        return
    rows: list[dict[str, Any]] = [
        {
            "tenant_id": s.tenant_id,
            "skill_id": s.skill_id,
            "published_name": s.published_name,
            "status": s.status,
            "remote_skill_id": s.remote_skill_id,
            "remote_version": s.remote_version,
            "content_hash": s.content_hash,
            "acl": s.access.to_json() if s.access is not None else NO_ACCESS,
            "last_error": s.last_error,
            "published_at": s.published_at,
            "last_job_id": job_id,
            "target": s.target,
        }
        for s in states
    ]
    stmt = insert(Publication)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Publication.tenant_id, Publication.skill_id, Publication.target],
        set_={
            "published_name": stmt.excluded.published_name,
            "status": stmt.excluded.status,
            "remote_skill_id": stmt.excluded.remote_skill_id,
            "remote_version": stmt.excluded.remote_version,
            "content_hash": stmt.excluded.content_hash,
            "acl": stmt.excluded.acl,
            "last_error": stmt.excluded.last_error,
            "published_at": func.coalesce(stmt.excluded.published_at, Publication.published_at),
            "last_job_id": stmt.excluded.last_job_id,
            "updated_at": func.now(),
        },
    )
    with Session(engine) as session, session.begin():
        before = _rows_before(session, rows)
        session.execute(stmt, rows)
        history = [
            change
            for state, row in zip(states, rows, strict=True)
            if (change := _change(state, row, before.get(_key(row)), job_id)) is not None
        ]
        if history:
            slugs = dict(
                session.execute(
                    select(Tenant.id, Tenant.slug).where(
                        Tenant.id.in_({h["tenant_id"] for h in history})
                    )
                ).all()
            )
            for h in history:
                h["tenant_slug"] = slugs[h["tenant_id"]]
            session.execute(insert(PublicationHistory), history)


Key = tuple[int, str, str]
Before = tuple[str, str | None, str | None, str | None, dict[str, Any]]
"""status, content hash, remote id, remote version, acl."""


def _key(row: dict[str, Any]) -> Key:
    return (row["tenant_id"], row["skill_id"], row["target"])


def _rows_before(session: Session, rows: list[dict[str, Any]]) -> dict[Key, Before]:
    """The rows as they are, locked until the upsert commits (two writers of one row: the
    second sees the first's result, and its history row says what it changed)."""
    key = tuple_(Publication.tenant_id, Publication.skill_id, Publication.target)
    found = session.execute(
        select(
            Publication.tenant_id,
            Publication.skill_id,
            Publication.target,
            Publication.status,
            Publication.content_hash,
            Publication.remote_skill_id,
            Publication.remote_version,
            Publication.acl,
        )
        .where(key.in_([_key(r) for r in rows]))
        .with_for_update()
    ).all()
    return {(t, s, g): (st, h, rid, ver, acl) for t, s, g, st, h, rid, ver, acl in found}


def _change(
    state: PublicationState, row: dict[str, Any], before: Before | None, job_id: int | None
) -> dict[str, Any] | None:
    """The history row of one upsert, or None when it changes nothing that matters."""
    after: Before = (
        row["status"],
        row["content_hash"],
        row["remote_skill_id"],
        row["remote_version"],
        row["acl"],
    )
    if before == after:
        return None
    was_live = before is not None and before[0] == "published" and before[1] is not None
    if state.status == "unpublished":
        if before is not None and before[0] == "unpublished":
            return None
        action = "unpublished"
    elif state.status == "failed":
        action = "failed"
    elif not was_live:
        action = "published"
    elif before is not None and before[1:4] != after[1:4]:
        action = "updated"
    else:
        action = "access"
    return {
        "tenant_id": state.tenant_id,
        "skill_id": state.skill_id,
        "target": state.target,
        "published_name": state.published_name,
        "action": action,
        "status": state.status,
        "content_hash": state.content_hash,
        "remote_version": state.remote_version,
        "release": state.release if state.content_hash is not None else None,
        "job_id": job_id,
    }
