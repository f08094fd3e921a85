"""Bearer-token authentication and the role ladder, through the real app."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from api.token_cache import DEFAULT_TTL
from knowledge.accounts.models import ApiToken, User
from knowledge.accounts.roles import Role
from knowledge.clock import ManualClock
from knowledge.db import Database, utcnow
from tests.support import Accounts, GraphQLClient

ME = "query { me { role isAuthenticated user { username role } } }"
SERVICES = "query { services { nodes { slug } } }"
CREATE_SERVICE = """
mutation($slug: String!) {
  createService(input: {slug: $slug, name: "Payments"}) {
    __typename
    ... on Service { slug }
    ... on Error { message code }
  }
}
"""
CREATE_USER = """
mutation($username: String!) {
  createUser(input: {username: $username}) {
    __typename
    ... on User { username }
    ... on Error { message code }
  }
}
"""


async def test_without_a_token_development_serves_an_anonymous_viewer(
    client: GraphQLClient,
) -> None:
    data = (await client(ME)).data
    assert data["me"] == {"role": "VIEWER", "isAuthenticated": False, "user": None}


async def test_without_a_token_production_refuses(production_client: GraphQLClient) -> None:
    reply = await production_client(SERVICES)
    assert reply.status == 401
    assert reply.error_codes == ["UNAUTHENTICATED"]
    assert "authentication required" in reply.errors[0]["message"]


async def test_a_valid_token_identifies_its_user(client: GraphQLClient, accounts: Accounts) -> None:
    alice = await accounts.create(Role.RESPONDER, "alice")
    data = (await client(ME, token=alice.token)).data
    assert data["me"] == {
        "role": "RESPONDER",
        "isAuthenticated": True,
        "user": {"username": "alice", "role": "RESPONDER"},
    }


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "malformed Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer not-a-token", "malformed token"),
        ("Bearer kfx_" + "A" * 43, "unknown token"),
        ("Bearer kfx_" + "A" * 42 + "'", "malformed token"),
    ],
)
async def test_bad_credentials_are_refused_with_the_reason(
    client: GraphQLClient, header: str, reason: str
) -> None:
    reply = await client(ME, headers={"Authorization": header})
    assert reply.status == 401
    assert reply.error_codes == ["UNAUTHENTICATED"]
    assert reason in reply.errors[0]["message"]


async def test_a_revoked_token_is_refused(
    client: GraphQLClient, accounts: Accounts, db: Database
) -> None:
    bob = await accounts.create(Role.VIEWER)
    revoke = "mutation($id: ID!) { revokeApiToken(input: {id: $id}) { __typename } }"
    tokens = (await client("query { myApiTokens { id revokedAt } }", token=bob.token)).data
    token_id = tokens["myApiTokens"][0]["id"]
    assert (await client(revoke, {"id": token_id}, token=bob.token)).data == {
        "revokeApiToken": {"__typename": "ApiToken"}
    }
    reply = await client(ME, token=bob.token)
    assert reply.status == 401
    assert "token revoked" in reply.errors[0]["message"]


async def test_an_expired_token_is_refused(
    client: GraphQLClient, accounts: Accounts, db: Database, clock: ManualClock
) -> None:
    carol = await accounts.create(Role.VIEWER)
    # Expired by the app's clock, which judges expiry (a second before the wall clock's
    # now was not always before the app's: it stands still from the app's start).
    async with db.transaction() as session:
        await session.execute(
            sa.update(ApiToken)
            .where(ApiToken.id == carol.token_id)
            .values(expires_at=clock.now() - dt.timedelta(seconds=1))
        )
    reply = await client(ME, token=carol.token)
    assert reply.status == 401
    assert "token expired" in reply.errors[0]["message"]


async def test_a_deactivated_users_token_is_refused(
    client: GraphQLClient, accounts: Accounts, db: Database
) -> None:
    dave = await accounts.create(Role.ADMIN)
    async with db.transaction() as session:
        await session.execute(sa.update(User).where(User.id == dave.id).values(is_active=False))
    reply = await client(ME, token=dave.token)
    assert reply.status == 401
    assert "deactivated" in reply.errors[0]["message"]


async def test_tokens_are_stored_only_as_hashes(accounts: Accounts, db: Database) -> None:
    erin = await accounts.create(Role.VIEWER)
    async with db.read() as session:
        stored = (await session.scalars(sa.select(ApiToken))).one()
    assert erin.token not in (stored.token_hash, stored.prefix, stored.name)
    assert len(stored.token_hash) == 64
    assert erin.token.startswith(stored.prefix)


async def test_using_a_token_records_when_it_was_last_used(
    client: GraphQLClient, accounts: Accounts, db: Database
) -> None:
    frank = await accounts.create(Role.VIEWER)
    before = utcnow()
    assert (await client(ME, token=frank.token)).data["me"]["isAuthenticated"]
    async with db.read() as session:
        token = await session.get(ApiToken, frank.token_id)
    assert token is not None
    assert token.last_used_at is not None
    assert token.last_used_at >= before


@pytest.mark.parametrize(
    ("role", "read", "create_service", "create_user"),
    [
        (Role.VIEWER, True, False, False),
        (Role.REPORTER, True, False, False),
        (Role.RESPONDER, True, False, False),
        (Role.KNOWLEDGE_MANAGER, True, True, False),
        (Role.ADMIN, True, True, True),
    ],
)
async def test_each_role_may_do_what_its_rank_allows(
    client: GraphQLClient,
    accounts: Accounts,
    role: Role,
    read: bool,
    create_service: bool,
    create_user: bool,
) -> None:
    account = await accounts.create(role)
    assert "services" in (await client(SERVICES, token=account.token)).data

    service = (await client(CREATE_SERVICE, {"slug": "payments"}, token=account.token)).data
    expected = "Service" if create_service else "PermissionDeniedError"
    assert service["createService"]["__typename"] == expected

    user = (await client(CREATE_USER, {"username": "newcomer"}, token=account.token)).data
    assert user["createUser"]["__typename"] == ("User" if create_user else "PermissionDeniedError")
    if not create_user:
        assert f"you are {role.value}" in user["createUser"]["message"]


async def test_a_token_scoped_below_its_user_acts_with_the_lower_role(
    client: GraphQLClient, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    mint = """
    mutation { createApiToken(input: {role: VIEWER, name: "read only"}) {
      __typename ... on IssuedApiToken { secret token { role name } } } }
    """
    issued = (await client(mint, token=admin.token)).data["createApiToken"]
    assert issued["token"] == {"role": "VIEWER", "name": "read only"}
    scoped = issued["secret"]
    assert (await client(ME, token=scoped)).data["me"]["role"] == "VIEWER"
    denied = (await client(CREATE_USER, {"username": "x"}, token=scoped)).data
    assert denied["createUser"]["__typename"] == "PermissionDeniedError"


async def test_a_scoped_token_cannot_mint_a_stronger_one(
    client: GraphQLClient, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    mint = (
        "mutation($role: Role) { createApiToken(input: {role: $role}) { __typename "
        "... on IssuedApiToken { secret } ... on Error { field message } } }"
    )
    weak = (await client(mint, {"role": "VIEWER"}, token=admin.token)).data
    secret = weak["createApiToken"]["secret"]
    escalate = (await client(mint, {"role": "ADMIN"}, token=secret)).data["createApiToken"]
    assert escalate["__typename"] == "ValidationError"
    assert escalate["field"] == "input.role"


async def test_only_admins_issue_tokens_for_other_users(
    client: GraphQLClient, accounts: Accounts
) -> None:
    manager = await accounts.create(Role.KNOWLEDGE_MANAGER)
    other = await accounts.create(Role.VIEWER)
    from api.relay import to_global_id

    mint = "mutation($user: ID) { createApiToken(input: {userId: $user}) { __typename } }"
    variables = {"user": to_global_id("User", other.id)}
    reply = (await client(mint, variables, token=manager.token)).data
    assert reply["createApiToken"]["__typename"] == "PermissionDeniedError"
    admin = await accounts.create(Role.ADMIN)
    reply = (await client(mint, variables, token=admin.token)).data
    assert reply["createApiToken"]["__typename"] == "IssuedApiToken"


async def test_anonymous_callers_cannot_create_tokens(client: GraphQLClient) -> None:
    reply = await client("mutation { createApiToken(input: {}) { __typename } }")
    assert reply.error_codes == ["UNAUTHENTICATED"]


async def test_someone_elses_token_cannot_be_revoked_or_probed(
    client: GraphQLClient, accounts: Accounts
) -> None:
    owner = await accounts.create(Role.RESPONDER)
    intruder = await accounts.create(Role.RESPONDER)
    from api.relay import to_global_id

    revoke = "mutation($id: ID!) { revokeApiToken(input: {id: $id}) { __typename } }"
    variables = {"id": to_global_id("ApiToken", owner.token_id)}
    reply = (await client(revoke, variables, token=intruder.token)).data
    assert reply["revokeApiToken"]["__typename"] == "NotFoundError"
    assert (await client(ME, token=owner.token)).data["me"]["isAuthenticated"] is True


async def test_a_token_expiry_without_an_offset_is_refused(
    client: GraphQLClient, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    mint = """mutation { createApiToken(input: {expiresAt: "2099-01-01T00:00:00"}) {
                __typename ... on Error { field } } }"""
    result = (await client(mint, token=admin.token)).data["createApiToken"]
    assert result == {"__typename": "ValidationError", "field": "input.expiresAt"}


# --- the per-process token cache (api/token_cache.py) ----------------------------------

UPDATE_USER = """
mutation($input: UpdateUserInput!) {
  updateUser(input: $input) { __typename ... on User { role } ... on Error { message } }
}
"""


async def _user_version(client: GraphQLClient, admin: str, user_id: int) -> int:
    from api.relay import to_global_id

    query = "query($id: ID!) { node(id: $id) { ... on User { version } } }"
    data = (await client(query, {"id": to_global_id("User", user_id)}, token=admin)).data
    version: int = data["node"]["version"]
    return version


async def test_a_role_lowered_through_the_api_applies_to_the_next_request(
    client: GraphQLClient, accounts: Accounts
) -> None:
    from api.relay import to_global_id

    admin = await accounts.create(Role.ADMIN)
    grace = await accounts.create(Role.KNOWLEDGE_MANAGER)
    assert (await client(ME, token=grace.token)).data["me"]["role"] == "KNOWLEDGE_MANAGER"
    change = {
        "id": to_global_id("User", grace.id),
        "expectedVersion": await _user_version(client, admin.token, grace.id),
        "role": "VIEWER",
    }
    updated = (await client(UPDATE_USER, {"input": change}, token=admin.token)).data
    assert updated["updateUser"] == {"__typename": "User", "role": "VIEWER"}
    assert (await client(ME, token=grace.token)).data["me"]["role"] == "VIEWER"
    denied = (await client(CREATE_SERVICE, {"slug": "payments"}, token=grace.token)).data
    assert denied["createService"]["__typename"] == "PermissionDeniedError"


async def test_a_user_deactivated_through_the_api_is_refused_at_once(
    client: GraphQLClient, accounts: Accounts
) -> None:
    from api.relay import to_global_id

    admin = await accounts.create(Role.ADMIN)
    heidi = await accounts.create(Role.RESPONDER)
    assert (await client(ME, token=heidi.token)).data["me"]["isAuthenticated"] is True
    change = {
        "id": to_global_id("User", heidi.id),
        "expectedVersion": await _user_version(client, admin.token, heidi.id),
        "isActive": False,
    }
    updated = (await client(UPDATE_USER, {"input": change}, token=admin.token)).data
    assert updated["updateUser"]["__typename"] == "User"
    reply = await client(ME, token=heidi.token)
    assert reply.status == 401
    assert "deactivated" in reply.errors[0]["message"]


async def test_a_failed_user_update_leaves_the_token_working(
    client: GraphQLClient, accounts: Accounts
) -> None:
    from api.relay import to_global_id

    admin = await accounts.create(Role.ADMIN)
    ivan = await accounts.create(Role.RESPONDER)
    assert (await client(ME, token=ivan.token)).data["me"]["role"] == "RESPONDER"
    stale = {"id": to_global_id("User", ivan.id), "expectedVersion": 999, "role": "VIEWER"}
    refused = (await client(UPDATE_USER, {"input": stale}, token=admin.token)).data
    assert refused["updateUser"]["__typename"] == "ConflictError"
    assert (await client(ME, token=ivan.token)).data["me"]["role"] == "RESPONDER"


async def test_a_token_is_refused_from_its_expiry_on_even_while_cached(
    client: GraphQLClient, accounts: Accounts, clock: ManualClock
) -> None:
    admin = await accounts.create(Role.ADMIN)
    expires = (clock.now() + dt.timedelta(seconds=10)).isoformat()
    mint = """mutation($at: DateTime) { createApiToken(input: {expiresAt: $at}) {
                ... on IssuedApiToken { secret } } }"""
    secret = (await client(mint, {"at": expires}, token=admin.token)).data["createApiToken"]
    assert (await client(ME, token=secret["secret"])).data["me"]["isAuthenticated"] is True
    clock.advance(seconds=9)
    assert (await client(ME, token=secret["secret"])).data["me"]["isAuthenticated"] is True
    clock.advance(seconds=1)  # well inside the cache's lifetime
    reply = await client(ME, token=secret["secret"])
    assert reply.status == 401
    assert "token expired" in reply.errors[0]["message"]


async def test_expiry_is_judged_by_the_apps_clock_once_the_cache_has_lapsed(
    client: GraphQLClient, accounts: Accounts, clock: ManualClock
) -> None:
    admin = await accounts.create(Role.ADMIN)
    expires = (clock.now() + dt.timedelta(hours=1)).isoformat()
    mint = """mutation($at: DateTime) { createApiToken(input: {expiresAt: $at}) {
                ... on IssuedApiToken { secret } } }"""
    secret = (await client(mint, {"at": expires}, token=admin.token)).data["createApiToken"]
    assert (await client(ME, token=secret["secret"])).data["me"]["isAuthenticated"] is True
    clock.advance(hours=2)
    reply = await client(ME, token=secret["secret"])
    assert reply.status == 401
    assert "token expired" in reply.errors[0]["message"]


async def test_a_revocation_made_by_another_process_is_honoured_within_the_cache_lifetime(
    client: GraphQLClient, accounts: Accounts, db: Database, clock: ManualClock
) -> None:
    judy = await accounts.create(Role.VIEWER)
    assert (await client(ME, token=judy.token)).data["me"]["isAuthenticated"] is True
    # Another process (the CLI, another worker) revokes it in the database directly.
    async with db.transaction() as session:
        await session.execute(
            sa.update(ApiToken).where(ApiToken.id == judy.token_id).values(revoked_at=utcnow())
        )
    # The documented staleness: this process may still honour it for up to the TTL...
    assert (await client(ME, token=judy.token)).data["me"]["isAuthenticated"] is True
    clock.advance(seconds=DEFAULT_TTL.total_seconds())
    # ...and no longer.
    reply = await client(ME, token=judy.token)
    assert reply.status == 401
    assert "token revoked" in reply.errors[0]["message"]
