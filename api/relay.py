"""Relay conventions: global ids, the ``Node`` interface, cursor connections.

Global ids and cursors are opaque base64 strings. Anything that does not decode
to a known type and a positive integer is refused with a clear error, never
passed to the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import strawberry
from graphql import GraphQLError

from knowledge.pagination import Page

T = TypeVar("T")
# Primary keys are INTEGER columns: 32-bit on PostgreSQL, where a larger key would fail
# in the driver (an unexpected error) instead of finding nothing.
MAX_KEY = 2**31 - 1
MIN_INT, MAX_INT = -(2**31), 2**31 - 1

# GraphQL type name -> node class, filled by @node_type; used by node()/nodes().
NODE_TYPES: dict[str, type[Node]] = {}
# Types with global ids that node() does not serve (e.g. API tokens).
OTHER_ID_TYPES = {"ApiToken"}


class BadInputError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _b64decode(value: str) -> str | None:
    if not value or len(value) > 200:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _positive_int(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_KEY else None


def to_global_id(type_name: str, key: int) -> strawberry.ID:
    return strawberry.ID(_b64encode(f"{type_name}:{key}"))


def decode_global_id(value: str) -> tuple[str, int] | None:
    """``(type name, key)`` of anything shaped like a global id, whatever the type
    (for callers without the schema's types loaded); ``None`` otherwise."""
    type_name, _, key_text = (_b64decode(value) or "").partition(":")
    key = _positive_int(key_text)
    return None if key is None or not type_name.isidentifier() else (type_name, key)


def parse_global_id(value: str) -> tuple[str, int]:
    """``(type name, key)``; raises ``BadInputError`` for anything malformed or unknown."""
    decoded = decode_global_id(value)
    if decoded is None or (decoded[0] not in NODE_TYPES and decoded[0] not in OTHER_ID_TYPES):
        raise BadInputError(f"{value!r} is not a valid id")
    return decoded


def expect_global_id(value: str, type_name: str, *, field: str = "id") -> int:
    """The key of a global id that must name ``type_name``."""
    actual, key = parse_global_id(value)
    if actual != type_name:
        raise BadInputError(f"{field}: expected an id of a {type_name}, got one of a {actual}")
    return key


def to_cursor(key: int) -> str:
    return _b64encode(f"cursor:{key}")


def parse_cursor(value: str | None) -> int | None:
    if value is None:
        return None
    decoded = _b64decode(value) or ""
    prefix, _, key_text = decoded.partition(":")
    key = _positive_int(key_text)
    if prefix != "cursor" or key is None:
        raise BadInputError(f"after: {value!r} is not a cursor from this API")
    return key


def to_sort_cursor(sort_value: object, key: int) -> str:
    """A cursor for lists ordered by something other than creation."""
    return _b64encode("sort:" + json.dumps([_jsonable(sort_value), key]))


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def parse_sort_cursor(value: str | None, convert: Callable[[Any], Any]) -> tuple[Any, int] | None:
    """``(sort value, key)`` from a sort cursor; ``convert`` checks the value's type."""
    if value is None:
        return None
    decoded = _b64decode(value) or ""
    try:
        prefix, _, payload = decoded.partition(":")
        sort_value, key = json.loads(payload)
        if (
            prefix != "sort"
            or not isinstance(key, int)
            or isinstance(key, bool)
            or not 0 < key <= MAX_KEY
            or not _storable(sort_value)
        ):
            raise ValueError
        converted = convert(sort_value)
        if isinstance(converted, dt.datetime):
            converted.astimezone(dt.UTC)  # OverflowError near year 1 or 9999
        return converted, key
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise BadInputError(f"after: {value!r} is not a cursor for this ordering") from None


def _storable(sort_value: object) -> bool:
    """Whether the database driver can bind the value: a forged cursor must fail here,
    with a clear error, rather than in the driver as an unexpected one."""
    if isinstance(sort_value, bool):
        return False
    if isinstance(sort_value, int):
        return MIN_INT <= sort_value <= MAX_INT  # sortable numbers are INTEGER columns
    if isinstance(sort_value, str):
        return "\x00" not in sort_value  # PostgreSQL text cannot hold NUL
    return sort_value is None or isinstance(sort_value, float)


@strawberry.interface(description="An object with a global id, fetchable with node(id).")
class Node:
    id: strawberry.ID


def node_type(cls: type[Node]) -> type[Node]:
    NODE_TYPES[cls.__name__.removesuffix("Type")] = cls
    return cls


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field(description="The nodes of the edges, for clients that need no cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


class HasId(Protocol):
    id: int


M = TypeVar("M", bound=HasId)


def connection(
    page: Page[M], convert: Callable[[M], T], cursor: Callable[[M], str] | None = None
) -> Connection[T]:
    """A connection over a keyset page; cursors are row ids unless ``cursor`` says otherwise."""
    make_cursor = cursor or (lambda item: to_cursor(item.id))
    edges = [Edge(node=convert(item), cursor=make_cursor(item)) for item in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
