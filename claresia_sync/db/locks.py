"""Cluster-wide mutual exclusion between replicas: PostgreSQL session advisory locks.

A lock lives on its own connection for as long as the work runs. If the replica dies, its
connection drops and PostgreSQL releases the lock, so nothing stays locked after a crash.
`advisory_locks` is what the daemon and every run of a publish job use (several names, waiting
without blocking a thread in PostgreSQL); `try_advisory_lock` is the one-name, no-wait form of
the same thing. Here, in `db/`, so that `publish/` and `telemetry/` use them without importing
the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

# First key of the two-int advisory lock: one namespace per kind of work, so that an org id and a
# tenant slug that hash alike never block each other.
NAMESPACES = {
    "poll-org": 7301,
    "publish-tenant": 7302,
    "drift-check": 7303,
    "retention": 7304,
    "job-prune": 7305,
    "telemetry-source": 7306,  # one replica per telemetry source and organisation
}
RETRY_EVERY = 0.2  # seconds between two tries of a lock that `advisory_locks(wait=True)` waits for

_TRY = text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))")
_UNLOCK = text("SELECT pg_advisory_unlock(:ns, hashtext(:name))")


def _try_lock(conn: Connection, kind: str, name: str) -> bool:
    held = bool(conn.execute(_TRY, {"ns": NAMESPACES[kind], "name": name}).scalar_one())
    conn.commit()  # end the implicit transaction; the session-level lock stays
    return held


def _release(conn: Connection, kind: str, names: Sequence[str]) -> None:
    try:
        if not conn.closed and not conn.invalidated:
            for name in names:
                conn.execute(_UNLOCK, {"ns": NAMESPACES[kind], "name": name})
            conn.commit()
    except Exception:  # the connection is gone: so are its locks
        log.debug("lock release failed; the session's end releases them", exc_info=True)


@contextmanager
def try_advisory_lock(engine: Engine, kind: str, name: str) -> Iterator[bool]:
    """Yields True while this process holds the lock, False if another session holds it."""
    with engine.connect() as conn:
        held = _try_lock(conn, kind, name)
        try:
            yield held
        finally:
            if held:
                _release(conn, kind, [name])


@asynccontextmanager
async def advisory_locks(
    engine: Engine,
    kind: str,
    names: Sequence[str],
    *,
    wait: bool,
    stop: Callable[[], bool] | None = None,
    waiting: Callable[[], None] | None = None,
) -> AsyncIterator[bool]:
    """Advisory locks on one connection held for the block; yields whether all are held.

    `wait=True` retries until they are free, in sorted order (no deadlock between two holders of
    overlapping sets), without ever blocking a thread inside PostgreSQL (shutdown must not wait
    for it), until `stop()` says True (then it yields False); `waiting()` is called once when a
    lock is found taken. `wait=False` takes them all or none."""
    wanted = sorted(set(names))
    conn = await asyncio.to_thread(engine.connect)
    held: list[str] = []
    try:
        for name in wanted:
            got = await asyncio.to_thread(_try_lock, conn, kind, name)
            if not got and wait and waiting is not None:
                waiting()
            while not got and wait and not (stop is not None and stop()):
                await asyncio.sleep(RETRY_EVERY)
                got = await asyncio.to_thread(_try_lock, conn, kind, name)
            if not got:
                break
            held.append(name)
        yield len(held) == len(wanted)
    finally:
        await asyncio.to_thread(_release, conn, kind, held)
        await asyncio.to_thread(conn.close)
