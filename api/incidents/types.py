from __future__ import annotations

import datetime as dt

import strawberry

from api.catalog.types import ServiceType
from api.context import Context
from api.relay import Node, node_type, to_global_id
from knowledge.incidents.models import Incident, IncidentStatus, Level, ResolutionCode

IncidentStatusEnum = strawberry.enum(IncidentStatus, name="IncidentStatus")
LevelEnum = strawberry.enum(Level, name="Level", description="Impact and urgency.")
ResolutionCodeEnum = strawberry.enum(ResolutionCode, name="ResolutionCode")


@node_type
@strawberry.type(name="Incident")
class IncidentType(Node):
    row: strawberry.Private[Incident]

    @classmethod
    def from_model(cls, row: Incident) -> IncidentType:
        return cls(id=to_global_id("Incident", row.id), row=row)

    @strawberry.field(description="The human reference, e.g. INC-000123.")
    def number(self) -> str:
        return self.row.reference

    @strawberry.field
    def title(self) -> str:
        return self.row.title

    @strawberry.field
    def description(self) -> str:
        return self.row.description

    @strawberry.field
    def status(self) -> IncidentStatusEnum:  # type: ignore[valid-type]
        return self.row.status

    @strawberry.field
    def impact(self) -> LevelEnum:  # type: ignore[valid-type]
        return self.row.impact

    @strawberry.field
    def urgency(self) -> LevelEnum:  # type: ignore[valid-type]
        return self.row.urgency

    @strawberry.field(description="1 (most pressing) to 5.")
    def priority(self) -> int:
        return self.row.priority

    @strawberry.field
    def category(self) -> str | None:
        return self.row.category

    @strawberry.field
    async def service(self, info: strawberry.Info[Context]) -> ServiceType | None:
        if self.row.service_id is None:
            return None
        row = await info.context.loaders.service_by_id.load(self.row.service_id)
        return None if row is None else ServiceType.from_model(row)

    @strawberry.field
    def error_text(self) -> str:
        return self.row.error_text

    @strawberry.field
    def detected_at(self) -> dt.datetime:
        return self.row.detected_at

    @strawberry.field
    def resolved_at(self) -> dt.datetime | None:
        return self.row.resolved_at

    @strawberry.field
    def resolution_code(self) -> ResolutionCodeEnum | None:  # type: ignore[valid-type]
        return self.row.resolution_code

    @strawberry.field
    def resolution_notes(self) -> str:
        return self.row.resolution_notes

    @strawberry.field
    def version(self) -> int:
        return self.row.version
