"""Fuzzing: thousands of queries and mutations generated from the schema, sent through
the real app as an admin and anonymously, must never make the server fail.

hypothesis-graphql builds valid operations (and some with one deliberate schema
violation) from ``schema.graphql``; ids are drawn mostly from the rows the demo data
created, so resolvers and mutations get past id parsing and reach the database.
Every reply must be a GraphQL response (an object with ``data`` and/or ``errors``,
each error with a message), never a 5xx, never an unexpected error: nothing logged at
ERROR under ``knownfix`` (``knownfix.graphql`` logs every unexpected GraphQL error, and
``knownfix.search`` a failed index write) and no error coded ``INTERNAL_SERVER_ERROR``.
``--hypothesis-show-statistics`` shows what kinds of replies the run got.

The run is derandomised, so CI sees the same operations every time. It is bounded for
CI (``DEFAULT_EXAMPLES`` operations over the two tests); for a longer hunt set
``KNOWNFIX_FUZZ_EXAMPLES``, e.g. ``KNOWNFIX_FUZZ_EXAMPLES=50000``, and optionally
``KNOWNFIX_FUZZ_SEED`` to explore other operations.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
from collections.abc import Iterator
from typing import Any

import graphql
import hypothesis_graphql
import pytest
import sqlalchemy as sa
import whoosh.util
from hypothesis import HealthCheck, Phase, event, given, seed, settings
from hypothesis import strategies as st

from api.relay import MAX_INT, MIN_INT, to_cursor, to_global_id
from api.schema import schema as knownfix_schema
from knowledge.accounts.models import ApiToken, Team, User
from knowledge.accounts.roles import Role
from knowledge.articles.models import Article
from knowledge.catalog.models import Service
from knowledge.db import Database
from knowledge.demo import loader
from knowledge.incidents.models import Incident
from knowledge.known_errors.models import KnownError
from tests.support import Accounts, GraphQLClient

DEFAULT_EXAMPLES = 2_000
EXAMPLES = int(os.environ.get("KNOWNFIX_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES)
SEED = int(os.environ.get("KNOWNFIX_FUZZ_SEED") or 0)
# Half queries, half mutations; each is sent twice, as an admin and anonymously.
PER_TEST = max(EXAMPLES // 2, 1)

SCHEMA = graphql.build_schema(knownfix_schema.as_str())
# Types whose ids clients send; IncidentEvent ids are only ever shown.
ID_TYPES = {
    "User": User,
    "Team": Team,
    "Service": Service,
    "Article": Article,
    "KnownError": KnownError,
    "Incident": Incident,
    "ApiToken": ApiToken,
}
GARBAGE_IDS = ["", "!!!", "x" * 300, to_global_id("Nope", 1), to_global_id("Service", 2**31 - 1)]
WORDS = [
    "payments-api",
    "checkout-web",
    "orders-db",
    "postgres-too-many-connections",
    "redis-maxmemory-oom",
    "disk full",
    "too many connections",
    "connection refused timeout 502",
    "title:postgres",
    "KE-1",
    "INC-1",
    "admin-1",
    "*",
    '"unterminated',
]
DATES = [
    "2024-01-01T00:00:00+00:00",
    "2999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-14:00",
    "2024-01-01T00:00:00",  # naive
    "2024-02-30",
    "yesterday",
]
FUZZ_SETTINGS = settings(
    derandomize=SEED == 0,
    database=None,
    deadline=None,
    max_examples=PER_TEST,
    suppress_health_check=list(HealthCheck),
    # Shrinking replays operations against a database the earlier ones changed: slow and
    # flaky. A failure names the operation that failed instead.
    phases=[Phase.explicit, Phase.generate],
)


def string(value: str) -> graphql.StringValueNode:
    return graphql.StringValueNode(value=value)


def id_values(keys: dict[str, list[int]]) -> st.SearchStrategy[graphql.ValueNode]:
    """Mostly ids of rows that exist; also ids of nothing, of other types, and garbage."""
    known = [to_global_id(name, key) for name, found in keys.items() for key in found]
    assert known, keys
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        st.sampled_from(known),
        st.builds(
            to_global_id, st.sampled_from([*ID_TYPES, "IncidentEvent"]), st.integers(100, 500)
        ),
        st.sampled_from(GARBAGE_IDS),
        st.builds(to_cursor, st.integers(1, 100)),
        st.text(max_size=20),
    ).map(string)


def date_values() -> st.SearchStrategy[graphql.ValueNode]:
    aware = st.datetimes(
        min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14))]),
    ).map(lambda moment: moment.isoformat())
    return st.one_of(aware, st.sampled_from(DATES), st.text(max_size=10)).map(string)


def int_values() -> st.SearchStrategy[graphql.ValueNode]:
    """Mostly page sizes and counts a client would send, often the edges, some anything."""
    return st.one_of(
        st.integers(0, 25),
        st.integers(0, 25),
        st.sampled_from([-1, 1, 5, 100, 101, MIN_INT, MAX_INT]),
        st.integers(MIN_INT, MAX_INT),
    ).map(lambda n: graphql.IntValueNode(value=str(n)))


def string_values() -> st.SearchStrategy[graphql.ValueNode]:
    """Any text, and words the demo data holds (slugs, search terms), and cursors."""
    return st.one_of(
        st.text(max_size=40),
        st.sampled_from(WORDS),
        st.sampled_from(WORDS),
        st.from_regex(r"[a-z][a-z0-9-]{1,20}", fullmatch=True),
        st.builds(to_cursor, st.integers(1, 60)),
    ).map(string)


def operations(kind: str, keys: dict[str, list[int]]) -> st.SearchStrategy[str]:
    """Valid operations on one root field each (small documents are quick to generate and
    to serve, so more of them fit in the time); one in five has a schema violation."""
    generate = hypothesis_graphql.queries if kind == "query" else hypothesis_graphql.mutations
    root = SCHEMA.query_type if kind == "query" else SCHEMA.mutation_type
    assert root is not None
    scalars: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
        "ID": id_values(keys),
        "DateTime": date_values(),
        "Int": int_values(),
        "String": string_values(),
    }
    by_field = [
        generate(SCHEMA, fields=[name], custom_scalars=scalars) for name in sorted(root.fields)
    ]
    # A violation is generated along one path from the root: small already.
    invalid = generate(SCHEMA, custom_scalars=scalars, mode=hypothesis_graphql.Mode.NEGATIVE)
    valid = st.sampled_from(by_field).flatmap(lambda strategy: strategy)
    return st.integers(0, 4).flatmap(lambda n: invalid if n == 0 else valid)


class Failures(logging.Handler):
    """Collects what the app logs at ERROR: an unexpected error is always logged."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        taken = [self.format(record) for record in self.records]
        self.records.clear()
        return taken


@pytest.fixture(autouse=True)
def whoosh_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis seeds the global ``random`` the same way for every example, and Whoosh
    names new segments with it: the second commit would collide with the first."""
    monkeypatch.setattr(whoosh.util, "random", random.SystemRandom())


@pytest.fixture
def failures() -> Iterator[Failures]:
    handler = Failures()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    watched = logging.getLogger("knownfix")
    watched.addHandler(handler)
    try:
        yield handler
    finally:
        watched.removeHandler(handler)


@pytest.fixture
async def world(db: Database, accounts: Accounts) -> dict[str, Any]:
    """The demo data, an admin token, and the keys of every row an id can name."""
    async with db.transaction() as session:
        await loader.load(session)
    admin = await accounts.create(Role.ADMIN)
    async with db.transaction() as session:
        keys = {
            name: list(await session.scalars(sa.select(model.id).order_by(model.id)))
            for name, model in ID_TYPES.items()
        }
    # Not the fuzzer's own account: demoting or revoking it would leave every later
    # admin request refused, and the rest of the run would test nothing but that.
    keys["User"].remove(admin.id)
    keys["ApiToken"].remove(admin.token_id)
    return {"token": admin.token, "keys": keys}


def assert_graphql_response(status: int, body: Any, query: str) -> None:
    """Not a server error, and a GraphQL response: data and/or errors, each with a message."""
    context = f"HTTP {status} for:\n{query}\n{body}"
    assert status < 500, context
    assert isinstance(body, dict), context
    assert "data" in body or "errors" in body, context
    assert set(body) <= {"data", "errors", "extensions"}, context
    if "errors" in body:
        assert isinstance(body["errors"], list), context
        assert body["errors"] or body.get("data") is not None, context
        for error in body["errors"]:
            assert isinstance(error, dict), context
            assert isinstance(error.get("message"), str), context
            assert error["message"], context
            code = (error.get("extensions") or {}).get("code")
            assert code != "INTERNAL_SERVER_ERROR", context
    if "data" in body:
        assert body["data"] is None or isinstance(body["data"], dict), context


def outcome(body: dict[str, Any]) -> str:
    """A label for the statistics (``--hypothesis-show-statistics``): what kind of reply."""
    errors = body.get("errors") or []
    if not errors:
        return "data"
    codes = sorted({(e.get("extensions") or {}).get("code") or "no code" for e in errors})
    return ("partial " if body.get("data") else "") + ", ".join(codes)


async def send_everywhere(
    client: GraphQLClient, failures: Failures, token: str, query: str
) -> None:
    for who, headers in (("admin", {"Authorization": f"Bearer {token}"}), ("anonymous", {})):
        reply = await client.http.post("/graphql", json={"query": query}, headers=headers)
        try:
            body = reply.json()
        except ValueError:
            pytest.fail(f"HTTP {reply.status_code}, not JSON, for:\n{query}\n{reply.text[:500]}")
        assert_graphql_response(reply.status_code, body, query)
        logged = failures.take()
        assert not logged, f"unexpected errors logged for:\n{query}\n" + "\n".join(logged)
        event(f"{who}: {outcome(body)}")


def fuzz(kind: str) -> Any:
    """A test of ``kind`` operations over the ``world`` the test's fixtures built."""

    @FUZZ_SETTINGS
    @given(data=st.data())
    async def test(
        client: GraphQLClient, world: dict[str, Any], failures: Failures, data: st.DataObject
    ) -> None:
        if kind not in world:  # built once: the keys are the same for every example
            world[kind] = operations(kind, world["keys"])
        query = data.draw(world[kind], label=kind)
        await send_everywhere(client, failures, world["token"], query)

    return seed(SEED)(test) if SEED else test


test_generated_queries_never_fail = fuzz("query")
test_generated_mutations_never_fail = fuzz("mutation")
