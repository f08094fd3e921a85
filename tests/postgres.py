"""A throwaway PostgreSQL cluster of our own, for tests that stop the database.

The machine's shared PostgreSQL must never be stopped (other test runs use it), so
a test that needs an outage starts its own cluster with ``initdb`` and ``pg_ctl``
in a temporary folder, on a free port, and stops and starts that one. PostgreSQL
refuses to run as root; as root the commands run as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.servers import free_port

COMMAND_TIMEOUT = 60


def _impossible(reason: str) -> NoReturn:
    """Skip where no private cluster can start, except in the PostgreSQL run: the
    outage tests are a reason for that run, and a silent skip would hide that they
    never ran."""
    if os.environ.get("KNOWNFIX_TEST_DATABASE_URL", "").strip():
        pytest.fail(f"{reason}; the PostgreSQL run (KNOWNFIX_TEST_DATABASE_URL) must run this test")
    pytest.skip(reason)


def _bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live (Debian keeps them off the PATH)."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


class PrivateCluster:
    def __init__(self, bin_dir: Path, root: Path, port: int, run_as: list[str]) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.run_as = run_as

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def _run(self, program: str, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.run_as,
            str(self.bin_dir / program),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        assert process.returncode == 0, f"{program} {' '.join(args)}:\n{out.decode()}"

    async def init(self) -> None:
        await self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )

    async def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        await self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
            "-w", "-t", str(COMMAND_TIMEOUT), "start",
        )  # fmt: skip

    async def stop(self) -> None:
        """A fast shutdown: open sessions are ended, new connections refused."""
        await self._run(
            "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(COMMAND_TIMEOUT), "stop"
        )

    async def create_database(self, name: str) -> str:
        admin = create_async_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            await admin.dispose()
        return self.url(name)


@asynccontextmanager
async def private_cluster() -> AsyncIterator[PrivateCluster]:
    """A running cluster, removed afterwards; where that is impossible, skips the test
    (fails it in the PostgreSQL run)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        _impossible("needs PostgreSQL's initdb and pg_ctl to start a private cluster")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _impossible("running as root, and there is no postgres user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if runuser is None:
            _impossible("running as root, and runuser is missing to run PostgreSQL as postgres")
        run_as = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="knownfix-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = PrivateCluster(bin_dir, root, free_port(), run_as)
    try:
        await cluster.init()
        await cluster.start()
        try:
            yield cluster
        finally:
            if (cluster.data / "postmaster.pid").exists():
                await cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
