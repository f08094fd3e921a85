"""Answers to repeated read queries, served again while the data has not changed.

What makes an answer reusable, and for how long:

- **Same request, same caller.** An entry is keyed by the SHA-256 of the POST body
  (so the document, the operation name, the variables and any extensions, byte for
  byte), the ``Content-Type`` and ``Accept`` headers, and the whole principal (user,
  username, role and token): two callers who could see different things never share
  an entry. Only ``POST``: a ``GET`` is never cached.
- **Same data.** Every write transaction raises the database's data version as its
  last statement, in the same transaction (``knowledge.db.Database.transaction``), so
  a change and its new version become visible together, to every process and worker
  on that database. Each request reads the version once, *before* anything else
  runs; a response computed after that read shows data at least that new, and is
  stored under it; a lookup only matches an entry stored under the version it has
  just read. Once any write commits, every request reads a higher version and no
  older entry can match again (they are dropped when a newer version is seen).
- **Only what the version covers.** A response is stored only if it answered a
  query (never a mutation or a subscription) without errors, with HTTP 200, and no
  resolver read the clock (``Context.now()``: SLA deadlines and breaches, metrics,
  reports) or the search index (which follows the outbox *after* commit):
  ``Context.reads_beyond_database``. Nothing else a response shows comes from
  elsewhere; the request id travels in a header that is added to every response.
- **Bounded.** Least recently used entries go first once the total exceeds
  ``KNOWNFIX_RESPONSE_CACHE_BYTES``; a response larger than
  ``KNOWNFIX_RESPONSE_CACHE_ENTRY_BYTES`` is not stored. ``0`` turns the cache off.

A hit costs the token check (api/token_cache.py), one read of the version and a
dictionary lookup: no parsing, validation, limits or resolvers.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from knowledge.db import Database, is_unreachable

# What an entry costs beyond its body: the key, the tuple, the dictionary slot.
ENTRY_OVERHEAD = 400


class ResponseCache:
    """An LRU of response bodies by key, all stored under one data version."""

    def __init__(self, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.version = -1
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[bytes, list[tuple[bytes, bytes]]]]
        self._entries = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _see(self, version: int) -> None:
        if version > self.version:
            # A write committed: nothing stored before can be served again.
            self._entries.clear()
            self.size = 0
            self.version = version

    def get(self, key: Hashable, version: int) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        self._see(version)
        found = self._entries.get(key) if version == self.version else None
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(
        self, key: Hashable, version: int, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """Store ``body`` computed after reading ``version``; False when not stored."""
        self._see(version)
        cost = _cost((body, headers))
        if version != self.version or cost > self.max_entry_bytes or cost > self.max_bytes:
            return False  # computed before a newer write, or too large
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.size -= _cost(previous)
        self._entries[key] = (body, headers)
        self.size += cost
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= _cost(evicted)
        return True


def _cost(entry: tuple[bytes, list[tuple[bytes, bytes]]]) -> int:
    body, headers = entry
    return len(body) + ENTRY_OVERHEAD + sum(len(k) + len(v) for k, v in headers)


class CacheableResult(SchemaExtension):
    """Tells the response cache that an operation was a query answered without errors
    from the database alone (``Context.reads_beyond_database`` not set)."""

    def on_operation(self):  # type: ignore[no-untyped-def]
        yield
        execution = self.execution_context
        context = execution.context
        if not hasattr(context, "cacheable_result"):
            return
        result = execution.result
        context.cacheable_result = (
            result is not None
            and not result.errors
            and _operation_type(execution) is OperationType.QUERY
            and not context.reads_beyond_database
        )


def _operation_type(execution: Any) -> OperationType | None:
    try:
        operation_type: OperationType = execution.operation_type
    except Exception:  # no document, or no operation by that name: not cacheable
        return None
    return operation_type


class CachedResponses:
    """ASGI layer in front of the GraphQL view (behind authentication).

    For each HTTP request it reads the data version first and answers from the cache
    when it can; cache or not, it closes the read session the request's resolvers
    shared (``Context.read``) once the response is sent."""

    def __init__(self, app: ASGIApp, db: Database, cache: ResponseCache | None) -> None:
        self.app = app
        self.db = db
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        state["context"] = None
        try:
            if self.cache is None or scope["method"] != "POST":
                await self.app(scope, receive, send)
            else:
                await self._cached(self.cache, scope, receive, send)
        finally:
            context = state["context"]
            if context is not None:
                await context.close()

    async def _cached(
        self, cache: ResponseCache, scope: Scope, receive: Receive, send: Send
    ) -> None:
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        headers = dict(scope["headers"])
        key = (
            hashlib.sha256(body).digest(),
            headers.get(b"content-type"),
            headers.get(b"accept"),
            scope["state"]["principal"],
        )
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        # Before anything is read for the answer (see the module's docstring).
        try:
            version = await self.db.data_version()
        except Exception as error:
            if not is_unreachable(error):
                raise
            # An outage: the view answers, with a 503 where it needs the database.
            await self.app(scope, replay, send)
            return
        found = cache.get(key, version)
        if found is not None:
            stored, response_headers = found
            await send({"type": "http.response.start", "status": 200, "headers": response_headers})
            await send({"type": "http.response.body", "body": stored})
            return

        status = 0
        captured_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] | None = []

        async def capture(message: Message) -> None:
            nonlocal status, captured_headers, chunks
            if message["type"] == "http.response.start":
                status = message["status"]
                captured_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body" and chunks is not None:
                chunks.append(message.get("body", b""))
                if sum(map(len, chunks)) > cache.max_entry_bytes:
                    chunks = None  # too large to keep: stop collecting
            await send(message)

        await self.app(scope, replay, capture)
        context = scope["state"].get("context")
        if (
            status == 200
            and chunks is not None
            and context is not None
            and context.cacheable_result
        ):
            cache.put(key, version, b"".join(chunks), captured_headers)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
