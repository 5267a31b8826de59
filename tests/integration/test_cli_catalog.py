"""`catalog validate` and `transpile` run as an operator would: real process, exit codes, stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "claresia_sync"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_validate_example_catalog_succeeds() -> None:
    done = run("catalog", "validate", "skills_ir/catalog")
    assert done.returncode == 0, done.stderr
    assert "skill(s) valid" in done.stdout


def test_validate_mixed_folder_lists_every_problem_and_fails() -> None:
    done = run("catalog", "validate", "tests/ir_corpus/mixed")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("claresia-sync: error: ")
    bad_files = {p.name for p in (ROOT / "tests/ir_corpus/mixed").glob("bad*.json")}
    assert bad_files and all(any(name in line for line in lines) for name in bad_files)


def test_transpile_writes_bundle_and_payload(tmp_path: Path) -> None:
    done = run(
        "transpile",
        "skills_ir/catalog/incident-postmortem.json",
        "--tenant",
        "dainese",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    name = "claresia-dainese-incident-postmortem"
    assert (tmp_path / name / "SKILL.md").is_file()
    payload = json.loads((tmp_path / f"{name}.json").read_text())
    assert payload["name"] == name


def test_transpile_bad_input_exits_non_zero_with_one_line_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"ir_version": "1"')
    done = run("transpile", str(bad), "--tenant", "dainese", "--out", str(tmp_path / "o"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"claresia-sync: error: {bad} is not a valid skill (1 problem(s))"
    )
    assert "invalid JSON: Expecting" in done.stderr and "(line 1, column 19)" in done.stderr
    assert not (tmp_path / "o").exists()

    done = run(
        "transpile",
        "skills_ir/catalog/incident-postmortem.json",
        "--tenant",
        "Claude",
        "--out",
        str(tmp_path / "o"),
    )
    assert done.returncode == 1 and "not a valid slug" in done.stderr
