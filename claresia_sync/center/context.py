"""What every Command Center request shares: the database, the settings, the tokens, and the
one way an operator action is carried out and recorded (API and console alike)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from claresia_sync.center import actions
from claresia_sync.center.auth import Identity, Tokens
from claresia_sync.center.operations import Conflict, NotFound
from claresia_sync.config import Settings
from claresia_sync.errors import UserError, one_line

log = logging.getLogger(__name__)
T = TypeVar("T")


class Forbidden(UserError):
    """A viewer asked for what only an operator may do."""


@dataclass
class Center:
    engine: Engine
    settings: Settings
    tokens: Tokens

    async def act(
        self,
        who: Identity,
        action: actions.Action,
        work: Callable[[], Awaitable[T]],
    ) -> T:
        """Run an operator action and record it (who, when, what, outcome), refused or not."""
        if not who.can_act:
            await self._record(who, action, "refused", "the viewer role may not act")
            raise Forbidden(f"{action.name}: the token {who.name!r} has the viewer role")
        try:
            result = await work()
        except (NotFound, Conflict, UserError) as exc:
            await self._record(who, action, "refused", one_line(exc))
            raise
        except Exception as exc:
            await self._record(who, action, "error", f"{type(exc).__name__}: {one_line(exc)}")
            raise
        job_id = result.get("id") if isinstance(result, dict) else None
        await self._record(who, action, "ok", None, job_id if isinstance(job_id, int) else None)
        log.info("command center: %s by %s on %s", action.name, who.name, action.target or "all")
        return result

    async def _record(
        self,
        who: Identity,
        action: actions.Action,
        outcome: str,
        detail: str | None,
        job_id: int | None = None,
    ) -> None:
        await run_in_threadpool(
            actions.record, self.engine, who, action, outcome, detail=detail, job_id=job_id
        )

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking read (the database) off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)
