"""The response cache of read queries: what it serves again, and what it never does.

A cached answer is observable by the SQL it does not run: a hit reads only the data
version, on a connection of its own (knowledge.db.DataVersionReader), and runs no
statement through the app's engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette

from api.app import create_app
from api.relay import to_global_id
from api.response_cache import ResponseCache
from knowledge.accounts.roles import Role
from knowledge.articles.service import Transition
from knowledge.clock import ManualClock
from knowledge.config import Settings
from knowledge.db import Database
from tests.api.test_articles import ARTICLE, draft_article, move
from tests.api.test_dataloaders import counting_statements
from tests.conftest import http_client
from tests.support import Account, Accounts, GraphQLClient, Response

# The realistic list query of bench/graphql.py.
INCIDENT_LIST = """
query IncidentList($first: Int!) {
  incidents(first: $first) {
    nodes {
      id number title status priority detectedAt
      service { slug name }
      assignee { username displayName }
      suggestions { rank score article { slug } }
    }
  }
}
"""
REPORT = """mutation($input: ReportIncidentInput!) {
  reportIncident(input: $input) { __typename ... on Incident { id number } } }"""
SERVICES = "{ services(first: 20) { nodes { id slug name version } } }"
CREATE_SERVICE = """mutation($input: CreateServiceInput!) {
  createService(input: $input) { __typename ... on Service { id version } } }"""
UPDATE_SERVICE = """mutation($input: UpdateServiceInput!) {
  updateService(input: $input) { __typename ... on Service { name version } } }"""
ME = "{ me { role user { username } } }"
SLA = "query($first: Int!) { incidents(first: $first) { nodes { number sla { breached } } } }"


@asynccontextmanager
async def running(
    db: Database, settings: Settings, clock: ManualClock | None = None
) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
    """Another app on ``db``: another process, when ``db`` is a Database of its own."""
    app = create_app(settings, db=db, clock=clock)
    async with app.router.lifespan_context(app), http_client(app) as http:
        yield app, GraphQLClient(http)


async def statements_of(
    app: Starlette, db: Database, client: GraphQLClient, query: str, **kw: Any
) -> tuple[Response, list[str]]:
    """The response, and the SQL statements the request ran (the app's background
    followers paused, so that only the request's own statements count)."""
    async with app.state.indexer.paused(), app.state.events.paused():
        with counting_statements(db) as statements:
            response = await client(query, **kw)
    return response, statements


def answered_from_the_cache(statements: list[str]) -> bool:
    return statements == []


@pytest.fixture
async def admin(accounts: Accounts) -> Account:
    return await accounts.create(Role.ADMIN, "ada")


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER, "kim")


async def report(client: GraphQLClient, token: str, title: str) -> str:
    data = (await client(REPORT, {"input": {"title": title}}, token=token)).data
    assert data["reportIncident"]["__typename"] == "Incident", data
    number: str = data["reportIncident"]["number"]
    return number


async def create_service(client: GraphQLClient, token: str, slug: str) -> dict[str, Any]:
    data = (await client(CREATE_SERVICE, {"input": {"slug": slug, "name": slug}}, token=token)).data
    assert data["createService"]["__typename"] == "Service", data
    service: dict[str, Any] = data["createService"]
    return service


async def test_a_repeated_list_query_is_answered_without_running_it_again(
    app: Starlette, db: Database, client: GraphQLClient, admin: Account
) -> None:
    # given a page of incidents, read once
    for n in range(3):
        await report(client, admin.token, f"Checkout returns 502 ({n})")
    first, ran = await statements_of(
        app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
    )
    assert len(first.data["incidents"]["nodes"]) == 3
    assert len(ran) > 1
    # when the same request comes again
    again, ran_again = await statements_of(
        app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
    )
    # then it gets the same answer, without a query
    assert again.body == first.body
    assert answered_from_the_cache(ran_again), ran_again
    assert app.state.response_cache.hits == 1


async def test_other_variables_are_another_entry(
    app: Starlette, db: Database, client: GraphQLClient, admin: Account
) -> None:
    for n in range(3):
        await report(client, admin.token, f"Queue backlog ({n})")
    await client(INCIDENT_LIST, {"first": 3}, token=admin.token)
    two, ran = await statements_of(
        app, db, client, INCIDENT_LIST, variables={"first": 2}, token=admin.token
    )
    assert len(two.data["incidents"]["nodes"]) == 2
    assert not answered_from_the_cache(ran)


@pytest.mark.parametrize("write", ["report an incident", "rename a service"])
async def test_a_mutation_through_the_api_is_seen_by_the_next_query(
    app: Starlette, db: Database, client: GraphQLClient, admin: Account, write: str
) -> None:
    # given a cached list of incidents and a cached list of services
    await report(client, admin.token, "Login page is blank")
    service = await create_service(client, admin.token, "checkout")
    for _ in range(2):
        incidents_before = (await client(INCIDENT_LIST, {"first": 20}, token=admin.token)).data
        services_before = (await client(SERVICES, token=admin.token)).data
    assert app.state.response_cache.hits == 2
    # when a mutation changes one of them
    if write == "report an incident":
        await report(client, admin.token, "Search times out")
    else:
        renamed = await client(
            UPDATE_SERVICE,
            {"input": {"id": service["id"], "expectedVersion": service["version"], "name": "Pay"}},
            token=admin.token,
        )
        assert renamed.data["updateService"]["name"] == "Pay"
    # then both are read afresh, and show the change
    incidents_after, ran = await statements_of(
        app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
    )
    services_after = (await client(SERVICES, token=admin.token)).data
    assert not answered_from_the_cache(ran)
    if write == "report an incident":
        titles = [n["title"] for n in incidents_after.data["incidents"]["nodes"]]
        assert titles == ["Search times out", "Login page is blank"]
        assert services_after == services_before
    else:
        assert incidents_after.data == incidents_before
        assert [s["name"] for s in services_after["services"]["nodes"]] == ["Pay"]


async def test_a_write_by_another_process_on_the_same_database_is_seen(
    app: Starlette, db: Database, client: GraphQLClient, settings: Settings, admin: Account
) -> None:
    # given a list of incidents cached by this process
    await report(client, admin.token, "Disk full on the build agents")
    for _ in range(2):
        await client(INCIDENT_LIST, {"first": 20}, token=admin.token)
    assert app.state.response_cache.hits == 1
    # when another process (its own engine and cache) reports an incident
    other_db = Database(settings.database_url)
    try:
        async with running(other_db, settings) as (_, other_client):
            await report(other_client, admin.token, "Payments are declined")
    finally:
        await other_db.dispose()
    # then this process answers with it
    after, ran = await statements_of(
        app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
    )
    titles = [n["title"] for n in after.data["incidents"]["nodes"]]
    assert titles == ["Payments are declined", "Disk full on the build agents"]
    assert not answered_from_the_cache(ran)


async def test_callers_who_may_see_different_things_never_share_an_entry(
    client: GraphQLClient, db: Database, accounts: Accounts, manager: Account
) -> None:
    # given a draft, which a knowledge manager sees and a viewer does not
    gid = to_global_id("Article", await draft_article(db))
    viewer = await accounts.create(Role.VIEWER, "vic")
    for _ in range(2):
        seen = (await client(ARTICLE, {"id": gid}, token=manager.token)).data
        assert seen["article"]["id"] == gid
    # then neither a viewer nor an anonymous caller gets the manager's answer
    assert (await client(ARTICLE, {"id": gid}, token=viewer.token)).data["article"] is None
    assert (await client(ARTICLE, {"id": gid})).data["article"] is None
    # and two viewers each see themselves
    other = await accounts.create(Role.VIEWER, "val")
    for account in (viewer, other, viewer, other):
        me = (await client(ME, token=account.token)).data["me"]
        assert me["user"]["username"] == account.username


async def test_a_published_article_is_seen_once_published(
    client: GraphQLClient, db: Database, accounts: Accounts
) -> None:
    # The publication is a write by the system, not through this app.
    article_id = await draft_article(db)
    gid = to_global_id("Article", article_id)
    viewer = await accounts.create(Role.VIEWER, "vic")
    for _ in range(2):
        assert (await client(ARTICLE, {"id": gid}, token=viewer.token)).data["article"] is None
    await move(db, article_id, Transition.PUBLISH)
    assert (await client(ARTICLE, {"id": gid}, token=viewer.token)).data["article"]["id"] == gid


async def test_answers_with_errors_are_not_kept(
    app: Starlette, db: Database, client: GraphQLClient, admin: Account
) -> None:
    bad_id = to_global_id("Service", 1)  # not an incident's id
    query = "query($id: ID!) { incident(id: $id) { number } }"
    for _ in range(2):
        assert (await client(query, {"id": bad_id}, token=admin.token)).errors
    assert len(app.state.response_cache) == 0
    denied = "{ articles(filter: {statuses: [DRAFT]}) { nodes { id } } }"
    for _ in range(2):
        assert (await client(denied)).error_codes == ["FORBIDDEN"]
    assert len(app.state.response_cache) == 0
    assert app.state.response_cache.hits == 0


async def test_mutations_are_never_served_again(client: GraphQLClient, admin: Account) -> None:
    first = await report(client, admin.token, "Same words twice")
    second = await report(client, admin.token, "Same words twice")
    assert first != second


async def test_answers_that_depend_on_the_time_are_not_kept(
    app: Starlette, client: GraphQLClient, clock: ManualClock, admin: Account
) -> None:
    # given an incident within its SLA
    await report(client, admin.token, "Nightly export is late")
    before = (await client(SLA, {"first": 20}, token=admin.token)).data
    assert before["incidents"]["nodes"][0]["sla"]["breached"] is False
    # when its deadlines pass, with no write in between
    clock.advance(days=30)
    # then the same query says so
    after = (await client(SLA, {"first": 20}, token=admin.token)).data
    assert after["incidents"]["nodes"][0]["sla"]["breached"] is True
    assert len(app.state.response_cache) == 0


async def test_answers_that_read_the_search_index_are_not_kept(
    app: Starlette, client: GraphQLClient
) -> None:
    query = '{ search(query: "disk full") { totalCount } }'
    for _ in range(2):
        (await client(query)).data  # noqa: B018 - no errors
    assert len(app.state.response_cache) == 0


async def test_the_cache_can_be_switched_off(
    db: Database, settings: Settings, admin: Account
) -> None:
    async with running(db, settings.replace(response_cache_bytes=0)) as (app, client):
        assert app.state.response_cache is None
        await report(client, admin.token, "Webhooks are delayed")
        for _ in range(2):
            _, ran = await statements_of(
                app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
            )
            assert len(ran) > 1


async def test_a_response_over_the_entry_limit_is_not_kept(
    db: Database, settings: Settings, admin: Account
) -> None:
    small = settings.replace(response_cache_entry_bytes=2_000)
    async with running(db, small) as (app, client):
        for n in range(20):
            await report(client, admin.token, f"A long enough title for incident number {n}")
        big, ran_big = await statements_of(
            app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
        )
        assert len(big.body.__repr__()) > 2_000
        for _ in range(2):
            _, ran = await statements_of(
                app, db, client, INCIDENT_LIST, variables={"first": 20}, token=admin.token
            )
            assert len(ran) == len(ran_big)
        # while a small answer is kept
        for _ in range(2):
            _, ran = await statements_of(
                app, db, client, INCIDENT_LIST, variables={"first": 1}, token=admin.token
            )
        assert answered_from_the_cache(ran)


def test_it_holds_at_most_its_bytes_dropping_the_least_recently_used() -> None:
    cache = ResponseCache(max_bytes=3 * 1_400, max_entry_bytes=2_000)
    for n in range(3):
        assert cache.put(n, 1, b"x" * 1_000, [])
    assert cache.get(0, 1) is not None  # 0 is now the most recently used
    assert cache.put(3, 1, b"x" * 1_000, [])
    assert [n for n in range(4) if cache.get(n, 1) is not None] == [0, 2, 3]
    assert cache.size <= cache.max_bytes
    assert not cache.put(4, 1, b"x" * 2_000, [])  # over the entry limit


def test_a_newer_version_empties_it_and_older_answers_are_not_stored() -> None:
    cache = ResponseCache(max_bytes=100_000, max_entry_bytes=10_000)
    assert cache.put("q", 5, b"old", [])
    assert cache.get("q", 5) == (b"old", [])
    assert cache.get("q", 6) is None  # a write committed since
    assert len(cache) == 0
    assert not cache.put("q", 5, b"computed before that write", [])
    assert cache.get("q", 6) is None
