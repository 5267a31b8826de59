"""docs/real-api.md section 4 keeps its promise: every assumption has an id, a source (a file of
the installed `anthropic` SDK that exists, a public doc page, or the word "assumed") and what the
code does if it is wrong; and every SDK file the page cites exists in the installed SDK."""

from __future__ import annotations

import re
from pathlib import Path

import anthropic

PAGE = Path(__file__).resolve().parents[2] / "docs" / "real-api.md"
SITE = Path(anthropic.__file__).resolve().parent.parent  # holds the `anthropic/` package
SDK_PATH = re.compile(r"`(anthropic/[^`\s]*(?:\.py|/))`")  # a file, or a folder of them
DOC_PAGE = re.compile(r"[a-z0-9.-]+\.(?:com|io)/\S+|docs/[a-z-]+\.md")


def _rows() -> list[list[str]]:
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## 4. Every assumption") :]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and re.fullmatch(r"[A-Z]\d+", cells[0]):
            rows.append(cells)
    return rows


def _exists(path: str) -> bool:
    if "*" in path:
        return any(SITE.glob(path))
    return (SITE / path).is_dir() if path.endswith("/") else (SITE / path).is_file()


def test_every_row_has_an_id_a_source_and_a_consequence() -> None:
    rows = _rows()
    assert len(rows) > 40
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    bad = []
    for row in rows:
        if len(row) != 4:
            bad.append(f"{row[0]}: {len(row)} cells, not 4 (id, assumption, source, if wrong)")
            continue
        _, assumption, source, if_wrong = row
        cited = SDK_PATH.search(source) or DOC_PAGE.search(source) or "assumed" in source
        if not (assumption and if_wrong and cited):
            bad.append(f"{row[0]}: needs an SDK file, a doc page or 'assumed', and 'if wrong'")
    assert bad == []


def test_every_cited_sdk_file_exists() -> None:
    cited = sorted(set(SDK_PATH.findall(PAGE.read_text(encoding="utf-8"))))
    assert cited
    assert [p for p in cited if not _exists(p)] == [], f"not in anthropic {anthropic.__version__}"
