"""What a running server survives: a kill mid-write, a lost index, a database outage.

Every test drives real ``knownfix serve`` processes on free ports. The database
is the source of truth: whatever a client was told was written must be there
after a crash, and the search index must catch up with it or be rebuilt from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from knowledge import migrate
from knowledge.accounts.roles import Role
from knowledge.db import Database
from knowledge.demo import loader
from knowledge.search.index import CURRENT
from tests.conftest import TEST_DATABASE_URL, DatabaseFactory
from tests.postgres import PrivateCluster, private_cluster
from tests.servers import Server, environment, serving
from tests.support import Accounts

pytestmark = pytest.mark.slow

WRITERS = 6
ACKNOWLEDGED_BEFORE_KILL = 30
REQUEST_TIMEOUT = 10.0  # a request still unanswered after this long counts as hung
DEADLINE = 30.0  # for the server to catch up or recover; polled, never slept out

REPORT_INCIDENT = """
mutation Report($input: ReportIncidentInput!) {
  reportIncident(input: $input) {
    __typename
    ... on Incident { id }
  }
}
"""
CREATE_KNOWN_ERROR = """
mutation Create($input: CreateKnownErrorInput!) {
  createKnownError(input: $input) {
    __typename
    ... on KnownError { id }
  }
}
"""
NODES = """
query Nodes($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on KnownError { id title }
    ... on Incident { id title timeline { kind } }
  }
}
"""
INCIDENTS = """
query Incidents($after: String) {
  incidents(first: 100, after: $after) {
    nodes { id title timeline { kind } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
KNOWN_ERRORS = """
query KnownErrors($after: String) {
  knownErrors(first: 100, after: $after) {
    nodes { id title }
    pageInfo { hasNextPage endCursor }
  }
}
"""
ARTICLES = """
query Articles($after: String) {
  articles(first: 100, after: $after) {
    nodes { id title }
    pageInfo { hasNextPage endCursor }
  }
}
"""
SEARCHABLE_KNOWN_ERRORS = """
query KnownErrors($after: String) {
  knownErrors(first: 100, after: $after, filter: {statuses: [OPEN, FIX_IN_PROGRESS, FIXED]}) {
    nodes { id title }
    pageInfo { hasNextPage endCursor }
  }
}
"""
RESOLVED_INCIDENTS = """
query Resolved($after: String) {
  incidents(first: 100, after: $after, filter: {statuses: [RESOLVED, CLOSED]}) {
    nodes { id title }
    pageInfo { hasNextPage endCursor }
  }
}
"""
SEARCH = """
query Search($query: String!, $types: [SearchType!]) {
  search(query: $query, types: $types, first: 10) {
    edges {
      node {
        ... on ArticleHit { article { id } }
        ... on KnownErrorHit { knownError { id } }
        ... on IncidentHit { incident { id } }
      }
    }
  }
}
"""


# --- talking to a server --------------------------------------------------------------


class Client:
    """GraphQL over real HTTP, where a request that does not finish in time fails the test."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self.http.post(
                "/graphql",
                json={"query": query, "variables": variables or {}},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.TimeoutException:
            pytest.fail(f"the server hung: no answer within {REQUEST_TIMEOUT} s")

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = await self.post(query, variables)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def every(self, query: str) -> list[dict[str, Any]]:
        """All nodes of a connection, page by page."""
        nodes: list[dict[str, Any]] = []
        after = None
        while True:
            (connection,) = (await self.data(query, {"after": after})).values()
            nodes += connection["nodes"]
            if not connection["pageInfo"]["hasNextPage"]:
                return nodes
            after = connection["pageInfo"]["endCursor"]

    async def found(self, words: str, node_id: str, kind: str) -> bool:
        data = await self.data(SEARCH, {"query": words, "types": [kind.upper()]})
        hits = [next(iter(edge["node"].values()))["id"] for edge in data["search"]["edges"]]
        return node_id in hits


@asynccontextmanager
async def client(server: Server, token: str) -> AsyncIterator[Client]:
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
        yield Client(http, token)


async def within_deadline(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll a real process until ``check`` holds; failing after ``DEADLINE`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DEADLINE
    while not await check():
        if loop.time() > give_up:
            pytest.fail(f"not within {DEADLINE} s: {what}")
        await asyncio.sleep(0.2)


async def ready(server: Server) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
        try:
            return await http.get("/readyz")
        except httpx.TimeoutException:
            pytest.fail(f"/readyz hung: no answer within {REQUEST_TIMEOUT} s")


# --- deployments ----------------------------------------------------------------------


@dataclasses.dataclass
class Deployment:
    """A database and a working folder, set up the way an operator would."""

    workdir: Path
    env: dict[str, str]
    token: str

    @property
    def index_root(self) -> Path:
        return self.workdir / "index"

    def serving(self) -> Any:
        return serving(self.workdir, self.env)


async def deploy(url: str, workdir: Path, *, demo: bool) -> Deployment:
    """Migrated, with an admin token; with the demo knowledge base in development mode
    (what a first ``knownfix serve`` loads), or empty in production mode."""
    db = Database(url)
    try:
        await migrate.upgrade(db.engine)
        if demo:
            async with db.transaction() as session:
                await loader.load(session)
                token = await loader.ensure_dev_admin(session)
            assert token is not None
        else:
            token = (await Accounts(db).create(Role.ADMIN, "operator")).token
    finally:
        await db.dispose()
    workdir.mkdir(parents=True, exist_ok=True)
    extra = {"KNOWNFIX_INDEX_DIR": str(workdir / "index")}
    if not demo:
        extra["KNOWNFIX_ENV"] = "production"
    return Deployment(workdir, environment(url, **extra), token)


# --- crash recovery -------------------------------------------------------------------

LETTERS = "bcdfghjkmnpqrtvwxz"


def probe_word(n: int) -> str:
    """A word no other document holds, so a search for it finds exactly one write."""
    letters = ""
    while True:
        n, digit = divmod(n, len(LETTERS))
        letters += LETTERS[digit]
        if n == 0:
            return "zorbl" + letters


@dataclasses.dataclass(frozen=True)
class Write:
    kind: str  # "known_error" or "incident"
    word: str
    id: str


class Burst:
    """Concurrent clients writing as fast as they are answered, until the server dies."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.token = token
        self.acknowledged: list[Write] = []
        self.in_flight = 0
        self.enough = asyncio.Event()
        self.killed = False

    async def writer(self, first: int) -> None:
        async with client(self.server, self.token) as api:
            for n in range(first, first + 100_000):
                word = probe_word(n)
                if n % 2:
                    kind, query, field = "known_error", CREATE_KNOWN_ERROR, "createKnownError"
                    fields = {"title": f"Probe {word} fails", "symptoms": f"{word} stalls."}
                else:
                    kind, query, field = "incident", REPORT_INCIDENT, "reportIncident"
                    fields = {"title": f"Probe {word} is down", "description": "In a burst."}
                self.in_flight += 1
                try:
                    reply = await api.http.post(
                        "/graphql",
                        json={"query": query, "variables": {"input": fields}},
                        headers={"Authorization": f"Bearer {self.token}"},
                    )
                except httpx.TransportError:
                    if self.killed:
                        return  # this write may or may not have committed
                    raise
                self.in_flight -= 1
                assert reply.status_code == 200, reply.text
                result = reply.json()["data"][field]
                assert result["__typename"] in ("KnownError", "Incident"), result
                self.acknowledged.append(Write(kind, word, result["id"]))
                if len(self.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                    self.enough.set()

    async def run_until_killed(self) -> int:
        """Kill the server once enough writes were acknowledged; returns how many
        writes were still waiting for their answer at that moment."""
        writers = [asyncio.create_task(self.writer(n * 100_000)) for n in range(WRITERS)]
        try:
            await asyncio.wait_for(self.enough.wait(), DEADLINE)
        finally:
            self.killed = True
            in_flight = self.in_flight
            self.server.kill()
            await asyncio.wait_for(asyncio.gather(*writers), DEADLINE)
        await self.server.process.wait()
        return in_flight


@pytest.fixture
async def crash_site(database_factory: DatabaseFactory, tmp_path: Path) -> Deployment:
    return await deploy(await database_factory.create(), tmp_path, demo=False)


async def test_every_acknowledged_write_survives_a_kill_and_is_searchable_after_restart(
    crash_site: Deployment,
) -> None:
    async with crash_site.serving() as server:
        burst = Burst(server, crash_site.token)
        in_flight = await burst.run_until_killed()
    assert server.process.returncode == -signal.SIGKILL
    assert in_flight > 0, "the kill came mid-burst, with writes unanswered"
    acknowledged = burst.acknowledged
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

    async with crash_site.serving() as again, client(again, crash_site.token) as api:
        # Every acknowledged write is in the database, whole.
        by_id = {}
        for start in range(0, len(acknowledged), 100):
            batch = acknowledged[start : start + 100]
            nodes = (await api.data(NODES, {"ids": [w.id for w in batch]}))["nodes"]
            by_id.update({w.id: node for w, node in zip(batch, nodes, strict=True)})
        for write in acknowledged:
            assert by_id[write.id] is not None, f"acknowledged {write} is lost"
            assert write.word in by_id[write.id]["title"]

        # Nothing half-written, acknowledged or not: every incident has its report event.
        incidents = await api.every(INCIDENTS)
        assert len(incidents) >= sum(w.kind == "incident" for w in acknowledged)
        for incident in incidents:
            assert [e["kind"] for e in incident["timeline"]][:1] == ["REPORTED"], incident

        # The index caught up with every known error committed, acknowledged or not.
        known_errors = await api.every(KNOWN_ERRORS)
        assert len(known_errors) >= sum(w.kind == "known_error" for w in acknowledged)
        for known_error in known_errors:
            word = known_error["title"].split()[1]

            async def searchable(word: str = word, node_id: str = known_error["id"]) -> bool:
                return await api.found(word, node_id, "known_error")

            await within_deadline(searchable, f"{known_error} is searchable")


# --- index loss -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def knowledge_base(
    database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    """A development deployment with the demo knowledge base and a whole index (built by
    a first start), shared by the index tests: each leaves the index whole again."""
    site = await deploy(
        await database_factory.create(), tmp_path_factory.mktemp("knowledge-base"), demo=True
    )
    async with site.serving() as server:
        assert (await ready(server)).status_code == 200
    return site


def current_generation(root: Path) -> Path:
    return root / (root / CURRENT).readlink()


def delete_index(root: Path) -> None:
    shutil.rmtree(root)


def garble_toc(root: Path) -> None:
    tocs = list(current_generation(root).glob("_*.toc"))
    assert tocs, "no TOC to damage"
    for path in tocs:
        path.write_bytes(b"not a table of contents" * 8)


def truncate_segments(root: Path) -> None:
    segments = list(current_generation(root).glob("*.seg"))
    assert segments, "no segments to damage"
    for path in segments:
        path.write_bytes(path.read_bytes()[:64])


# What search shows by default: published articles, known errors but archived ones,
# resolved and closed incidents.
SEARCHABLE = {
    ARTICLES: "article",
    SEARCHABLE_KNOWN_ERRORS: "known_error",
    RESOLVED_INCIDENTS: "incident",
}


async def missing_from_search(api: Client) -> list[str]:
    """What the database holds that searching for its title does not find."""
    missing: list[str] = []
    limit = asyncio.Semaphore(4)

    async def check(kind: str, node: dict[str, Any]) -> None:
        async with limit:
            if not await api.found(node["title"], node["id"], kind):
                missing.append(f"{kind} {node['title']!r}")

    checks: list[Awaitable[None]] = []
    for query, kind in SEARCHABLE.items():
        nodes = await api.every(query)
        assert nodes, f"the demo knowledge base has no {kind}"
        checks += [check(kind, node) for node in nodes]
    await asyncio.gather(*checks)
    return missing


DAMAGES = [
    pytest.param(delete_index, False, id="deleted"),
    pytest.param(garble_toc, True, id="garbled-toc"),
    pytest.param(truncate_segments, True, id="truncated-segments"),
]


@pytest.mark.parametrize(("damage", "unreadable"), DAMAGES)
async def test_an_index_lost_while_stopped_is_rebuilt_from_the_database(
    knowledge_base: Deployment, damage: Callable[[Path], None], unreadable: bool
) -> None:
    damaged = current_generation(knowledge_base.index_root).name
    damage(knowledge_base.index_root)

    async with knowledge_base.serving() as server, client(server, knowledge_base.token) as api:

        async def is_ready() -> bool:
            return (await ready(server)).status_code == 200

        await within_deadline(is_ready, "/readyz answers 200")
        assert current_generation(knowledge_base.index_root).name != damaged
        assert ("is unreadable" in server.log) is unreadable
        assert await missing_from_search(api) == []
    assert "Traceback" not in server.log


# --- database outage ------------------------------------------------------------------


@pytest.fixture
async def outage_site(tmp_path: Path) -> AsyncIterator[tuple[PrivateCluster, Deployment]]:
    """A production deployment on a PostgreSQL cluster of its own, which the test may stop."""
    if not TEST_DATABASE_URL:
        pytest.skip("stopping the database is tested on PostgreSQL (SQLite is a local file)")
    async with private_cluster() as cluster:
        url = await cluster.create_database("knownfix")
        yield cluster, await deploy(url, tmp_path, demo=False)


def assert_clear_unavailable_error(reply: httpx.Response) -> None:
    """A status and a code a client can act on, and nothing of the internals."""
    assert reply.status_code == 503, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    (error,) = reply.json()["errors"]
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", error
    assert "database" in error["message"]
    for internal in ("Traceback", "asyncpg", "sqlalchemy", "Errno", "127.0.0.1"):
        assert internal not in reply.text


def websocket(
    server: Server, header_token: str | None = None, protocol: str = "graphql-transport-ws"
) -> Any:
    """A subscription websocket; with ``header_token``, authenticated in its handshake."""
    headers = {} if header_token is None else {"Authorization": f"Bearer {header_token}"}
    return websockets.connect(
        server.ws_url,
        subprotocols=[Subprotocol(protocol)],
        additional_headers=headers,
        open_timeout=REQUEST_TIMEOUT,
    )


async def send_connection_init(ws: websockets.ClientConnection, token: str) -> None:
    """What every client sends first; the server may have closed the websocket already."""
    message = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    with contextlib.suppress(websockets.ConnectionClosed):
        await ws.send(json.dumps(message))


async def close_code(ws: websockets.ClientConnection) -> int | None:
    """How the server ends the websocket; a server that leaves it open fails the test."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_database_outage_fails_requests_fast_and_clearly_and_heals_without_restart(
    outage_site: tuple[PrivateCluster, Deployment],
) -> None:
    cluster, site = outage_site
    # A token the server has never seen, so not in its token cache: checking it needs
    # the database. The site's own token is cached by the report below.
    db = Database(site.env["KNOWNFIX_DATABASE_URL"])
    try:
        unseen = (await Accounts(db).create(Role.VIEWER, "vera")).token
    finally:
        await db.dispose()
    report = {"input": {"title": "Probe zorblbefore is down"}}
    async with (
        site.serving() as server,
        client(server, site.token) as api,
        contextlib.AsyncExitStack() as websockets_open,
    ):
        assert (await ready(server)).status_code == 200
        assert (await api.data(REPORT_INCIDENT, report))["reportIncident"]["id"]
        # Handshakes made while the database answered; their connection_init comes during
        # the outage.
        opened_before = [
            await websockets_open.enter_async_context(websocket(server)) for _ in range(2)
        ]
        legacy = await websockets_open.enter_async_context(websocket(server, protocol="graphql-ws"))

        await cluster.stop()

        async def unready() -> bool:
            reply = await ready(server)
            return reply.status_code == 503 and reply.json()["checks"]["database"] != "ok"

        await within_deadline(unready, "/readyz answers 503 with the database down")
        for query, variables in (
            (KNOWN_ERRORS, {}),
            (CREATE_KNOWN_ERROR, {"input": {"title": "Probe zorbldown fails"}}),
        ):
            assert_clear_unavailable_error(await api.post(query, variables))

        # A subscription cannot be served: every websocket is closed with 1013 "try again
        # later", whether its token was cached or not, and wherever the token came.
        for token in (site.token, unseen):
            async with websocket(server, header_token=token) as ws:
                assert await close_code(ws) == 1013, "no connection_init sent"
            async with websocket(server) as ws:
                await send_connection_init(ws, token)
                assert await close_code(ws) == 1013
        for ws, token in zip(opened_before, (site.token, unseen), strict=True):
            await send_connection_init(ws, token)
            assert await close_code(ws) == 1013
        # The older graphql-ws protocol says why in a connection_error first.
        await send_connection_init(legacy, unseen)
        error = json.loads(await asyncio.wait_for(legacy.recv(), REQUEST_TIMEOUT))
        assert error["type"] == "connection_error", error
        assert error["payload"]["extensions"]["code"] == "DATABASE_UNAVAILABLE", error
        assert await close_code(legacy) == 1013
        async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
            assert (await http.get("/healthz")).status_code == 200  # the process itself is fine

        async def said(*lines: str) -> bool:
            return all(line in server.log for line in lines)

        # The indexer and the event dispatcher retry every second, saying so once.
        loops = ("indexing", "dispatching events")
        outage = [f"{loop}: the database is unreachable" for loop in loops]
        await within_deadline(lambda: said(*outage), "the background loops report the outage")

        await cluster.start()

        async def is_ready() -> bool:
            return (await ready(server)).status_code == 200

        await within_deadline(is_ready, "/readyz answers 200 once the database is back")
        created = await api.data(CREATE_KNOWN_ERROR, {"input": {"title": "Probe zorblafter fails"}})
        node_id = created["createKnownError"]["id"]

        async def searchable() -> bool:
            return await api.found("zorblafter", node_id, "known_error")

        await within_deadline(searchable, "a write after the outage is indexed")
        healed = [f"{loop}: the database answers again" for loop in loops]
        await within_deadline(lambda: said(*healed), "the background loops report the recovery")
        async with websocket(server, header_token=site.token) as ws:
            await send_connection_init(ws, site.token)
            ack = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
            assert ack["type"] == "connection_ack", "subscriptions work again"
        assert server.process.returncode is None, "the server kept running throughout"
    # The outage was logged, a line at a time: no tracebacks, no ASGI crash.
    assert "database unreachable while acknowledging a connection_init" in server.log
    assert "Exception in ASGI application" not in server.log
    assert "Traceback" not in server.log
    for line in outage:
        assert server.log.count(line) == 1, line
