"""Errors meant for the operator, and the exit codes every command shares.

Exit codes (documented in README, "Exit codes"; tests/test_docs_promises.py holds them to it):
0 success; 1 an error (bad input, configuration, an unreachable database or API); 2 a usage
error (unknown flag, bad flag value: click's own code); 3 the work ran but some of it failed
(a plan with refused organisations or failed items, a job that ended partial or failed).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    FAILURES = 3


class UserError(Exception):
    """Bad input or configuration; the CLI prints the message and exits with `exit_code`."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def one_line(error: BaseException | str) -> str:
    """An error's whole message on one line (status, logs and tables show it uncut: its cause
    comes last)."""
    return " ".join(str(error).split())
