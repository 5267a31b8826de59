"""Published skill names: the `claresia-{tenant}-{skill}` namespace and its 64-char rule.

One place for the rule so that the transpiler, the tenant configuration and the emulator agree.
"""

from __future__ import annotations

import hashlib
import re

NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SLUG_RE = NAME_RE
MAX_NAME = 64
PREFIX = "claresia-"
RESERVED_WORDS = ("anthropic", "claude")


class NamingError(ValueError):
    """A slug or name that cannot be published."""


def reserved_word_in(text: str) -> str | None:
    """The reserved word that `text` contains, if any (the Skills API refuses such names)."""
    lowered = text.lower()
    return next((w for w in RESERVED_WORDS if w in lowered), None)


def check_slug(kind: str, slug: str) -> None:
    """Refuse a tenant or skill slug that cannot become part of a published name."""
    if not SLUG_RE.fullmatch(slug):
        raise NamingError(
            f"{kind} {slug!r} is not a valid slug: use lowercase letters, digits and single "
            "hyphens, e.g. 'dainese-eng'"
        )
    word = reserved_word_in(slug)
    if word:
        raise NamingError(
            f"{kind} {slug!r} contains the reserved word {word!r}, which Anthropic refuses in "
            "skill names: choose another slug"
        )


def published_name(tenant: str, skill_id: str) -> str:
    """`claresia-{tenant}-{skill_id}`, shortened to 64 chars with a hash suffix when needed."""
    check_slug("tenant", tenant)
    check_slug("skill_id", skill_id)
    full = f"{PREFIX}{tenant}-{skill_id}"
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[:55].rstrip('-')}-{digest}"


def is_claresia_name(name: str) -> bool:
    return name.startswith(PREFIX)
