"""Real ``knownfix serve`` processes for tests: start, stop, kill, and talk to them.

The server's output is read all the time, not only until it has started: a server
that logs every request would otherwise fill the pipe and block on its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

KNOWNFIX = str(Path(sys.executable).with_name("knownfix"))
STARTUP_TIMEOUT = 60
SHUTDOWN_TIMEOUT = 30
# Not "Application startup complete": uvicorn logs that before it binds the port.
STARTED = "Uvicorn running on"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"
        self.output: list[str] = []
        self.started = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None

    @property
    def log(self) -> str:
        return "".join(self.output)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, like a power cut for the process."""
        self.process.send_signal(signal.SIGKILL)

    async def read_output(self) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode(errors="replace"):
            self.output.append(line)
            if STARTED in line:
                self.started.set()


@asynccontextmanager
async def serving(workdir: Path, env: dict[str, str], *args: str) -> AsyncIterator[Server]:
    """A server on a free port, started and ready; stopped with SIGTERM on exit
    (unless the test killed it already). ``args`` go to ``knownfix serve``."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        KNOWNFIX,
        "serve",
        "--port",
        str(port),
        *args,
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = Server(process, port)
    server.reader = asyncio.create_task(server.read_output())
    try:
        started = asyncio.create_task(server.started.wait())
        await asyncio.wait(
            {started, server.reader},
            timeout=STARTUP_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        started.cancel()
        if not server.started.is_set():
            raise AssertionError("server did not start:\n" + server.log)
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), SHUTDOWN_TIMEOUT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(server.reader, SHUTDOWN_TIMEOUT)


def environment(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWNFIX_")}
    return {**env, "KNOWNFIX_DATABASE_URL": database_url, "KNOWNFIX_LOG_LEVEL": "info", **extra}


async def upgrade(workdir: Path, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(KNOWNFIX, "db", "upgrade", cwd=workdir, env=env)
    assert await process.wait() == 0


async def graphql(
    server: Server,
    query: str,
    token: str | None = None,
    variables: dict[str, Any] | None = None,
    *,
    http_timeout: float = 30,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=server.url, timeout=http_timeout) as http:
        return await http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
