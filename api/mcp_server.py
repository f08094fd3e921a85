"""``knownfix mcp``: the knowledge base as Model Context Protocol tools, over stdio.

An AI agent's MCP client starts ``knownfix mcp`` and asks it what a script would ask
``knownfix search``, ``suggest`` and ``incident show``: the same knowledge services
answer, with the same permissions, and the answers are the same JSON views
(``api.plain``), returned as structured tool results (and as JSON text for clients
that read only text).

Who the server acts as: the holder of the API token in ``KNOWNFIX_TOKEN`` (checked at
start, so a bad token stops the server with exit status 2, and again on every call,
so a revoked token stops working at once), or without one a read-only viewer.

Tools that write (``add_work_note``, ``resolve_incident``) are listed only when the
token's role is responder or above: an agent is not offered what it cannot do. One
called anyway (a client that remembered another session's list) gets a
``permission_denied`` tool error, not "unknown tool", so its model learns why.

Errors are tool results with ``isError`` set, never tracebacks: the text is
``code: message`` and ``structuredContent`` is ``{"error": {"code", "message",
"field"}}`` with the code of the domain error (``not_found``, ``validation``,
``conflict`` with ``current_version``, ``permission_denied``, ``invalid_transition``,
``unauthenticated``). Anything unexpected is logged to stderr with its traceback and
reaches the client as ``internal`` with no detail.

The search index is caught up from the outbox before each tool that reads it, so
an agent finds what was written a moment ago by the API or another process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import inspect
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pydantic
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from api import plain
from api.cli_agents import TOKEN_VARIABLE, principal_from_env, refresh_index
from api.relay import decode_global_id
from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article
from knowledge.config import ConfigError, Settings
from knowledge.db import Database, DatabaseBusyError, utcnow
from knowledge.errors import ConflictError, DomainError, NotFoundError, ValidationError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Incident, ResolutionCode, format_incident_number
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.query import MAX_QUERY_LENGTH
from knowledge.search.sync import Indexer
from knowledge.suggestions import similar
from knowledge.suggestions.service import MAX_SUGGESTIONS

logger = logging.getLogger("knownfix.mcp")

SERVER_NAME = "knownfix"
GRAPHQL_PATH = "/graphql"
MAX_RESULTS = 50
WRITER = Role.RESPONDER  # the role that sees and may call the tools that write

INSTRUCTIONS = f"""\
Knownfix is an incident knowledge base: articles and known errors that restored service
before, and past incidents with how they were resolved. To help with an incident, call
suggest_resolutions with what is known (title, description, error text, service slug),
read the best suggestions with get_article, and look at similar_incidents for how
similar ones were resolved. Scores run from 0 to 1; each suggestion explains itself.
Every thing carries `ref` (an article slug, KE-0001, INC-000123), which the tools take,
and `id`, a global id for node(id:) in the GraphQL API at {GRAPHQL_PATH}."""


# --- arguments --------------------------------------------------------------------------


class Arguments(BaseModel):
    """A tool's arguments: unknown ones are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


IncidentNumber = Field(description="An incident number: INC-000123, or just 123.")


class SearchArguments(Arguments):
    query: str = Field(
        max_length=MAX_QUERY_LENGTH,
        description='Words, "phrases", AND/OR/NOT, -word, word~ (typos); anything else is '
        "searched as plain words.",
    )
    kind: Literal["article", "known_error", "incident"] | None = Field(
        default=None, description="Only this kind (incidents: resolved and closed ones)."
    )
    category: str | None = Field(default=None, description="Only this category.")
    service: str | None = Field(default=None, description="Only this service (its slug).")
    first: int = Field(default=10, ge=1, le=MAX_RESULTS, description="How many hits.")


class SuggestArguments(Arguments):
    title: str = Field(description="The incident's title as written so far (one line).")
    description: str = Field(default="", description="What is happening, in any length.")
    error_text: str = Field(default="", description="Error messages or log lines, verbatim.")
    service: str | None = Field(default=None, description="The affected service's slug.")
    category: str | None = Field(default=None, description="The incident's category.")
    first: int = Field(default=5, ge=1, le=MAX_SUGGESTIONS, description="How many suggestions.")


class ArticleArguments(Arguments):
    id_or_slug: str = Field(description="The article's slug, or its global id or number.")


class IncidentArguments(Arguments):
    number: str | int = IncidentNumber


class SimilarArguments(Arguments):
    number: str | int = IncidentNumber
    first: int = Field(default=5, ge=1, le=MAX_SUGGESTIONS, description="How many incidents.")


class NoteArguments(Arguments):
    number: str | int = IncidentNumber
    text: str = Field(description="The work note; responders and up read it on the timeline.")


class ResolveArguments(Arguments):
    number: str | int = IncidentNumber
    code: Literal["fixed", "workaround", "duplicate", "no_fault", "known_error", "other"] = Field(
        description="How it was resolved."
    )
    notes: str = Field(description="What was done to restore service.")
    article: str | None = Field(
        default=None, description="The article that resolved it (slug or id), if one did."
    )
    known_error: str | None = Field(
        default=None, description="The known error it was (KE-0001 or id), if one."
    )
    duplicate_of: str | int | None = Field(
        default=None, description="With code 'duplicate': the incident it duplicates."
    )
    expected_version: int | None = Field(
        default=None,
        description="The version you read (get_incident's `version`): the call fails with a "
        "conflict if the incident changed since. Omitted: whatever version it has now.",
    )


# --- the runtime ------------------------------------------------------------------------


@dataclasses.dataclass
class Runtime:
    """What every call shares: the database, the index, and who started the server."""

    db: Database
    index: SearchIndex
    indexer: Indexer
    started_as: Principal

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        db = settings.database()
        try:
            started_as = await principal_from_env(db)
            index = SearchIndex(
                settings.index_dir, postings_cache_bytes=settings.search_cache_bytes
            )
            indexer = Indexer(db, index)
            await refresh_index(indexer)
        except BaseException:
            await db.dispose()
            raise
        return cls(db, index, indexer, started_as)

    async def close(self) -> None:
        await asyncio.to_thread(self.index.close)
        await self.db.dispose()

    async def principal(self) -> Principal:
        """Who this call acts as: the token is checked again (it may have been revoked)."""
        return await principal_from_env(self.db)

    async def fresh_index(self) -> SearchIndex:
        """The index with everything committed so far (or as the server writing it has it);
        if it cannot be written, as it is."""
        try:
            await refresh_index(self.indexer)
        except Exception as error:
            logger.warning("the search index may be behind the database: %s", error)
        return self.index


# --- the tools --------------------------------------------------------------------------

Run = Callable[[Runtime, Principal, Any], Awaitable[dict[str, Any]]]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    title: str
    description: str
    arguments: type[Arguments]
    output: dict[str, Any]
    run: Run
    writes: bool = False

    def as_tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.arguments.model_json_schema(),
            output_schema=self.output,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=not self.writes,
                destructive_hint=False,
                idempotent_hint=not self.writes,
                open_world_hint=False,
            ),
        )


TOOLS: dict[str, ToolSpec] = {}


def tool(
    name: str, arguments: type[Arguments], output: dict[str, Any], *, title: str,
    writes: bool = False,
) -> Callable[[Run], Run]:  # fmt: skip
    """Register a tool; its docstring is the description the agent reads."""

    def register(run: Run) -> Run:
        description = inspect.cleandoc(run.__doc__ or "")
        TOOLS[name] = ToolSpec(name, title, description, arguments, output, run, writes)
        return run

    return register


# Output schemas: what structuredContent holds (clients check results against them).
def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **optional},
        "required": list(required),
    }


_STR, _INT, _NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
_BOOL = {"type": "boolean"}
_OPT_STR = {"type": ["string", "null"]}
_THING = _obj({
    "kind": {"enum": ["article", "known_error", "incident"]},
    "id": {"type": "string", "description": f"Global id, for node(id:) at {GRAPHQL_PATH}."},
    "ref": {"type": "string", "description": "Slug, KE-0001 or INC-000123: what tools take."},
    "title": _STR,
    "status": _STR,
})  # fmt: skip
_ARRAY = {"type": "array"}
SEARCH_OUTPUT = _obj({
    "query": _STR, "total": _INT, "has_more": _BOOL, "did_you_mean": _OPT_STR,
    "hits": {"type": "array", "items": {**_THING, "properties": {
        **_THING["properties"], "score": _NUM, "matched_terms": _ARRAY,
        "highlights": {"type": "object"}}}},
})  # fmt: skip
SUGGEST_OUTPUT = _obj({
    "draft": {"type": "object"},
    "suggestions": {"type": "array", "items": {**_THING, "properties": {
        **_THING["properties"], "rank": _INT,
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "explanation": _STR, "signals": _ARRAY, "evidence": _ARRAY,
        "matched_terms": _ARRAY, "highlights": {"type": "object"}}}},
})  # fmt: skip
ARTICLE_OUTPUT = {**_THING, "properties": {
    **_THING["properties"], "slug": _STR, "summary": _STR, "body": _STR, "tags": _ARRAY,
    "services": _ARRAY, "version": _INT, "stats": {"type": "object"}}}  # fmt: skip
INCIDENT_OUTPUT = _obj({
    "id": _STR, "number": _STR, "title": _STR, "status": _STR, "priority": _INT,
    "version": _INT, "sla": {"type": "object"}, "links": _ARRAY, "timeline": _ARRAY,
})  # fmt: skip
SIMILAR_OUTPUT = _obj({"incident": _THING, "similar": _ARRAY})
NOTE_OUTPUT = _obj({"incident": _THING, "note": {"type": "object"}})


def incident_digits(number: str | int, field: str = "number") -> int:
    text = str(number).strip().upper().removeprefix("INC-")
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) == 0:
        raise ValidationError(
            f"{str(number)!r} is not an incident number like INC-000123", field=field
        )
    return int(text)


async def find_incident(
    session: AsyncSession, principal: Principal, number: str | int, field: str = "number"
) -> Incident:
    digits = incident_digits(number, field)
    incident = await incidents.get_by_number(
        session=session, principal=principal, number=str(digits)
    )
    if incident is None:
        raise NotFoundError(f"no incident {format_incident_number(digits)}", field=field)
    return incident


def _key_of(value: str, type_name: str, field: str) -> int | None:
    """The key of a global id of ``type_name`` or a plain number; None for anything else."""
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    decoded = decode_global_id(text)
    if decoded is None:
        return None
    found, key = decoded
    if found != type_name:
        raise ValidationError(f"{field}: expected an {type_name}, got the id of a {found}")
    return key


async def find_article(
    session: AsyncSession, principal: Principal, value: str, field: str
) -> Article:
    """By slug, global id or number; drafts only for those who may see them."""
    key = _key_of(value, "Article", field)
    article: Article | None
    if key is not None:
        found = await articles.by_ids(session=session, principal=principal, ids=[key])
        article = found.get(key)
    if key is None or (article is None and value.strip().isdigit()):  # a slug can be "404"
        article = await articles.get_by_slug(
            session=session, principal=principal, slug=value.strip()
        )
    if article is None:
        raise NotFoundError(f"no article {value.strip()!r}", field=field)
    return article


async def find_known_error(session: AsyncSession, principal: Principal, value: str) -> KnownError:
    """By key (KE-0001), global id or number."""
    key = _key_of(value, "KnownError", "known_error")
    found: KnownError | None
    if key is not None:
        found = (await known_errors.by_ids(session=session, ids=[key])).get(key)
    else:
        found = await known_errors.get_by_key(
            session=session, principal=principal, key=value.strip().upper()
        )
    if found is None:
        raise NotFoundError(f"no known error {value.strip()!r}", field="known_error")
    return found


@tool("search_knowledge", SearchArguments, SEARCH_OUTPUT, title="Search the knowledge base")
async def search_knowledge(rt: Runtime, principal: Principal, a: SearchArguments) -> dict[str, Any]:
    """Full-text search over published articles, known errors and resolved incidents,
    best first, with scores, matched terms and highlighted fragments (<mark>)."""
    index = await rt.fresh_index()
    async with rt.db.read() as session:
        results = await search.search(
            session=session, principal=principal, index=index, text=a.query,
            filter=search.SearchFilter(
                kinds=[a.kind] if a.kind else None, category=a.category, service=a.service
            ),
            first=a.first, with_facets=False,
        )  # fmt: skip
    return plain.search_view(a.query, results)


@tool("suggest_resolutions", SuggestArguments, SUGGEST_OUTPUT, title="Suggest resolutions")
async def suggest_resolutions(
    rt: Runtime, principal: Principal, a: SuggestArguments
) -> dict[str, Any]:
    """Articles and known errors most likely to restore service for an incident as
    described (nothing is saved), best first. Each has a score from 0 to 1, the signals
    that ranked it (text, error signature, service, category, history, success rate)
    with an explanation, and the similar past incidents it resolved (evidence)."""
    index = await rt.fresh_index()
    async with rt.db.read() as session:
        return await plain.suggest(
            session=session, principal=principal, index=index, title=a.title,
            description=a.description, error_text=a.error_text, service=a.service,
            category=a.category, first=a.first,
        )  # fmt: skip


@tool("get_article", ArticleArguments, ARTICLE_OUTPUT, title="Read an article")
async def get_article(rt: Runtime, principal: Principal, a: ArticleArguments) -> dict[str, Any]:
    """An article in full: Markdown body (symptoms, cause, resolution), tags, services,
    the known error it documents, and how often it helped."""
    async with rt.db.read() as session:
        article = await find_article(session, principal, a.id_or_slug, "id_or_slug")
        return await plain.article_view(session=session, principal=principal, article=article)


@tool("get_incident", IncidentArguments, INCIDENT_OUTPUT, title="Read an incident")
async def get_incident(rt: Runtime, principal: Principal, a: IncidentArguments) -> dict[str, Any]:
    """An incident with its status, priority, SLA (due times, breaches), links to the
    knowledge suggested, accepted or that resolved it, and its timeline (work notes only
    for responders). `version` is what resolve_incident's expected_version wants."""
    async with rt.db.read() as session:
        incident = await find_incident(session, principal, a.number)
        return await plain.incident_view(
            session=session, principal=principal, incident=incident, now=utcnow()
        )


@tool("similar_incidents", SimilarArguments, SIMILAR_OUTPUT, title="Find similar incidents")
async def similar_incidents(
    rt: Runtime, principal: Principal, a: SimilarArguments
) -> dict[str, Any]:
    """Resolved and closed incidents most like this one, most similar first, with how
    each was resolved (code and notes); same_signature means the same error line."""
    index = await rt.fresh_index()
    async with rt.db.read() as session:
        incident = await find_incident(session, principal, a.number)
        found = await similar.similar_incidents(
            session=session, principal=principal, index=index, incident_id=incident.id,
            first=a.first,
        )  # fmt: skip
    return plain.similar_view(incident, found)


@tool("add_work_note", NoteArguments, NOTE_OUTPUT, title="Add a work note", writes=True)
async def add_work_note(rt: Runtime, principal: Principal, a: NoteArguments) -> dict[str, Any]:
    """Add a work note to an incident's timeline (responders and up)."""
    async with rt.db.transaction() as session:
        incident = await find_incident(session, principal, a.number)
        event = await incidents.add_note(
            session=session, principal=principal, now=utcnow(), incident_id=incident.id,
            text=a.text,
        )  # fmt: skip
        note = {
            "occurred_at": plain.when(event.occurred_at),
            "kind": event.kind.value,
            "actor": principal.username,
            "message": event.message,
        }
        return {"incident": plain.thing(incident), "note": note}


@tool("resolve_incident", ResolveArguments, INCIDENT_OUTPUT, title="Resolve an incident",
      writes=True)  # fmt: skip
async def resolve_incident(
    rt: Runtime, principal: Principal, a: ResolveArguments
) -> dict[str, Any]:
    """Resolve an open incident (responders and up) with a code, notes, and what restored
    service: an article or a known error (or, for a duplicate, the incident it
    duplicates). Returns the incident as get_incident does."""
    async with rt.db.transaction() as session:
        incident = await find_incident(session, principal, a.number)
        article = (
            await find_article(session, principal, a.article, "article") if a.article else None
        )
        known_error = (
            await find_known_error(session, principal, a.known_error) if a.known_error else None
        )
        duplicate_of = (
            await find_incident(session, principal, a.duplicate_of, "duplicate_of")
            if a.duplicate_of is not None
            else None
        )
        await incidents.resolve(
            session=session, principal=principal, now=utcnow(), incident_id=incident.id,
            expected_version=(
                incident.version if a.expected_version is None else a.expected_version
            ),
            code=ResolutionCode(a.code), notes=a.notes,
            article_id=article.id if article else None,
            known_error_id=known_error.id if known_error else None,
            duplicate_of_id=duplicate_of.id if duplicate_of else None,
        )  # fmt: skip
    async with rt.db.read() as session:
        return await plain.incident_view(
            session=session, principal=principal, incident=incident, now=utcnow()
        )


# --- the protocol -----------------------------------------------------------------------


def listed(principal: Principal) -> list[ToolSpec]:
    return [spec for spec in TOOLS.values() if not spec.writes or principal.can(WRITER)]


# Domain errors name GraphQL's input fields; these are the tools' arguments for them.
ARGUMENT_NAMES = {
    "id": "number",
    "expectedVersion": "expected_version",
    "resolvedBy": "article",
    "resolvedBy.articleId": "article",
    "resolvedBy.knownErrorId": "known_error",
    "resolvedBy.incidentId": "duplicate_of",
    "errorText": "error_text",
}


def argument_name(field: str | None) -> str | None:
    if field is None:
        return None
    return ARGUMENT_NAMES.get(field, re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", field).lower())


def error_result(
    code: str, message: str, *, field: str | None = None, **more: Any
) -> types.CallToolResult:
    error = {"code": code, "message": message, "field": field, **more}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{code}: {message}")],
        structured_content={"error": error},
        is_error=True,
    )


def _argument_problems(error: pydantic.ValidationError) -> tuple[str, str | None]:
    problems = []
    for found in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in found["loc"]) or "arguments"
        problems.append(f"{where}: {found['msg']}")
    first = error.errors(include_url=False)[0]["loc"] if error.error_count() else ()
    return "; ".join(problems), ".".join(str(part) for part in first) or None


async def call(rt: Runtime, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """Run one tool call; every failure becomes an error result."""
    spec = TOOLS.get(name)
    if spec is None:
        return error_result("not_found", f"no tool {name!r}; tools/list names them")
    try:
        principal = await rt.principal()
        if spec.writes:  # before the arguments: "you may not" says more than "bad text"
            principal.require(WRITER, spec.name)
        parsed = spec.arguments.model_validate(arguments)
        value = await spec.run(rt, principal, parsed)
    except pydantic.ValidationError as error:
        message, field = _argument_problems(error)
        return error_result("validation", message, field=field)
    except ConflictError as error:
        return error_result(
            error.code, error.message, field=argument_name(error.field),
            current_version=error.current_version,
        )  # fmt: skip
    except DomainError as error:
        return error_result(error.code, error.message, field=argument_name(error.field))
    except ConfigError as error:  # the token no longer works
        return error_result("unauthenticated", str(error), field=TOKEN_VARIABLE)
    except DatabaseBusyError:
        logger.warning("tool %s: the database was busy with other writes", name)
        return error_result(
            "busy", "the database is busy with other writes; nothing was changed, try again"
        )
    except (OSError, SQLAlchemyError):
        logger.exception("tool %s: the database or the index failed", name)
        return error_result("unavailable", "the database or the search index is unavailable")
    except Exception:
        logger.exception("tool %s failed unexpectedly", name)
        return error_result("internal", "unexpected error; the server's log has the details")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(value, ensure_ascii=False))],
        structured_content=value,
    )


def build_server(rt: Runtime) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[spec.as_tool() for spec in listed(rt.started_as)])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await call(rt, params.name, params.arguments or {})

    who = rt.started_as
    return Server(
        SERVER_NAME,
        version=_version(),
        title="Knownfix incident knowledge",
        instructions=f"{INSTRUCTIONS}\nYou act as {who.username} ({who.role.value}).",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _version() -> str:
    try:
        return importlib.metadata.version("knownfix")
    except importlib.metadata.PackageNotFoundError:
        return "0"


async def _serve(settings: Settings) -> None:
    rt = await Runtime.open(settings)
    try:
        server = build_server(rt)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await rt.close()


def serve(settings: Settings) -> int:
    """Serve MCP on standard input and output until the client closes them."""
    logging.basicConfig(
        stream=sys.stderr,
        level=settings.log_level.upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("mcp").setLevel(logging.WARNING)  # one line per request otherwise
    # stdout carries the protocol: nothing else may write there.
    asyncio.run(_serve(settings))
    return 0
