"""The GraphQL schema: every concept's queries and mutations merged, plus extensions."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension, ValidationCache
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.accounts.mutations import AccountsMutation
from api.accounts.queries import AccountsQuery
from api.articles.mutations import ArticlesMutation
from api.articles.queries import ArticlesQuery
from api.catalog.mutations import CatalogMutation
from api.catalog.queries import CatalogQuery
from api.errors import graphql_code
from api.incidents.mutations import IncidentsMutation
from api.incidents.queries import IncidentsQuery
from api.incidents.subscriptions import IncidentsSubscription
from api.known_errors.mutations import KnownErrorsMutation
from api.known_errors.queries import KnownErrorsQuery
from api.node import NodeQuery
from api.search.queries import SearchQuery
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
    ),
)
Mutation = merge_types(
    "Mutation",
    (AccountsMutation, CatalogMutation, ArticlesMutation, KnownErrorsMutation, IncidentsMutation),
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


class KnownfixSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not expected_error(error):
                logger.error("unexpected error in GraphQL", exc_info=error.original_error)


def build_schema(*, production: bool = False) -> strawberry.Schema:
    # Factories: strawberry builds each extension per operation; the parser and
    # validation caches themselves live at module level, keyed by maxsize.
    extensions: list[Any] = [
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        DomainErrorCodes,
    ]
    if production:
        extensions.append(lambda: MaskErrors(should_mask_error=lambda e: not expected_error(e)))
    return KnownfixSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )


# The exported schema (``schema.graphql``) and the strawberry CLI use this instance.
schema = build_schema()
