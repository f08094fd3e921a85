from __future__ import annotations

import datetime as dt

import strawberry

from api.accounts.types import Role


@strawberry.input
class CreateUserInput:
    username: str
    display_name: str | None = None
    email: str | None = None
    role: Role = Role.VIEWER  # type: ignore[valid-type]
    team_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateUserInput:
    id: strawberry.ID
    expected_version: int
    display_name: str | None = None
    email: str | None = None
    role: Role | None = None  # type: ignore[valid-type]
    is_active: bool | None = None


@strawberry.input
class CreateTeamInput:
    slug: str
    name: str
    description: str = ""


@strawberry.input
class AddTeamMemberInput:
    team_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.input
class CreateApiTokenInput:
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to yourself; only admins issue tokens for others."
    )
    role: Role | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Scope the token below the user's role."
    )
    name: str = ""
    expires_at: dt.datetime | None = None


@strawberry.input
class RevokeApiTokenInput:
    id: strawberry.ID
