from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry

from api.articles.inputs import ArticleFilter, ArticleOrder
from api.articles.types import ArticleDiffType, ArticleRevisionType, ArticleType, FieldChangeType
from api.context import Context
from api.relay import (
    BadInputError,
    Connection,
    connection,
    expect_global_id,
    parse_cursor,
    parse_sort_cursor,
    to_cursor,
    to_sort_cursor,
)
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article

SORT_TYPES: dict[articles.ArticleOrder, Any] = {
    articles.ArticleOrder.UPDATED: dt.datetime.fromisoformat,
    articles.ArticleOrder.TITLE: str,
    articles.ArticleOrder.VIEWS: int,
}


def _filter(f: ArticleFilter | None) -> articles.ArticleFilter:
    if f is None:
        return articles.ArticleFilter()
    return articles.ArticleFilter(
        statuses=f.statuses,
        kind=f.kind,
        category=f.category,
        tag=f.tag,
        service_id=None
        if f.service_id is None
        else expect_global_id(f.service_id, "Service", field="filter.serviceId"),
        known_error_id=None
        if f.known_error_id is None
        else expect_global_id(f.known_error_id, "KnownError", field="filter.knownErrorId"),
    )


def _checked_convert(convert: Any) -> Any:
    def run(value: Any) -> Any:
        if convert is int and not isinstance(value, int):
            raise ValueError
        if convert is str and not isinstance(value, str):
            raise ValueError
        result = convert(value)
        if isinstance(result, dt.datetime) and result.tzinfo is None:
            raise ValueError
        return result

    return run


@strawberry.type
class ArticlesQuery:
    @strawberry.field(description="An article by id or slug; drafts only for responders and up.")
    async def article(
        self,
        info: strawberry.Info[Context],
        id: strawberry.ID | None = None,
        slug: str | None = None,
    ) -> ArticleType | None:
        if (id is None) == (slug is None):
            raise BadInputError("give exactly one of id and slug")
        info.context.principal.require(Role.VIEWER, "Reading articles")
        if id is not None:
            row = await info.context.loaders.article_by_id.load(expect_global_id(id, "Article"))
        else:
            async with info.context.read() as session:
                row = await articles.get_by_slug(
                    session=session, principal=info.context.principal, slug=slug or ""
                )
        return None if row is None else ArticleType.from_model(row)

    @strawberry.field
    async def articles(
        self,
        info: strawberry.Info[Context],
        filter: ArticleFilter | None = None,
        order_by: ArticleOrder | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[ArticleType]:
        order = articles.ArticleOrder((order_by or ArticleOrder()).field.value)
        descending = (order_by or ArticleOrder()).descending
        if order is articles.ArticleOrder.CREATED:
            after_key, after_sort = parse_cursor(after), None
        else:
            position = parse_sort_cursor(after, _checked_convert(SORT_TYPES[order]))
            after_sort, after_key = position if position else (None, None)
        async with info.context.read() as session:
            page = await articles.get_all(
                session=session,
                principal=info.context.principal,
                filter=_filter(filter),
                order=order,
                descending=descending,
                first=first,
                after=after_key,
                after_sort=after_sort,
            )

        def cursor(row: Article) -> str:
            if order is articles.ArticleOrder.CREATED:
                return to_cursor(row.id)
            return to_sort_cursor(articles.sort_value(row, order), row.id)

        return connection(page, ArticleType.from_model, cursor)

    @strawberry.field(
        description="The review queue: articles in review, the longest waiting first, each "
        "with submittedBy and submittedAt. Knowledge managers and admins only."
    )
    async def articles_awaiting_review(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[ArticleType]:
        position = parse_sort_cursor(after, _checked_convert(dt.datetime.fromisoformat))
        after_submitted_at, after_key = position if position else (None, None)
        async with info.context.read() as session:
            page = await articles.awaiting_review(
                session=session,
                principal=info.context.principal,
                first=first,
                after=after_key,
                after_submitted_at=after_submitted_at,
            )
        return connection(
            page, ArticleType.from_model, lambda row: to_sort_cursor(row.submitted_at, row.id)
        )

    @strawberry.field(description="Every revision of an article, newest first.")
    async def article_revisions(
        self, info: strawberry.Info[Context], article_id: strawberry.ID
    ) -> list[ArticleRevisionType]:
        key = expect_global_id(article_id, "Article", field="articleId")
        async with info.context.read() as session:
            rows = await articles.revisions(
                session=session, principal=info.context.principal, article_id=key
            )
        return [ArticleRevisionType(row=r) for r in rows]

    @strawberry.field(description="What changed between two revisions of an article.")
    async def article_diff(
        self,
        info: strawberry.Info[Context],
        article_id: strawberry.ID,
        from_revision: int,
        to_revision: int,
    ) -> ArticleDiffType:
        key = expect_global_id(article_id, "Article", field="articleId")
        async with info.context.read() as session:
            changes = await articles.diff(
                session=session,
                principal=info.context.principal,
                article_id=key,
                old=from_revision,
                new=to_revision,
            )
        return ArticleDiffType(
            from_revision=from_revision,
            to_revision=to_revision,
            changes=[FieldChangeType.from_diff(c) for c in changes],
        )
