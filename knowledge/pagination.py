"""Keyset pagination: stable under inserts, no OFFSET scans.

Pages are ordered by a sort column and then the primary key, so every row has a
unique position; the position of a page's last row (its sort value and id) is
what the API encodes as an opaque cursor.
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
    key: Any,
    first: int | None,
    after: int | None,
    sort: Any = None,
    after_sort: Any = None,
    descending: bool = False,
) -> Page[Any]:
    """A page of ``stmt``'s rows ordered by ``sort`` (if given) then ``key``.

    ``after``/``after_sort`` are the key and sort value of the row the page
    follows. (SQLAlchemy 2.0 and 2.1 type selects differently, hence ``Any``;
    callers annotate the row type.)
    """
    size = check_page_size(first)
    if after is not None:
        if sort is None:
            stmt = stmt.where(key < after if descending else key > after)
        else:
            position = sa.tuple_(sort, key)
            bound = sa.tuple_(sa.literal(after_sort, sort.type), sa.literal(after, key.type))
            stmt = stmt.where(position < bound if descending else position > bound)
    order = [key] if sort is None else [sort, key]
    stmt = stmt.order_by(*(c.desc() if descending else c.asc() for c in order))
    rows = list((await session.scalars(stmt.limit(size + 1))).all())
    return Page(items=rows[:size], has_next=len(rows) > size, has_previous=after is not None)
