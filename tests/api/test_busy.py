"""A write that waits too long for SQLite's write lock: a clear, retryable 503.

Another process's writer holds the host's writer lock (``knowledge/sqlite_writers.py``)
for longer than a write may wait. The write gives up having changed nothing, and the
client is told so in words it can act on, in production too: never a masked
"unexpected error", never a 500.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.cli import main
from knowledge.accounts.roles import Role
from knowledge.db import Database
from tests.conftest import TEST_DATABASE_URL
from tests.knowledge.test_db import writers_lock_held
from tests.support import Accounts, GraphQLClient

pytestmark = pytest.mark.skipif(TEST_DATABASE_URL != "", reason="SQLite's single write lock")

CREATE_TEAM = """
mutation($slug: String!) { createTeam(input: {slug: $slug, name: "Team"}) {
  __typename ... on Team { slug } } }
"""
TEAMS = "{ teams { nodes { slug } } }"
INTERNALS = ("Traceback", "sqlite", "sqlalchemy", "locked", "Unexpected")


def assert_database_busy(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"] == "1"
    (error,) = reply.json()["errors"]
    assert error["extensions"]["code"] == "DATABASE_BUSY"
    assert error["message"].startswith("The database is busy with other writes; nothing was")
    assert error["extensions"]["requestId"] == reply.headers["x-request-id"]
    for internal in INTERNALS:
        assert internal not in reply.text


async def test_a_write_kept_waiting_by_another_process_is_a_retryable_503(
    db: Database,
    accounts: Accounts,
    production_client: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an admin whose token's first use is still to be recorded (a write too)
    admin = await accounts.create(Role.ADMIN)
    monkeypatch.setattr(db, "write_wait", 0.2)
    headers = {"Authorization": f"Bearer {admin.token}"}

    # when another process holds the write lock past the wait
    with writers_lock_held(db):
        reply = await production_client.http.post(
            "/graphql", json={"query": CREATE_TEAM, "variables": {"slug": "sre"}}, headers=headers
        )
        # reads do not queue for the write lock
        teams = await production_client(TEAMS, token=admin.token)

    # then the write is refused as busy, and nothing of it was stored
    assert_database_busy(reply)
    assert teams.data["teams"]["nodes"] == []
    # and the same request succeeds once the lock is free
    retried = await production_client(CREATE_TEAM, {"slug": "sre"}, token=admin.token)
    assert retried.data["createTeam"] == {"__typename": "Team", "slug": "sre"}


LOCK_HELD_SECONDS = 5.0


async def test_a_command_kept_waiting_says_the_database_is_busy_and_changes_nothing(
    db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWNFIX_SQLITE_WRITE_WAIT_MS", "200")
    argv = ["token", "create", "--user", "ops", "--role", "admin", "--database-url", db.url]

    # The other writer lets go after a while: a command that waited the default 30 s
    # would then write, and only one that waits what the variable says gives up.
    with writers_lock_held(db):
        command = asyncio.ensure_future(asyncio.to_thread(main, argv))
        await asyncio.wait({command}, timeout=LOCK_HELD_SECONDS)
    status = await command

    assert status == 1
    error = capsys.readouterr().err
    assert error.startswith("knownfix: the database is busy (")
    assert "nothing was changed: run it again" in error
    assert await asyncio.to_thread(main, argv) == 0, "run again, it works"
