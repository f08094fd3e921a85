"""Limits on what one request may ask of the server: body size, tokens, depth, aliases, cost.

A hostile or careless client can make a small request expensive: a huge body, a
document of millions of tokens, a selection nested a hundred levels deep, a
thousand aliases of one field, or lists nested in lists that multiply into
millions of objects. Each of these is refused before any resolver runs, with
``extensions.code`` ``LIMIT_EXCEEDED``, the limit's name and its value, so a client
can tell which one it hit and by how much.

The rules are built once per schema and shared by every request. strawberry's
``ValidationCache`` keys its cache on the tuple of rule classes, and its own
``QueryDepthLimiter`` and ``MaxAliasesLimiter`` make a new class per extension
instance, that is per request: every request then misses the cache (strawberry
issue #4635). The analysis also memoises fragments, so a document that spreads a
fragment many times over costs no more to check than to write.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    get_named_type,
    get_nullable_type,
    is_list_type,
    parse,
)
from graphql.validation.validate import ValidationAbortedError
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter

from knowledge.config import Settings
from knowledge.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

ASGIApp = Callable[[Scope, Receive, Send], Any]

# What a list without a page size is assumed to hold, for the cost estimate.
LIST_ESTIMATE = DEFAULT_PAGE_SIZE
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
# A field whose resolver does far more work than the objects it returns says so in its
# strawberry metadata, ``metadata={COST: n}``: n objects' worth, counted once per time
# the field is selected, so aliases of it add up.
COST = "knownfix.cost"
# What a report section that queries the search index or compares hundreds of texts
# weighs: two of them fit under the default maxQueryCost (100,000) beside the rest of a
# report, a third does not. A server with a lower maxQueryCost refuses the full report.
REPORT_SECTION_COST = 40_000
# graphql-core's parser gives up with this when the document outgrows its recursion.
NESTED_TOO_DEEPLY = "Document is nested too deeply"


class LimitExceededError(GraphQLError):
    """Never masked: the client can fix its request, so it must learn which limit it hit."""

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        maximum: int,
        actual: int | None = None,
        nodes: Any = None,
    ) -> None:
        extensions: dict[str, Any] = {"code": "LIMIT_EXCEEDED", "limit": limit, "max": maximum}
        if actual is not None:
            extensions["actual"] = actual
        super().__init__(message, nodes, extensions=extensions)


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    introspection: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_cost=settings.max_query_cost,
            introspection=settings.introspection_enabled,
        )


# -- parsing -----------------------------------------------------------------------------


def token_limited_parser(max_tokens: int, maxsize: int = 1024) -> Callable[[str], DocumentNode]:
    """A cached parse that stops after ``max_tokens`` tokens (comments count too, so a
    document padded with comments cannot slip past).

    A document nested deeper than the parser can recurse (lists in lists in an argument,
    say) keeps graphql-core's message but gets a code too: the limit is the
    interpreter's recursion limit, not a setting, so it has no ``max``."""
    too_many = f"Document contains more than {max_tokens} tokens"

    @functools.lru_cache(maxsize=maxsize)
    def parse_document(query: str) -> DocumentNode:
        try:
            return parse(query, max_tokens=max_tokens)
        except GraphQLSyntaxError as error:
            if NESTED_TOO_DEEPLY in error.message:
                error.extensions = {"code": "LIMIT_EXCEEDED", "limit": "nesting"}
                raise
            if too_many not in error.message:
                raise
            raise LimitExceededError(
                f"The document has more than {max_tokens} tokens (limit maxTokens).",
                limit="maxTokens",
                maximum=max_tokens,
            ) from None

    return parse_document


class LimitedParserCache(SchemaExtension):
    """strawberry's ``ParserCache`` with the token limit built in, so a refusal carries
    a code instead of graphql-core's bare syntax error."""

    def __init__(self, parse_document: Callable[[str], DocumentNode]) -> None:
        super().__init__()
        self.parse_document = parse_document

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query
        if query is not None and self.execution_context.graphql_document is None:
            self.execution_context.graphql_document = self.parse_document(query)
        yield


# -- validation --------------------------------------------------------------------------


class AbortedValidationCode(SchemaExtension):
    """graphql-core gives up on a document too costly to validate (over 100 errors,
    too much work on shared fragments, recursion) with a bare "Validation aborted."
    error; give it the code of a failed validation so a client can branch on it.

    It runs round the validation cache (it comes first in the extension list), so it
    sees the errors whether they were cached or not."""

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, ValidationAbortedError):
                error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}


class _TooDeep(Exception):
    """Stops the walk of a document deeper than the limit; never leaves this module."""


@dataclasses.dataclass(frozen=True, slots=True)
class Measure:
    depth: int = 0  # levels of fields, counting the selection set's own fields as 1
    aliases: int = 0
    cost: int = 0  # objects the selection set can return, per object it is selected on


class _Analysis:
    """Depth, aliases and cost of one document's operations."""

    def __init__(self, context: ValidationContext, max_depth: int) -> None:
        self.schema: GraphQLSchema = context.schema
        self.max_depth = max_depth
        self.fragments = {
            definition.name.value: definition
            for definition in context.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.memo: dict[tuple[str, int | None], Measure] = {}
        self.in_progress: set[str] = set()

    def operation(self, operation: OperationDefinitionNode) -> Measure:
        return self.selections(
            operation.selection_set, self.schema.get_root_type(operation.operation), None, 1
        )

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        page: int | None,
        level: int,
    ) -> Measure:
        """``page`` is the page size of the connection the selection set sits in, if any;
        ``level`` the depth of its fields, which stops the walk as soon as it is too deep."""
        if level > self.max_depth:
            raise _TooDeep
        depth = aliases = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                measure = self.field(selection, parent, page, level)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = parent if condition is None else self.schema.get_type(condition.name.value)
                measure = self.selections(selection.selection_set, on, page, level)
            elif isinstance(selection, FragmentSpreadNode):
                measure = self.spread(selection.name.value, page, level)
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            if level - 1 + measure.depth > self.max_depth:
                raise _TooDeep
            depth = max(depth, measure.depth)
            aliases += measure.aliases
            cost += measure.cost
        return Measure(depth, aliases, cost)

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None, level: int
    ) -> Measure:
        aliases = 1 if node.alias else 0
        name = node.name.value
        # Introspection is bounded by graphql-core's MaxIntrospectionDepthRule (and can
        # be switched off); GraphiQL's own query is deeper than any limit that suits data.
        if name.startswith("__") or node.selection_set is None:
            return Measure(0 if name in INTROSPECTION_FIELDS else 1, aliases, 0)
        definition = (
            parent.fields.get(name)
            if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        if definition is None:  # unknown field: FieldsOnCorrectTypeRule reports it
            inner = self.selections(node.selection_set, None, None, level + 1)
            return Measure(1 + inner.depth, aliases + inner.aliases, 1 + inner.cost)
        is_list = is_list_type(get_nullable_type(definition.type))
        first = definition.args.get("first")
        page_size = None if first is None else self.page_size(node, first.default_value)
        count, child_page = 1, None
        if page_size is not None and is_list:
            count = page_size
        elif page_size is not None:  # a connection: its edges and nodes hold the page
            child_page = page_size
        elif is_list:
            count = LIST_ESTIMATE if page is None else page
        inner = self.selections(
            node.selection_set, get_named_type(definition.type), child_page, level + 1
        )
        own = self.weight(definition.extensions)
        return Measure(1 + inner.depth, aliases + inner.aliases, own + count * (1 + inner.cost))

    @staticmethod
    def weight(extensions: dict[str, Any] | None) -> int:
        """The field's own ``COST`` from its strawberry definition; 0 for most fields."""
        field = (extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        metadata = getattr(field, "metadata", None) or {}
        return int(metadata.get(COST, 0))

    @staticmethod
    def page_size(node: FieldNode, default: Any) -> int | None:
        """A field's ``first``: the literal (clamped to what pagination accepts), the
        largest page for a variable, the schema's default when absent."""
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            if isinstance(argument.value, IntValueNode):
                digits = argument.value.value  # int() refuses over 4300 digits
                return min(max(int(digits), 0), MAX_PAGE_SIZE) if len(digits) < 12 else 0
            if isinstance(argument.value, NullValueNode):
                return DEFAULT_PAGE_SIZE
            return MAX_PAGE_SIZE
        return default if isinstance(default, int) else DEFAULT_PAGE_SIZE

    def spread(self, name: str, page: int | None, level: int) -> Measure:
        fragment = self.fragments.get(name)
        if fragment is None or name in self.in_progress:  # other rules report these
            return Measure()
        key = (name, page)
        if key not in self.memo:
            self.in_progress.add(name)
            try:
                on = self.schema.get_type(fragment.type_condition.name.value)
                self.memo[key] = self.selections(fragment.selection_set, on, page, level)
            finally:
                self.in_progress.discard(name)
        return self.memo[key]


def query_limits_rule(limits: Limits) -> type[ValidationRule]:
    """One rule class for depth, aliases and cost; build it once per schema (see above)."""

    class QueryLimitsRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            analysis = _Analysis(self.context, limits.max_depth)
            name = f"Operation '{node.name.value}'" if node.name else "The operation"
            try:
                measure = analysis.operation(node)
            except (_TooDeep, RecursionError):  # the latter: long chains of fragment spreads
                self.report_error(
                    LimitExceededError(
                        f"{name} is nested deeper than {limits.max_depth} levels"
                        " (limit maxQueryDepth).",
                        limit="maxQueryDepth",
                        maximum=limits.max_depth,
                        nodes=[node],
                    )
                )
                return
            if measure.aliases > limits.max_aliases:
                self.report_error(
                    LimitExceededError(
                        f"{name} uses {measure.aliases} aliases; at most {limits.max_aliases}"
                        " are allowed (limit maxAliases).",
                        limit="maxAliases",
                        maximum=limits.max_aliases,
                        actual=measure.aliases,
                        nodes=[node],
                    )
                )
            if measure.cost > limits.max_cost:
                self.report_error(
                    LimitExceededError(
                        f"{name} may return about {measure.cost} objects; at most"
                        f" {limits.max_cost} are allowed (limit maxQueryCost). Ask for"
                        " smaller pages (first) or fewer nested lists.",
                        limit="maxQueryCost",
                        maximum=limits.max_cost,
                        actual=measure.cost,
                        nodes=[node],
                    )
                )

    return QueryLimitsRule


class NoIntrospectionRule(ValidationRule):
    """graphql-core's NoSchemaIntrospectionCustomRule, with a code clients can branch on."""

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value in INTROSPECTION_FIELDS:
            self.report_error(
                GraphQLError(
                    f"Introspection is disabled on this server ('{node.name.value}').",
                    node,
                    extensions={"code": "INTROSPECTION_DISABLED"},
                )
            )


def limit_extensions(limits: Limits) -> list[Callable[[], SchemaExtension]]:
    """Extension factories for ``strawberry.Schema``; what they share is built here, once."""
    parse_document = token_limited_parser(limits.max_tokens)
    rules: list[type[ASTValidationRule]] = [query_limits_rule(limits)]
    if not limits.introspection:
        rules.append(NoIntrospectionRule)
    return [
        AbortedValidationCode,
        lambda: LimitedParserCache(parse_document),
        lambda: AddValidationRules(rules),
    ]


# -- request body ------------------------------------------------------------------------


def body_too_large(max_bytes: int) -> JSONResponse:
    return JSONResponse(
        {
            "errors": [
                {
                    "message": f"The request body is larger than {max_bytes} bytes"
                    " (limit maxBodyBytes).",
                    "extensions": {
                        "code": "LIMIT_EXCEEDED",
                        "limit": "maxBodyBytes",
                        "max": max_bytes,
                    },
                }
            ]
        },
        status_code=413,
    )


class BodyLimit:
    """Refuse a body over ``max_bytes`` with 413, holding at most that much in memory.

    A declared Content-Length over the limit is refused before anything is read; a
    chunked (or understated) body is counted as it arrives. The body is read here, up
    to the limit, and handed on whole, so the app behind never sees an unbounded
    stream.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await body_too_large(self.max_bytes)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await body_too_large(self.max_bytes)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message | None = {"type": "http.request", "body": b"".join(chunks)}
        chunks.clear()

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()
            message, body = body, None
            return message

        await self.app(scope, replay, send)
