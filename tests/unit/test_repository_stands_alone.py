"""The repository stands alone: code, tests and docs cite its own files, never the team's
shared notes outside it (their text is in docs/interfaces.md and docs/real-api.md)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("claresia_sync", "tests", "docs", "migrations", "deploy", "skills_ir", "bench")
# Spelled in pieces so that this file does not cite them itself.
OUTSIDE = re.compile(
    "|".join(re.escape(s) for s in ("CONTRACT" + ".md", "REAL_API" + ".md", "../" + "shared"))
)
DOC_CITE = re.compile(r"\bdocs/([\w-]+\.md)\b")


def _files() -> list[Path]:
    found = [ROOT / "README.md"]
    for top in SCANNED:
        found += [
            p
            for p in (ROOT / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        ]
    return found


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:  # a binary fixture cites nothing
        return ""


def test_no_file_cites_a_file_outside_the_repository() -> None:
    cites = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _files()
        for n, line in enumerate(_text(path).splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not cites, "cite the docs/ page that holds the text instead:\n" + "\n".join(cites)


def test_every_docs_page_cited_exists() -> None:
    missing = sorted(
        f"{path.relative_to(ROOT)}: docs/{page}"
        for path in _files()
        if "ir_corpus" not in path.parts  # IR inputs, whose resource paths are made up
        for page in DOC_CITE.findall(_text(path))
        if not (ROOT / "docs" / page).is_file()
    )
    assert not missing, "\n".join(missing)
