from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.context import Context
from api.relay import Node, node_type, to_global_id
from knowledge.accounts.models import ApiToken, Team, User
from knowledge.accounts.roles import Role as DomainRole

if TYPE_CHECKING:
    from api.catalog.types import ServiceType

Role = strawberry.enum(
    DomainRole, name="Role", description="Ordered: each includes those before it."
)


@node_type
@strawberry.type(name="User")
class UserType(Node):
    row: strawberry.Private[User]

    # Plain attributes: cheaper to resolve on every row of a list.
    username: str
    display_name: str

    @classmethod
    def from_model(cls, row: User) -> UserType:
        return cls(
            id=to_global_id("User", row.id),
            row=row,
            username=row.username,
            display_name=row.display_name,
        )

    @strawberry.field(description="Visible to the user and to admins only.")
    def email(self, info: strawberry.Info[Context]) -> str | None:
        principal = info.context.principal
        if principal.user_id == self.row.id or principal.can(DomainRole.ADMIN):
            return self.row.email
        return None

    @strawberry.field
    def role(self) -> Role:  # type: ignore[valid-type]
        return self.row.role

    @strawberry.field
    def is_active(self) -> bool:
        return self.row.is_active

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    def version(self) -> int:
        return self.row.version

    @strawberry.field
    async def teams(self, info: strawberry.Info[Context]) -> list[TeamType]:
        teams = await info.context.loaders.teams_of_user.load(self.row.id)
        return [TeamType.from_model(t) for t in teams]


@node_type
@strawberry.type(name="Team")
class TeamType(Node):
    row: strawberry.Private[Team]

    @classmethod
    def from_model(cls, row: Team) -> TeamType:
        return cls(id=to_global_id("Team", row.id), row=row)

    @strawberry.field
    def slug(self) -> str:
        return self.row.slug

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def description(self) -> str:
        return self.row.description

    @strawberry.field
    def version(self) -> int:
        return self.row.version

    @strawberry.field
    async def members(self, info: strawberry.Info[Context]) -> list[UserType]:
        users = await info.context.loaders.members_of_team.load(self.row.id)
        return [UserType.from_model(u) for u in users]

    @strawberry.field(description="Services this team owns.")
    async def services(
        self, info: strawberry.Info[Context]
    ) -> list[Annotated[ServiceType, strawberry.lazy("api.catalog.types")]]:
        from api.catalog.types import ServiceType

        services = await info.context.loaders.services_of_team.load(self.row.id)
        return [ServiceType.from_model(s) for s in services]


@strawberry.type(name="Viewer", description="Who the request is made as.")
class ViewerType:
    role: Role  # type: ignore[valid-type]
    is_authenticated: bool
    user: UserType | None


@strawberry.type(name="ApiToken")
class ApiTokenType:
    row: strawberry.Private[ApiToken]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("ApiToken", self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="The first characters of the secret, to recognise it.")
    def prefix(self) -> str:
        return self.row.prefix

    @strawberry.field
    def role(self) -> Role:  # type: ignore[valid-type]
        return self.row.role

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    def expires_at(self) -> dt.datetime | None:
        return self.row.expires_at

    @strawberry.field
    def last_used_at(self) -> dt.datetime | None:
        return self.row.last_used_at

    @strawberry.field
    def revoked_at(self) -> dt.datetime | None:
        return self.row.revoked_at


@strawberry.type(name="IssuedApiToken")
class IssuedApiTokenType:
    token: ApiTokenType
    secret: str = strawberry.field(description="Shown once: only its hash is stored.")
