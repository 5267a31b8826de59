"""The command line for scripts (issue 13 item 8): documented exit codes, one-line usage errors,
`--version`, `-h`, `tenants list --json`, no truncation off a terminal, an unknown tenant in
`telemetry report` is an error."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from claresia_sync import __version__
from claresia_sync.errors import ExitCode
from tests.cli import clean_env, run_cli


def test_version_and_short_help() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"claresia-sync {__version__}"
    for args in (("-h",), ("run", "-h"), ("tenants", "list", "-h")):
        helped = run_cli(*args)
        assert helped.returncode == 0, helped.stderr
        assert "Usage: claresia-sync" in helped.stdout
    assert "Exit codes: 0 success; 1 error" in run_cli("-h").stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run", "--nope"), "No such option: --nope (see `claresia-sync run -h`)"),
        (("run", "--poll-interval", "abc"), "Invalid value for '--poll-interval'"),
        (("tenants", "frob"), "No such command 'frob'"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(args: tuple[str, ...], says: str) -> None:
    done = run_cli(*args)
    assert done.returncode == ExitCode.USAGE
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("claresia-sync: error: ") and says in line


@pytest.fixture(scope="module")
def tenants_env(make_database: Callable[[], str]) -> dict[str, str]:
    """A database of its own with the example catalog and tenants, made once: the tests that
    use it only read (three CLI processes each cost ~35 s of a test's setup at load 8)."""
    env = clean_env(CLARESIA_DATABASE_URL=make_database())
    for args in (
        ("db", "upgrade"),
        ("catalog", "import", "skills_ir/catalog"),
        ("tenants", "apply", "deploy/tenants.example.yaml"),
    ):
        done = run_cli(*args, env=env)
        assert done.returncode == 0, done.stderr
    return env


def test_tenants_list_as_json_and_uncut(tenants_env: dict[str, str]) -> None:
    listed = run_cli("tenants", "list", "--json", env=tenants_env)
    assert listed.returncode == 0, listed.stderr
    tenants = {t["slug"]: t for t in json.loads(listed.stdout)["tenants"]}
    assert tenants["dainese"]["org_id"] == "org_dainese"
    assert tenants["dainese-eng"]["parent_slug"] == "dainese"
    assert isinstance(tenants["dainese"]["workspace_ids"], list)
    table = run_cli("tenants", "list", env=tenants_env)
    assert table.returncode == 0
    # off a terminal every cell is whole: no "…" and no folded workspace list
    assert "…" not in table.stdout
    for t in tenants.values():
        if t["workspace_ids"]:
            assert ", ".join(t["workspace_ids"]) in table.stdout


def test_telemetry_report_of_an_unknown_tenant_is_an_error(tenants_env: dict[str, str]) -> None:
    done = run_cli("telemetry", "report", "--tenant", "nope", env=tenants_env)
    assert done.returncode == ExitCode.ERROR
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("claresia-sync: error: unknown tenant 'nope' (known: ")
    known = run_cli("telemetry", "report", "--tenant", "dainese", env=tenants_env)
    assert known.returncode == 0 and "no invocations for tenant 'dainese'" in known.stdout
