"""The operator action log (`center_action`, append-only): who did what, when, through the
Command Center, and the command line's kill switch (`skill disable | enable`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select

from claresia_sync.center.auth import Identity
from claresia_sync.db.models import CenterAction


@dataclass(frozen=True)
class Action:
    """What an operator asked for: the action's name, its target and its parameters."""

    name: str
    target: str | None = None
    params: dict[str, Any] | None = None


def record(
    engine: Engine,
    who: Identity,
    action: Action,
    outcome: str,
    *,
    detail: str | None = None,
    job_id: int | None = None,
) -> None:
    """One row: `outcome` is `ok`, `refused` (not allowed, or not in a state to) or `error`."""
    record_as(engine, who.name, str(who.role), action, outcome, detail=detail, job_id=job_id)


def record_as(
    engine: Engine,
    actor: str,
    role: str,
    action: Action,
    outcome: str,
    *,
    detail: str | None = None,
    job_id: int | None = None,
) -> None:
    """`record` for an actor that is not a Command Center token: the command line records its
    operator actions (the kill switch) as `cli:<who>` with the role `cli`."""
    with engine.begin() as conn:
        conn.execute(
            insert(CenterAction).values(
                actor=actor,
                role=role,
                action=action.name,
                target=action.target,
                params=action.params or {},
                outcome=outcome,
                detail=detail,
                job_id=job_id,
            )
        )


def recent(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest actions first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(CenterAction).order_by(CenterAction.id.desc()).limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "at": r.at.astimezone(dt.UTC).isoformat(),
            "actor": r.actor,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "params": r.params,
            "outcome": r.outcome,
            "detail": r.detail,
            "job_id": r.job_id,
        }
        for r in rows
    ]
