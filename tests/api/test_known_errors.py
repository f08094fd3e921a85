"""Known errors through GraphQL: keys, the status graph, curation rights, conflicts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.relay import to_global_id
from knowledge.accounts.roles import Role
from tests.support import Account, Accounts, GraphQLClient

RESULT = """
  __typename
  ... on KnownError { id key title status rootCause workaround version services { slug }
                      articles { slug } }
  ... on Error { message code field }
  ... on ConflictError { currentVersion }
"""
CREATE = (
    f"mutation($input: CreateKnownErrorInput!) {{ createKnownError(input: $input) {{ {RESULT} }} }}"
)
UPDATE = (
    f"mutation($input: UpdateKnownErrorInput!) {{ updateKnownError(input: $input) {{ {RESULT} }} }}"
)


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER)


async def create(client: GraphQLClient, token: str, **fields: Any) -> dict[str, Any]:
    payload = {"title": "Connection pool exhausted at peak", "rootCause": "Pool of 10", **fields}
    result: dict[str, Any] = (await client(CREATE, {"input": payload}, token=token)).data[
        "createKnownError"
    ]
    return result


async def test_keys_are_assigned_in_sequence(client: GraphQLClient, manager: Account) -> None:
    keys = [(await create(client, manager.token))["key"] for _ in range(3)]
    assert keys == ["KE-0001", "KE-0002", "KE-0003"]
    found = await client('{ knownError(key: "ke-0002") { key status } }')
    assert found.data["knownError"] == {"key": "KE-0002", "status": "OPEN"}


async def test_concurrent_creation_never_reuses_a_key(
    client: GraphQLClient, manager: Account
) -> None:
    results = await asyncio.gather(*(create(client, manager.token) for _ in range(5)))
    assert sorted(r["key"] for r in results) == [f"KE-000{n}" for n in range(1, 6)]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REPORTER, Role.RESPONDER])
async def test_only_knowledge_managers_record_known_errors(
    client: GraphQLClient, accounts: Accounts, role: Role
) -> None:
    account = await accounts.create(role)
    assert (await create(client, account.token))["__typename"] == "PermissionDeniedError"
    listing = await client("{ knownErrors { nodes { key } } }")
    assert listing.data["knownErrors"]["nodes"] == []


@pytest.mark.parametrize(
    ("steps", "allowed"),
    [
        (["FIX_IN_PROGRESS", "FIXED", "ARCHIVED"], [True, True, True]),
        (["FIXED", "OPEN"], [True, True]),
        (["ARCHIVED", "FIXED"], [True, False]),
        (["FIXED", "FIX_IN_PROGRESS"], [True, False]),
    ],
)
async def test_status_follows_the_graph(
    client: GraphQLClient, manager: Account, steps: list[str], allowed: list[bool]
) -> None:
    created = await create(client, manager.token)
    version = created["version"]
    for status, ok in zip(steps, allowed, strict=True):
        update = {"id": created["id"], "expectedVersion": version, "status": status}
        result = (await client(UPDATE, {"input": update}, token=manager.token)).data[
            "updateKnownError"
        ]
        if ok:
            assert result["status"] == status
            version = result["version"]
        else:
            assert (result["__typename"], result["field"]) == (
                "InvalidTransitionError",
                "input.status",
            )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "input.title"),
        ({"title": "x" * 201}, "input.title"),
        ({"rootCause": "r" * 20_001}, "input.rootCause"),
        ({"errorSignatures": [f"e{i}" for i in range(21)]}, "input.errorSignatures"),
        ({"serviceIds": [to_global_id("Service", 5)]}, "input.serviceIds"),
        ({"serviceIds": ["%%%"]}, "input.serviceIds"),
    ],
)
async def test_invalid_known_error_input_is_refused(
    client: GraphQLClient, manager: Account, fields: dict[str, Any], field: str
) -> None:
    result = await create(client, manager.token, **fields)
    assert result["__typename"] in ("ValidationError", "NotFoundError")
    assert result["field"] == field


async def test_a_stale_update_conflicts_and_loses_nothing(
    client: GraphQLClient, manager: Account
) -> None:
    created = await create(client, manager.token)
    first = {"id": created["id"], "expectedVersion": 1, "workaround": "Restart the pooler"}
    second = {"id": created["id"], "expectedVersion": 1, "workaround": "Something else"}
    assert (await client(UPDATE, {"input": first}, token=manager.token)).data
    conflict = (await client(UPDATE, {"input": second}, token=manager.token)).data[
        "updateKnownError"
    ]
    assert (conflict["__typename"], conflict["currentVersion"]) == ("ConflictError", 2)
    stored = await client(f'{{ knownError(id: "{created["id"]}") {{ workaround }} }}')
    assert stored.data["knownError"]["workaround"] == "Restart the pooler"


async def test_articles_link_to_the_known_error_they_document(
    client: GraphQLClient, manager: Account
) -> None:
    known_error = await create(client, manager.token)
    article = await client(
        'mutation { createArticle(input: {title: "Pool exhaustion runbook"}) { ... on Article { id } } }',
        token=manager.token,
    )
    article_id = article.data["createArticle"]["id"]
    link = """mutation($a: ID!, $k: ID) { linkArticleToKnownError(input: {articleId: $a, knownErrorId: $k}) {
                __typename ... on Article { knownError { key } } } }"""
    linked = await client(link, {"a": article_id, "k": known_error["id"]}, token=manager.token)
    assert linked.data["linkArticleToKnownError"]["knownError"] == {"key": "KE-0001"}
    # A draft is visible to the manager in the known error's list, not to anonymous readers.
    query = f'{{ knownError(id: "{known_error["id"]}") {{ articles {{ slug }} }} }}'
    assert (await client(query, token=manager.token)).data["knownError"]["articles"] == [
        {"slug": "pool-exhaustion-runbook"}
    ]
    assert (await client(query)).data["knownError"]["articles"] == []
    unlinked = await client(link, {"a": article_id, "k": None}, token=manager.token)
    assert unlinked.data["linkArticleToKnownError"]["knownError"] is None


async def test_concurrent_updates_from_one_version_let_exactly_one_win(
    client: GraphQLClient, manager: Account
) -> None:
    created = await create(client, manager.token)
    results = await asyncio.gather(*(
        client(UPDATE, {"input": {"id": created["id"], "expectedVersion": 1, "workaround": f"w{n}"}},
               token=manager.token)
        for n in range(4)
    ))  # fmt: skip
    kinds = sorted(r.data["updateKnownError"]["__typename"] for r in results)
    assert kinds == ["ConflictError"] * 3 + ["KnownError"]
