"""Releases and rollouts for the operator API and the console (the same functions as
`claresia-sync release list` and `rollout ...`): each a blocking call on the engine, its errors
as the API answers them (an unknown rollout 404, a verb that does not apply 409, a bad plan 422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.center.operations import Conflict, NotFound
from claresia_sync.db.models import Rollout
from claresia_sync.release_store import list_releases
from claresia_sync.rollout import state
from claresia_sync.rollout.plan import DEFAULT_PLAN, parse_plan
from claresia_sync.rollout.view import describe, list_rollouts


def releases(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [v.as_json() for v in list_releases(session)]


def rollouts(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return list_rollouts(session)


def rollout(engine: Engine, rollout_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        if session.get(Rollout, rollout_id) is None:
            raise NotFound(f"rollout {rollout_id} does not exist")
        return describe(session, rollout_id)


def start(engine: Engine, release: int, plan: str | None, by: str) -> dict[str, Any]:
    """Start a rollout of `release` by `plan` (YAML text; None: the default plan)."""
    chosen = DEFAULT_PLAN if plan is None else parse_plan(plan, "plan")
    with Session(engine) as session:
        try:
            started = state.start(
                session, release, chosen, source="default" if plan is None else "api", by=by
            )
        except state.RolloutStateError as exc:
            raise Conflict(str(exc)) from None
        session.commit()
        return {"rollout": describe(session, started.id)}


Verb = Callable[[Session, Rollout, str], Any]


def act(engine: Engine, rollout_id: int, verb: Verb, by: str) -> dict[str, Any]:
    """`verb` (state.promote, state.halt, state.rollback) on rollout `rollout_id`."""
    with Session(engine) as session:
        found = session.get(Rollout, rollout_id, with_for_update=True)
        if found is None:
            raise NotFound(f"rollout {rollout_id} does not exist")
        try:
            verb(session, found, by)
        except state.RolloutStateError as exc:
            raise Conflict(str(exc)) from None
        session.commit()
        return {"rollout": describe(session, rollout_id)}


def promote(session: Session, rollout: Rollout, by: str) -> None:
    state.promote(session, rollout, by)


def rollback(session: Session, rollout: Rollout, by: str) -> None:
    state.rollback(session, rollout, by)


def halter(reason: str | None) -> Verb:
    def halt(session: Session, rollout: Rollout, by: str) -> None:
        state.halt(session, rollout, f"halted by {by}" + (f": {reason}" if reason else ""))

    return halt
