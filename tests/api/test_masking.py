"""Production hides what went wrong inside, but says which request it was; what the
client did wrong (limits, validation, bad ids) it still sees in full."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
import strawberry.schema.schema as strawberry_schema
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from knowledge.accounts.roles import Role
from knowledge.catalog import service as catalog
from knowledge.config import Environment, Settings
from knowledge.db import Database
from tests.conftest import http_client
from tests.support import Accounts, GraphQLClient

SERVICES = "{ services { nodes { slug } } }"


@pytest.fixture
def broken_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing services runs SQL the database rejects: a real driver error, with the SQL
    text and a stack trace in it, as an unexpected bug would produce."""

    async def get_all(*, session: AsyncSession, **_: Any) -> Any:
        await session.execute(sa.text("SELECT secret_column FROM no_such_table"))
        raise AssertionError("unreachable")

    monkeypatch.setattr(catalog, "get_all", get_all)


@pytest.fixture
async def production(db: Database, settings: Settings) -> AsyncIterator[GraphQLClient]:
    application = create_app(settings.replace(env=Environment.PRODUCTION, max_query_depth=3), db=db)
    async with application.router.lifespan_context(application), http_client(application) as http:
        yield GraphQLClient(http)


@pytest.mark.usefixtures("broken_catalog")
async def test_production_masks_an_unexpected_error_and_names_the_request(
    production: GraphQLClient, accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    with caplog.at_level(logging.ERROR, logger="knownfix.graphql"):
        reply = await production.http.post(
            "/graphql",
            json={"query": SERVICES},
            headers={"Authorization": f"Bearer {viewer.token}"},
        )
    request_id = reply.headers["X-Request-ID"]
    [error] = reply.json()["errors"]
    assert error["message"] == f"Unexpected error (request id {request_id})."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    for leak in ("no_such_table", "secret_column", "SELECT", "Traceback", "sqlalchemy"):
        assert leak not in reply.text
    # ... and the operator finds the details under the same id.
    [record] = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info is not None
    assert "no_such_table" in str(record.exc_info[1])


@pytest.mark.usefixtures("broken_catalog")
async def test_development_shows_the_error_and_still_names_the_request(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="knownfix.graphql"):
        reply = await client.http.post("/graphql", json={"query": SERVICES})
    assert "no_such_table" in reply.json()["errors"][0]["message"]
    assert any(reply.headers["X-Request-ID"] in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        (
            "{ services { nodes { ownerTeam { slug } } } }",
            "LIMIT_EXCEEDED",
            "deeper than 3 levels",
        ),
        ("{ services { nodes { colour } } }", None, "Cannot query field 'colour'"),
        ('{ node(id: "not-an-id") { id } }', "BAD_USER_INPUT", "is not a valid id"),
        ("{ services(first: 500) { nodes { slug } } }", "BAD_USER_INPUT", "at most 100"),
        ("{ me { role ", None, "Syntax Error"),
    ],
)
async def test_production_shows_errors_the_client_caused(
    production: GraphQLClient, accounts: Accounts, query: str, code: str | None, words: str
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    reply = await production(query, token=viewer.token)
    [error] = reply.errors
    assert words in error["message"]
    assert error.get("extensions", {}).get("code") == code


@pytest.mark.parametrize(
    "incoming",
    ["req-7f3a.9:12", "a" * 128, "0123456789abcdef0123456789abcdef"],
)
async def test_a_sane_incoming_request_id_is_kept(client: GraphQLClient, incoming: str) -> None:
    reply = await client.http.post(
        "/graphql", json={"query": "{ me { role } }"}, headers={"X-Request-ID": incoming}
    )
    assert reply.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["", "a" * 129, "two words", "<script>", "-leading-dash", "id\tinjected", "ünïcode"],
)
async def test_anything_else_gets_a_fresh_request_id(client: GraphQLClient, incoming: str) -> None:
    reply = await client.http.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={"X-Request-ID": incoming.encode("utf-8")},
    )
    returned = reply.headers["X-Request-ID"]
    assert returned != incoming
    assert len(returned) == 32
    assert int(returned, 16) >= 0


async def test_every_response_has_a_request_id_even_refusals(
    production: GraphQLClient, client: GraphQLClient
) -> None:
    unauthenticated = await production.http.post("/graphql", json={"query": "{ me { role } }"})
    assert unauthenticated.status_code == 401
    health = await client.http.get("/healthz")
    first = await client.http.post("/graphql", json={"query": "{ me { role } }"})
    ids = {r.headers["X-Request-ID"] for r in (unauthenticated, health, first)}
    assert len(ids) == 3


async def test_production_masks_an_unexpected_error_raised_before_execution(
    production: GraphQLClient, accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in validation (say, a limit rule) surfaces from an extension hook, past
    strawberry's MaskErrors; it must be masked all the same."""

    def broken_validate(*_: Any, **__: Any) -> Any:
        raise RuntimeError("SELECT secret_column FROM no_such_table")

    monkeypatch.setattr(strawberry_schema, "validate", broken_validate)
    viewer = await accounts.create(Role.VIEWER)
    reply = await production.http.post(
        "/graphql",
        json={"query": "query BeforeExecution { me { role } }"},
        headers={"Authorization": f"Bearer {viewer.token}"},
    )
    [error] = reply.json()["errors"]
    assert error["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": reply.headers["X-Request-ID"],
    }
    assert "secret_column" not in reply.text


async def test_without_introspection_errors_suggest_no_field_names(
    production: GraphQLClient, client: GraphQLClient, accounts: Accounts
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    typo = "{ me { rol } }"
    assert "Did you mean 'role'?" in (await client(typo)).errors[0]["message"]
    [error] = (await production(typo, token=viewer.token)).errors
    assert error["message"] == "Cannot query field 'rol' on type 'Viewer'."


async def test_a_browser_on_a_listed_origin_may_read_the_request_id(
    db: Database, settings: Settings
) -> None:
    application = create_app(settings.replace(cors_origins=("https://desk.example.com",)), db=db)
    async with application.router.lifespan_context(application), http_client(application) as http:
        reply = await http.post(
            "/graphql",
            json={"query": "{ me { role } }"},
            headers={"Origin": "https://desk.example.com"},
        )
    assert reply.headers["access-control-expose-headers"] == "X-Request-ID"
    assert reply.headers["X-Request-ID"]
