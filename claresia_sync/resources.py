"""Files the program ships: found in the checkout, or in the wheel's copy (hatch force-include)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(relative: str) -> Path:
    """`skills_ir/catalog`, `deploy/emulator.seed.yaml`, ...: the checkout's, else the wheel's."""
    for candidate in (_PACKAGE.parent / relative, _PACKAGE / "_data" / relative):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{relative} is not in this installation of claresia-sync")
