from __future__ import annotations

import strawberry

from api.known_errors.types import KnownErrorStatusEnum


@strawberry.input
class CreateKnownErrorInput:
    title: str
    symptoms: str = ""
    root_cause: str = ""
    workaround: str = ""
    permanent_fix: str = ""
    category: str | None = None
    error_signatures: list[str] = strawberry.field(default_factory=list)
    service_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateKnownErrorInput:
    id: strawberry.ID
    expected_version: int
    title: str | None = None
    symptoms: str | None = None
    root_cause: str | None = None
    workaround: str | None = None
    permanent_fix: str | None = None
    status: KnownErrorStatusEnum | None = None  # type: ignore[valid-type]
    category: str | None = None
    error_signatures: list[str] | None = None
    service_ids: list[strawberry.ID] | None = None


@strawberry.input
class LinkArticleToKnownErrorInput:
    article_id: strawberry.ID
    known_error_id: strawberry.ID | None = strawberry.field(
        description="null unlinks the article from its known error."
    )


@strawberry.input
class KnownErrorFilter:
    statuses: list[KnownErrorStatusEnum] | None = None  # type: ignore[valid-type]
    category: str | None = None
    service_id: strawberry.ID | None = None
