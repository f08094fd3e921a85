from __future__ import annotations

import strawberry

from api.catalog.types import ServiceType
from api.context import Context
from api.relay import BadInputError, Connection, connection, expect_global_id, parse_cursor
from knowledge.accounts.roles import Role
from knowledge.catalog import service as catalog


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="Configuration items, oldest first.")
    async def services(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        after: str | None = None,
        owner_team_id: strawberry.ID | None = None,
        include_inactive: bool = False,
    ) -> Connection[ServiceType]:
        team_key = (
            None
            if owner_team_id is None
            else expect_global_id(owner_team_id, "Team", field="ownerTeamId")
        )
        async with info.context.read() as session:
            page = await catalog.get_all(
                session=session,
                principal=info.context.principal,
                first=first,
                after=parse_cursor(after),
                owner_team_id=team_key,
                include_inactive=include_inactive,
            )
        return connection(page, ServiceType.from_model)

    @strawberry.field(description="A service by id or by slug.")
    async def service(
        self,
        info: strawberry.Info[Context],
        id: strawberry.ID | None = None,
        slug: str | None = None,
    ) -> ServiceType | None:
        if (id is None) == (slug is None):
            raise BadInputError("give exactly one of id and slug")
        info.context.principal.require(Role.VIEWER, "Reading services")
        if id is not None:
            row = await info.context.loaders.service_by_id.load(expect_global_id(id, "Service"))
        else:
            async with info.context.read() as session:
                row = await catalog.get_by_slug(
                    session=session, principal=info.context.principal, slug=slug or ""
                )
        return None if row is None else ServiceType.from_model(row)
