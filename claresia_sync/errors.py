"""Errors meant for the operator: their message is the one line the CLI prints."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration; the CLI prints the message and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
