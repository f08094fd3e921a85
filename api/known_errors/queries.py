from __future__ import annotations

import strawberry

from api.context import Context
from api.known_errors.inputs import KnownErrorFilter
from api.known_errors.types import KnownErrorType
from api.relay import BadInputError, Connection, connection, expect_global_id, parse_cursor
from knowledge.accounts.roles import Role
from knowledge.known_errors import service as known_errors


@strawberry.type
class KnownErrorsQuery:
    @strawberry.field(description="A known error by id or key (e.g. KE-0001).")
    async def known_error(
        self,
        info: strawberry.Info[Context],
        id: strawberry.ID | None = None,
        key: str | None = None,
    ) -> KnownErrorType | None:
        if (id is None) == (key is None):
            raise BadInputError("give exactly one of id and key")
        info.context.principal.require(Role.VIEWER, "Reading known errors")
        if id is not None:
            row = await info.context.loaders.known_error_by_id.load(
                expect_global_id(id, "KnownError")
            )
        else:
            async with info.context.read() as session:
                row = await known_errors.get_by_key(
                    session=session, principal=info.context.principal, key=key or ""
                )
        return None if row is None else KnownErrorType.from_model(row)

    @strawberry.field
    async def known_errors(
        self,
        info: strawberry.Info[Context],
        filter: KnownErrorFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[KnownErrorType]:
        f = filter or KnownErrorFilter()
        service_id = (
            None
            if f.service_id is None
            else expect_global_id(f.service_id, "Service", field="filter.serviceId")
        )
        async with info.context.read() as session:
            page = await known_errors.get_all(
                session=session,
                principal=info.context.principal,
                filter=known_errors.KnownErrorFilter(
                    statuses=f.statuses, category=f.category, service_id=service_id
                ),
                first=first,
                after=parse_cursor(after),
            )
        return connection(page, KnownErrorType.from_model)
