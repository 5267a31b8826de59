"""Writes of the publisher to the `publication` table (one upsert per batch of results)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from claresia_sync.db.models import EMPTY_ACL, Publication
from claresia_sync.publish.targets import Access

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
    target: str = "org-skills"
    """`TenantConnection.target_key`: one row per tenant, skill and target."""


def record_publications(
    engine: Engine, states: Sequence[PublicationState], job_id: int | None
) -> None:
    """Upsert the rows (by tenant, skill and target); `published_at` keeps its value when not
    live."""
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
        session.execute(stmt, rows)
