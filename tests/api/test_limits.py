"""Hostile input: every limit lets a request just under it through and refuses one just
over it with LIMIT_EXCEEDED, the limit's name and its value; all through the real app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import get_introspection_query
from graphql.validation import validation_context

from api.app import create_app
from api.limits import REPORT_SECTION_COST
from knowledge.accounts.roles import Role
from knowledge.config import ConfigError, Environment, Settings
from knowledge.db import Database
from tests.conftest import http_client
from tests.support import Accounts, GraphQLClient, Response


@asynccontextmanager
async def app_http(
    db: Database, settings: Settings, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings.replace(**changes), db=db)
    async with application.router.lifespan_context(application), http_client(application) as http:
        yield http


@asynccontextmanager
async def app_client(
    db: Database, settings: Settings, **changes: Any
) -> AsyncIterator[GraphQLClient]:
    async with app_http(db, settings, **changes) as http:
        yield GraphQLClient(http)


def limit_error(reply: Response, limit: str, maximum: int) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    assert reply.body.get("data") is None, "a refused request must not run at all"
    [error] = reply.errors
    extensions = error["extensions"]
    assert (extensions["code"], extensions["limit"], extensions["max"]) == (
        "LIMIT_EXCEEDED",
        limit,
        maximum,
    ), error
    assert limit in error["message"]
    assert str(maximum) in error["message"]
    return error


# -- query depth ---------------------------------------------------------------------

DEPTH_4 = "{ services { nodes { ownerTeam { slug } } } }"
DEPTH_5 = "{ services { nodes { ownerTeam { members { username } } } } }"
DEPTH_5_IN_FRAGMENT = """
query { ...Deep }
fragment Deep on Query { services { nodes { ownerTeam { members { username } } } } }
"""
DEPTH_5_IN_INLINE_FRAGMENT = """
{ services { nodes { ... on Service { ownerTeam { members { username } } } } } }
"""


async def test_a_query_at_the_depth_limit_runs_and_one_level_more_is_refused(
    db: Database, settings: Settings
) -> None:
    async with app_client(db, settings, max_query_depth=4) as client:
        assert (await client(DEPTH_4)).data == {"services": {"nodes": []}}
        error = limit_error(await client(DEPTH_5), "maxQueryDepth", 4)
        assert "deeper than 4 levels" in error["message"]


@pytest.mark.parametrize("query", [DEPTH_5_IN_FRAGMENT, DEPTH_5_IN_INLINE_FRAGMENT])
async def test_fragments_cannot_hide_depth(db: Database, settings: Settings, query: str) -> None:
    async with app_client(db, settings, max_query_depth=4) as client:
        limit_error(await client(query), "maxQueryDepth", 4)


async def test_graphiql_introspection_fits_the_default_limits(client: GraphQLClient) -> None:
    """Introspection has its own depth rule (graphql-core's), so the IDE keeps working."""
    data = (await client(get_introspection_query(descriptions=True))).data
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_the_deepest_configurable_limit_still_parses_and_is_enforced(
    db: Database, settings: Settings
) -> None:
    """No path in the schema nests 100 objects without lists (whose cost would refuse
    it first), so the fields are unknown: what counts is which errors come back."""

    def nested(levels: int) -> str:
        return "{ me " + "{ user " * (levels - 2) + "{ id" + " }" * levels

    async with app_client(db, settings, max_query_depth=100) as client:
        at_limit = await client(nested(100))
        assert "LIMIT_EXCEEDED" not in at_limit.error_codes
        assert "Cannot query field 'user'" in at_limit.errors[0]["message"]
        over = await client(nested(101))
        [error] = [e for e in over.errors if e.get("extensions", {}).get("limit")]
        assert error["extensions"]["limit"] == "maxQueryDepth"


@pytest.mark.parametrize(
    "query",
    [
        "{ me " + "{ user " * 300 + "{ id" + " }" * 302,
        "{ nodes(ids: " + "[" * 300 + '"a"' + "]" * 300 + ") { id } }",  # in a value
    ],
    ids=["selections", "lists"],
)
async def test_a_document_nested_beyond_what_the_parser_takes_is_a_clean_syntax_error(
    production_client: GraphQLClient, accounts: Accounts, query: str
) -> None:
    """The parser's limit is the interpreter's recursion, not a setting: a code and
    graphql-core's message, no max."""
    viewer = await accounts.create(Role.VIEWER)
    reply = await production_client(query, token=viewer.token)
    assert reply.status == 200
    [error] = reply.errors
    assert "nested too deeply" in error["message"]
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": "nesting"}


async def test_a_document_with_over_a_hundred_errors_is_refused_with_a_code(
    production_client: GraphQLClient, accounts: Accounts
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    reply = await production_client(
        "{ " + " ".join(f"f{n}" for n in range(101)) + " }", token=viewer.token
    )
    assert reply.status == 200
    *_, aborted = reply.errors
    assert "Validation aborted" in aborted["message"]
    assert aborted["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_validation_aborted_on_shared_fragment_work_has_a_code(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """graphql-core bounds the work spent walking fragments (50,000 steps); a small
    budget reaches that bound with a small document, and the validation cache misses."""
    monkeypatch.setattr(validation_context, "MAX_FRAGMENT_WORK", 3)
    reply = await client(
        "query A { ...F } query B { ...F ...G }"
        " fragment F on Query { ...G ...G ...G } fragment G on Query { me { role } }"
    )
    [error] = reply.errors
    assert error["message"] == "Validation aborted."
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


# -- aliases -------------------------------------------------------------------------

THREE_ALIASES = "{ a: me { role } b: me { role } c: me { role } }"
FOUR_ALIASES = "{ a: me { role } b: me { role } c: me { role } d: me { r: role } }"
ALIASES_IN_A_FRAGMENT_SPREAD_TWICE = """
{ a: me { ...Roles } b: me { ...Roles } }
fragment Roles on Viewer { r: role }
"""


async def test_a_query_at_the_alias_limit_runs_and_one_alias_more_is_refused(
    db: Database, settings: Settings
) -> None:
    async with app_client(db, settings, max_aliases=3) as client:
        assert set((await client(THREE_ALIASES)).data) == {"a", "b", "c"}
        error = limit_error(await client(FOUR_ALIASES), "maxAliases", 3)
        assert error["extensions"]["actual"] == 5


async def test_aliases_count_once_per_fragment_spread(db: Database, settings: Settings) -> None:
    async with app_client(db, settings, max_aliases=3) as client:
        error = limit_error(await client(ALIASES_IN_A_FRAGMENT_SPREAD_TWICE), "maxAliases", 3)
        assert error["extensions"]["actual"] == 4


async def test_a_fragment_bomb_is_checked_without_expanding_it(client: GraphQLClient) -> None:
    """Each fragment spreads the next twice: 2**40 aliases once expanded. The check is
    memoised per fragment, so it answers at once instead of walking them all."""
    fragments = "".join(
        f"fragment F{n} on Viewer {{ ...F{n + 1} ...F{n + 1} }}\n" for n in range(40)
    )
    query = "{ me { ...F0 } }\n" + fragments + "fragment F40 on Viewer { r: role }"
    reply = await client(query)
    assert reply.status == 200
    [error] = [e for e in reply.errors if e.get("extensions", {}).get("code") == "LIMIT_EXCEEDED"]
    assert error["extensions"]["actual"] == 2**40


# -- tokens --------------------------------------------------------------------------


def roles_query(tokens: int) -> str:
    """``query { me { role role ... } }``: six tokens around the repeated field."""
    return "query { me { " + "role " * (tokens - 6) + "} }"


async def test_a_document_at_the_token_limit_runs_and_one_token_more_is_refused(
    db: Database, settings: Settings
) -> None:
    async with app_client(db, settings, max_tokens=100) as client:
        assert (await client(roles_query(100))).data == {"me": {"role": "VIEWER"}}
        error = limit_error(await client(roles_query(101)), "maxTokens", 100)
        assert "more than 100 tokens" in error["message"]


async def test_comments_count_as_tokens(db: Database, settings: Settings) -> None:
    padded = "query { me { role } }\n" + "# padding\n" * 200
    async with app_client(db, settings, max_tokens=100) as client:
        limit_error(await client(padded), "maxTokens", 100)


# -- cost ----------------------------------------------------------------------------

# Cost: the objects a response may hold. A connection is one object and its edges or
# nodes hold `first` each; any other list is taken to hold 20.
COST_21 = "{ services(first: 10) { nodes { slug ownerTeam { slug } } } }"  # 1 + 10 * 2
COST_23 = "{ services(first: 11) { nodes { slug ownerTeam { slug } } } }"  # 1 + 11 * 2
NESTED_LIST_COST_45 = (  # 1 + 2 * (node 1 + ownerTeam 1 + 20 members)
    "{ services(first: 2) { nodes { ownerTeam { members { username } } } } }"
)
PAGE_FROM_A_VARIABLE = "query($n: Int) { services(first: $n) { nodes { slug } } }"
EDGES_AND_PAGE_INFO = (  # 1 + 10 edges + 10 nodes + 1 pageInfo
    "{ services(first: 10) { edges { cursor node { slug } } pageInfo { hasNextPage } } }"
)


async def test_a_query_at_the_cost_limit_runs_and_a_costlier_one_is_refused(
    db: Database, settings: Settings
) -> None:
    async with app_client(db, settings, max_query_cost=22) as client:
        assert (await client(COST_21)).data == {"services": {"nodes": []}}
        error = limit_error(await client(COST_23), "maxQueryCost", 22)
        assert error["extensions"]["actual"] == 23
        assert "first" in error["message"]


@pytest.mark.parametrize(
    ("query", "cost"),
    [(NESTED_LIST_COST_45, 45), (EDGES_AND_PAGE_INFO, 22), (PAGE_FROM_A_VARIABLE, 101)],
)
async def test_cost_counts_every_object_a_response_may_hold(
    db: Database, settings: Settings, query: str, cost: int
) -> None:
    """Nested lists multiply; a page size given by a variable counts as the largest page,
    since validation (and its cache) cannot see variables."""
    async with app_client(db, settings, max_query_cost=cost) as client:
        (await client(query, {"n": 1})).data  # noqa: B018 - asserts no errors
    async with app_client(db, settings, max_query_cost=cost - 1) as client:
        error = limit_error(await client(query, {"n": 1}), "maxQueryCost", cost - 1)
        assert error["extensions"]["actual"] == cost


async def test_the_default_cost_limit_refuses_lists_nested_in_lists(
    client: GraphQLClient,
) -> None:
    fan_out = """
    { services(first: 100) { nodes { ownerTeam { members { teams { members { username } } } } } } }
    """
    error = limit_error(await client(fan_out), "maxQueryCost", Settings().max_query_cost)
    assert error["extensions"]["actual"] == 1 + 100 * (2 + 20 * (1 + 20 * (1 + 20)))


WEIGHED_TWICE = """{ knowledgeReport(window: {start: "2026-02-01T00:00:00Z", end: "2026-03-01T00:00:00Z"})
{ a: possibleDuplicates(first: 1) { overlap } b: possibleDuplicates(first: 1) { overlap } } }"""


async def test_a_field_with_a_cost_of_its_own_counts_it_once_per_alias(
    db: Database, settings: Settings
) -> None:
    """The duplicates section may query the index fifty times however few pairs it lists."""
    once = REPORT_SECTION_COST + 1  # its weight, and the one pair it lists
    async with app_client(db, settings, max_query_cost=2 * once) as client:
        error = limit_error(await client(WEIGHED_TWICE), "maxQueryCost", 2 * once)
        assert error["extensions"]["actual"] == 1 + 2 * once


# -- page size -----------------------------------------------------------------------

PAGE = "query($first: Int) { services(first: $first) { nodes { slug } } }"


@pytest.mark.parametrize("production", [False, True])
async def test_a_page_of_100_is_served_and_101_is_refused_naming_the_maximum(
    db: Database, settings: Settings, accounts: Accounts, production: bool
) -> None:
    env = Environment.PRODUCTION if production else Environment.DEVELOPMENT
    viewer = await accounts.create(Role.VIEWER)
    async with app_client(db, settings, env=env) as client:
        assert (await client(PAGE, {"first": 100}, token=viewer.token)).data
        for query, variables in (
            (PAGE, {"first": 101}),
            ("{ services(first: 101) { nodes { slug } } }", {}),
            (PAGE, {"first": -1}),
        ):
            reply = await client(query, variables, token=viewer.token)
            [error] = reply.errors
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert error["extensions"]["field"] == "first"
        assert (
            "first is at most 100"
            in (await client(PAGE, {"first": 101}, token=viewer.token)).errors[0]["message"]
        )


async def test_an_absurd_page_size_literal_is_a_validation_error(client: GraphQLClient) -> None:
    for digits in ("9" * 12, "9" * 5_000):
        reply = await client("{ services(first: " + digits + ") { nodes { slug } } }")
        [error] = reply.errors
        assert "Int" in error["message"]


# -- body size -----------------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A valid GraphQL request of exactly ``size`` bytes (padded with ignored spaces)."""
    empty = json.dumps({"query": "{ me { role } }"}).encode()
    padded = json.dumps({"query": "{ me { role } }" + " " * (size - len(empty))}).encode()
    assert len(padded) == size
    return padded


async def test_a_body_at_the_limit_is_served_and_one_byte_more_gets_413(
    db: Database, settings: Settings
) -> None:
    headers = {"Content-Type": "application/json"}
    async with app_http(db, settings, max_body_bytes=1_000) as http:
        served = await http.post("/graphql", content=body_of(1_000), headers=headers)
        assert served.status_code == 200
        assert served.json()["data"] == {"me": {"role": "VIEWER"}}
        refused = await http.post("/graphql", content=body_of(1_001), headers=headers)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/json"
    [error] = refused.json()["errors"]
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": "maxBodyBytes", "max": 1_000}


async def test_a_streamed_body_without_length_is_counted_as_it_arrives(
    db: Database, settings: Settings
) -> None:
    received: list[int] = []

    def stream(body: bytes, chunk: int = 100) -> Callable[[], AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), chunk):
                received.append(start)
                yield body[start : start + chunk]

        return chunks

    headers = {"Content-Type": "application/json"}
    async with app_http(db, settings, max_body_bytes=1_000) as http:
        served = await http.post("/graphql", content=stream(body_of(900))(), headers=headers)
        assert "content-length" not in served.request.headers
        assert served.status_code == 200
        assert served.json()["data"] == {"me": {"role": "VIEWER"}}
        refused = await http.post("/graphql", content=stream(body_of(50_000))(), headers=headers)
    assert refused.status_code == 413
    assert refused.json()["errors"][0]["extensions"]["limit"] == "maxBodyBytes"


async def test_the_default_body_limit_is_a_megabyte(client: GraphQLClient) -> None:
    reply = await client.http.post(
        "/graphql", content=body_of(1_000_001), headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 413
    assert reply.json()["errors"][0]["extensions"]["max"] == 1_000_000


# -- introspection -------------------------------------------------------------------

INTROSPECT = "{ __schema { queryType { name } } }"


@pytest.mark.parametrize(
    ("env", "introspection", "allowed"),
    [
        (Environment.DEVELOPMENT, None, True),
        (Environment.PRODUCTION, None, False),
        (Environment.PRODUCTION, True, True),
        (Environment.DEVELOPMENT, False, False),
    ],
)
async def test_introspection_is_on_in_development_and_off_in_production_by_default(
    db: Database,
    settings: Settings,
    accounts: Accounts,
    env: Environment,
    introspection: bool | None,
    allowed: bool,
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    async with app_client(db, settings, env=env, introspection=introspection) as client:
        reply = await client(INTROSPECT, token=viewer.token)
        typename = await client("{ __typename me { role } }", token=viewer.token)
    assert typename.data["__typename"] == "Query"
    if allowed:
        assert reply.data == {"__schema": {"queryType": {"name": "Query"}}}
    else:
        assert reply.error_codes == ["INTROSPECTION_DISABLED"]
        assert "Introspection is disabled" in reply.errors[0]["message"]


# -- the validation cache still works -------------------------------------------------


async def test_a_repeated_query_is_validated_once(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit rules are built once per schema: rules built per request would make
    strawberry's ValidationCache miss every time (strawberry issue #4635)."""
    calls: list[object] = []
    validate = strawberry_schema.validate

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting_validate)
    query = "query ValidatedOnce { me { role } services(first: 3) { nodes { slug } } }"
    for _ in range(3):
        assert (await client(query)).data["me"] == {"role": "VIEWER"}
    assert len(calls) == 1


# -- configuration -------------------------------------------------------------------


def test_the_limits_have_defaults_and_are_read_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.max_query_depth,
        defaults.max_aliases,
        defaults.max_tokens,
        defaults.max_query_cost,
        defaults.max_body_bytes,
    ) == (12, 30, 2_000, 100_000, 1_000_000)
    assert defaults.introspection_enabled
    assert not defaults.replace(env=Environment.PRODUCTION).introspection_enabled
    settings = Settings.from_env(
        {
            "KNOWNFIX_MAX_QUERY_DEPTH": "8",
            "KNOWNFIX_MAX_ALIASES": "0",
            "KNOWNFIX_MAX_TOKENS": "500",
            "KNOWNFIX_MAX_QUERY_COST": "5000",
            "KNOWNFIX_MAX_BODY_BYTES": "65536",
            "KNOWNFIX_ENV": "production",
            "KNOWNFIX_INTROSPECTION": "on",
        }
    )
    assert (
        settings.max_query_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.max_query_cost,
        settings.max_body_bytes,
    ) == (8, 0, 500, 5000, 65536)
    assert settings.introspection_enabled


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("KNOWNFIX_MAX_QUERY_DEPTH", "deep", "expected a whole number"),
        ("KNOWNFIX_MAX_QUERY_DEPTH", "0", "between 1 and 100"),
        ("KNOWNFIX_MAX_QUERY_DEPTH", "101", "between 1 and 100"),
        ("KNOWNFIX_MAX_ALIASES", "-1", "expected a whole number"),
        ("KNOWNFIX_MAX_TOKENS", "10", "between 100 and"),
        ("KNOWNFIX_MAX_QUERY_COST", "1e6", "expected a whole number"),
        ("KNOWNFIX_MAX_BODY_BYTES", "1MB", "expected a whole number"),
        ("KNOWNFIX_INTROSPECTION", "maybe", "expected true or false"),
    ],
)
def test_a_bad_limit_names_its_variable(variable: str, value: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert complaint in str(raised.value)
