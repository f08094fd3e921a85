from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from api.context import Context
from api.incidents.inputs import IncidentEventFilter
from api.incidents.types import IncidentEventType, IncidentType
from api.relay import expect_global_id
from knowledge.accounts.roles import Role
from knowledge.incidents.service import may_see_event
from knowledge.outbox.dispatch import EventMessage


def _matches(message: EventMessage, f: IncidentEventFilter, ids: dict[str, int | None]) -> bool:
    event = message.event
    return (
        (ids["incident"] is None or event.incident_id == ids["incident"])
        and (ids["service"] is None or message.service_id == ids["service"])
        and (f.max_priority is None or message.priority <= f.max_priority)
        and (not f.kinds or event.kind in f.kinds)
    )


@strawberry.type
class IncidentsSubscription:
    @strawberry.subscription(description="Timeline events as they happen, for what you may read.")
    async def incident_events(
        self, info: strawberry.Info[Context], filter: IncidentEventFilter | None = None
    ) -> AsyncGenerator[IncidentEventType, None]:
        ctx = info.context
        ctx.principal.require(Role.VIEWER, "Following incidents")
        f = filter or IncidentEventFilter()
        ids = {
            "incident": None
            if f.incident_id is None
            else expect_global_id(f.incident_id, "Incident"),
            "service": None if f.service_id is None else expect_global_id(f.service_id, "Service"),
        }
        if ctx.events is None:
            return
        async with ctx.events.subscribe() as queue:
            while (message := await queue.get()) is not None:
                if may_see_event(ctx.principal, message.event) and _matches(message, f, ids):
                    ctx.reset_loaders()
                    yield IncidentEventType(row=message.event, incident_then=message.incident)

    @strawberry.subscription(
        description="The incident again after every change to it, as that change left it "
        "(its own fields; what it names or holds, such as its timeline, is read when the "
        "change is delivered)."
    )
    async def incident(
        self, info: strawberry.Info[Context], id: strawberry.ID
    ) -> AsyncGenerator[IncidentType, None]:
        ctx = info.context
        ctx.principal.require(Role.VIEWER, "Following incidents")
        key = expect_global_id(id, "Incident")
        if ctx.events is None:
            return
        async with ctx.events.subscribe() as queue:
            while (message := await queue.get()) is not None:
                # Work notes do not change the incident and are not for every reader.
                if message.incident.id == key and may_see_event(ctx.principal, message.event):
                    ctx.reset_loaders()
                    yield IncidentType.from_model(message.incident)
