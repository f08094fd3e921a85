from __future__ import annotations

import datetime as dt

import strawberry

from api.accounts.types import TeamType
from api.context import Context
from api.loaders import load_one
from api.relay import Node, node_type, to_global_id
from knowledge.catalog.models import Service


@node_type
@strawberry.type(name="Service", description="A configuration item: something that can fail.")
class ServiceType(Node):
    """Slug and name are plain attributes: cheaper to resolve on every row of a list."""

    row: strawberry.Private[Service]
    slug: str
    name: str

    @classmethod
    def from_model(cls, row: Service) -> ServiceType:
        return cls(id=to_global_id("Service", row.id), row=row, slug=row.slug, name=row.name)

    @strawberry.field
    def description(self) -> str:
        return self.row.description

    @strawberry.field
    def is_active(self) -> bool:
        return self.row.is_active

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> dt.datetime:
        return self.row.updated_at

    @strawberry.field
    def version(self) -> int:
        return self.row.version

    @strawberry.field
    async def owner_team(self, info: strawberry.Info[Context]) -> TeamType | None:
        return await load_one(
            info.context.loaders.team_by_id, self.row.owner_team_id, TeamType.from_model
        )
