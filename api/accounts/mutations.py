from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.inputs import (
    AddTeamMemberInput,
    CreateApiTokenInput,
    CreateTeamInput,
    CreateUserInput,
    RevokeApiTokenInput,
    UpdateUserInput,
)
from api.accounts.types import ApiTokenType, IssuedApiTokenType, TeamType, UserType
from api.context import Context
from api.errors import AnyError
from api.mutations import input_id, optional_input_id, run_mutation
from knowledge.accounts import service as accounts
from knowledge.accounts import tokens
from knowledge.errors import AuthenticationError, NotFoundError

UserResult = Annotated[UserType | AnyError, strawberry.union("UserResult")]
TeamResult = Annotated[TeamType | AnyError, strawberry.union("TeamResult")]
IssuedApiTokenResult = Annotated[
    IssuedApiTokenType | AnyError, strawberry.union("IssuedApiTokenResult")
]
ApiTokenResult = Annotated[ApiTokenType | AnyError, strawberry.union("ApiTokenResult")]


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(description="Admins only.")
    async def create_user(
        self, info: strawberry.Info[Context], input: CreateUserInput
    ) -> UserResult:
        async def change(session: AsyncSession) -> UserType:
            user = await accounts.create_user(
                session=session,
                principal=info.context.principal,
                username=input.username,
                display_name=input.display_name,
                email=input.email,
                role=input.role,
                team_ids=[input_id(t, "Team", field="teamIds") for t in input.team_ids],
            )
            return UserType.from_model(user)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Admins only; expectedVersion guards against lost updates.")
    async def update_user(
        self, info: strawberry.Info[Context], input: UpdateUserInput
    ) -> UserResult:
        async def change(session: AsyncSession) -> UserType:
            user = await accounts.update_user(
                session=session,
                principal=info.context.principal,
                user_id=input_id(input.id, "User", field="id"),
                expected_version=input.expected_version,
                display_name=input.display_name,
                email=input.email,
                role=input.role,
                is_active=input.is_active,
            )
            return UserType.from_model(user)

        result = await run_mutation(info, change)
        if isinstance(result, UserType):  # committed: its role or activity may have changed
            info.context.forget_tokens_of(result.row.id)
        return result

    @strawberry.mutation(description="Admins only.")
    async def create_team(
        self, info: strawberry.Info[Context], input: CreateTeamInput
    ) -> TeamResult:
        async def change(session: AsyncSession) -> TeamType:
            team = await accounts.create_team(
                session=session,
                principal=info.context.principal,
                slug=input.slug,
                name=input.name,
                description=input.description,
            )
            return TeamType.from_model(team)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Admins only. Adding an existing member changes nothing.")
    async def add_team_member(
        self, info: strawberry.Info[Context], input: AddTeamMemberInput
    ) -> TeamResult:
        async def change(session: AsyncSession) -> TeamType:
            team_id = input_id(input.team_id, "Team", field="teamId")
            await accounts.add_member(
                session=session,
                principal=info.context.principal,
                team_id=team_id,
                user_id=input_id(input.user_id, "User", field="userId"),
            )
            team = await accounts.get_team(
                session=session, principal=info.context.principal, team_id=team_id
            )
            return TeamType.from_model(team)

        return await run_mutation(info, change)

    @strawberry.mutation(description="The secret is in this response only; store it now.")
    async def create_api_token(
        self, info: strawberry.Info[Context], input: CreateApiTokenInput
    ) -> IssuedApiTokenResult:
        principal = info.context.principal

        async def change(session: AsyncSession) -> IssuedApiTokenType:
            user_id = optional_input_id(input.user_id, "User", field="userId") or principal.user_id
            if user_id is None:
                raise AuthenticationError("sign in with a token to create tokens")
            user = await accounts.get_user(session=session, principal=principal, user_id=user_id)
            issued = await tokens.create(
                session=session,
                principal=principal,
                user=user,
                role=input.role,
                name=input.name,
                expires_at=input.expires_at,
            )
            return IssuedApiTokenType(token=ApiTokenType(row=issued.token), secret=issued.secret)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Your own tokens, or anyone's for admins.")
    async def revoke_api_token(
        self, info: strawberry.Info[Context], input: RevokeApiTokenInput
    ) -> ApiTokenResult:
        async def change(session: AsyncSession) -> ApiTokenType:
            token_id = input_id(input.id, "ApiToken", field="id")
            if info.context.principal.user_id is None:
                raise NotFoundError("no such token", field="id")
            token = await tokens.revoke(
                session=session, principal=info.context.principal, token_id=token_id
            )
            return ApiTokenType(row=token)

        result = await run_mutation(info, change)
        if isinstance(result, ApiTokenType):  # committed
            info.context.forget_tokens_of(result.row.user_id)
        return result
