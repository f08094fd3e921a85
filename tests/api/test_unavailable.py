"""Requests while the database is out of reach: a prompt, plain 503, never a traceback.

The real app, in process, on a PostgreSQL address where nothing listens: every
connection is refused, as when the server is stopped. ``tests/api/test_faults.py``
stops a real cluster under a real server process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from knowledge.config import Environment, Settings
from knowledge.db import Database
from tests.conftest import http_client
from tests.servers import free_port

KNOWN_ERRORS = "{ knownErrors { nodes { id title } } }"
INTERNALS = ("Traceback", "asyncpg", "sqlalchemy", "Errno", "Connect call failed", "127.0.0.1")


@asynccontextmanager
async def unreachable(tmp_path: Path, env: Environment) -> AsyncIterator[httpx.AsyncClient]:
    url = f"postgresql+asyncpg://knownfix@127.0.0.1:{free_port()}/gone"
    db = Database(url)
    settings = Settings(database_url=url, index_dir=tmp_path / "index", env=env)
    try:
        app = create_app(settings, db=db)
        async with app.router.lifespan_context(app), http_client(app) as http:
            yield http
    finally:
        await db.dispose()


def assert_database_unavailable(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"].isdigit()
    (error,) = reply.json()["errors"]
    assert error["message"] == "The database is unavailable; try again shortly."
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE"
    assert error["extensions"]["requestId"] == reply.headers["x-request-id"]
    for internal in INTERNALS:
        assert internal not in reply.text


async def test_a_query_that_needs_the_database_gets_a_503_saying_so(tmp_path: Path) -> None:
    async with unreachable(tmp_path, Environment.DEVELOPMENT) as http:
        reply = await http.post("/graphql", json={"query": KNOWN_ERRORS})
    assert_database_unavailable(reply)


@pytest.mark.parametrize("env", list(Environment))
async def test_a_token_that_cannot_be_checked_gets_a_503_not_a_401_or_a_500(
    tmp_path: Path, env: Environment
) -> None:
    async with unreachable(tmp_path, env) as http:
        reply = await http.post(
            "/graphql",
            json={"query": KNOWN_ERRORS},
            headers={"Authorization": "Bearer kfx_" + "a" * 43},
        )
    assert_database_unavailable(reply)


async def test_requests_that_need_no_database_still_work(tmp_path: Path) -> None:
    async with unreachable(tmp_path, Environment.PRODUCTION) as http:
        anonymous = await http.post("/graphql", json={"query": KNOWN_ERRORS})
        malformed = await http.post("/graphql", content=b"{", headers={"Authorization": "x"})
        health = await http.get("/healthz")
    assert anonymous.status_code == 401, "production refuses before asking the database"
    assert malformed.status_code == 401
    assert health.status_code == 200
