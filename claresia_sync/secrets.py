"""Admin keys by reference (`env:NAME` or `file:PATH`), never by value.

A resolved key lives only in an `AdminKey`, whose str/repr show at most its last 4 chars, so
that a key cannot reach a log line, an exception text or the database by accident.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-ant-admin"
_REF_RE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


class KeyReferenceError(ValueError):
    """A key reference that is malformed or cannot be resolved (the message never holds the key)."""


def check_reference(ref: str) -> str:
    """Validate the form of a reference; refuse what looks like a pasted key."""
    if ref.strip().startswith("sk-"):
        raise KeyReferenceError(
            "an admin key was given by value: store it in an environment variable or a file and "
            "reference it as 'env:NAME' or 'file:/path'"
        )
    if not _REF_RE.match(ref):
        raise KeyReferenceError(
            f"admin key reference {ref!r} is not of the form 'env:NAME' or 'file:/path'"
        )
    return ref


@dataclass(frozen=True)
class AdminKey:
    """A resolved admin key. Use `.reveal()` only to build the request header."""

    _value: str = field(repr=False)
    reference: str = ""

    def reveal(self) -> str:
        return self._value

    @property
    def last4(self) -> str:
        return self._value[-4:]

    def __str__(self) -> str:
        return f"…{self.last4}"

    def __repr__(self) -> str:
        return f"AdminKey(reference={self.reference!r}, last4={self.last4!r})"


def resolve_key(ref: str) -> AdminKey:
    """Read the key a reference points at, strip surrounding whitespace (with a warning)."""
    check_reference(ref)
    kind, _, target = ref.partition(":")
    if kind == "env":
        raw = os.environ.get(target)
        if raw is None:
            raise KeyReferenceError(f"environment variable {target} (from {ref!r}) is not set")
    else:
        path = Path(target).expanduser()
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyReferenceError(
                f"cannot read the admin key file {path} (from {ref!r}): {exc.strerror}"
            ) from None
    if kind == "file" and raw.endswith("\n"):
        raw = raw[:-1]  # the newline an editor adds at the end of a file is not a typo
    key = raw.strip()
    if not key:
        raise KeyReferenceError(f"the admin key at {ref!r} is empty")
    if key != raw:
        log.warning(
            "admin key from %s had surrounding whitespace (stripped); key ends …%s", ref, key[-4:]
        )
    if not key.startswith(KEY_PREFIX):
        raise KeyReferenceError(
            f"the key at {ref!r} (ending …{key[-4:]}) is not an Anthropic admin key: admin keys "
            f"begin '{KEY_PREFIX}'; mint one under Settings → API keys → Admin keys"
        )
    return AdminKey(key, ref)
