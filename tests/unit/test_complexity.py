"""No function of claresia_sync is of cyclomatic-complexity rank E or F (issue 14): radon's own
ranking, the same as `radon cc -n E claresia_sync` printing nothing."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_rank, cc_visit

PACKAGE = Path(__file__).resolve().parents[2] / "claresia_sync"


def test_no_function_ranks_e_or_f() -> None:
    too_complex = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if cc_rank(block.complexity) in "EF":
                too_complex.append(
                    f"{path.relative_to(PACKAGE.parent)}:{block.lineno} {block.name} "
                    f"(complexity {block.complexity})"
                )
    assert not too_complex, "split these into one function per case:\n" + "\n".join(too_complex)


def test_the_check_can_fail() -> None:
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(45))
    (block,) = cc_visit(f"def f(x):\n{branches}\n    return -1\n")
    assert cc_rank(block.complexity) == "F"
