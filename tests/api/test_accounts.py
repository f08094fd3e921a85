"""Users, teams, relay ids and cursor pagination."""

from __future__ import annotations

import base64

import pytest

from api.relay import to_global_id
from knowledge.accounts.roles import Role
from tests.support import Account, Accounts, GraphQLClient

USER_RESULT = """
  __typename
  ... on User { id username displayName email role version teams { slug } }
  ... on Error { message code field }
  ... on ConflictError { currentVersion }
"""
CREATE_USER = (
    f"mutation($input: CreateUserInput!) {{ createUser(input: $input) {{ {USER_RESULT} }} }}"
)
UPDATE_USER = (
    f"mutation($input: UpdateUserInput!) {{ updateUser(input: $input) {{ {USER_RESULT} }} }}"
)
CREATE_TEAM = """
mutation($slug: String!, $name: String!) { createTeam(input: {slug: $slug, name: $name}) {
  __typename ... on Team { id slug name members { username } } ... on Error { field message } } }
"""
ADD_MEMBER = """
mutation($team: ID!, $user: ID!) { addTeamMember(input: {teamId: $team, userId: $user}) {
  __typename ... on Team { members { username } } ... on Error { field message } } }
"""
USERS_PAGE = """
query($first: Int, $after: String) {
  users(first: $first, after: $after) {
    edges { cursor node { username } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@pytest.fixture
async def admin(accounts: Accounts) -> Account:
    return await accounts.create(Role.ADMIN, "root")


async def make_team(client: GraphQLClient, admin: Account, slug: str) -> str:
    data = (await client(CREATE_TEAM, {"slug": slug, "name": slug.title()}, token=admin.token)).data
    team_id: str = data["createTeam"]["id"]
    return team_id


async def test_an_admin_creates_a_user_in_teams(client: GraphQLClient, admin: Account) -> None:
    dba = await make_team(client, admin, "dba")
    user_input = {
        "username": "grace",
        "displayName": "Grace Hopper",
        "email": "grace@example.com",
        "role": "RESPONDER",
        "teamIds": [dba],
    }
    user = (await client(CREATE_USER, {"input": user_input}, token=admin.token)).data["createUser"]
    assert user["__typename"] == "User"
    assert (user["username"], user["role"], user["teams"]) == (
        "grace",
        "RESPONDER",
        [{"slug": "dba"}],
    )
    team = (
        await client("query($s: String!) { team(slug: $s) { members { username } } }", {"s": "dba"})
    ).data
    assert team["team"]["members"] == [{"username": "grace"}]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "Grace Hopper"}, "input.username"),
        ({"username": ""}, "input.username"),
        ({"username": "g" * 81}, "input.username"),
        ({"username": "grace", "email": "not-an-email"}, "input.email"),
        ({"username": "grace", "displayName": "x" * 201}, "input.displayName"),
        ({"username": "grace", "teamIds": ["!!"]}, "input.teamIds"),
        ({"username": "grace", "teamIds": [to_global_id("Team", 77)]}, "input.teamIds"),
    ],
)
async def test_bad_user_input_is_refused_and_rolls_back(
    client: GraphQLClient, admin: Account, fields: dict[str, object], field: str
) -> None:
    result = (await client(CREATE_USER, {"input": fields}, token=admin.token)).data["createUser"]
    assert result["__typename"] in {"ValidationError", "NotFoundError"}
    assert result["field"] == field
    assert (await client('{ user(username: "grace") { id } }')).data["user"] is None


async def test_usernames_are_unique(client: GraphQLClient, admin: Account) -> None:
    first = (await client(CREATE_USER, {"input": {"username": "heidi"}}, token=admin.token)).data
    assert first["createUser"]["__typename"] == "User"
    second = (await client(CREATE_USER, {"input": {"username": "heidi"}}, token=admin.token)).data
    assert (second["createUser"]["__typename"], second["createUser"]["field"]) == (
        "ConflictError",
        "input.username",
    )


async def test_updating_a_user_with_a_stale_version_conflicts(
    client: GraphQLClient, admin: Account, accounts: Accounts
) -> None:
    ivan = await accounts.create(Role.VIEWER, "ivan")
    ivan_id = to_global_id("User", ivan.id)
    promote = {"id": ivan_id, "expectedVersion": 1, "role": "RESPONDER"}
    result = (await client(UPDATE_USER, {"input": promote}, token=admin.token)).data["updateUser"]
    assert (result["role"], result["version"]) == ("RESPONDER", 2)
    stale = {"id": ivan_id, "expectedVersion": 1, "role": "ADMIN"}
    conflict = (await client(UPDATE_USER, {"input": stale}, token=admin.token)).data["updateUser"]
    assert (conflict["__typename"], conflict["currentVersion"]) == ("ConflictError", 2)
    assert (await client(f'{{ user(id: "{ivan_id}") {{ role }} }}')).data["user"][
        "role"
    ] == "RESPONDER"


async def test_a_users_new_role_applies_to_their_existing_tokens(
    client: GraphQLClient, admin: Account, accounts: Accounts
) -> None:
    judy = await accounts.create(Role.ADMIN, "judy")
    demote = {"id": to_global_id("User", judy.id), "expectedVersion": 1, "role": "VIEWER"}
    assert (await client(UPDATE_USER, {"input": demote}, token=admin.token)).data
    me = (await client("{ me { role } }", token=judy.token)).data
    assert me["me"]["role"] == "VIEWER"


async def test_adding_a_member_twice_changes_nothing(
    client: GraphQLClient, admin: Account, accounts: Accounts
) -> None:
    team = await make_team(client, admin, "sre")
    kim = await accounts.create(Role.RESPONDER, "kim")
    variables = {"team": team, "user": to_global_id("User", kim.id)}
    for _ in range(2):
        result = (await client(ADD_MEMBER, variables, token=admin.token)).data["addTeamMember"]
        assert result["members"] == [{"username": "kim"}]


async def test_emails_are_shown_to_their_owner_and_admins_only(
    client: GraphQLClient, admin: Account, accounts: Accounts
) -> None:
    created = await client(
        CREATE_USER, {"input": {"username": "leo", "email": "leo@example.com"}}, token=admin.token
    )
    leo_id = created.data["createUser"]["id"]
    query = f'{{ user(id: "{leo_id}") {{ email }} }}'
    viewer = await accounts.create(Role.RESPONDER)
    assert (await client(query, token=viewer.token)).data["user"]["email"] is None
    assert (await client(query)).data["user"]["email"] is None
    assert (await client(query, token=admin.token)).data["user"]["email"] == "leo@example.com"


async def test_pages_follow_cursors_to_the_end(client: GraphQLClient, accounts: Accounts) -> None:
    for i in range(5):
        await accounts.create(Role.VIEWER, f"user-{i}")
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await client(USERS_PAGE, {"first": 2, "after": after})).data["users"]
        seen += [edge["node"]["username"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"user-{i}" for i in range(5)]
    assert pages == 3


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"first": 101}, "first is at most 100"),
        ({"first": -1}, "must not be negative"),
        ({"after": "garbage"}, "not a cursor"),
        ({"after": base64.urlsafe_b64encode(b"cursor:-5").decode()}, "not a cursor"),
        ({"after": base64.urlsafe_b64encode(b"cursor:1 OR 1=1").decode()}, "not a cursor"),
        ({"after": base64.urlsafe_b64encode(b"cursor:" + b"9" * 30).decode()}, "not a cursor"),
    ],
)
async def test_bad_page_arguments_are_clear_errors(
    client: GraphQLClient, variables: dict[str, object], complaint: str
) -> None:
    reply = await client(USERS_PAGE, variables)
    assert reply.status == 200
    assert reply.error_codes == ["BAD_USER_INPUT"]
    assert complaint in reply.errors[0]["message"]


async def test_node_fetches_any_object_by_global_id(client: GraphQLClient, admin: Account) -> None:
    team_id = await make_team(client, admin, "network")
    admin_id = to_global_id("User", admin.id)
    query = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Team { slug }
               ... on User { username } } }"""
    missing = to_global_id("Team", 999)
    nodes = (await client(query, {"ids": [team_id, admin_id, missing]})).data["nodes"]
    assert nodes == [
        {"__typename": "Team", "id": team_id, "slug": "network"},
        {"__typename": "User", "id": admin_id, "username": "root"},
        None,
    ]


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "definitely not base64 !!!",
        base64.urlsafe_b64encode(b"Team:").decode(),
        base64.urlsafe_b64encode(b"Team:abc").decode(),
        base64.urlsafe_b64encode(b"Team:0").decode(),
        base64.urlsafe_b64encode(b"Secret:1").decode(),
        base64.urlsafe_b64encode("Team:\u0661".encode()).decode(),  # a non-ASCII digit
        "A" * 500,
    ],
)
async def test_malformed_or_forged_ids_are_clear_errors(client: GraphQLClient, bad_id: str) -> None:
    reply = await client("query($id: ID!) { node(id: $id) { id } }", {"id": bad_id})
    assert reply.status == 200
    assert reply.error_codes == ["BAD_USER_INPUT"]
    assert "not a valid id" in reply.errors[0]["message"]


async def test_an_id_of_the_wrong_type_is_refused(client: GraphQLClient, admin: Account) -> None:
    team_id = await make_team(client, admin, "storage")
    reply = await client("query($id: ID!) { user(id: $id) { username } }", {"id": team_id})
    assert reply.error_codes == ["BAD_USER_INPUT"]
    assert "expected an id of a User" in reply.errors[0]["message"]


async def test_lookups_take_exactly_one_key(client: GraphQLClient) -> None:
    for query in ("{ user { id } }", '{ team(id: "x", slug: "y") { id } }', "{ service { id } }"):
        reply = await client(query)
        assert "exactly one of" in reply.errors[0]["message"]


async def test_too_many_nodes_at_once_are_refused(client: GraphQLClient) -> None:
    ids = [to_global_id("User", i) for i in range(1, 102)]
    reply = await client("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert "at most 100" in reply.errors[0]["message"]
