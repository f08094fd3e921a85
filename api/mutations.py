"""The one way a mutation runs: a write transaction, domain errors as payload errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import Context
from api.errors import AnyError, to_error
from api.relay import BadInputError, expect_global_id
from knowledge.errors import AuthenticationError, DomainError, ValidationError

R = TypeVar("R")


async def run_mutation(
    info: strawberry.Info[Context], change: Callable[[AsyncSession], Awaitable[R]]
) -> R | AnyError:
    """Apply ``change`` in one transaction; a domain error rolls it back and becomes data."""
    try:
        async with info.context.transaction() as session:
            return await change(session)
    except AuthenticationError:
        raise
    except DomainError as error:
        return to_error(error)


def input_id(value: strawberry.ID, type_name: str, *, field: str) -> int:
    """The key of an id given in an input; a bad one is a validation error on ``field``."""
    try:
        return expect_global_id(value, type_name, field=field)
    except BadInputError as error:
        raise ValidationError(error.message, field=field) from None


def optional_input_id(value: strawberry.ID | None, type_name: str, *, field: str) -> int | None:
    """None for null or an omitted field (UNSET); anything else, even "", must be an id.

    Callers must not test the value's truth instead: "" is falsy like UNSET, and a
    garbage id would then be taken for "leave as it is"."""
    if value is None or value is strawberry.UNSET:
        return None
    return input_id(value, type_name, field=field)


def input_ids(
    values: list[strawberry.ID] | None, type_name: str, *, field: str
) -> list[int] | None:
    """Keys of a list of ids in an input (None stays None: "leave as it is")."""
    return None if values is None else [input_id(v, type_name, field=field) for v in values]
