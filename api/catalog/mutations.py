from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.inputs import CreateServiceInput, UpdateServiceInput
from api.catalog.types import ServiceType
from api.context import Context
from api.errors import AnyError
from api.mutations import input_id, optional_input_id, run_mutation
from knowledge.catalog import service as catalog

ServiceResult = Annotated[ServiceType | AnyError, strawberry.union("ServiceResult")]


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="Knowledge managers and admins.")
    async def create_service(
        self, info: strawberry.Info[Context], input: CreateServiceInput
    ) -> ServiceResult:
        async def change(session: AsyncSession) -> ServiceType:
            service = await catalog.create(
                session=session,
                principal=info.context.principal,
                slug=input.slug,
                name=input.name,
                description=input.description,
                owner_team_id=optional_input_id(input.owner_team_id, "Team", field="ownerTeamId"),
            )
            return ServiceType.from_model(service)

        return await run_mutation(info, change)

    @strawberry.mutation(description="expectedVersion must be the version you read.")
    async def update_service(
        self, info: strawberry.Info[Context], input: UpdateServiceInput
    ) -> ServiceResult:
        async def change(session: AsyncSession) -> ServiceType:
            owner = input.owner_team_id
            service = await catalog.update(
                session=session,
                principal=info.context.principal,
                service_id=input_id(input.id, "Service", field="id"),
                expected_version=input.expected_version,
                name=input.name,
                description=input.description,
                owner_team_id=optional_input_id(owner, "Team", field="ownerTeamId"),
                clear_owner_team=owner is None,
                is_active=input.is_active,
            )
            return ServiceType.from_model(service)

        return await run_mutation(info, change)
