from __future__ import annotations

import strawberry

from api.accounts.types import ApiTokenType, Role, TeamType, UserType, ViewerType
from api.context import Context
from api.relay import BadInputError, Connection, connection, expect_global_id, parse_cursor
from knowledge.accounts import service as accounts
from knowledge.accounts import tokens
from knowledge.accounts.roles import Role as DomainRole


@strawberry.type
class AccountsQuery:
    @strawberry.field(description="Who this request is made as, and with which role.")
    async def me(self, info: strawberry.Info[Context]) -> ViewerType:
        principal = info.context.principal
        user = None
        if principal.user_id is not None:
            row = await info.context.loaders.user_by_id.load(principal.user_id)
            user = None if row is None else UserType.from_model(row)
        return ViewerType(role=principal.role, is_authenticated=user is not None, user=user)

    @strawberry.field(description="Your own API tokens (never their secrets).")
    async def my_api_tokens(self, info: strawberry.Info[Context]) -> list[ApiTokenType]:
        principal = info.context.principal
        if principal.user_id is None:
            return []
        async with info.context.read() as session:
            rows = await tokens.list_for_user(
                session=session, principal=principal, user_id=principal.user_id
            )
        return [ApiTokenType(row=r) for r in rows]

    @strawberry.field
    async def users(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        after: str | None = None,
        role: Role | None = None,  # type: ignore[valid-type]
        team_id: strawberry.ID | None = None,
    ) -> Connection[UserType]:
        team_key = None if team_id is None else expect_global_id(team_id, "Team", field="teamId")
        async with info.context.read() as session:
            page = await accounts.list_users(
                session=session,
                principal=info.context.principal,
                first=first,
                after=parse_cursor(after),
                role=role,
                team_id=team_key,
            )
        return connection(page, UserType.from_model)

    @strawberry.field(description="A user by id or by username.")
    async def user(
        self,
        info: strawberry.Info[Context],
        id: strawberry.ID | None = None,
        username: str | None = None,
    ) -> UserType | None:
        if (id is None) == (username is None):
            raise BadInputError("give exactly one of id and username")
        info.context.principal.require(DomainRole.VIEWER, "Reading users")
        if id is not None:
            row = await info.context.loaders.user_by_id.load(expect_global_id(id, "User"))
        else:
            async with info.context.read() as session:
                row = await accounts.get_user_by_username(
                    session=session, principal=info.context.principal, username=username or ""
                )
        return None if row is None else UserType.from_model(row)

    @strawberry.field
    async def teams(
        self, info: strawberry.Info[Context], first: int | None = 20, after: str | None = None
    ) -> Connection[TeamType]:
        async with info.context.read() as session:
            page = await accounts.list_teams(
                session=session,
                principal=info.context.principal,
                first=first,
                after=parse_cursor(after),
            )
        return connection(page, TeamType.from_model)

    @strawberry.field(description="A team by id or by slug.")
    async def team(
        self,
        info: strawberry.Info[Context],
        id: strawberry.ID | None = None,
        slug: str | None = None,
    ) -> TeamType | None:
        if (id is None) == (slug is None):
            raise BadInputError("give exactly one of id and slug")
        info.context.principal.require(DomainRole.VIEWER, "Reading teams")
        if id is not None:
            row = await info.context.loaders.team_by_id.load(expect_global_id(id, "Team"))
        else:
            async with info.context.read() as session:
                row = await accounts.get_team_by_slug(
                    session=session, principal=info.context.principal, slug=slug or ""
                )
        return None if row is None else TeamType.from_model(row)
