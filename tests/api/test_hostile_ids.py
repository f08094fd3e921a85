"""Global ids and cursors come back from clients: garbage, forgeries and ids of the wrong
type get a clear error (or, for a well-formed id of nothing, null), never a crash.

Every reply is checked for what an unexpected error would look like: an error with no
code, or INTERNAL_SERVER_ERROR in production.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from api.relay import to_cursor, to_global_id
from knowledge.accounts import service as accounts_service
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.catalog import service as catalog
from knowledge.db import Database
from tests.support import Accounts, GraphQLClient, Response


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def sort_cursor(payload: Any) -> str:
    return b64("sort:" + json.dumps(payload))


MALFORMED = [
    "",
    "!!!",
    "not an id",
    "a" * 5_000,
    "Ïñ",
    "\u0000",
    "====",
    b64("garbage"),
    b64("Service"),
    b64("Service:"),
    b64("Service:abc"),
    b64("Service:0"),
    b64("Service:-1"),
    b64("Service:1.5"),
    b64("Service: 1"),
    b64("Service:\uff11"),  # a full-width digit: isdigit() says yes
    b64("Service:1:2"),
    b64(":1"),
    b64("Nope:1"),
    b64("Service:99999999999999999999999"),
    b64("Service:9223372036854775807"),  # fits 64 bits, not the 32-bit key columns
    b64("Service:2147483648"),
    b64("cursor:1"),
    base64.b64encode(b"\xff\xfe\x00garbage").decode(),
]
# Well-formed ids of objects that do not exist: null, not an error.
ABSENT = [b64("Service:2147483647"), b64("Incident:424242"), b64("ApiToken:1")]


def assert_clear(reply: Response) -> list[str]:
    """No crash: HTTP 200 and every error carries a code a client can act on."""
    assert reply.status == 200, reply.body
    codes = [e.get("extensions", {}).get("code") for e in reply.body.get("errors") or []]
    assert all(code and code != "INTERNAL_SERVER_ERROR" for code in codes), reply.body
    return codes


@pytest.fixture
async def seeded(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        team = await accounts_service.create_team(
            session=session, principal=SYSTEM, slug="payments", name="Payments"
        )
        user = await accounts_service.create_user(session=session, principal=SYSTEM, username="ann")
        service = await catalog.create(
            session=session, principal=SYSTEM, slug="checkout", name="Checkout"
        )
    return {"team": team.id, "user": user.id, "service": service.id}


# -- node(id:) and friends -----------------------------------------------------------

NODE = "query($id: ID!) { node(id: $id) { id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
SERVICE = "query($id: ID!) { service(id: $id) { slug } }"


@pytest.mark.parametrize("value", MALFORMED)
async def test_a_malformed_global_id_is_bad_user_input(client: GraphQLClient, value: str) -> None:
    for query, variables in ((NODE, {"id": value}), (NODES, {"ids": [value]})):
        reply = await client(query, variables)
        assert assert_clear(reply) == ["BAD_USER_INPUT"]
        assert "is not a valid id" in reply.errors[0]["message"]


@pytest.mark.parametrize("value", ABSENT)
async def test_a_well_formed_id_of_nothing_is_null(client: GraphQLClient, value: str) -> None:
    reply = await client(NODE, {"id": value})
    assert assert_clear(reply) == []
    assert reply.data == {"node": None}


async def test_an_id_of_the_wrong_type_names_the_expected_type(
    client: GraphQLClient, seeded: dict[str, int]
) -> None:
    reply = await client(SERVICE, {"id": to_global_id("User", seeded["user"])})
    assert assert_clear(reply) == ["BAD_USER_INPUT"]
    assert "expected an id of a Service, got one of a User" in reply.errors[0]["message"]
    right = await client(SERVICE, {"id": to_global_id("Service", seeded["service"])})
    assert right.data == {"service": {"slug": "checkout"}}


async def test_an_id_literal_in_the_document_is_checked_the_same_way(client: GraphQLClient) -> None:
    reply = await client('{ node(id: "Zm9vOmJhcg") { id } }')
    assert assert_clear(reply) == ["BAD_USER_INPUT"]


# -- connection cursors --------------------------------------------------------------

CONNECTIONS = {
    "services": "query($after: String) { services(after: $after) { nodes { slug } } }",
    "users": "query($after: String) { users(after: $after) { nodes { username } } }",
    "teams": "query($after: String) { teams(after: $after) { nodes { slug } } }",
    "knownErrors": "query($after: String) { knownErrors(after: $after) { nodes { title } } }",
    "incidents": "query($after: String) { incidents(after: $after) { nodes { title } } }",
    "articles": "query($after: String) { articles(after: $after) { nodes { title } } }",
    "search": 'query($after: String) { search(query: "disk", after: $after) { edges { cursor } } }',
}
ORDERED_ARTICLES = """
query($after: String, $field: ArticleOrderField!) {
  articles(after: $after, orderBy: {field: $field}) { nodes { title } }
}
"""
FORGED_CURSORS = [
    *MALFORMED,
    b64("cursor:2147483647"),  # well-formed: an empty page
    to_global_id("Service", 1),
    sort_cursor(["2020-01-01T00:00:00+00:00", 1]),
]
FORGED_SORT_CURSORS = [
    *MALFORMED,
    to_cursor(1),
    sort_cursor(["2020-01-01T00:00:00", 1]),  # naive
    sort_cursor(["0001-01-01T00:00:00+14:00", 1]),  # before year 1 in UTC
    sort_cursor(["9999-12-31T23:59:59-14:00", 1]),  # after year 9999 in UTC
    sort_cursor(["not a date", 1]),
    sort_cursor([True, 1]),
    sort_cursor([1.5, 1]),
    sort_cursor([1e308, 1]),
    sort_cursor([99999999999999999999, 1]),
    sort_cursor([2147483648, 1]),
    sort_cursor(["\u0000", 1]),
    sort_cursor(["title", True]),
    sort_cursor(["title", 2147483648]),
    sort_cursor(["title", 0]),
    sort_cursor([None, 1]),
    sort_cursor([[1], 1]),
    sort_cursor({"a": 1}),
    sort_cursor([1]),
    sort_cursor([1, 2, 3]),
    sort_cursor(["title", "1"]),
    b64("sort:" + "[" * 60 + "]" * 60),
    b64("sort:NaN"),
]


@pytest.mark.parametrize("connection", sorted(CONNECTIONS))
async def test_a_forged_cursor_is_refused_or_finds_nothing(
    client: GraphQLClient, seeded: dict[str, int], connection: str
) -> None:
    for cursor in FORGED_CURSORS:
        reply = await client(CONNECTIONS[connection], {"after": cursor})
        codes = assert_clear(reply)
        assert codes in ([], ["BAD_USER_INPUT"]), (cursor, reply.body)
        if codes:
            error = reply.errors[0]
            assert error["message"].startswith("after:") or (
                error["extensions"].get("field") == "after"
            ), reply.body


@pytest.mark.parametrize("field", ["CREATED_AT", "UPDATED_AT", "TITLE", "VIEWS"])
async def test_a_forged_sort_cursor_is_refused_or_finds_nothing(
    client: GraphQLClient, field: str
) -> None:
    for cursor in FORGED_SORT_CURSORS:
        reply = await client(ORDERED_ARTICLES, {"after": cursor, "field": field})
        assert assert_clear(reply) in ([], ["BAD_USER_INPUT"]), (cursor, reply.body)


async def test_a_cursor_of_one_ordering_is_refused_by_another(client: GraphQLClient) -> None:
    title_cursor = sort_cursor(["Disk full", 1])
    reply = await client(ORDERED_ARTICLES, {"after": title_cursor, "field": "VIEWS"})
    assert assert_clear(reply) == ["BAD_USER_INPUT"]
    assert "not a cursor for this ordering" in reply.errors[0]["message"]


# -- ids in mutation inputs ----------------------------------------------------------

UPDATE_SERVICE = """
mutation($id: ID!, $owner: ID) {
  updateService(input: {id: $id, expectedVersion: 1, name: "Renamed", ownerTeamId: $owner}) {
    __typename
    ... on Error { message code field }
  }
}
"""
ADD_MEMBER = """
mutation($team: ID!, $user: ID!) {
  addTeamMember(input: {teamId: $team, userId: $user}) {
    __typename
    ... on Error { message code field }
  }
}
"""
CREATE_USER = """
mutation($teams: [ID!]!) {
  createUser(input: {username: "bob", teamIds: $teams}) {
    __typename
    ... on Error { message code field }
  }
}
"""
REVOKE_TOKEN = """
mutation($id: ID!) {
  revokeApiToken(input: {id: $id}) { __typename ... on Error { message code field } }
}
"""


async def test_mutation_inputs_refuse_bad_ids_as_validation_errors(
    client: GraphQLClient, accounts: Accounts, seeded: dict[str, int]
) -> None:
    admin = await accounts.create(Role.ADMIN)
    service = to_global_id("Service", seeded["service"])
    team = to_global_id("Team", seeded["team"])
    user = to_global_id("User", seeded["user"])
    cases: list[tuple[str, dict[str, Any], str, str]] = []
    for bad in [*MALFORMED, user]:  # a User id where a Service or Team id belongs
        cases += [
            (UPDATE_SERVICE, {"id": bad}, "updateService", "input.id"),
            (UPDATE_SERVICE, {"id": service, "owner": bad}, "updateService", "input.ownerTeamId"),
            (ADD_MEMBER, {"team": bad, "user": user}, "addTeamMember", "input.teamId"),
            (CREATE_USER, {"teams": [team, bad]}, "createUser", "input.teamIds"),
            (REVOKE_TOKEN, {"id": bad}, "revokeApiToken", "input.id"),
        ]
    cases.append((ADD_MEMBER, {"team": team, "user": service}, "addTeamMember", "input.userId"))
    for query, variables, name, field in cases:
        reply = await client(query, variables, token=admin.token)
        assert assert_clear(reply) == [], (variables, reply.body)
        payload = reply.data[name]
        assert payload["__typename"] == "ValidationError", (variables, payload)
        assert payload["field"] == field, (variables, payload)


async def test_a_mutation_on_a_well_formed_id_of_nothing_is_not_found(
    client: GraphQLClient, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    for absent in (to_global_id("Service", 424242), to_global_id("Service", 2**31 - 1)):
        reply = await client(UPDATE_SERVICE, {"id": absent}, token=admin.token)
        assert reply.data["updateService"]["__typename"] == "NotFoundError"


# -- "" is not "leave as it is" ---------------------------------------------------------

REPORT_INCIDENT = """
mutation { reportIncident(input: {title: "Checkout down"}) { ... on Incident { id version } } }
"""
ASSIGN_INCIDENT = """
mutation($input: AssignIncidentInput!) {
  assignIncident(input: $input) {
    __typename
    ... on Incident { version team { slug } assignee { username } }
    ... on Error { message code field }
  }
}
"""
CREATE_KNOWN_ERROR = """
mutation { createKnownError(input: {title: "Pool exhausted"}) { ... on KnownError { id } } }
"""
CREATE_ARTICLE = """
mutation($knownError: ID!) {
  createArticle(input: {title: "Raise the pool", knownErrorId: $knownError}) {
    ... on Article { id version }
  }
}
"""
UPDATE_ARTICLE = """
mutation($input: UpdateArticleInput!) {
  updateArticle(input: $input) {
    __typename
    ... on Article { version knownError { title } }
    ... on Error { message code field }
  }
}
"""


@pytest.mark.parametrize("field", ["teamId", "assigneeId"])
async def test_an_empty_id_in_assign_incident_is_refused_not_taken_for_null(
    client: GraphQLClient, accounts: Accounts, seeded: dict[str, int], field: str
) -> None:
    # given an incident with a team and an assignee
    admin = await accounts.create(Role.ADMIN)
    incident = (await client(REPORT_INCIDENT, token=admin.token)).data["reportIncident"]
    team, user = to_global_id("Team", seeded["team"]), to_global_id("User", admin.id)
    assign = {"id": incident["id"], "expectedVersion": incident["version"]}
    assigned = await client(
        ASSIGN_INCIDENT,
        {"input": {**assign, "teamId": team, "assigneeId": user}},
        token=admin.token,
    )
    version = assigned.data["assignIncident"]["version"]
    # when "" is sent for one of them
    reply = await client(
        ASSIGN_INCIDENT,
        {"input": {"id": incident["id"], "expectedVersion": version, field: ""}},
        token=admin.token,
    )
    # then it is a validation error on that field, and nothing is cleared
    payload = reply.data["assignIncident"]
    assert (payload["__typename"], payload["field"]) == ("ValidationError", f"input.{field}")
    unchanged = await client(
        "query($id: ID!) { incident(id: $id) { version team { slug } assignee { username } } }",
        {"id": incident["id"]},
        token=admin.token,
    )
    assert unchanged.data["incident"] == {
        "version": version,
        "team": {"slug": "payments"},
        "assignee": {"username": admin.username},
    }
    # and null still clears it
    cleared = await client(
        ASSIGN_INCIDENT,
        {"input": {"id": incident["id"], "expectedVersion": version, field: None}},
        token=admin.token,
    )
    relation = {"teamId": "team", "assigneeId": "assignee"}[field]
    assert cleared.data["assignIncident"][relation] is None


async def test_an_empty_known_error_id_in_update_article_is_refused_not_ignored(
    client: GraphQLClient, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    known_error = (await client(CREATE_KNOWN_ERROR, token=admin.token)).data["createKnownError"]
    article = (
        await client(CREATE_ARTICLE, {"knownError": known_error["id"]}, token=admin.token)
    ).data["createArticle"]
    update = {"id": article["id"], "expectedVersion": article["version"]}
    reply = await client(
        UPDATE_ARTICLE, {"input": {**update, "knownErrorId": ""}}, token=admin.token
    )
    payload = reply.data["updateArticle"]
    assert (payload["__typename"], payload["field"]) == ("ValidationError", "input.knownErrorId")
    # omitted keeps the link, null removes it
    kept = await client(
        UPDATE_ARTICLE, {"input": {**update, "title": "Raise it"}}, token=admin.token
    )
    assert kept.data["updateArticle"]["knownError"] == {"title": "Pool exhausted"}
    version = kept.data["updateArticle"]["version"]
    unlinked = await client(
        UPDATE_ARTICLE,
        {"input": {"id": article["id"], "expectedVersion": version, "knownErrorId": None}},
        token=admin.token,
    )
    assert unlinked.data["updateArticle"]["knownError"] is None
