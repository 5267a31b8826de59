"""Cluster-wide mutual exclusion between replicas: PostgreSQL session advisory locks.

A lock lives on its own connection for as long as the work runs. If the replica dies, its
connection drops and PostgreSQL releases the lock, so nothing stays locked after a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

# First key of the two-int advisory lock: one namespace per kind of work, so that an org id and a
# tenant slug that hash alike never block each other.
NAMESPACES = {"poll-org": 7301, "publish-tenant": 7302, "drift-check": 7303, "retention": 7304}

_TRY = text("SELECT pg_try_advisory_lock(:ns, hashtext(:name))")
_UNLOCK = text("SELECT pg_advisory_unlock(:ns, hashtext(:name))")


@contextmanager
def try_advisory_lock(engine: Engine, kind: str, name: str) -> Iterator[bool]:
    """Yields True while this process holds the lock, False if another session holds it."""
    params = {"ns": NAMESPACES[kind], "name": name}
    with engine.connect() as conn:
        held = bool(conn.execute(_TRY, params).scalar_one())
        conn.commit()  # end the implicit transaction; the session-level lock stays
        try:
            yield held
        finally:
            if held and not conn.closed and not conn.invalidated:
                conn.execute(_UNLOCK, params)
                conn.commit()
