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
from knowledge.articles import service as articles
from knowledge.articles.models import Article
from knowledge.articles.service import ArticleStats
from knowledge.catalog import service as catalog
from knowledge.catalog.models import Service
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Incident, IncidentEvent, IncidentLink, PostIncidentReview
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError

if TYPE_CHECKING:
    from api.context import Context

V = TypeVar("V")
M = TypeVar("M")
T = TypeVar("T")


async def load_one(
    loader: DataLoader[int, M | None], key: int | None, convert: Callable[[M], T]
) -> T | None:
    """A to-one relation: the converted row for ``key``, or None for no key or no row."""
    if key is None:
        return None
    row = await loader.load(key)
    return None if row is None else convert(row)


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

    @cached_property
    def tags_of_article(self) -> DataLoader[int, list[str]]:
        return self._by_key(lambda s, ids: articles.tags_of(session=s, article_ids=ids), [])

    @cached_property
    def services_of_article(self) -> DataLoader[int, list[Service]]:
        return self._by_key(lambda s, ids: articles.services_of(session=s, article_ids=ids), [])

    @cached_property
    def stats_of_article(self) -> DataLoader[int, ArticleStats]:
        return self._by_key(
            lambda s, ids: articles.stats_of(session=s, article_ids=ids), ArticleStats()
        )

    @cached_property
    def article_by_id(self) -> DataLoader[int, Article | None]:
        principal = self._context.principal
        return self._by_key(
            lambda s, ids: articles.by_ids(session=s, principal=principal, ids=ids), None
        )

    @cached_property
    def known_error_by_id(self) -> DataLoader[int, KnownError | None]:
        return self._by_key(lambda s, ids: known_errors.by_ids(session=s, ids=ids), None)

    @cached_property
    def services_of_known_error(self) -> DataLoader[int, list[Service]]:
        return self._by_key(
            lambda s, ids: known_errors.services_of(session=s, known_error_ids=ids), []
        )

    @cached_property
    def articles_of_known_error(self) -> DataLoader[int, list[Article]]:
        principal = self._context.principal
        return self._by_key(
            lambda s, ids: known_errors.articles_of(
                session=s, principal=principal, known_error_ids=ids
            ),
            [],
        )

    @cached_property
    def incident_by_id(self) -> DataLoader[int, Incident | None]:
        return self._by_key(lambda s, ids: incidents.by_ids(session=s, ids=ids), None)

    @cached_property
    def timeline_of_incident(self) -> DataLoader[int, list[IncidentEvent]]:
        principal = self._context.principal
        return self._by_key(
            lambda s, ids: incidents.timeline(session=s, principal=principal, incident_ids=ids), []
        )

    @cached_property
    def links_of_incident(self) -> DataLoader[int, list[IncidentLink]]:
        return self._by_key(lambda s, ids: incidents.links_of(session=s, incident_ids=ids), [])

    @cached_property
    def suggestions_of_incident(self) -> DataLoader[int, list[tuple[IncidentLink, Article | None]]]:
        principal = self._context.principal
        return self._by_key(
            lambda s, ids: incidents.suggestions_of(
                session=s, principal=principal, incident_ids=ids
            ),
            [],
        )

    @cached_property
    def review_of_incident(self) -> DataLoader[int, PostIncidentReview | None]:
        return self._by_key(lambda s, ids: incidents.review_of(session=s, incident_ids=ids), None)
