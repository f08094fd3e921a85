"""``knownfix serve`` as a real process: first start, GraphQL over HTTP and websocket, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest
import websockets

from knowledge.search.writer_lock import WriterLock
from tests.conftest import DatabaseFactory
from tests.servers import (
    KNOWNFIX,
    STARTUP_TIMEOUT,
    Server,
    environment,
    free_port,
    graphql,
    serving,
    upgrade,
)

pytestmark = pytest.mark.slow


async def ws_handshake(server: Server, payload: dict[str, str]) -> dict[str, object]:
    async with websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            reply: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except websockets.ConnectionClosed as closed:
            return {"closed": closed.rcvd.code if closed.rcvd else None}
        return reply


async def test_first_start_loads_demo_data_and_serves_graphql(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    env = environment(await database_factory.create())
    await upgrade(tmp_path, env)
    async with serving(tmp_path, env) as server:
        started = "".join(server.output)
        assert "Loaded the demo knowledge base (42 articles" in started
        token = (tmp_path / "var" / "admin-token").read_text().strip()
        assert token in started
        assert (tmp_path / "var" / "admin-token").stat().st_mode & 0o077 == 0

        me = await graphql(server, "{ me { role user { username } } }", token)
        assert me.json() == {"data": {"me": {"role": "ADMIN", "user": {"username": "admin"}}}}
        services = await graphql(server, "{ services(first: 100) { nodes { slug } } }")
        assert len(services.json()["data"]["services"]["nodes"]) == 10

        async with httpx.AsyncClient(base_url=server.url) as http:
            ide = await http.get("/graphql", headers={"Accept": "text/html"})
            ready = await http.get("/readyz")
        assert "GraphiQL" in ide.text
        assert ready.json()["status"] == "ready"

        ack = await ws_handshake(server, {"Authorization": f"Bearer {token}"})
        assert ack["type"] == "connection_ack"
        refused = await ws_handshake(server, {"Authorization": "Bearer kfx_" + "x" * 43})
        assert refused == {"closed": 4403}

    # uvicorn finishes in-flight work and runs the lifespan shutdown; then the server
    # stops its index writer and exits as asked, not killed by its own signal.
    assert server.process.returncode == 0
    assert "the server that started this index writer is gone" not in server.log
    assert "Application shutdown complete" in "".join(server.output)

    # A second start finds the data and the token already there and adds nothing.
    async with serving(tmp_path, env) as again:
        started = "".join(again.output)
        assert "Loaded the demo" not in started
        assert "Development admin token" not in started
        assert (tmp_path / "var" / "admin-token").read_text().strip() == token
        still = await graphql(again, "{ me { role } }", token)
        assert still.json()["data"]["me"]["role"] == "ADMIN"


async def test_ctrl_c_stops_the_server_and_its_index_writer_without_a_traceback(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    env = environment(await database_factory.create())
    await upgrade(tmp_path, env)
    async with serving(tmp_path, env) as server:
        writer = WriterLock(tmp_path / "var" / "index").holder()
        assert writer not in (None, server.process.pid)
        server.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(server.process.wait(), STARTUP_TIMEOUT) == 0
    assert "Traceback" not in server.log
    assert "the server that started this index writer is gone" not in server.log
    lock = WriterLock(tmp_path / "var" / "index")
    assert lock.acquire(), "its index writer let go of the lock"
    lock.release()


async def test_production_refuses_anonymous_callers_and_loads_no_demo(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    env = environment(
        await database_factory.create(), KNOWNFIX_ENV="production", KNOWNFIX_MAX_BODY_BYTES="2000"
    )
    await upgrade(tmp_path, env)
    async with serving(tmp_path, env) as server:
        assert "Loaded the demo" not in "".join(server.output)
        reply = await graphql(server, "{ services { nodes { slug } } }")
        assert reply.status_code == 401
        async with httpx.AsyncClient(base_url=server.url) as http:
            ide = await http.get("/graphql", headers={"Accept": "text/html"})
        assert ide.status_code != 200 or "GraphiQL" not in ide.text
        refused = await ws_handshake(server, {})
        assert refused == {"closed": 4403}
        # The body limit holds for websocket messages too: 1009 is "message too big"
        oversized = await ws_handshake(server, {"padding": "x" * 3000})
        assert oversized == {"closed": 1009}
    assert not (tmp_path / "var" / "admin-token").exists()


@pytest.mark.parametrize("command", ["serve", "indexer"])
async def test_serve_and_its_indexer_refuse_a_database_behind_the_code(
    database_factory: DatabaseFactory, tmp_path: Path, command: str
) -> None:
    env = environment(await database_factory.create())
    port = ["--port", str(free_port())] if command == "serve" else []
    process = await asyncio.create_subprocess_exec(
        KNOWNFIX,
        command,
        *port,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert process.returncode == 2
    assert "run 'knownfix db upgrade'" in err.decode()
