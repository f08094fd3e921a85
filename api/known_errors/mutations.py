from __future__ import annotations

from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.articles.types import ArticleType
from api.context import Context
from api.errors import AnyError
from api.known_errors.inputs import (
    CreateKnownErrorInput,
    LinkArticleToKnownErrorInput,
    UpdateKnownErrorInput,
)
from api.known_errors.types import KnownErrorType
from api.mutations import input_id, input_ids, optional_input_id, run_mutation
from knowledge.known_errors import service as known_errors

KnownErrorResult = Annotated[KnownErrorType | AnyError, strawberry.union("KnownErrorResult")]
LinkResult = Annotated[ArticleType | AnyError, strawberry.union("LinkArticleResult")]


@strawberry.type
class KnownErrorsMutation:
    @strawberry.mutation(description="Knowledge managers; the key (KE-0001) is assigned.")
    async def create_known_error(
        self, info: strawberry.Info[Context], input: CreateKnownErrorInput
    ) -> KnownErrorResult:
        async def change(session: AsyncSession) -> KnownErrorType:
            row = await known_errors.create(
                session=session,
                principal=info.context.principal,
                draft=known_errors.KnownErrorDraft(
                    title=input.title,
                    symptoms=input.symptoms,
                    root_cause=input.root_cause,
                    workaround=input.workaround,
                    permanent_fix=input.permanent_fix,
                    category=input.category,
                    error_signatures=input.error_signatures,
                    service_ids=input_ids(input.service_ids, "Service", field="serviceIds"),
                ),
            )
            return KnownErrorType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(
        description="Knowledge managers; status follows open -> fix_in_progress "
        "-> fixed, any -> archived, and back to open on a regression."
    )
    async def update_known_error(
        self, info: strawberry.Info[Context], input: UpdateKnownErrorInput
    ) -> KnownErrorResult:
        async def change(session: AsyncSession) -> KnownErrorType:
            row = await known_errors.update(
                session=session,
                principal=info.context.principal,
                known_error_id=input_id(input.id, "KnownError", field="id"),
                expected_version=input.expected_version,
                status=input.status,
                draft=known_errors.KnownErrorDraft(
                    title=input.title,
                    symptoms=input.symptoms,
                    root_cause=input.root_cause,
                    workaround=input.workaround,
                    permanent_fix=input.permanent_fix,
                    category=input.category,
                    error_signatures=input.error_signatures,
                    service_ids=input_ids(input.service_ids, "Service", field="serviceIds"),
                ),
            )
            return KnownErrorType.from_model(row)

        return await run_mutation(info, change)

    @strawberry.mutation(description="Knowledge managers.")
    async def link_article_to_known_error(
        self, info: strawberry.Info[Context], input: LinkArticleToKnownErrorInput
    ) -> LinkResult:
        async def change(session: AsyncSession) -> ArticleType:
            row = await known_errors.link_article(
                session=session,
                principal=info.context.principal,
                article_id=input_id(input.article_id, "Article", field="articleId"),
                known_error_id=optional_input_id(
                    input.known_error_id, "KnownError", field="knownErrorId"
                ),
            )
            return ArticleType.from_model(row)

        return await run_mutation(info, change)
