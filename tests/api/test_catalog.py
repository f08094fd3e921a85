"""Services (configuration items): curation rules, bad input, and lost-update protection."""

from __future__ import annotations

import asyncio

import pytest

from api.relay import to_global_id
from knowledge.accounts.roles import Role
from tests.support import Account, Accounts, GraphQLClient

SERVICE_FIELDS = "id slug name description version isActive ownerTeam { slug }"
CREATE = f"""
mutation($input: CreateServiceInput!) {{
  createService(input: $input) {{
    __typename
    ... on Service {{ {SERVICE_FIELDS} }}
    ... on Error {{ message code field }}
    ... on ConflictError {{ currentVersion }}
  }}
}}
"""
UPDATE = f"""
mutation($input: UpdateServiceInput!) {{
  updateService(input: $input) {{
    __typename
    ... on Service {{ {SERVICE_FIELDS} }}
    ... on Error {{ message code field }}
    ... on ConflictError {{ currentVersion }}
  }}
}}
"""
SERVICE = f"query($slug: String!) {{ service(slug: $slug) {{ {SERVICE_FIELDS} }} }}"
CREATE_TEAM = """
mutation($slug: String!) { createTeam(input: {slug: $slug, name: "Team"}) {
  __typename ... on Team { id } } }
"""


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER)


async def create(client: GraphQLClient, token: str, **fields: object) -> dict[str, object]:
    payload = {"slug": "payments", "name": "Payments", **fields}
    result: dict[str, object] = (await client(CREATE, {"input": payload}, token=token)).data[
        "createService"
    ]
    return result


async def test_a_knowledge_manager_registers_a_service_owned_by_a_team(
    client: GraphQLClient, manager: Account, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    team = (await client(CREATE_TEAM, {"slug": "payments-team"}, token=admin.token)).data
    team_id = team["createTeam"]["id"]

    service = await create(client, manager.token, description="Card payments", ownerTeamId=team_id)

    assert service["__typename"] == "Service"
    assert service["slug"] == "payments"
    assert service["version"] == 1
    assert service["ownerTeam"] == {"slug": "payments-team"}
    stored = (await client(SERVICE, {"slug": "payments"})).data["service"]
    assert stored == {k: v for k, v in service.items() if k != "__typename"}


@pytest.mark.parametrize(
    ("fields", "field", "complaint"),
    [
        ({"slug": "Payments API"}, "input.slug", "lowercase"),
        ({"slug": "-payments"}, "input.slug", "lowercase"),
        ({"slug": "p" * 81}, "input.slug", "lowercase"),
        ({"slug": ""}, "input.slug", "lowercase"),
        ({"name": "   "}, "input.name", "must not be empty"),
        ({"name": "N" * 201}, "input.name", "at most 200"),
        ({"name": "line one\nline two"}, "input.name", "single line"),
        ({"name": "nul\x00byte"}, "input.name", "control characters"),
        ({"description": "d" * 10_001}, "input.description", "at most 10000"),
        ({"ownerTeamId": "not-an-id"}, "input.ownerTeamId", "not a valid id"),
        ({"ownerTeamId": to_global_id("User", 1)}, "input.ownerTeamId", "expected an id of a Team"),
    ],
)
async def test_invalid_input_is_refused_with_the_field_and_nothing_is_stored(
    client: GraphQLClient, manager: Account, fields: dict[str, str], field: str, complaint: str
) -> None:
    result = await create(client, manager.token, **fields)
    assert result["__typename"] == "ValidationError"
    assert result["field"] == field
    assert complaint in str(result["message"])
    services = (await client("{ services { nodes { slug } } }")).data["services"]["nodes"]
    assert services == []


async def test_an_owner_team_that_does_not_exist_is_not_found(
    client: GraphQLClient, manager: Account
) -> None:
    result = await create(client, manager.token, ownerTeamId=to_global_id("Team", 999))
    assert (result["__typename"], result["field"]) == ("NotFoundError", "input.ownerTeamId")


async def test_missing_required_input_is_a_graphql_error(
    client: GraphQLClient, manager: Account
) -> None:
    reply = await client(CREATE, {"input": {"slug": "payments"}}, token=manager.token)
    assert "name" in reply.errors[0]["message"]
    assert reply.body.get("data") is None


async def test_hostile_text_is_stored_literally_not_interpreted(
    client: GraphQLClient, manager: Account
) -> None:
    hostile = "x'); DROP TABLE services; -- <script>alert(1)</script> {{7*7}}"
    result = await create(client, manager.token, name=hostile, description=hostile)
    assert result["__typename"] == "Service"
    stored = (await client(SERVICE, {"slug": "payments"})).data["service"]
    assert stored["name"] == hostile
    assert stored["description"] == hostile


async def test_a_second_service_with_the_same_slug_conflicts(
    client: GraphQLClient, manager: Account
) -> None:
    assert (await create(client, manager.token))["__typename"] == "Service"
    again = await create(client, manager.token, name="Another")
    assert (again["__typename"], again["field"]) == ("ConflictError", "input.slug")
    stored = (await client(SERVICE, {"slug": "payments"})).data["service"]
    assert stored["name"] == "Payments"


async def test_concurrent_creates_of_one_slug_make_one_service(
    client: GraphQLClient, manager: Account
) -> None:
    results = await asyncio.gather(*(create(client, manager.token) for _ in range(4)))
    kinds = sorted(str(r["__typename"]) for r in results)
    assert kinds == ["ConflictError", "ConflictError", "ConflictError", "Service"]


async def test_an_update_names_the_version_it_read(client: GraphQLClient, manager: Account) -> None:
    created = await create(client, manager.token)
    update = {"id": created["id"], "expectedVersion": 1, "name": "Payments Gateway"}
    updated = (await client(UPDATE, {"input": update}, token=manager.token)).data["updateService"]
    assert (updated["name"], updated["version"]) == ("Payments Gateway", 2)

    stale = {"id": created["id"], "expectedVersion": 1, "name": "Overwritten"}
    conflict = (await client(UPDATE, {"input": stale}, token=manager.token)).data["updateService"]
    assert conflict["__typename"] == "ConflictError"
    assert conflict["currentVersion"] == 2
    assert conflict["field"] == "input.expectedVersion"
    stored = (await client(SERVICE, {"slug": "payments"})).data["service"]
    assert (stored["name"], stored["version"]) == ("Payments Gateway", 2)


async def test_concurrent_updates_from_one_version_let_exactly_one_win(
    client: GraphQLClient, manager: Account
) -> None:
    created = await create(client, manager.token)
    names = [f"Name {i}" for i in range(5)]
    replies = await asyncio.gather(
        *(
            client(
                UPDATE,
                {"input": {"id": created["id"], "expectedVersion": 1, "name": name}},
                token=manager.token,
            )
            for name in names
        )
    )
    results = [r.data["updateService"] for r in replies]
    winners = [r for r in results if r["__typename"] == "Service"]
    assert len(winners) == 1
    assert all(r["__typename"] == "ConflictError" for r in results if r not in winners)
    stored = (await client(SERVICE, {"slug": "payments"})).data["service"]
    assert (stored["name"], stored["version"]) == (winners[0]["name"], 2)


async def test_owner_team_is_kept_when_omitted_and_cleared_by_null(
    client: GraphQLClient, manager: Account, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    team = (await client(CREATE_TEAM, {"slug": "owners"}, token=admin.token)).data
    created = await create(client, manager.token, ownerTeamId=team["createTeam"]["id"])

    kept = {"id": created["id"], "expectedVersion": 1, "description": "now described"}
    result = (await client(UPDATE, {"input": kept}, token=manager.token)).data["updateService"]
    assert result["ownerTeam"] == {"slug": "owners"}

    cleared = {"id": created["id"], "expectedVersion": 2, "ownerTeamId": None}
    result = (await client(UPDATE, {"input": cleared}, token=manager.token)).data["updateService"]
    assert result["ownerTeam"] is None


async def test_updates_are_refused_below_knowledge_manager_and_change_nothing(
    client: GraphQLClient, manager: Account, accounts: Accounts
) -> None:
    created = await create(client, manager.token)
    responder = await accounts.create(Role.RESPONDER)
    attempt = {"id": created["id"], "expectedVersion": 1, "name": "Hijacked"}
    result = (await client(UPDATE, {"input": attempt}, token=responder.token)).data
    assert result["updateService"]["__typename"] == "PermissionDeniedError"
    assert (await client(SERVICE, {"slug": "payments"})).data["service"]["name"] == "Payments"


async def test_updating_a_service_that_does_not_exist_is_not_found(
    client: GraphQLClient, manager: Account
) -> None:
    ghost = {"id": to_global_id("Service", 4242), "expectedVersion": 1, "name": "Ghost"}
    result = (await client(UPDATE, {"input": ghost}, token=manager.token)).data["updateService"]
    assert (result["__typename"], result["field"]) == ("NotFoundError", "input.id")


async def test_inactive_services_are_hidden_unless_asked_for(
    client: GraphQLClient, manager: Account
) -> None:
    created = await create(client, manager.token)
    retire = {"id": created["id"], "expectedVersion": 1, "isActive": False}
    retired = (await client(UPDATE, {"input": retire}, token=manager.token)).data
    assert retired["updateService"]["isActive"] is False
    active = (await client("{ services { nodes { slug } } }")).data["services"]["nodes"]
    everything = (await client("{ services(includeInactive: true) { nodes { slug } } }")).data
    assert active == []
    assert everything["services"]["nodes"] == [{"slug": "payments"}]
