from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.articles.inputs import (
    ArticleReasonInput,
    ArticleTransitionInput,
    CreateArticleInput,
    MoveArticlesToCategoryInput,
    RateArticleInput,
    RecordArticleViewInput,
    RetagArticlesInput,
    RetireArticleInput,
    RetireArticlesInput,
    UpdateArticleInput,
)
from api.articles.types import (
    ArticleFeedbackType,
    ArticleStatsType,
    ArticleType,
    BulkArticlesPayload,
)
from api.context import Context
from api.errors import AnyError, BulkItemErrorType, field_path, to_error
from api.mutations import input_id, input_ids, optional_input_id, run_mutation
from knowledge.articles import bulk
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.errors import AuthenticationError, DomainError, ValidationError

ArticleResult = Annotated[ArticleType | AnyError, strawberry.union("ArticleResult")]
FeedbackResult = Annotated[ArticleFeedbackType | AnyError, strawberry.union("FeedbackResult")]
StatsResult = Annotated[ArticleStatsType | AnyError, strawberry.union("ArticleStatsResult")]
BulkResult = Annotated[BulkArticlesPayload | AnyError, strawberry.union("BulkArticlesResult")]


async def _transition(
    info: strawberry.Info[Context],
    article_id: strawberry.ID,
    action: Transition,
    expected_version: int | None,
    reason: str = "",
) -> ArticleType | AnyError:
    async def change(session: AsyncSession) -> ArticleType:
        row = await articles.transition(
            session=session,
            principal=info.context.principal,
            article_id=input_id(article_id, "Article", field="id"),
            action=action,
            expected_version=expected_version,
            reason=reason,
        )
        return ArticleType.from_model(row)

    return await run_mutation(info, change)


def _item_error(
    given: strawberry.ID, position: int, error: DomainError, input_fields: frozenset[str]
) -> BulkItemErrorType:
    payload_error = to_error(error)
    at_fault = error.field if error.field in input_fields else f"ids.{position}"
    payload_error.field = field_path(at_fault)
    return BulkItemErrorType(id=given, error=payload_error)


async def _bulk(
    ids: list[strawberry.ID],
    change: Callable[[list[int]], Awaitable[list[bulk.ItemResult]]],
    *,
    input_fields: frozenset[str],
) -> BulkArticlesPayload | AnyError:
    """Run a bulk change (see ``knowledge.articles.bulk``) and report it id by id.

    A malformed id is that item's validation error; a problem with the request as a
    whole (role, too many ids, bad tags) is the result's only error. Per-item errors
    name ``input.ids.N`` unless another input field is at fault.
    """
    keys: dict[int, int] = {}  # position -> key, for the ids that parse
    malformed: dict[int, DomainError] = {}
    try:
        bulk.check_count(len(ids))  # before parsing anything a hostile client sent
        for position, value in enumerate(ids):
            try:
                keys[position] = input_id(value, "Article", field=f"ids.{position}")
            except ValidationError as error:
                malformed[position] = error
        results = {r.article_id: r for r in await change(list(keys.values()))}
    except AuthenticationError:
        raise
    except DomainError as error:
        return to_error(error)
    payload = BulkArticlesPayload(articles=[], errors=[])
    reported: set[int] = set()
    for position, value in enumerate(ids):
        key = keys.get(position)
        if key is None:
            payload.errors.append(_item_error(value, position, malformed[position], input_fields))
        elif key not in reported:  # a repeated id is changed, and reported, once
            reported.add(key)
            result = results[key]
            if result.error is not None:
                payload.errors.append(_item_error(value, position, result.error, input_fields))
            elif result.article is not None:
                payload.articles.append(ArticleType.from_model(result.article))
    return payload


@strawberry.type
class ArticlesMutation:
    @strawberry.mutation(description="Responders and up; starts as a draft at revision 1.")
    async def create_article(
        self, info: strawberry.Info[Context], input: CreateArticleInput
    ) -> ArticleResult:
        async def change(session: AsyncSession) -> ArticleType:
            row = await articles.create(
                session=session,
                principal=info.context.principal,
                slug=input.slug,
                change_note=input.change_note,
                draft=ArticleDraft(
                    title=input.title,
                    body=input.body,
                    summary=input.summary,
                    kind=input.kind,
                    category=input.category,
                    tags=input.tags,
                    service_ids=input_ids(input.service_ids, "Service", field="serviceIds"),
                    known_error_id=optional_input_id(
                        input.known_error_id, "KnownError", field="knownErrorId"
                    ),
                    error_signatures=input.error_signatures,
                    sources=input.sources,
                ),
            )
            return ArticleType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(
        description="Drafts and articles in review: responders; published ones: knowledge "
        "managers. Retired articles must be revised back to draft first."
    )
    async def update_article(
        self, info: strawberry.Info[Context], input: UpdateArticleInput
    ) -> ArticleResult:
        async def change(session: AsyncSession) -> ArticleType:
            row = await articles.update(
                session=session,
                principal=info.context.principal,
                article_id=input_id(input.id, "Article", field="id"),
                expected_version=input.expected_version,
                change_note=input.change_note,
                draft=ArticleDraft(
                    title=input.title,
                    body=input.body,
                    summary=input.summary,
                    kind=input.kind,
                    category=input.category,
                    tags=input.tags,
                    service_ids=input_ids(input.service_ids, "Service", field="serviceIds"),
                    known_error_id=optional_input_id(
                        input.known_error_id, "KnownError", field="knownErrorId"
                    ),
                    clear_known_error=input.known_error_id is None,
                    error_signatures=input.error_signatures,
                    sources=input.sources,
                ),
            )
            return ArticleType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="draft -> in_review; responders and up.")
    async def submit_article_for_review(
        self, info: strawberry.Info[Context], input: ArticleTransitionInput
    ) -> ArticleResult:
        return await _transition(info, input.id, Transition.SUBMIT, input.expected_version)

    @strawberry.mutation(description="in_review -> published; knowledge managers.")
    async def approve_article(
        self, info: strawberry.Info[Context], input: ArticleTransitionInput
    ) -> ArticleResult:
        return await _transition(info, input.id, Transition.APPROVE, input.expected_version)

    @strawberry.mutation(description="in_review -> draft with the reason; knowledge managers.")
    async def reject_article(
        self, info: strawberry.Info[Context], input: ArticleReasonInput
    ) -> ArticleResult:
        return await _transition(
            info, input.id, Transition.REJECT, input.expected_version, input.reason
        )

    @strawberry.mutation(description="draft or in_review -> published; knowledge managers.")
    async def publish_article(
        self, info: strawberry.Info[Context], input: ArticleTransitionInput
    ) -> ArticleResult:
        return await _transition(info, input.id, Transition.PUBLISH, input.expected_version)

    @strawberry.mutation(
        description="published -> retired (hidden from search); knowledge managers."
    )
    async def retire_article(
        self, info: strawberry.Info[Context], input: RetireArticleInput
    ) -> ArticleResult:
        return await _transition(
            info, input.id, Transition.RETIRE, input.expected_version, input.reason
        )

    @strawberry.mutation(description="published or retired -> draft for a new revision.")
    async def revise_article(
        self, info: strawberry.Info[Context], input: ArticleTransitionInput
    ) -> ArticleResult:
        return await _transition(info, input.id, Transition.REVISE, input.expected_version)

    @strawberry.mutation(description="Signed-in users; rating again replaces your vote.")
    async def rate_article(
        self, info: strawberry.Info[Context], input: RateArticleInput
    ) -> FeedbackResult:
        async def change(session: AsyncSession) -> ArticleFeedbackType:
            row = await articles.rate(
                session=session,
                principal=info.context.principal,
                article_id=input_id(input.article_id, "Article", field="articleId"),
                helpful=input.helpful,
                comment=input.comment,
                incident_id=optional_input_id(input.incident_id, "Incident", field="incidentId"),
            )
            return ArticleFeedbackType(row=row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Count one view (frontends call it when showing an article).")
    async def record_article_view(
        self, info: strawberry.Info[Context], input: RecordArticleViewInput
    ) -> StatsResult:
        async def change(session: AsyncSession) -> ArticleStatsType:
            article_id = input_id(input.id, "Article", field="id")
            await articles.record_view(
                session=session,
                principal=info.context.principal,
                article_id=article_id,
                now=info.context.now(),
            )
            stats = await articles.stats_of(session=session, article_ids=[article_id])
            return ArticleStatsType.from_stats(stats[article_id])

        return await run_mutation(info, change)

    @strawberry.mutation(
        description="published -> retired for up to 100 articles, each on its own; "
        "knowledge managers."
    )
    async def retire_articles(
        self, info: strawberry.Info[Context], input: RetireArticlesInput
    ) -> BulkResult:
        async def change(keys: list[int]) -> list[bulk.ItemResult]:
            return await bulk.retire(
                transaction=info.context.transaction,
                principal=info.context.principal,
                article_ids=keys,
                reason=input.reason,
            )

        return await _bulk(input.ids, change, input_fields=frozenset({"reason"}))

    @strawberry.mutation(
        description="Add and remove tags on up to 100 articles, each on its own (a revision "
        "each); who may edit which article is as for updateArticle."
    )
    async def retag_articles(
        self, info: strawberry.Info[Context], input: RetagArticlesInput
    ) -> BulkResult:
        async def change(keys: list[int]) -> list[bulk.ItemResult]:
            return await bulk.retag(
                transaction=info.context.transaction,
                principal=info.context.principal,
                article_ids=keys,
                add=input.add_tags,
                remove=input.remove_tags,
            )

        return await _bulk(input.ids, change, input_fields=frozenset({"addTags", "removeTags"}))

    @strawberry.mutation(
        description="Move up to 100 articles to one category, each on its own (a revision "
        "each); who may edit which article is as for updateArticle."
    )
    async def move_articles_to_category(
        self, info: strawberry.Info[Context], input: MoveArticlesToCategoryInput
    ) -> BulkResult:
        async def change(keys: list[int]) -> list[bulk.ItemResult]:
            return await bulk.move_to_category(
                transaction=info.context.transaction,
                principal=info.context.principal,
                article_ids=keys,
                category=input.category,
            )

        return await _bulk(input.ids, change, input_fields=frozenset({"category"}))
