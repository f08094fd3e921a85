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
    _lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock, repr=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._lock, self.db.read() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.db.transaction() as session:
            yield session

    def now(self) -> dt.datetime:
        return self.clock.now()

    def search_index(self) -> SearchIndex:
        if self.index is None or not self.index.is_open:
            raise IndexUnavailableError("search is not available: the index is not open")
        return self.index

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
    )
