"""The Command Center's tokens as the settings list them: `NAME:ROLE:REF,...` (see
`center.auth`). The syntax lives below `config`, which checks it when the settings are read, so
that a bad entry is one line at start; `center.auth` turns the specs into sessions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_NAME = re.compile(r"^[A-Za-z0-9_@-]{1,64}$")
_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[^,]+)$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class TokenSpec:
    """One configured token: its name (who, in the audit table), role and reference."""

    name: str
    role: Role
    ref: str


def parse_tokens(value: str) -> tuple[TokenSpec, ...]:
    """`NAME:ROLE:REF,...` -> token specs; a ValueError names the entry that is wrong."""
    specs: list[TokenSpec] = []
    for number, entry in enumerate((e.strip() for e in value.split(",")), start=1):
        if not entry:
            continue
        name, _, rest = entry.partition(":")
        role, _, ref = rest.partition(":")
        where = f"entry {number}" + (f" ({name})" if _NAME.match(name) else "")
        if not _NAME.match(name):
            raise ValueError(f"{where}: the name must be 1-64 letters, digits or _@-")
        if role not in tuple(Role):
            raise ValueError(f"{where}: role {role!r} is not one of viewer, operator")
        if ref.startswith("sk-") or not _REF.match(ref):
            raise ValueError(
                f"{where}: give the token by reference, env:NAME or file:/path (NAME:ROLE:REF)"
            )
        if any(s.name == name for s in specs):
            raise ValueError(f"{where}: the name {name!r} is given twice")
        specs.append(TokenSpec(name, Role(role), ref))
    return tuple(specs)
