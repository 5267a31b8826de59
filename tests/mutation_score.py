"""The mutation score per module, from the last `mutmut run` (issue 21; docs/architecture.md,
"Mutation testing"): `.venv/bin/python tests/mutation_score.py` after the run.

For the publish targets only the access rule counts (the kind's `desired_access` and
`access_from_json`, and the access value's own methods): the rest of those modules talks to an
API and is tested on the integration lane, which mutmut does not run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict

ACCESS_RULE = re.compile(
    r"ǁ(\w*Kindǁ(desired_access|access_from_json)|(Acl|Installation|WorkspaceAccess)ǁ\w+)__"
)
TARGETS = "claresia_sync.publish.targets."
COLUMNS = ("killed", "survived", "timeout", "no tests", "not checked")


def module_of(mutant: str) -> str | None:
    module = mutant.split(".x", 1)[0]
    if module.startswith(TARGETS):
        return module + " (access rule)" if ACCESS_RULE.search(mutant) else None
    return module


def main() -> int:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        module = module_of(name) if name else None
        if module is not None:
            counts[module][status] += 1
    print("| module | " + " | ".join(COLUMNS) + " | score |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    for module, c in sorted(counts.items()):
        tried = c["killed"] + c["survived"] + c["timeout"]
        score = f"{100 * (c['killed'] + c['timeout']) / tried:.0f}%" if tried else "-"
        cells = " | ".join(str(c[k]) for k in COLUMNS)
        print(f"| `{module}` | {cells} | {score} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
