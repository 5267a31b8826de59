"""The wheel is what systemd hosts install (docs/deployment.md, "systemd"): it must carry the
example catalog and files, and `catalog path` must find them inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The command docs/deployment.md gives for building the wheel.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("claresia_sync-*.whl")
    return built


def test_wheel_ships_catalog_migrations_and_examples(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    catalog = {n for n in names if n.startswith("claresia_sync/_data/skills_ir/catalog/")}
    assert len(catalog) == len(list((ROOT / "skills_ir/catalog").glob("*.json")))
    assert "claresia_sync/_data/deploy/tenants.example.yaml" in names
    assert any(n.startswith("claresia_sync/_migrations/versions/") for n in names)


def test_catalog_path_points_into_the_installed_package(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-m", "claresia_sync", "catalog", "path"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    path = Path(run.stdout.strip())
    assert path == site / "claresia_sync/_data/skills_ir/catalog"
    assert len(list(path.glob("*.json"))) == len(list((ROOT / "skills_ir/catalog").glob("*.json")))
