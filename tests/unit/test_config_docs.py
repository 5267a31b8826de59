"""The settings table of docs/deployment.md names every setting, its flag and its default."""

from __future__ import annotations

from pathlib import Path

from claresia_sync.config import Settings, default_of, env_name, flag_name, has_flag

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def _table() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `CLARESIA_") and len(cells) == 4:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_setting_is_documented_with_its_flag_and_default() -> None:
    table = _table()
    for name in Settings.model_fields:
        env = env_name(name)
        assert env in table, f"docs/deployment.md: no row for {env}"
        _, flag, default, meaning = table[env]
        assert flag == (f"`{flag_name(name)}`" if has_flag(name) else ""), env
        value = default_of(name)
        if isinstance(value, bool):
            assert default == f"`{str(value).lower()}`", env
        elif isinstance(value, float):
            assert default == f"`{value:g}`", env
        elif isinstance(value, int | str):
            assert default == f"`{value}`", env
        assert meaning, env
