from __future__ import annotations

import strawberry


@strawberry.input
class CreateServiceInput:
    slug: str
    name: str
    description: str = ""
    owner_team_id: strawberry.ID | None = None


@strawberry.input
class UpdateServiceInput:
    id: strawberry.ID
    expected_version: int
    name: str | None = None
    description: str | None = None
    owner_team_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null removes the owner; omit to keep it."
    )
    is_active: bool | None = None
