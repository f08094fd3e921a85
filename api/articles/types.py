from __future__ import annotations

import datetime as dt

import strawberry

from api.accounts.types import UserType
from api.catalog.types import ServiceType
from api.context import Context
from api.errors import BulkItemErrorType
from api.known_errors.types import KnownErrorType
from api.loaders import load_one
from api.relay import Node, node_type, to_global_id
from knowledge.articles.models import (
    Article,
    ArticleFeedback,
    ArticleKind,
    ArticleRevision,
    ArticleStatus,
)
from knowledge.articles.rendering import render_markdown
from knowledge.articles.service import ArticleStats, FieldDiff

ArticleKindEnum = strawberry.enum(ArticleKind, name="ArticleKind")
ArticleStatusEnum = strawberry.enum(ArticleStatus, name="ArticleStatus")


@strawberry.type(name="ArticleStats", description="How an article is used and judged.")
class ArticleStatsType:
    views: int
    helpful: int
    not_helpful: int
    resolved_incidents: int = strawberry.field(
        description="Incidents recorded as resolved by this article."
    )

    @strawberry.field(description="helpful / (helpful + notHelpful); null before any vote.")
    def helpful_ratio(self) -> float | None:
        votes = self.helpful + self.not_helpful
        return None if votes == 0 else self.helpful / votes

    @classmethod
    def from_stats(cls, stats: ArticleStats) -> ArticleStatsType:
        return cls(
            views=stats.views,
            helpful=stats.helpful,
            not_helpful=stats.not_helpful,
            resolved_incidents=stats.resolved_incidents,
        )


@node_type
@strawberry.type(name="Article")
class ArticleType(Node):
    row: strawberry.Private[Article]

    # Plain attributes: cheaper to resolve on every suggestion and search hit.
    slug: str
    title: str

    @classmethod
    def from_model(cls, row: Article) -> ArticleType:
        return cls(id=to_global_id("Article", row.id), row=row, slug=row.slug, title=row.title)

    @strawberry.field
    def summary(self) -> str:
        return self.row.summary

    @strawberry.field(description="Markdown, as written.")
    def body(self) -> str:
        return self.row.body

    @strawberry.field(description="The body rendered to sanitised HTML, safe to insert as is.")
    def body_html(self) -> str:
        return render_markdown(self.row.body)

    @strawberry.field
    def kind(self) -> ArticleKindEnum:  # type: ignore[valid-type]
        return self.row.kind

    @strawberry.field
    def status(self) -> ArticleStatusEnum:  # type: ignore[valid-type]
        return self.row.status

    @strawberry.field
    def category(self) -> str | None:
        return self.row.category

    @strawberry.field
    def error_signatures(self) -> list[str]:
        return [str(s) for s in self.row.error_signatures]

    @strawberry.field
    def sources(self) -> list[str]:
        return [str(s) for s in self.row.sources]

    @strawberry.field(description="Why a reviewer sent it back, or why it was retired.")
    def review_note(self) -> str:
        return self.row.review_note

    @strawberry.field
    def current_revision(self) -> int:
        return self.row.current_revision

    @strawberry.field
    def version(self) -> int:
        return self.row.version

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> dt.datetime:
        return self.row.updated_at

    @strawberry.field(description="When it was last submitted for review.")
    def submitted_at(self) -> dt.datetime | None:
        return self.row.submitted_at

    @strawberry.field(description="Who last submitted it for review; null when not known.")
    async def submitted_by(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.submitted_by_id, UserType.from_model
        )

    @strawberry.field
    def published_at(self) -> dt.datetime | None:
        return self.row.published_at

    @strawberry.field
    def retired_at(self) -> dt.datetime | None:
        return self.row.retired_at

    @strawberry.field
    async def author(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.author_id, UserType.from_model
        )

    @strawberry.field
    async def tags(self, info: strawberry.Info[Context]) -> list[str]:
        return await info.context.loaders.tags_of_article.load(self.row.id)

    @strawberry.field
    async def services(self, info: strawberry.Info[Context]) -> list[ServiceType]:
        rows = await info.context.loaders.services_of_article.load(self.row.id)
        return [ServiceType.from_model(s) for s in rows]

    @strawberry.field
    async def known_error(self, info: strawberry.Info[Context]) -> KnownErrorType | None:
        return await load_one(
            info.context.loaders.known_error_by_id,
            self.row.known_error_id,
            KnownErrorType.from_model,
        )

    @strawberry.field
    async def stats(self, info: strawberry.Info[Context]) -> ArticleStatsType:
        return ArticleStatsType.from_stats(
            await info.context.loaders.stats_of_article.load(self.row.id)
        )


@strawberry.type(
    name="BulkArticlesPayload",
    description="A bulk change applies to each id on its own (each atomically): the ones "
    "that could be changed are, the others are listed in errors with the reason.",
)
class BulkArticlesPayload:
    articles: list[ArticleType] = strawberry.field(
        description="The articles now as asked (changed, or already so), in the order given."
    )
    errors: list[BulkItemErrorType] = strawberry.field(
        description="One per id left alone, in the order given."
    )


@strawberry.type(name="ArticleRevision")
class ArticleRevisionType:
    row: strawberry.Private[ArticleRevision]

    @strawberry.field
    def number(self) -> int:
        return self.row.number

    @strawberry.field
    def title(self) -> str:
        return self.row.title

    @strawberry.field
    def summary(self) -> str:
        return self.row.summary

    @strawberry.field
    def body(self) -> str:
        return self.row.body

    @strawberry.field
    def change_note(self) -> str:
        return self.row.change_note

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field
    async def author(self, info: strawberry.Info[Context]) -> UserType | None:
        return await load_one(
            info.context.loaders.user_by_id, self.row.author_id, UserType.from_model
        )


@strawberry.type(name="FieldChange")
class FieldChangeType:
    field: str
    before: str
    after: str
    unified: str = strawberry.field(description="A unified diff of the field's lines.")

    @classmethod
    def from_diff(cls, change: FieldDiff) -> FieldChangeType:
        return cls(
            field=change.field, before=change.before, after=change.after, unified=change.unified
        )


@strawberry.type(name="ArticleDiff")
class ArticleDiffType:
    from_revision: int
    to_revision: int
    changes: list[FieldChangeType]


@strawberry.type(name="ArticleFeedback")
class ArticleFeedbackType:
    row: strawberry.Private[ArticleFeedback]

    @strawberry.field
    def helpful(self) -> bool:
        return self.row.helpful

    @strawberry.field
    def comment(self) -> str:
        return self.row.comment

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self.row.created_at
