"""The kinds table (docs/architecture.md, "Adding a target"): every registered kind owns its
part of the tenants file, its key family, its fan-out and its check, declares the features that
are its own, the kinds sit below the tenants file that reads them, and no module outside them
names a kind."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from claresia_sync.api.connect import KEY_FAMILIES, TenantConnection
from claresia_sync.publish.targets import KINDS, ORG_SKILLS, OrgSkillsSection, register
from claresia_sync.publish.targets.section import StoredTarget
from claresia_sync.telemetry import seam
from claresia_sync.telemetry.sources import AUDIT_POLLER
from claresia_sync.tenancy.schema import tenants_file_model

PACKAGE = Path(__file__).resolve().parents[2] / "claresia_sync"
TARGETS = PACKAGE / "publish" / "targets"


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
    assert list(targets.model_fields) == ["org_skills", "claude_enterprise", "claude_api"]
    # `connection:`, the older spelling of `targets.org-skills`, is read with the same model.
    assert tenant.model_fields["connection"].annotation == OrgSkillsSection | None


def test_what_each_kind_declares() -> None:
    declared = {
        name: (k.organisation_connection, k.claude_code_settings, k.telemetry_sources)
        for name, k in KINDS.items()
    }
    assert declared == {
        "org-skills": (True, False, ("audit-poller",)),
        "claude-enterprise": (False, True, ("skills-analytics", "activity-feed")),
        "claude-api": (False, False, ()),
    }
    # Each offered source is a real one: the audit poller or a source of the telemetry seam.
    known = {AUDIT_POLLER, *seam.kinds()}
    assert {s for k in KINDS.values() for s in k.telemetry_sources} <= known


def test_one_kind_at_most_is_the_organisation_connection() -> None:
    class Second(type(ORG_SKILLS)):  # type: ignore[misc]
        name = "org-skills-two"

    with pytest.raises(ValueError, match="org-skills-two: org-skills is already the organisation"):
        register(Second())
    assert "org-skills-two" not in KINDS


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


# Where a kind's name may be spelled: its own module, and `api/connect.py` (org-skills: the
# default of a connection, below the kinds).
NAMED_IN = {"publish/targets/org_skills.py", "publish/targets/claude_enterprise.py",
            "publish/targets/claude_api.py", "api/connect.py"}  # fmt: skip
# The modules docs/architecture.md says iterate `KINDS` and name no kind: they do not import one.
NAME_NO_KIND = ("tenancy/", "target_check.py", "status.py", "publish/claude_code_settings.py",
                "publish/reconcile.py", "telemetry/analytics_reader.py")  # fmt: skip
ONE_KIND = {"ORG_SKILLS", "CLAUDE_ENTERPRISE_KIND", "CLAUDE_API_KIND", "OrgSkillsKind",
            "ClaudeEnterpriseKind", "ClaudeApiKind"}  # fmt: skip


def test_no_module_outside_the_kinds_spells_a_kind_name() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        text = path.read_text()
        if name in NAMED_IN or not any(kind in text for kind in KINDS):
            continue
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Constant) and node.value in KINDS:
                found.append(f"{name}:{node.lineno}: {node.value!r}")
            if (
                name.startswith(NAME_NO_KIND)
                and isinstance(node, ast.ImportFrom)
                and node.module
                and (
                    node.module.removeprefix("claresia_sync.publish.targets.")
                    in ("org_skills", "claude_enterprise", "claude_api")
                    or any(a.name in ONE_KIND for a in node.names)
                )
            ):
                found.append(f"{name}:{node.lineno}: imports {node.module} (one kind)")
    assert not found, "let the kind declare it (TargetKind), or import its constant:\n" + "\n".join(
        found
    )
