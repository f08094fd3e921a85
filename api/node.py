"""``node(id)`` and ``nodes(ids)``: fetch any object by its global id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from api.accounts.types import TeamType, UserType
from api.articles.types import ArticleType
from api.catalog.types import ServiceType
from api.context import Context
from api.incidents.types import IncidentType
from api.known_errors.types import KnownErrorType
from api.relay import BadInputError, Node, parse_global_id
from knowledge.accounts.roles import Role

MAX_NODES = 100


async def _user(context: Context, key: int) -> Node | None:
    row = await context.loaders.user_by_id.load(key)
    return None if row is None else UserType.from_model(row)


async def _team(context: Context, key: int) -> Node | None:
    row = await context.loaders.team_by_id.load(key)
    return None if row is None else TeamType.from_model(row)


async def _service(context: Context, key: int) -> Node | None:
    row = await context.loaders.service_by_id.load(key)
    return None if row is None else ServiceType.from_model(row)


async def _article(context: Context, key: int) -> Node | None:
    row = await context.loaders.article_by_id.load(key)
    return None if row is None else ArticleType.from_model(row)


async def _known_error(context: Context, key: int) -> Node | None:
    row = await context.loaders.known_error_by_id.load(key)
    return None if row is None else KnownErrorType.from_model(row)


async def _incident(context: Context, key: int) -> Node | None:
    row = await context.loaders.incident_by_id.load(key)
    return None if row is None else IncidentType.from_model(row)


RESOLVERS: dict[str, Callable[[Context, int], Awaitable[Node | None]]] = {
    "User": _user,
    "Team": _team,
    "Service": _service,
    "Article": _article,
    "KnownError": _known_error,
    "Incident": _incident,
}


async def resolve(context: Context, global_id: str) -> Node | None:
    type_name, key = parse_global_id(global_id)
    resolver = RESOLVERS.get(type_name)
    return None if resolver is None else await resolver(context, key)


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id; null when it does not exist.")
    async def node(self, info: strawberry.Info[Context], id: strawberry.ID) -> Node | None:
        info.context.principal.require(Role.VIEWER, "Reading objects")
        return await resolve(info.context, id)

    @strawberry.field(description=f"Up to {MAX_NODES} objects by global id, in the order given.")
    async def nodes(
        self, info: strawberry.Info[Context], ids: list[strawberry.ID]
    ) -> list[Node | None]:
        info.context.principal.require(Role.VIEWER, "Reading objects")
        if len(ids) > MAX_NODES:
            raise BadInputError(f"ids: at most {MAX_NODES} at once (got {len(ids)})")
        return [await resolve(info.context, i) for i in ids]
