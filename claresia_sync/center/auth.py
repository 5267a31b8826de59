"""Who may use the Command Center: bearer tokens given by reference, each with a role.

`CLARESIA_CENTER_TOKENS` lists them as `NAME:ROLE:REF` separated by commas, e.g.
`alice:operator:env:CLARESIA_CENTER_TOKEN_ALICE,grafana:viewer:file:/run/secrets/viewer-token`.
A `viewer` reads; an `operator` also acts (publish, retry, cancel, replay). A reference is read
afresh for every request (like the admin keys), so a rotated token works at once and the old
one stops working; a token is never logged, stored or echoed (the audit table holds its name).

The console's login turns a token into a session cookie that carries no secret: its name, an
expiry and a nonce, signed with HMAC keyed by the token itself, so every replica with the same
tokens accepts it and rotating the token ends its sessions. The CSRF token of a session is
another HMAC of its nonce under the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from claresia_sync.operator_tokens import Role, TokenSpec
from claresia_sync.secrets import KeyReferenceError, read_reference

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role

    @property
    def can_act(self) -> bool:
        return self.role == Role.OPERATOR


class Tokens:
    """The configured tokens; each lookup reads the references afresh."""

    def __init__(self, specs: tuple[TokenSpec, ...]) -> None:
        self.specs = specs
        self._warned: set[str] = set()

    def _value(self, spec: TokenSpec) -> str | None:
        try:
            value = read_reference(spec.ref, what="Command Center token").strip()
        except KeyReferenceError as exc:
            self._warn_once(spec, str(exc))
            return None
        if len(value) < MIN_TOKEN_LENGTH:
            self._warn_once(spec, f"it is shorter than {MIN_TOKEN_LENGTH} characters")
            return None
        self._warned.discard(spec.name)
        return value

    def _warn_once(self, spec: TokenSpec, why: str) -> None:
        if spec.name not in self._warned:
            self._warned.add(spec.name)
            log.warning("Command Center token %r cannot be used: %s", spec.name, why)

    def authenticate(self, presented: str) -> Identity | None:
        """The identity of a presented bearer token, or None (compared in constant time)."""
        found = None
        for spec in self.specs:
            value = self._value(spec)
            if value is not None and hmac.compare_digest(value.encode(), presented.encode()):
                found = Identity(spec.name, spec.role)
        return found

    def _key(self, name: str) -> tuple[TokenSpec, bytes] | None:
        spec = next((s for s in self.specs if s.name == name), None)
        value = None if spec is None else self._value(spec)
        return None if spec is None or value is None else (spec, value.encode())

    # --- console sessions -----------------------------------------------------------------------

    def new_session(self, identity: Identity, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{identity.name}.{expires}.{secrets.token_hex(16)}"
        found = self._key(identity.name)
        if found is None:
            raise ValueError(f"token {identity.name!r} is not usable")
        return f"{body}.{_sign(found[1], body)}"

    def session(self, cookie: str, now: float | None = None) -> tuple[Identity, str] | None:
        """(identity, csrf token) of a valid session cookie, else None."""
        body, _, signature = cookie.rpartition(".")
        name, _, rest = body.partition(".")
        expires, _, nonce = rest.partition(".")
        found = self._key(name)
        if found is None or not expires.isdigit() or not nonce:
            return None
        spec, key = found
        if not hmac.compare_digest(_sign(key, body), signature):
            return None
        if int(expires) < (now or time.time()):
            return None
        return Identity(spec.name, spec.role), _sign(key, f"csrf.{nonce}")


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
