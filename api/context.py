"""The per-request context: who is asking, short read sessions, DataLoaders.

Each ``read()`` is its own short session, closed (not rolled back, which would
expire the rows it returned) before the next one, so no transaction stays open
while a request or a websocket lives. Strawberry resolves sibling fields
concurrently; the lock keeps one request to one connection at a time.
Mutations open their own write transaction with ``transaction()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.clock import Clock, SystemClock
from knowledge.config import Settings
from knowledge.db import Database
from knowledge.incidents.policy import IncidentPolicy
from knowledge.outbox.dispatch import EventDispatcher
from knowledge.search.index import IndexUnavailableError, SearchIndex

if TYPE_CHECKING:
    from api.loaders import Loaders
    from api.token_cache import TokenCache


@dataclasses.dataclass(eq=False)
class Context:
    db: Database
    settings: Settings
    principal: Principal
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    index: SearchIndex | None = None
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    events: EventDispatcher | None = None
    policy: IncidentPolicy = dataclasses.field(default_factory=IncidentPolicy)
    request_id: str | None = None  # what a masked error and the log line have in common
    # The process's authenticated tokens: account mutations drop what they change.
    token_cache: TokenCache | None = None
    # What a response shows beyond the database's data version: the clock (SLA
    # deadlines, "breached") or the search index (followed after commit). Set by
    # ``now()`` and the index accessors; such a response is never cached.
    reads_beyond_database: bool = False
    # Set by the response cache's extension: a query that finished without errors.
    cacheable_result: bool = False
    # An HTTP request's reads share one session, opened at its first read and closed
    # by ``close()`` when the response is sent (see ``read``); not a websocket's.
    share_reads: bool = False
    _shared: AsyncSession | None = None
    _lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock, repr=False)
    _wrote: bool = False

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session to read in, one reader at a time.

        An HTTP request's readers (its loaders' batches, its resolvers) take turns on
        one session: one connection and one transaction per request, not one per batch
        (bench/README.md). After a write transaction, or a failed statement, the next
        read starts afresh: on SQLite a read transaction keeps its snapshot, and a
        mutation's payload must show what the mutation did."""
        async with self._lock:
            if not self.share_reads:
                async with self.db.read() as session:
                    yield session
                return
            if self._shared is None:
                self._shared = self.db.read_session()
            elif self._wrote:
                await self._shared.close()  # detaches what it read, expiring nothing
            self._wrote = False
            try:
                yield self._shared
            except BaseException:
                await self._shared.close()
                raise

    async def close(self) -> None:
        """Give back the shared read session's connection (the app calls this)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.db.transaction() as session:
            yield session
        self._wrote = True

    def now(self) -> dt.datetime:
        self.reads_beyond_database = True
        return self.clock.now()

    def search_index(self) -> SearchIndex:
        self.reads_beyond_database = True
        if self.index is None or not self.index.is_open:
            raise IndexUnavailableError("search is not available: the index is not open")
        return self.index

    def open_index(self) -> SearchIndex | None:
        """The search index if it is open (for fields that do without it)."""
        self.reads_beyond_database = True
        return self.index if self.index is not None and self.index.is_open else None

    @cached_property
    def loaders(self) -> Loaders:
        from api.loaders import Loaders

        return Loaders(self)

    def forget_tokens_of(self, user_id: int) -> None:
        """After a committed change to a user or their tokens: authenticate them afresh."""
        if self.token_cache is not None:
            self.token_cache.forget_user(user_id)

    def reset_loaders(self) -> None:
        """Forget what the loaders cached: a websocket's context outlives many results,
        and each subscription result must show the data as it is now."""
        self.__dict__.pop("loaders", None)


def build_context(
    *,
    db: Database,
    settings: Settings,
    principal: Principal,
    index: SearchIndex | None = None,
    clock: Clock | None = None,
    events: EventDispatcher | None = None,
    policy: IncidentPolicy | None = None,
    request: Any = None,
    response: Any = None,
    request_id: str | None = None,
    token_cache: TokenCache | None = None,
    share_reads: bool = False,
) -> Context:
    """Used by the app for every request and by tests that call the schema directly."""
    return Context(
        db=db,
        settings=settings,
        principal=principal,
        index=index,
        clock=clock or SystemClock(),
        events=events,
        policy=policy or settings.incident_policy(),
        request=request,
        response=response,
        request_id=request_id,
        token_cache=token_cache,
        share_reads=share_reads,
    )
