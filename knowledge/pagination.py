"""Keyset pagination: stable under inserts, no OFFSET scans.

Pages are ordered by a unique integer key (the primary key); the API layer turns
the key into an opaque cursor.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.errors import ValidationError

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclasses.dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    has_previous: bool


def check_page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise ValidationError("first must not be negative", field="first")
    if first > MAX_PAGE_SIZE:
        raise ValidationError(f"first is at most {MAX_PAGE_SIZE}", field="first")
    return first


async def fetch_page(
    session: AsyncSession,
    stmt: sa.Select[Any],
    *,
    key: sa.ColumnElement[int] | Any,
    first: int | None,
    after: int | None,
) -> Page[Any]:
    """A page of ``stmt``'s rows ordered by ``key`` (SQLAlchemy 2.0 and 2.1 type
    selects differently, hence ``Any``; callers annotate the row type)."""
    size = check_page_size(first)
    if after is not None:
        stmt = stmt.where(key > after)
    rows = list((await session.scalars(stmt.order_by(key).limit(size + 1))).all())
    return Page(items=rows[:size], has_next=len(rows) > size, has_previous=after is not None)
