"""Domain errors. Each carries a stable ``code`` that every interface passes on.

GraphQL turns them into typed payload errors (or top-level errors for
authentication and permission), the CLI into a message and exit status.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(DomainError):
    code = "validation"


class NotFoundError(DomainError):
    code = "not_found"


class ConflictError(DomainError):
    """A write named a stale version, or would break a uniqueness rule."""

    code = "conflict"

    def __init__(
        self, message: str, *, field: str | None = None, current_version: int | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.current_version = current_version


class AuthenticationError(DomainError):
    """No usable credentials: missing, malformed, unknown, expired or revoked token."""

    code = "unauthenticated"


class PermissionDeniedError(DomainError):
    code = "permission_denied"


class InvalidTransitionError(DomainError):
    code = "invalid_transition"
