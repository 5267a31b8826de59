"""The kinds table (docs/architecture.md, "Adding a target"): every registered kind owns its
part of the tenants file, its key family, its fan-out and its check, and the kinds sit below the
tenants file that reads them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

from claresia_sync.api.connect import KEY_FAMILIES, TenantConnection
from claresia_sync.publish.targets import KINDS
from claresia_sync.publish.targets.section import StoredTarget
from claresia_sync.tenancy.schema import tenants_file_model

TARGETS = Path(__file__).resolve().parents[2] / "claresia_sync" / "publish" / "targets"


def test_the_kinds_table_and_what_each_kind_owns() -> None:
    assert list(KINDS) == ["org-skills", "claude-enterprise", "claude-api"]
    for name, kind in KINDS.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name  # migration 0018
        assert KEY_FAMILIES[name] is kind.key_family
    # `targets:` is composed of the kinds that have a section, keyed by their names.
    (tenant,) = get_args(tenants_file_model().model_fields["tenants"].annotation)
    targets = next(a for a in get_args(tenant.model_fields["targets"].annotation) if a is not None)
    assert {f.alias: f.annotation for f in targets.model_fields.values()} == {
        name: kind.section | None for name, kind in KINDS.items() if kind.section is not None
    }
    assert list(targets.model_fields) == ["claude_enterprise", "claude_api"]


def test_claude_api_fans_out_once_per_workspace_key() -> None:
    base = TenantConnection("f", "f", "org_f", "env:ADMIN", target="claude-api")
    stored = StoredTarget("org_f", None, None, {"wrkspc_b": "env:B", "wrkspc_a": "env:A"})
    assert [
        (c.workspace_id, c.admin_key_ref) for c in KINDS["claude-api"].connections(base, stored)
    ] == [("wrkspc_a", "env:A"), ("wrkspc_b", "env:B")]
    one = KINDS["claude-enterprise"].connections(base, stored)
    assert one == [base]


def test_the_kinds_import_nothing_above_them() -> None:
    found = []
    for path in sorted(TARGETS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
            elif isinstance(node, ast.Import):
                module = node.names[0].name
            else:
                continue
            if module.startswith("claresia_sync.tenancy") or (
                module.startswith("claresia_sync.publish")
                and not module.startswith("claresia_sync.publish.targets")
            ):
                found.append(f"{path.name}:{node.lineno}: {module}")
    assert not found, found


def test_the_tenants_file_imports_first_in_a_fresh_interpreter() -> None:
    """tenancy reads the kinds table and publish reads tenancy: importing the tenants file
    before anything else must work."""
    done = subprocess.run(
        [sys.executable, "-c", "import claresia_sync.tenancy.schema, claresia_sync.publish"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
