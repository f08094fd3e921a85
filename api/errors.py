"""Typed errors for mutation payloads, and domain errors as top-level GraphQL errors.

Mutations return a union of their success type and the error types below, all
implementing ``Error``. Queries raise; the schema then adds an ``extensions.code``
from the domain error so clients can branch without parsing messages.
"""

from __future__ import annotations

from typing import Any

import strawberry

from knowledge import errors as domain


@strawberry.interface(name="Error", description="A problem a client can show or act on.")
class ErrorType:
    message: str
    code: str
    field: str | None = strawberry.field(
        description="The input field at fault, as a path (e.g. 'input.slug'), when there is one."
    )


@strawberry.type(name="ValidationError")
class ValidationErrorType(ErrorType):
    pass


@strawberry.type(name="NotFoundError")
class NotFoundErrorType(ErrorType):
    pass


@strawberry.type(name="PermissionDeniedError")
class PermissionDeniedErrorType(ErrorType):
    pass


@strawberry.type(name="ConflictError")
class ConflictErrorType(ErrorType):
    current_version: int | None = strawberry.field(
        default=None,
        description="The version now stored, when the conflict is a stale expectedVersion.",
    )


@strawberry.type(name="InvalidTransitionError")
class InvalidTransitionErrorType(ErrorType):
    pass


AnyError = (
    ValidationErrorType
    | NotFoundErrorType
    | PermissionDeniedErrorType
    | ConflictErrorType
    | InvalidTransitionErrorType
)


@strawberry.type(
    name="BulkItemError",
    description="Why one id of a bulk change was left alone; the other ids are not affected.",
)
class BulkItemErrorType:
    id: strawberry.ID = strawberry.field(description="The id as it was given.")
    error: ErrorType = strawberry.field(
        description="What stopped it; field names the input at fault, e.g. 'input.ids.3'."
    )


def field_path(field: str | None) -> str | None:
    return None if field is None else f"input.{field}"


def to_error(error: domain.DomainError) -> AnyError:
    """The payload error for a domain error (authentication never gets here)."""
    path = field_path(error.field)
    if isinstance(error, domain.ConflictError):
        return ConflictErrorType(
            message=error.message,
            code=error.code,
            field=path,
            current_version=error.current_version,
        )
    kinds: dict[type[domain.DomainError], type[AnyError]] = {
        domain.ValidationError: ValidationErrorType,
        domain.NotFoundError: NotFoundErrorType,
        domain.PermissionDeniedError: PermissionDeniedErrorType,
        domain.InvalidTransitionError: InvalidTransitionErrorType,
    }
    for kind, error_type in kinds.items():
        if isinstance(error, kind):
            return error_type(message=error.message, code=error.code, field=path)
    raise error


def graphql_code(error: domain.DomainError) -> str:
    return {
        "unauthenticated": "UNAUTHENTICATED",
        "permission_denied": "FORBIDDEN",
        "not_found": "NOT_FOUND",
        "validation": "BAD_USER_INPUT",
        "conflict": "CONFLICT",
        "invalid_transition": "INVALID_TRANSITION",
    }.get(error.code, error.code.upper())


DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; try again shortly."
RETRY_AFTER_SECONDS = 5  # what a 503 tells clients; the pool reconnects on its own


def database_unavailable(request_id: str | None) -> dict[str, Any]:
    """The error for a request the database could not serve: the same words whether the
    outage showed while authenticating or while resolving, and none of the driver's."""
    return {
        "message": DATABASE_UNAVAILABLE_MESSAGE,
        "extensions": {"code": DATABASE_UNAVAILABLE, "requestId": request_id},
    }


DATABASE_BUSY = "DATABASE_BUSY"
DATABASE_BUSY_MESSAGE = (
    "The database is busy with other writes; nothing was changed. Try the same request again."
)
BUSY_RETRY_AFTER_SECONDS = 1  # the writers ahead take turns: the lock is free again soon


def database_busy(request_id: str | None) -> dict[str, Any]:
    """The error for a write that waited too long for SQLite's write lock (see
    knowledge/sqlite_writers.py): a moment's congestion, not an outage and not a bug."""
    return {
        "message": DATABASE_BUSY_MESSAGE,
        "extensions": {"code": DATABASE_BUSY, "requestId": request_id},
    }
