"""``node(id)`` and ``nodes(ids)``: fetch any object by its global id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader

from api.accounts.types import TeamType, UserType
from api.articles.types import ArticleType
from api.catalog.types import ServiceType
from api.context import Context
from api.incidents.types import IncidentType
from api.known_errors.types import KnownErrorType
from api.loaders import Loaders, load_one
from api.relay import BadInputError, Node, parse_global_id
from knowledge.accounts.roles import Role

MAX_NODES = 100


# type name -> (its by-id loader, its GraphQL type)
RESOLVERS: dict[str, tuple[Callable[[Loaders], DataLoader[int, Any]], Callable[[Any], Node]]] = {
    "User": (lambda loaders: loaders.user_by_id, UserType.from_model),
    "Team": (lambda loaders: loaders.team_by_id, TeamType.from_model),
    "Service": (lambda loaders: loaders.service_by_id, ServiceType.from_model),
    "Article": (lambda loaders: loaders.article_by_id, ArticleType.from_model),
    "KnownError": (lambda loaders: loaders.known_error_by_id, KnownErrorType.from_model),
    "Incident": (lambda loaders: loaders.incident_by_id, IncidentType.from_model),
}


async def resolve(context: Context, global_id: str) -> Node | None:
    type_name, key = parse_global_id(global_id)
    if type_name not in RESOLVERS:
        return None
    loader, convert = RESOLVERS[type_name]
    return await load_one(loader(context.loaders), key, convert)


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
