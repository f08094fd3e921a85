from __future__ import annotations

import enum

import strawberry

from api.articles.types import ArticleKindEnum, ArticleStatusEnum


@strawberry.input
class CreateArticleInput:
    title: str
    body: str = ""
    summary: str = ""
    kind: ArticleKindEnum = ArticleKindEnum.TROUBLESHOOTING  # type: ignore[valid-type]
    category: str | None = None
    tags: list[str] = strawberry.field(default_factory=list)
    service_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    known_error_id: strawberry.ID | None = None
    error_signatures: list[str] = strawberry.field(default_factory=list)
    sources: list[str] = strawberry.field(default_factory=list)
    slug: str | None = strawberry.field(
        default=None, description="Derived from the title if omitted."
    )
    change_note: str = ""


@strawberry.input(description="Omitted fields stay as they are; every update makes a revision.")
class UpdateArticleInput:
    id: strawberry.ID
    expected_version: int
    title: str | None = None
    body: str | None = None
    summary: str | None = None
    kind: ArticleKindEnum | None = None  # type: ignore[valid-type]
    category: str | None = None
    tags: list[str] | None = None
    service_ids: list[strawberry.ID] | None = None
    known_error_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null unlinks; omit to keep."
    )
    error_signatures: list[str] | None = None
    sources: list[str] | None = None
    change_note: str = ""


@strawberry.input
class ArticleTransitionInput:
    id: strawberry.ID
    expected_version: int | None = strawberry.field(
        default=None, description="Refuse the change if the article moved on since you read it."
    )


@strawberry.input
class ArticleReasonInput:
    id: strawberry.ID
    reason: str
    expected_version: int | None = None


@strawberry.input
class RetireArticleInput:
    id: strawberry.ID
    reason: str = ""
    expected_version: int | None = None


@strawberry.input(description="Each id is retired on its own; see BulkArticlesPayload.")
class RetireArticlesInput:
    ids: list[strawberry.ID] = strawberry.field(description="At most 100.")
    reason: str = ""


@strawberry.input(description="Each id is retagged on its own; other tags are kept.")
class RetagArticlesInput:
    ids: list[strawberry.ID] = strawberry.field(description="At most 100.")
    add_tags: list[str] = strawberry.field(default_factory=list)
    remove_tags: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="Each id is moved on its own; see BulkArticlesPayload.")
class MoveArticlesToCategoryInput:
    ids: list[strawberry.ID] = strawberry.field(description="At most 100.")
    category: str = strawberry.field(
        description="An empty string takes the articles out of any category."
    )


@strawberry.input
class RateArticleInput:
    article_id: strawberry.ID
    helpful: bool
    comment: str = ""
    incident_id: strawberry.ID | None = None


@strawberry.input
class RecordArticleViewInput:
    id: strawberry.ID


@strawberry.input
class ArticleFilter:
    statuses: list[ArticleStatusEnum] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Published if omitted; others need the responder role."
    )
    kind: ArticleKindEnum | None = None  # type: ignore[valid-type]
    category: str | None = None
    tag: str | None = None
    service_id: strawberry.ID | None = None
    known_error_id: strawberry.ID | None = None


@strawberry.enum
class ArticleOrderField(enum.Enum):
    CREATED_AT = "created"
    UPDATED_AT = "updated"
    TITLE = "title"
    VIEWS = "views"


@strawberry.input
class ArticleOrder:
    field: ArticleOrderField = ArticleOrderField.CREATED_AT
    descending: bool = False
