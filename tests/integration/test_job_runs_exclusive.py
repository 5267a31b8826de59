"""No run of a tenant beside another run of it, whoever starts it (issue 21): a command-line
`republish` / `publish --wait` started while a daemon runs a job of the same tenant waits for
it. On claude-api (the Skills API does not refuse a second skill of one name) two runs side by
side both list the workspace before either creates, and both create: a twin of every skill."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text

from claresia_sync.cli.publish import publish_cmd, republish_cmd
from claresia_sync.emulator import EmulatorServer
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.emulator import VESPUCCI_API_KEY
from tests.fixtures.real_api import client

TENANT, WORKSPACE = "vespucci", "wrkspc_vespucci_support"
SKILLS = 2  # the example tenants grant vespucci two skills
ROUNDS = 10
# Each command once or more: the daemon's job of the tenant runs beside it.
COMMANDS: list[tuple[str, Callable[[], None]]] = [
    ("republish --tenant T --force", lambda: republish_cmd(tenant=TENANT, force=True)),
    ("republish --all --force", lambda: republish_cmd(all_tenants=True, force=True)),
    ("publish --tenant T --wait --force", lambda: publish_cmd(TENANT, wait=True, force=True)),
]


def _workspace_names(emulator: EmulatorServer) -> Counter[str]:
    with client(emulator, VESPUCCI_API_KEY) as sdk:
        return Counter(s.display_name.split(" ")[0] for s in sdk.skills.list(limit=100))


def _empty_workspace(emulator: EmulatorServer) -> None:
    with client(emulator, VESPUCCI_API_KEY) as sdk:
        for skill in list(sdk.skills.list(limit=100)):
            sdk.skills.delete(skill.id)


def _jobs_since(engine: Engine, first_id: int) -> list[tuple[int, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status, claimed_by FROM publish_job WHERE id >= :i ORDER BY id"),
            {"i": first_id},
        ).all()
    return [(int(r.id), str(r.status), r.claimed_by) for r in rows]


def _runs(engine: Engine, first_id: int) -> list[tuple[int, object, object, object]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    # The runs of the tenant: a job over every tenant runs as units (one per
                    # root tenant, on any replica); its run of the tenant is its unit of it,
                    # not the split job's row, which spans them all.
                    "SELECT id, started_at, finished_at, claimed_by FROM publish_job "
                    "WHERE id >= :i AND status <> 'queued' AND units IS NULL "
                    "AND (tenant_id IS NULL OR tenant_id = "
                    "(SELECT id FROM tenant WHERE slug = :t)) ORDER BY id"
                ),
                {"i": first_id, "t": TENANT},
            ).all()
        ]


def _next_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) + 1 FROM publish_job")).scalar())


def _round(
    engine: Engine,
    emulator: EmulatorServer,
    command: Callable[[], None],
    pool: ThreadPoolExecutor,
) -> tuple[Counter[str], list[tuple[int, object, object, object]]]:
    """The command and a daemon job of the tenant at once: the workspace after both, and the
    runs of both (id, started, finished, by whom)."""
    _empty_workspace(emulator)  # deleted behind our back: each forced run must create
    first = _next_id(engine)
    # The command's own function, in this process: a subprocess spends seconds importing on a
    # loaded CI machine, and the race is between the runs, not the start-ups.
    cli = pool.submit(command)
    # As soon as the command's job exists, the daemon gets one of the same tenant.
    wait_until(lambda: cli.done() or bool(_jobs_since(engine, first)), 30, "the command's job")
    if cli.done():
        pytest.fail(f"the command ended at once: {cli.exception()!r}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO publish_job (tenant_id, force) "
                "SELECT id, true FROM tenant WHERE slug = :t"
            ),
            {"t": TENANT},
        )
    cli.result(timeout=60)  # its exception (exit 3: a failed skill) fails the test
    wait_until(
        lambda: all(s not in ("queued", "running") for _, s, _ in _jobs_since(engine, first)),
        30,
        "the daemon's job",
    )
    return _workspace_names(emulator), _runs(engine, first)


def test_a_cli_run_beside_a_daemon_job_of_the_tenant_waits_and_makes_no_twin(
    start_daemon: Callable[..., DaemonProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in daemon_env.items():  # the command's database and keys
        if name.startswith("CLARESIA_"):
            monkeypatch.setenv(name, value)
    daemon = start_daemon("--job-fallback-interval", "60")
    wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness")
    # 300 ms per Skills API list and create, as the real API answers on a slow day.
    emulator.set_faults(latency_ms=300, routes=["GET /v1/skills", "POST /v1/skills"])
    twins: list[tuple[int, Counter[str]]] = []
    overlaps: list[tuple[object, ...]] = []
    with ThreadPoolExecutor(1) as pool:
        for n in range(ROUNDS):
            command, call = COMMANDS[n % len(COMMANDS)]
            names, runs = _round(engine, emulator, call, pool)
            assert len(runs) >= 2, (command, runs)  # the command's run and the daemon's
            if sum(names.values()) != SKILLS or len(names) != SKILLS:
                twins.append((n, names))
            # Never side by side: the runs of a round do not overlap in time.
            for a in runs:
                for b in runs:
                    if a[0] < b[0] and not (a[2] <= b[1] or b[2] <= a[1]):  # type: ignore[operator]
                        overlaps.append((command, a[3], b[3]))
    assert twins == [], twins
    assert overlaps == [], overlaps
