"""The GraphQL schema: every concept's queries and mutations merged, plus extensions."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.accounts.mutations import AccountsMutation
from api.accounts.queries import AccountsQuery
from api.articles.mutations import ArticlesMutation
from api.articles.queries import ArticlesQuery
from api.catalog.mutations import CatalogMutation
from api.catalog.queries import CatalogQuery
from api.errors import (
    BUSY_RETRY_AFTER_SECONDS,
    RETRY_AFTER_SECONDS,
    database_busy,
    database_unavailable,
    graphql_code,
)
from api.incidents.mutations import IncidentsMutation
from api.incidents.queries import IncidentsQuery
from api.incidents.subscriptions import IncidentsSubscription
from api.known_errors.mutations import KnownErrorsMutation
from api.known_errors.queries import KnownErrorsQuery
from api.limits import Limits, limit_extensions
from api.node import NodeQuery
from api.reports.queries import ReportsQuery
from api.response_cache import CacheableResult
from api.search.queries import SearchQuery
from api.suggestions.mutations import SuggestionsMutation
from api.suggestions.queries import SuggestionsQuery
from knowledge.config import Settings
from knowledge.db import is_busy, is_unreachable
from knowledge.errors import DomainError
from knowledge.search.index import IndexUnavailableError

logger = logging.getLogger("knownfix.graphql")

Query = merge_types(
    "Query",
    (
        NodeQuery,
        AccountsQuery,
        CatalogQuery,
        ArticlesQuery,
        KnownErrorsQuery,
        SearchQuery,
        IncidentsQuery,
        SuggestionsQuery,
        ReportsQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AccountsMutation,
        CatalogMutation,
        ArticlesMutation,
        KnownErrorsMutation,
        IncidentsMutation,
        SuggestionsMutation,
    ),
)
Subscription = merge_types("Subscription", (IncidentsSubscription,))


class DomainErrorCodes(SchemaExtension):
    """Give errors raised by domain code an ``extensions.code`` (and the field at fault)."""

    def on_operation(self):  # type: ignore[no-untyped-def]
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        for error in result.errors:
            original = error.original_error
            if isinstance(original, DomainError):
                error.extensions = {
                    **(error.extensions or {}),
                    "code": graphql_code(original),
                    **({"field": original.field} if original.field else {}),
                }


def expected_error(error: GraphQLError) -> bool:
    """Errors a client caused (or an unavailable index): shown as they are, even in production."""
    original = error.original_error
    return original is None or isinstance(
        original, DomainError | GraphQLError | IndexUnavailableError
    )


def request_id(execution_context: ExecutionContext | None) -> str | None:
    context = None if execution_context is None else execution_context.context
    return getattr(context, "request_id", None)


def masked(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """What production shows of an unexpected error: that it happened, and the request id
    to quote; the log line with the same id holds the details."""
    return GraphQLError(
        message=f"Unexpected error (request id {request_id}).",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


def unavailable(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """An outage, not a bug: said plainly in every mode, without the driver's words."""
    return replaced(error, database_unavailable(request_id))


def replaced(error: GraphQLError, shown: dict[str, Any]) -> GraphQLError:
    """``error`` at its place in the document, saying ``shown`` instead."""
    return GraphQLError(
        message=shown["message"],
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=shown["extensions"],
    )


def answer_503(
    execution_context: ExecutionContext | None, retry_after: int = RETRY_AFTER_SECONDS
) -> None:
    """Over HTTP the whole response says 503, so proxies and clients know to retry."""
    context = None if execution_context is None else execution_context.context
    response = getattr(context, "response", None)
    if response is not None and hasattr(response, "status_code"):
        response.status_code = 503
        headers = getattr(response, "headers", None)
        if headers is not None:
            headers["Retry-After"] = str(retry_after)


class KnownfixSchema(strawberry.Schema):
    """Logs each unexpected error with its request id, and masks it in production.

    ``MaskErrors`` covers errors raised while executing; an exception raised inside an
    extension hook (parsing, validation) reaches the response after ``MaskErrors`` has
    run, message and all. Every error passes through here, so masking here too leaves
    no way round.
    """

    mask_unexpected = False

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        rid = request_id(execution_context)
        for n, error in enumerate(errors):
            if error.original_error is not None and is_unreachable(error.original_error):
                logger.warning(
                    "database unreachable in GraphQL (request %s): %s: %s",
                    rid,
                    type(error.original_error).__name__,
                    str(error.original_error)[:200],
                )
                errors[n] = unavailable(error, rid)
                answer_503(execution_context)
                continue
            if error.original_error is not None and is_busy(error.original_error):
                logger.warning(
                    "database busy in GraphQL (request %s): a write waited too long", rid
                )
                errors[n] = replaced(error, database_busy(rid))
                answer_503(execution_context, BUSY_RETRY_AFTER_SECONDS)
                continue
            if expected_error(error):
                continue
            logger.error(
                "unexpected error in GraphQL (request %s)", rid, exc_info=error.original_error
            )
            if self.mask_unexpected:
                errors[n] = masked(error, rid)


class MaskUnexpectedErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not expected_error(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return masked(error, request_id(self.execution_context))


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the limits, introspection and masking that ``settings`` ask for.

    Extensions are factories: strawberry builds each one per operation. What must be
    shared to keep the caches effective (the parse cache, the validation rule
    classes) is built here, once; the validation cache itself lives at module level,
    keyed by maxsize.
    """
    settings = settings or Settings()
    extensions: list[Any] = [
        *limit_extensions(Limits.from_settings(settings)),
        lambda: ValidationCache(maxsize=1024),
        DomainErrorCodes,
        CacheableResult,
    ]
    if settings.is_production:
        extensions.append(MaskUnexpectedErrors)
    built = KnownfixSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        # Without introspection, "Did you mean ...?" would still spell the schema out.
        config=StrawberryConfig(disable_field_suggestions=not settings.introspection_enabled),
    )
    built.mask_unexpected = settings.is_production
    return built


# The exported schema (``schema.graphql``) and the strawberry CLI use this instance.
schema = build_schema()
