"""The CLI's one way to print tables and JSON.

Off a terminal (a pipe, `kubectl exec ... | less`, a CI log) rich would cut every line at 80
columns; the console here never cuts: it is as wide as a line needs."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

UNLIMITED = 100_000  # columns off a terminal: tables take the width their cells need


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, or unlimited off a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else UNLIMITED, highlight=False)


def print_json(value: Any) -> None:
    """`--json` output: one JSON document on stdout (paths, dates and the like as strings)."""
    print(json.dumps(value, indent=2, default=str))
