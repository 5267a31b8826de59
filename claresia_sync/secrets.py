"""Keys by reference (`env:NAME` or `file:PATH`), never by value.

A resolved key lives only in an `AdminKey`, whose str/repr show at most its last 4 chars, so
that a key cannot reach a log line, an exception text or the database by accident.

Three key families exist (docs/real-api.md section 2), each accepted only where it belongs
(`KeyFamily`): Console admin keys (`sk-ant-admin...`: the org-skills API, the Admin API),
Claude Enterprise admin keys (`sk-ant-api01-`: the Plugins API) and workspace API keys
(`sk-ant-api03-`: the Skills API of one workspace).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-ant-admin"


@dataclass(frozen=True)
class KeyFamily:
    """Which keys a reference may resolve to, and how to get one (for the error message)."""

    name: str
    prefix: str
    how_to_get: str
    noun: str = "admin key"
    """What messages call such a key after the target's name (`claude-api API key`)."""


CONSOLE_ADMIN = KeyFamily(
    "an Anthropic admin key",
    KEY_PREFIX,
    "mint one under Settings → API keys → Admin keys",
)
ENTERPRISE_ADMIN = KeyFamily(
    "a Claude Enterprise admin key",
    "sk-ant-api01-",
    "make one in claude.ai → Admin settings → API keys with the scopes write:plugins, "
    "read:plugins, read:rbac_groups",
)
WORKSPACE_API_KEY = KeyFamily(
    "a workspace API key",
    "sk-ant-api03-",
    "create one in console.anthropic.com → Settings → API keys, in that workspace",
    "API key",
)
FAMILIES = (CONSOLE_ADMIN, ENTERPRISE_ADMIN, WORKSPACE_API_KEY)
# Not an Anthropic key: the secret a tenant's Claude Code sends to the daemon's OTLP receiver.
OTLP_TOKEN = KeyFamily(
    "an OTLP bearer token",
    "",
    "choose a random secret of at least 16 characters (openssl rand -hex 32)",
)
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

    @property
    def fingerprint(self) -> str:
        """sha256 of the key: names it in a process's own caches without holding it twice."""
        return hashlib.sha256(self._value.encode()).hexdigest()

    def __str__(self) -> str:
        return f"…{self.last4}"

    def __repr__(self) -> str:
        return f"AdminKey(reference={self.reference!r}, last4={self.last4!r})"


def read_reference(ref: str, what: str = "admin key") -> str:
    """The text an `env:NAME` / `file:PATH` reference points at, read now (never cached), less
    the newline an editor adds at the end of a file; `what` names it in the error."""
    kind, _, target = ref.partition(":")
    if kind == "env":
        raw = os.environ.get(target)
        if raw is None:
            raise KeyReferenceError(f"environment variable {target} (from {ref!r}) is not set")
        return raw
    path = Path(target).expanduser()
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyReferenceError(
            f"cannot read the {what} file {path} (from {ref!r}): {exc.strerror}"
        ) from None
    return raw[:-1] if raw.endswith("\n") else raw  # an editor's final newline is no typo


def resolve_key(ref: str, family: KeyFamily = CONSOLE_ADMIN) -> AdminKey:
    """Read the key a reference points at, strip surrounding whitespace (with a warning); a key
    of another family than `family` is refused, naming both (never the key)."""
    check_reference(ref)
    raw = read_reference(ref)
    key = raw.strip()
    if not key:
        raise KeyReferenceError(f"the admin key at {ref!r} is empty")
    if key != raw:
        log.warning(
            "admin key from %s had surrounding whitespace (stripped); key ends …%s", ref, key[-4:]
        )
    if not key.startswith(family.prefix):
        found = next((f for f in FAMILIES if key.startswith(f.prefix)), None)
        what = f"is {found.name}" if found else f"is not {family.name}"
        raise KeyReferenceError(
            f"the key at {ref!r} (ending …{key[-4:]}) {what}, but {family.name} is needed here "
            f"(it begins '{family.prefix}'): {family.how_to_get}"
        )
    return AdminKey(key, ref)


def resolve_token(ref: str) -> str:
    """The OTLP token a reference points at (`env:` / `file:`): at least 16 characters, never an
    Anthropic key (a reference to the wrong secret). The receiver checks tokens with it, the
    Claude Code settings writer hands it to Claude Code."""
    token = resolve_key(ref, OTLP_TOKEN).reveal()
    if token.startswith("sk-ant-"):
        raise KeyReferenceError(f"{ref!r} holds an Anthropic key, not an OTLP token")
    if len(token) < 16:
        raise KeyReferenceError(f"the OTLP token at {ref!r} is shorter than 16 characters")
    return token
