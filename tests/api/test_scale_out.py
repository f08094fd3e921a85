"""Several real ``knownfix serve`` processes on one database.

Workers on one host share an index directory: a process beside them writes it, they
search it, and one of them takes over when the writer dies. Hosts on PostgreSQL keep
their own index directories: an article created through one is found through the
other, and a subscriber on one hears what happens through the other.

Real processes answer in their own time, so the tests poll them with bounded
deadlines.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
import websockets

from api.indexer_process import READY, WAITING
from knowledge.db import Database
from knowledge.outbox.listener import APPLICATION_NAME
from knowledge.search.writer_lock import WriterLock, preferred_writer
from tests.conftest import TEST_DATABASE_URL, DatabaseFactory
from tests.servers import KNOWNFIX, Server, environment, serving, upgrade

pytestmark = pytest.mark.slow
postgresql_only = pytest.mark.skipif(
    not TEST_DATABASE_URL,
    reason="hosts share a database only on PostgreSQL (a SQLite file belongs to one host)",
)

DEADLINE = 30.0  # a bound for a slow shared machine, not a promise of speed
ATTEMPT = 2.0

CREATE = """
mutation($input: CreateArticleInput!) { createArticle(input: $input) {
  __typename ... on Article { id } ... on Error { message } } }
"""
PUBLISH = """
mutation($id: ID!) { publishArticle(input: {id: $id}) {
  __typename ... on Error { message } } }
"""
SEARCH = """
query($q: String!) { search(query: $q, types: [ARTICLE]) {
  edges { node { ... on ArticleHit { article { title } } } } } }
"""
REPORT = """
mutation($input: ReportIncidentInput!) { reportIncident(input: $input) {
  __typename ... on Incident { id } ... on Error { message } } }
"""
NOTE = """
mutation($input: AddWorkNoteInput!) { addWorkNote(input: $input) {
  __typename ... on IncidentEvent { id } ... on Error { message } } }
"""
EVENTS = """
subscription($filter: IncidentEventFilter) {
  incidentEvents(filter: $filter) { kind message actor { username } incident { id } } }
"""

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll ``check`` until it returns something, within ``DEADLINE``."""
    try:
        async with asyncio.timeout(DEADLINE):
            while (result := await check()) is None:  # noqa: ASYNC110 - other processes
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    return result


async def call(
    http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    reply = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = reply.json()
    assert reply.status_code == 200, body
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def graphql(server: Server, token: str, query: str, **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
        return await call(http, token, query, variables)


async def publish(server: Server, token: str, title: str, body: str) -> None:
    created = (await graphql(server, token, CREATE, input={"title": title, "body": body}))[
        "createArticle"
    ]
    assert created["__typename"] == "Article", created
    published = (await graphql(server, token, PUBLISH, id=created["id"]))["publishArticle"]
    assert published["__typename"] == "Article", published


def titles(data: dict[str, Any]) -> list[str]:
    return [e["node"]["article"]["title"] for e in data["search"]["edges"] if e["node"]]


async def ask(server: Server, token: str, text: str) -> tuple[dict[str, Any], list[str]] | None:
    """One worker's readiness and its search results: both requests on one connection,
    so the same process answers them. ``None`` while no worker listens yet (uvicorn
    announces the port before its workers open it) or the one that answered is not
    ready (one uvicorn has just started may not have opened the index yet)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
        try:
            ready = (await http.get("/readyz")).json()
        except httpx.ConnectError:
            return None
        if ready["status"] != "ready":
            return None
        return ready, titles(await call(http, token, SEARCH, {"q": text}))


def index_writer(index_dir: Path, server: Server, workers: Collection[int]) -> int:
    """The process holding the index's writer lock: one of its own, beside the server
    and its workers."""
    writer = WriterLock(index_dir).holder()
    assert writer is not None
    assert writer not in (server.process.pid, *workers)
    return writer


async def holder_among(index_dir: Path, pids: Collection[int], what: str) -> int:
    """Wait until one of ``pids`` holds the index's writer lock; returns which."""

    async def among() -> int | None:
        holder = WriterLock(index_dir).holder()
        return holder if holder in pids else None

    return await eventually(among, what)


async def ready_workers(server: Server, count: int) -> set[int]:
    """The pids of ``count`` workers that have answered ready (uvicorn announces the port
    before its workers have started)."""
    workers: set[int] = set()

    async def all_ready() -> set[int] | None:
        # A connection of its own each time: the kernel spreads them over the workers.
        async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
            try:
                ready = (await http.get("/readyz")).json()
            except httpx.ConnectError:
                return None
        if ready["status"] == "ready":
            workers.add(ready["process"]["pid"])
        return workers if len(workers) == count else None

    return await eventually(all_ready, f"{count} workers to answer, ready")


# --- workers on one host -----------------------------------------------------------------


async def one_host(database_factory: DatabaseFactory, workdir: Path) -> dict[str, str]:
    """The environment of a host working in ``workdir`` on a new, upgraded database."""
    env = environment(await database_factory.create())
    await upgrade(workdir, env)
    return env


WOMBAT = (
    "Wombat batch exports truncate at midnight",
    "## Symptoms\nExports started before midnight stop at the date change.\n"
    "## Resolution\nRun exports in UTC.",
)
KOALA = (
    "Koala scheduler skips jobs after a clock change",
    "## Symptoms\nJobs due in the repeated hour never run.\n"
    "## Resolution\nSchedule in UTC and store the zone per job.",
)
JACKAL = (
    "Jackal gateway leaks sockets under retry storms",
    "## Symptoms\nThe gateway runs out of ephemeral ports.\n"
    "## Resolution\nCap retries with a budget.",
)


async def test_workers_search_one_index_that_a_process_beside_them_writes(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    env = await one_host(database_factory, tmp_path)
    async with serving(tmp_path, env, "--workers", "2") as server:
        token = (tmp_path / "var" / "admin-token").read_text().strip()
        workers: dict[int, bool] = {}

        async def both_ready() -> dict[int, bool] | None:
            if answer := await ask(server, token, "wombat"):
                ready, _ = answer
                workers[ready["process"]["pid"]] = ready["process"]["indexWriter"]
            return workers if len(workers) == 2 else None

        await eventually(both_ready, "both workers to answer, ready")
        # The index writer is a process of its own, so that indexing never holds up
        # a worker's requests; the server names it.
        assert sorted(workers.values()) == [False, False], workers
        index_dir = tmp_path / "var" / "index"
        writer = index_writer(index_dir, server, workers)
        assert f"the index written by process {writer}" in server.log
        assert not WriterLock(index_dir).acquire(), "the writer holds the lock"

        # Written through a worker, found through both.
        await publish(server, token, *WOMBAT)
        found_by: set[int] = set()

        async def found_by_both() -> set[int] | None:
            if answer := await ask(server, token, "wombat exports"):
                ready, found = answer
                if WOMBAT[0] in found:
                    found_by.add(ready["process"]["pid"])
            return found_by if found_by == set(workers) else None

        await eventually(found_by_both, "both workers to find the new article")

        # The writer dies; a worker takes over until the server has started it again.
        os.kill(writer, signal.SIGKILL)

        await holder_among(index_dir, workers, "a worker to write the index")
        await publish(server, token, *JACKAL)

        async def found_jackal() -> list[str] | None:
            answer = await ask(server, token, "jackal")
            return (answer[1] or None) if answer else None

        assert await eventually(found_jackal, "the article written after the takeover") == [
            JACKAL[0]
        ]
        assert f"the index writer (process {writer}) exited with status -9" in server.log

        async def restarted() -> int | None:
            holder = WriterLock(index_dir).holder()
            return holder if holder not in (None, writer, *workers) else None

        again = await eventually(restarted, "the server's new index writer to take the lock")
        assert f"the index writer was started again, as process {again}" in server.log
        await publish(server, token, *KOALA)

        async def found_koala() -> list[str] | None:
            answer = await ask(server, token, "koala")
            return (answer[1] or None) if answer else None

        assert await eventually(found_koala, "the article written after the restart") == [KOALA[0]]


async def test_an_index_writer_stopped_on_purpose_is_not_started_again(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # As when a service manager sends SIGTERM to every process of the server: it exits
    # 0, and starting it again would only hold up the server's own shutdown.
    env = await one_host(database_factory, tmp_path)
    index_dir = tmp_path / "var" / "index"
    async with serving(tmp_path, env, "--workers", "2") as server:
        workers = await ready_workers(server, 2)
        writer = index_writer(index_dir, server, workers)
        os.kill(writer, signal.SIGTERM)

        await holder_among(index_dir, workers, "a worker to write the index")
        message = f"the index writer (process {writer}) was stopped; the workers write the index"

        async def logged() -> bool | None:
            return message in server.log or None

        await eventually(logged, "the server to say so")
        assert f"the index writer (process {writer}) exited" not in server.log, "no restart"


async def test_a_server_killed_outright_leaves_no_process_behind(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # A worker or index writer left behind would hold the lock, and the next server's
    # writes would wait for it to go (or never be indexed, if it kept running).
    env = await one_host(database_factory, tmp_path)
    index_dir = tmp_path / "var" / "index"
    async with serving(tmp_path, env, "--workers", "2") as server:
        index_writer(index_dir, server, await ready_workers(server, 2))
        server.kill()
        await server.process.wait()

    async def lock_free() -> bool | None:
        lock = WriterLock(index_dir)
        if lock.acquire():
            lock.release()
            return True
        return None

    async def nobody_serving() -> bool | None:
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=DEADLINE) as http:
                await http.get("/healthz")
        except httpx.TransportError:
            return True
        return None

    await eventually(lock_free, "the index writer to stop with its server")
    await eventually(nobody_serving, "the workers to stop with their server")


async def test_the_indexer_command_writes_the_index_until_it_is_stopped(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # As a unit of its own (a container, a systemd service) beside servers.
    env = await one_host(database_factory, tmp_path)
    index_dir = tmp_path / "var" / "index"
    process = await indexer(tmp_path, env)
    try:
        assert await ready_line(process) == READY
        assert WriterLock(index_dir).holder() == process.pid
        assert not WriterLock(index_dir).acquire()
    finally:
        status = await stopped(process)
    assert status == 0, "a clean stop"
    assert_lock_free(index_dir)


async def test_an_indexer_started_beside_another_waits_and_then_takes_over(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # Another server's index writer on the same directory (a restart that overlaps).
    env = await one_host(database_factory, tmp_path)
    index_dir = tmp_path / "var" / "index"
    first = await indexer(tmp_path, env)
    assert await ready_line(first) == READY
    second = await indexer(tmp_path, env)
    try:
        assert await ready_line(second) == WAITING
        assert WriterLock(index_dir).holder() == first.pid
        assert await stopped(first) == 0

        await holder_among(index_dir, [second.pid], "the waiting indexer to take the lock")
    finally:
        for process in (first, second):
            await stopped(process)


async def test_workers_leave_the_lock_to_their_index_writer_when_it_comes_free(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # A restart that overlaps: the old server's index writer still holds the lock when
    # the new server starts. When it lets go, the new server's index writer takes the
    # lock, not one of the workers that are busy serving requests.
    env = await one_host(database_factory, tmp_path)
    index_dir = tmp_path / "var" / "index"
    old = await indexer(tmp_path, env)
    try:
        assert await ready_line(old) == READY
        async with serving(tmp_path, env, "--workers", "2") as server:
            workers = await ready_workers(server, 2)
            assert "the index written by another server's process" in server.log

            # The name says who takes the lock next: the new server's index writer.
            async def named_next() -> int | None:
                named = preferred_writer(index_dir)
                return named if named not in (None, old.pid) else None

            waiting = await eventually(named_next, "the new index writer to be named")
            assert waiting not in (*workers, server.process.pid)
            assert await stopped(old) == 0
            await holder_among(index_dir, [waiting], "the new index writer to take the lock")
    finally:
        if old.returncode is None:
            old.kill()
            await old.wait()


async def test_the_indexer_command_stops_when_told_even_while_it_catches_up(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # Catching up can take minutes (a first build of a large index): a stop must not
    # wait for it, nor leave the process holding the lock.
    env = await one_host(database_factory, tmp_path)
    env["KNOWNFIX_SQLITE_WRITE_WAIT_MS"] = "600000"
    index_dir = tmp_path / "var" / "index"
    db = Database(env["KNOWNFIX_DATABASE_URL"])
    try:
        async with db.transaction() as session:
            # Hold it up: on SQLite, writes (its first round prunes the outbox); on
            # PostgreSQL, reading the outbox.
            if db.is_sqlite:
                await session.execute(sa.text("SELECT 1"))
            else:
                await session.execute(sa.text("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE"))
            process = await indexer(tmp_path, env)

            async def holding_the_lock() -> bool | None:
                return WriterLock(index_dir).holder() == process.pid or None

            await eventually(holding_the_lock, "the indexer to start catching up")
            status = await stopped(process)
        assert process.stdout is not None
        assert await process.stdout.read() == b"", "it never said it was ready"
        assert status == 0
        assert_lock_free(index_dir)
    finally:
        await db.dispose()


async def indexer(workdir: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``knownfix indexer --ready``, as ``serve`` starts it."""
    return await asyncio.create_subprocess_exec(
        KNOWNFIX, "indexer", "--ready", cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE
    )


async def stopped(process: asyncio.subprocess.Process) -> int:
    """Its exit status once SIGTERM stopped it (at once if it had exited already)."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), DEADLINE)


def assert_lock_free(index_dir: Path) -> None:
    lock = WriterLock(index_dir)
    assert lock.acquire(), "nobody holds the writer lock"
    lock.release()


async def ready_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), DEADLINE)).decode().strip()


# --- hosts on PostgreSQL -----------------------------------------------------------------


class Hosts:
    def __init__(self, a: Server, b: Server, token: str, db: Database) -> None:
        self.a, self.b, self.token, self.db = a, b, token, db


@pytest.fixture(scope="module")
async def hosts(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hosts]:
    """Two processes as on two hosts: one database, an index directory each."""
    url = await database_factory.create()
    env = environment(url)
    host_a, host_b = tmp_path_factory.mktemp("host-a"), tmp_path_factory.mktemp("host-b")
    await upgrade(host_a, env)
    db = Database(url)
    try:
        # One after the other: the first start loads the demo data.
        async with serving(host_a, env) as a, serving(host_b, env) as b:
            token = (host_a / "var" / "admin-token").read_text().strip()
            yield Hosts(a, b, token, db)
    finally:
        await db.dispose()


@postgresql_only
async def test_each_host_listens_for_outbox_notifications(hosts: Hosts) -> None:
    async with hosts.db.read() as session:
        listeners = await session.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        )
    # On each host: its one worker (subscriptions) and its index writer.
    assert listeners == 2 * 2


@postgresql_only
async def test_an_article_created_through_one_host_is_found_through_the_other(
    hosts: Hosts,
) -> None:
    title = "Narwhal object store returns 503 during rebalancing"
    body = "## Symptoms\nReads fail while shards move.\n## Resolution\nThrottle the rebalance."
    await publish(hosts.a, hosts.token, title, body)

    async def found_on_b() -> list[str] | None:
        found = titles(await graphql(hosts.b, hosts.token, SEARCH, q="narwhal"))
        return found or None

    assert await eventually(found_on_b, "host B to find the article") == [title]


@postgresql_only
async def test_a_subscriber_on_one_host_hears_changes_made_through_the_other(
    hosts: Hosts,
) -> None:
    reported = (await graphql(hosts.a, hosts.token, REPORT, input={"title": "Yak queue stalls"}))[
        "reportIncident"
    ]
    assert reported["__typename"] == "Incident", reported
    incident_id = reported["id"]

    async with websockets.connect(hosts.b.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {hosts.token}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
        assert ack["type"] == "connection_ack", ack
        subscribe = {"query": EVENTS, "variables": {"filter": {"incidentId": incident_id}}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))

        # The protocol does not acknowledge a subscription, and it hears only what happens
        # after host B registered it: note on host A until one arrives.
        sent: list[str] = []

        async def a_note_arrives() -> dict[str, Any] | None:
            sent.append(f"work note {len(sent) + 1} through host A")
            noted = (
                await graphql(
                    hosts.a, hosts.token, NOTE, input={"incidentId": incident_id, "text": sent[-1]}
                )
            )["addWorkNote"]
            assert noted["__typename"] == "IncidentEvent", noted
            try:
                while True:
                    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), ATTEMPT))
                    # The report's own later events (its stored suggestions) may reach host B
                    # after the subscription did: not what this waits for.
                    data = (message.get("payload") or {}).get("data") or {}
                    if (data.get("incidentEvents") or {}).get("kind") != "SUGGESTION_SHOWN":
                        return message
            except TimeoutError:
                return None

        message = await eventually(a_note_arrives, "host B's subscriber to hear host A")
    assert message["type"] == "next", message
    assert not message["payload"].get("errors"), message
    event = message["payload"]["data"]["incidentEvents"]
    assert event["message"] in sent
    assert event["incident"]["id"] == incident_id
    assert event["actor"]["username"] == "admin"
