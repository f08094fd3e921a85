from __future__ import annotations

import strawberry

from api.context import Context
from api.incidents.inputs import IncidentFilter, MetricsGroupBy, TimeWindow
from api.incidents.types import IncidentMetricsType, IncidentType
from api.relay import BadInputError, Connection, connection, expect_global_id, parse_cursor
from knowledge.accounts.roles import Role
from knowledge.incidents import metrics
from knowledge.incidents import service as incidents


def _key(value: strawberry.ID | None, type_name: str, field: str) -> int | None:
    return None if value is None else expect_global_id(value, type_name, field=field)


@strawberry.type
class IncidentsQuery:
    @strawberry.field(description="An incident by id or number (INC-000123).")
    async def incident(
        self,
        info: strawberry.Info[Context],
        id: strawberry.ID | None = None,
        number: str | None = None,
    ) -> IncidentType | None:
        if (id is None) == (number is None):
            raise BadInputError("give exactly one of id and number")
        info.context.principal.require(Role.VIEWER, "Reading incidents")
        if id is not None:
            row = await info.context.loaders.incident_by_id.load(expect_global_id(id, "Incident"))
        else:
            async with info.context.read() as session:
                row = await incidents.get_by_number(
                    session=session, principal=info.context.principal, number=number or ""
                )
        return None if row is None else IncidentType.from_model(row)

    @strawberry.field(description="Newest first.")
    async def incidents(
        self,
        info: strawberry.Info[Context],
        filter: IncidentFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[IncidentType]:
        f = filter or IncidentFilter()
        if f.priorities and any(not 1 <= p <= 5 for p in f.priorities):
            raise BadInputError("filter.priorities: priorities are 1 to 5")
        async with info.context.read() as session:
            page = await incidents.get_all(
                session=session,
                principal=info.context.principal,
                # Only "breached" depends on the time; asking the clock would also keep
                # the page out of the response cache (api/response_cache.py).
                now=None if f.breached is None else info.context.now(),
                filter=incidents.IncidentFilter(
                    statuses=f.statuses,
                    priorities=f.priorities,
                    service_id=_key(f.service_id, "Service", "filter.serviceId"),
                    team_id=_key(f.team_id, "Team", "filter.teamId"),
                    assignee_id=_key(f.assignee_id, "User", "filter.assigneeId"),
                    breached=f.breached,
                    alert_fingerprint=f.alert_fingerprint,
                ),
                first=first,
                after=parse_cursor(after),
            )
        return connection(page, IncidentType.from_model)

    @strawberry.field(
        description="MTTA, MTTR, SLA breaches and more for incidents detected in the window."
    )
    async def incident_metrics(
        self,
        info: strawberry.Info[Context],
        window: TimeWindow,
        group_by: MetricsGroupBy = MetricsGroupBy.NONE,
    ) -> list[IncidentMetricsType]:
        async with info.context.read() as session:
            groups = await metrics.incident_metrics(
                session=session,
                principal=info.context.principal,
                now=info.context.now(),
                start=window.start,
                end=window.end,
                group_by=metrics.GroupBy(group_by.value),
            )
        return [IncidentMetricsType.from_metrics(g) for g in groups]
