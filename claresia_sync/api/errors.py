"""Errors of the Anthropic organisation API, one class per error type
(docs/interfaces.md section 3).

Each carries the HTTP status, the error type, the server's message, the request id and a `hint`:
the one line an operator should read (seeds/002). The admin key never appears in any of them.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

REQUIRED_SCOPES = ("skills:read", "skills:write", "audit:read", "workspaces:read")
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})

_SCOPE_RE = re.compile(r"\b(?:skills|audit|workspaces):(?:read|write)\b")
_WORKSPACE_RE = re.compile(r"\bwrkspc_[A-Za-z0-9_]+")

ZERO_RETENTION_HINT = (
    "Claresia refuses to publish. Enable zero-retention in Anthropic Console → Settings → Privacy"
)


class APIError(Exception):
    """Any failed call. `status` is 0 when no HTTP answer arrived (connection error, timeout)."""

    status: int = 0
    error_type: ClassVar[str] = "api_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        route: str = "",
        body: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        if status is not None:
            self.status = status
        self.type = error_type or self.error_type
        self.request_id = request_id
        self.route = route
        self.body = body or {}
        super().__init__(self.__str__())

    @property
    def hint(self) -> str:
        """What the operator should do about it."""
        return "retry later; if it persists, check status.anthropic.com"

    def __str__(self) -> str:
        where = f" on {self.route}" if self.route else ""
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.status} {self.type}{where}: {self.message}{rid}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, type={self.type!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class BadRequestError(APIError):
    status = 400
    error_type = "invalid_request_error"

    @property
    def hint(self) -> str:
        return f"the API refused the request: {self.message}"


class AuthenticationError(APIError):
    status = 401
    error_type = "authentication_error"

    @property
    def hint(self) -> str:
        return (
            "the admin key was refused: re-paste the key (most common: trailing space) or mint "
            "a new one under Settings → API keys → Admin keys"
        )


class PermissionDeniedError(APIError):
    status = 403
    error_type = "permission_error"

    @property
    def missing_scope(self) -> str | None:
        found = _SCOPE_RE.search(self.message)
        return found.group(0) if found else None

    @property
    def workspace_id(self) -> str | None:
        found = _WORKSPACE_RE.search(self.message)
        return found.group(0) if found else None

    @property
    def hint(self) -> str:
        scopes = ", ".join(REQUIRED_SCOPES)
        if self.missing_scope:
            return (
                f"the admin key lacks the scope {self.missing_scope}: re-mint it with the scopes "
                f"{scopes}"
            )
        if self.workspace_id:
            return (
                f"the admin key's principal may not use workspace {self.workspace_id}: add the "
                "Admin key's principal to that workspace"
            )
        return f"the admin key may not do this: re-mint it with the scopes {scopes}"


class NotFoundError(APIError):
    status = 404
    error_type = "not_found_error"

    @property
    def hint(self) -> str:
        return f"not found: {self.message}; check the organisation id of the tenant"


class ConflictError(APIError):
    status = 409
    error_type = "conflict_error"

    @property
    def existing_id(self) -> str | None:
        """The id of the skill that already holds the name (409 on skill create)."""
        error = self.body.get("error")
        found = error.get("existing_id") if isinstance(error, dict) else None
        found = found or self.body.get("existing_id")
        return found if isinstance(found, str) else None

    @property
    def hint(self) -> str:
        return f"a skill of that name already exists ({self.existing_id or 'id unknown'})"


class RequestTooLargeError(APIError):
    status = 413
    error_type = "request_too_large"

    @property
    def hint(self) -> str:
        return "the skill bundle is too large (8 MiB at most in all): trim its resources"


class RateLimitError(APIError):
    status = 429
    error_type = "rate_limit_error"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)

    @property
    def hint(self) -> str:
        return "rate limited by Anthropic: the call will be retried later"


class InternalServerError(APIError):
    """500 and the gateway statuses 502, 503 and 504."""

    status = 500
    error_type = "api_error"
    retryable = True


class OverloadedError(APIError):
    status = 529
    error_type = "overloaded_error"
    retryable = True


class APIConnectionError(APIError):
    """No HTTP answer: refused or reset connection, protocol error."""

    status = 0
    error_type = "connection_error"
    retryable = True

    @property
    def hint(self) -> str:
        return "cannot reach the Anthropic API: check the base URL and the network"


class APITimeoutError(APIConnectionError):
    error_type = "timeout"


class UnexpectedResponseError(APIError):
    """A 2xx answer whose body is not what the contract says (see the client's docstring)."""

    error_type = "unexpected_response"

    @property
    def hint(self) -> str:
        return (
            "the API's answer could not be trusted and was refused; if it persists, check the "
            "connection's base_url (a proxy or another server may be answering) and "
            "status.anthropic.com"
        )


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    429: RateLimitError,
    500: InternalServerError,
    502: InternalServerError,
    503: InternalServerError,
    504: InternalServerError,
    529: OverloadedError,
}
_BY_TYPE: dict[str, type[APIError]] = {
    cls.error_type: cls for cls in set(_BY_STATUS.values()) if cls is not InternalServerError
}


def error_from_response(
    status: int,
    body: Any,
    *,
    request_id: str | None,
    route: str,
    retry_after: float | None = None,
) -> APIError:
    """Map an error answer to its class (by status, else by error type)."""
    body = body if isinstance(body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    assert isinstance(error, dict)
    error_type = error.get("type") if isinstance(error.get("type"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    request_id = request_id or (body.get("request_id") if isinstance(body, dict) else None)
    cls = _BY_STATUS.get(status) or _BY_TYPE.get(error_type or "")
    if cls is None:
        cls = InternalServerError if status >= 500 else BadRequestError
    kw: dict[str, Any] = {
        "status": status,
        "error_type": error_type,
        "request_id": request_id,
        "route": route,
        "body": body,
    }
    text = message or f"HTTP {status} without an error body"
    if cls is RateLimitError:
        return RateLimitError(text, retry_after=retry_after, **kw)
    return cls(text, **kw)


# --- the errors of a target or source call (the publish target seam's, re-exported by
# publish/targets/base.py): raised by the targets and by `api.sdk.SdkCaller` ------------------


class TargetError(Exception):
    """A target call that failed; `str()` names the call, `hint` says what to do."""

    def __init__(self, message: str, *, hint: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.hint = hint
        self.retryable = retryable


class SkillGone(TargetError):
    """The skill is no longer on the target (deleted behind our back): a delete is done; a new
    version or an access change falls back to creating it again."""
