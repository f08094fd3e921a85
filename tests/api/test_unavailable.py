"""Requests while the database is out of reach: a prompt, plain 503, never a traceback.

The real app, in process, on a PostgreSQL address where nothing listens: every
connection is refused, as when the server is stopped. ``tests/api/test_faults.py``
stops a real cluster under a real server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from websockets.typing import Subprotocol

from api.app import create_app
from knowledge.config import Environment, Settings
from knowledge.db import Database
from tests.api.test_subscriptions import serving
from tests.conftest import http_client
from tests.servers import free_port

KNOWN_ERRORS = "{ knownErrors { nodes { id title } } }"
INTERNALS = ("Traceback", "asyncpg", "sqlalchemy", "Errno", "Connect call failed", "127.0.0.1")


@asynccontextmanager
async def unreachable_app(tmp_path: Path, env: Environment) -> AsyncIterator[Starlette]:
    """The app, started, on a database that refuses every connection."""
    url = f"postgresql+asyncpg://knownfix@127.0.0.1:{free_port()}/gone"
    db = Database(url)
    settings = Settings(database_url=url, index_dir=tmp_path / "index", env=env)
    try:
        app = create_app(settings, db=db)
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await db.dispose()


@asynccontextmanager
async def unreachable(tmp_path: Path, env: Environment) -> AsyncIterator[httpx.AsyncClient]:
    async with unreachable_app(tmp_path, env) as app, http_client(app) as http:
        yield http


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


@pytest.mark.parametrize("env", list(Environment))
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("header", [False, True])
async def test_a_subscription_websocket_is_closed_with_try_again_later(
    tmp_path: Path, env: Environment, protocol: str, header: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """1013, not a refused handshake (a 403 reads as a bad token) and not a connection
    left waiting: a subscription cannot hear of anything while the database is away."""
    token = "kfx_" + "a" * 43
    headers = {"Authorization": f"Bearer {token}"} if header else {}
    async with (
        unreachable_app(tmp_path, env) as app,
        serving(app) as served,
        websockets.connect(
            served.ws_url, subprotocols=[Subprotocol(protocol)], additional_headers=headers
        ) as ws,
    ):
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        with contextlib.suppress(websockets.ConnectionClosed):  # it may be closed already
            await ws.send(json.dumps(init))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013
    assert "database" in closed.value.rcvd.reason
    (line,) = [r for r in caplog.records if r.name == "knownfix.app"]
    assert line.exc_info is None, "an outage is one line, not a traceback"


async def test_the_background_loops_retrying_through_an_outage_log_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The indexer and the event dispatcher retry on every poll; an outage is a warning
    when it starts, not a traceback per retry."""
    caplog.set_level(logging.INFO)
    url = f"postgresql+asyncpg://knownfix@127.0.0.1:{free_port()}/gone"
    db = Database(url)
    settings = Settings(database_url=url, index_dir=tmp_path / "index")
    try:
        app = create_app(settings, db=db)
        loops = (app.state.indexer, app.state.events)
        for loop in loops:
            loop.poll_interval = 0.01
        async with app.router.lifespan_context(app), asyncio.timeout(10):
            while any(loop.retries.failures < 5 for loop in loops):  # noqa: ASYNC110 - no event says so
                await asyncio.sleep(0.01)
    finally:
        await db.dispose()
    for name in ("knownfix.search", "knownfix.events"):
        records = [r for r in caplog.records if r.name == name and r.levelno >= logging.WARNING]
        assert len(records) == 1, [r.getMessage() for r in records]
        assert "the database is unreachable" in records[0].getMessage()
        assert records[0].exc_info is None
