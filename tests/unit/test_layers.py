"""The package's structure (docs/architecture.md, "Layers"): settings are read at the entry
points and handed down as values."""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path

from claresia_sync.api.client import DEFAULT_TIMEOUT_S
from claresia_sync.config import Settings, default_of
from claresia_sync.daemon.service import DaemonConfig

PACKAGE = Path(__file__).resolve().parents[2] / "claresia_sync"
# The entry points that read the settings: the command line (`run` hands them to the daemon
# and the Command Center as a value).
READS_SETTINGS = ("cli/",)


@functools.cache
def _modules() -> dict[str, ast.Module]:
    return {
        p.relative_to(PACKAGE).as_posix(): ast.parse(p.read_text(), str(p))
        for p in PACKAGE.rglob("*.py")
    }


def test_only_the_entry_points_read_the_settings() -> None:
    readers = sorted(
        f"claresia_sync/{name}:{node.lineno}"
        for name, tree in _modules().items()
        if name != "config.py" and not name.startswith(READS_SETTINGS)
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id in ("load_settings", "use_settings"))
        or (isinstance(node, ast.alias) and node.name in ("load_settings", "use_settings"))
        or (isinstance(node, ast.Attribute) and node.attr == "from_env")
    )
    assert not readers, "hand the settings down from the entry point instead:\n" + "\n".join(
        readers
    )


def test_the_api_default_timeout_is_the_settings_default() -> None:
    assert default_of("api_timeout_s") == DEFAULT_TIMEOUT_S


def test_the_daemon_config_takes_the_settings_values_and_repeats_no_default() -> None:
    fields = {f.name: f for f in dataclasses.fields(DaemonConfig)}
    from_settings = set(fields) & set(Settings.model_fields)
    assert from_settings >= {"poll_interval", "publish_workers", "ops_port", "activity_interval"}
    for name in from_settings:
        assert fields[name].default is dataclasses.MISSING, f"DaemonConfig.{name} has a default"
    settings = Settings(poll_interval=30, publish_workers=7, ops_port=1234, state_dir=Path("/x"))
    config = DaemonConfig.of(settings)
    for name in from_settings:
        assert getattr(config, name) == getattr(settings, name), name


# --- layers -------------------------------------------------------------------------------------

# The top-level packages and modules of claresia_sync/, lowest first: a unit imports only from
# its own layer or below (docs/architecture.md, "Layers"). A new top-level unit fails
# `test_every_unit_has_a_layer` until it is placed here (and in the docs' table).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "naming", "resources", "secrets", "logs", "operator_tokens"),
    ("ir", "skill_format", "transpile", "db"),
    ("api",),
    ("publish.targets",),
    ("tenancy", "catalog_store", "release_store"),
    ("publish",),
    ("telemetry",),
    ("rollout",),
    ("config", "status", "connection_check", "target_check"),
    ("daemon",),
    ("center",),
    ("emulator",),
    ("demo", "cli", "__main__"),
)
# The one import allowed to go up, (from, to), and why (docs/architecture.md says it too): none
# since the Claude Code settings writer moved into publish/ (issue 21).
UPWARD_ALLOWED: dict[tuple[str, str], str] = {}


def _layer_of() -> dict[str, int]:
    return {unit: n for n, units in enumerate(LAYERS) for unit in units}


# Sub-packages that are a unit of their own: the target kinds sit below the tenants file that
# reads their table (docs/architecture.md, "Adding a target"), the rest of publish/ above it.
SUB_UNITS = ("publish.targets",)


def _unit(module: str) -> str:
    dotted = module.removesuffix(".py").replace("/", ".")
    for sub in SUB_UNITS:
        if dotted == sub or dotted.startswith(f"{sub}."):
            return sub
    return dotted.split(".")[0]


def _imports() -> dict[tuple[str, str], list[str]]:
    """(from unit, to unit) -> where, for every import of one top-level unit by another."""
    found: dict[tuple[str, str], list[str]] = {}
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "claresia_sync":  # `from claresia_sync import x`
                    targets = [f"claresia_sync.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                if parts[0] != "claresia_sync" or len(parts) < 2:
                    continue
                src, dst = _unit(name), _unit("/".join(parts[1:]))
                if dst == "__version__":
                    dst = "__init__"
                if src != dst:
                    found.setdefault((src, dst), []).append(f"claresia_sync/{name}:{node.lineno}")
    return found


def test_every_unit_has_a_layer() -> None:
    units = {_unit(name) for name in _modules()}
    placed = _layer_of()
    assert not units - set(placed), f"place these in LAYERS: {sorted(units - set(placed))}"
    assert not set(placed) - units, f"gone, remove from LAYERS: {sorted(set(placed) - units)}"


def test_imports_go_down_but_for_the_one_allowed() -> None:
    layer = _layer_of()
    upward = {edge: where for edge, where in _imports().items() if layer[edge[1]] > layer[edge[0]]}
    unexpected = {edge: where for edge, where in upward.items() if edge not in UPWARD_ALLOWED}
    assert not unexpected, "\n".join(
        f"{a} -> {b}: {', '.join(w)}" for (a, b), w in unexpected.items()
    )
    assert len(UPWARD_ALLOWED) <= 1
    assert set(upward) == set(UPWARD_ALLOWED), "the allowed upward import is gone: remove it"


def test_no_import_cycle_between_top_level_units_but_through_the_allowed_one() -> None:
    """Within one layer too (the layers alone do not forbid a cycle there)."""
    graph: dict[str, set[str]] = {}
    for a, b in _imports():
        if (a, b) not in UPWARD_ALLOWED:
            graph.setdefault(a, set()).add(b)

    def cycle_from(start: str) -> list[str] | None:
        path, seen = [start], set()

        def walk(node: str) -> list[str] | None:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    path.append(nxt)
                    if found := walk(nxt):
                        return found
                    path.pop()
            return None

        return walk(start)

    cycles = [c for unit in sorted(graph) if (c := cycle_from(unit))]
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_one_retry_policy_for_every_api_call() -> None:
    """`OrgClient` and the SDK callers retry through the pool's transport (`api/retry.py`)
    alone: no retry engine is imported anywhere (tests/integration/test_api_retries.py shows
    the one transport serving both)."""
    engines = {
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tenacity"))
        or (isinstance(node, ast.Import) and any(a.name.startswith("tenacity") for a in node.names))
    }
    assert engines == set()
