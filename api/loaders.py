"""DataLoaders, created lazily per request by ``Context.loaders``.

Each one turns N lookups made while resolving a page into one query, so the
number of statements per request does not grow with page size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from knowledge.accounts import service as accounts
from knowledge.accounts.models import Team, User
from knowledge.catalog import service as catalog
from knowledge.catalog.models import Service

if TYPE_CHECKING:
    from api.context import Context

V = TypeVar("V")


class Loaders:
    def __init__(self, context: Context) -> None:
        self._context = context

    def _by_key(
        self, fetch: Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, V]]], default: V
    ) -> DataLoader[int, V]:
        async def load(keys: list[int]) -> list[V]:
            async with self._context.read() as session:
                found = await fetch(session, keys)
            return [found.get(key, default) for key in keys]

        return DataLoader(load_fn=load)

    @cached_property
    def user_by_id(self) -> DataLoader[int, User | None]:
        return self._by_key(lambda s, ids: accounts.users_by_ids(session=s, ids=ids), None)

    @cached_property
    def team_by_id(self) -> DataLoader[int, Team | None]:
        return self._by_key(lambda s, ids: accounts.teams_by_ids(session=s, ids=ids), None)

    @cached_property
    def service_by_id(self) -> DataLoader[int, Service | None]:
        return self._by_key(lambda s, ids: catalog.by_ids(session=s, ids=ids), None)

    @cached_property
    def teams_of_user(self) -> DataLoader[int, list[Team]]:
        return self._by_key(lambda s, ids: accounts.teams_of_users(session=s, user_ids=ids), [])

    @cached_property
    def members_of_team(self) -> DataLoader[int, list[User]]:
        return self._by_key(lambda s, ids: accounts.members_of_teams(session=s, team_ids=ids), [])

    @cached_property
    def services_of_team(self) -> DataLoader[int, list[Service]]:
        return self._by_key(lambda s, ids: catalog.of_teams(session=s, team_ids=ids), [])
