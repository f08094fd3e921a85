"""``knownfix mcp``, spoken to by the MCP SDK's own client over stdio.

Two real server processes serve the whole module (starting one takes seconds): one
holds a responder's token, the other a viewer's. They read the test database and
keep their own index, as a server on another host would. The tests that write use
incidents of their own, so the order of the tests does not matter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from api.cli_agents import TOKEN_VARIABLE
from api.mcp_server import TOOLS, Runtime, call
from api.relay import to_global_id
from knowledge import migrate
from knowledge.accounts import tokens
from knowledge.accounts.principal import SYSTEM, Principal
from knowledge.accounts.roles import Role
from knowledge.catalog import service as catalog
from knowledge.config import Settings
from knowledge.db import Database, utcnow
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Level, ResolutionCode
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.service import KnownErrorDraft
from knowledge.search.writer_lock import WriterLock
from tests.api.test_cli_agents import index_files, publish
from tests.conftest import empty
from tests.support import Account, Accounts

STARTUP_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0
READ_TOOLS = {
    "search_knowledge", "suggest_resolutions", "get_article", "get_incident", "similar_incidents",
}  # fmt: skip
WRITE_TOOLS = {"add_work_note", "resolve_incident"}


def knownfix_command() -> tuple[str, list[str]]:
    """``knownfix mcp`` as this checkout's code (run from its root), whatever is installed."""
    return sys.executable, ["-m", "api.cli", "mcp"]


class McpServer:
    """A ``knownfix mcp`` process with a client session, owned by a task of its own:
    anyio's scopes must be left by the task that entered them, and pytest's fixture
    set-up and tear-down run in different tasks."""

    def __init__(self, env: dict[str, str]) -> None:
        command, args = knownfix_command()
        self.parameters = StdioServerParameters(
            command=command, args=args, env=env, cwd=migrate.PROJECT_ROOT
        )
        self.session: ClientSession | None = None
        self.instructions = ""
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with (
            stdio_client(self.parameters) as (read, write),
            ClientSession(read, write) as session,
        ):
            self.instructions = (await session.initialize()).instructions or ""
            self.session = session
            self._ready.set()
            await self._stop.wait()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait(
            {self._task, ready}, timeout=STARTUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if not self._ready.is_set():
            ready.cancel()
            if self._task.done():
                self._task.result()  # raises what stopped it
            self._task.cancel()
            raise AssertionError("knownfix mcp did not start in time")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, STARTUP_TIMEOUT)

    async def tools(self) -> dict[str, types.Tool]:
        assert self.session is not None
        listed = await asyncio.wait_for(self.session.list_tools(), CALL_TIMEOUT)
        return {t.name: t for t in listed.tools}

    async def call(self, name: str, **arguments: Any) -> types.CallToolResult:
        assert self.session is not None
        return await asyncio.wait_for(self.session.call_tool(name, arguments), CALL_TIMEOUT)

    async def ok(self, name: str, **arguments: Any) -> Any:
        """The structured result of a call that must succeed (the client checked it
        against the tool's output schema); the text content says the same."""
        result = await self.call(name, **arguments)
        assert not result.is_error, result.content
        assert isinstance(result.content[0], types.TextContent)
        assert json.loads(result.content[0].text) == result.structured_content
        return result.structured_content

    async def error(self, name: str, **arguments: Any) -> dict[str, Any]:
        """The error of a call that must fail: a tool result, never a protocol error."""
        result = await self.call(name, **arguments)
        assert result.is_error, result.structured_content
        error: dict[str, Any] = result.structured_content["error"]
        assert isinstance(result.content[0], types.TextContent)
        assert result.content[0].text == f"{error['code']}: {error['message']}"
        assert "Traceback" not in result.content[0].text
        return error


@dataclasses.dataclass
class World:
    database: Database
    settings: Settings
    fix_id: int
    known_error_key: str
    responder: Account
    viewer: Account
    resolved: str  # INC-000001: resolved by the article, with a work note (so is INC-000002)
    open: list[str]  # reported, not yet resolved: one per test that writes
    unresolved: str  # reported; nothing writes to it


def principal(account: Account) -> Principal:
    return Principal(user_id=account.id, username=account.username, role=account.role)


@pytest.fixture(scope="module")
async def world(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """Knowledge and incidents for the whole module, removed at its end."""
    settings = Settings(database_url=database.url, index_dir=tmp_path_factory.mktemp("index"))
    accounts = Accounts(database)
    reporter = await accounts.create(Role.REPORTER, "remy")
    responder = await accounts.create(Role.RESPONDER, "rita")
    viewer = await accounts.create(Role.VIEWER, "vic")
    fix_id = await publish(
        database, "Disk quota exceeded on shared volumes",
        "## Symptoms\nWrites fail with EDQUOT.\n## Resolution\nRaise the quota.",
        slug="disk-quota-exceeded",
    )  # fmt: skip
    await publish(database, "Disk quota draft notes", "Work in progress.", slug="quota-notes",
                  draft=True)  # fmt: skip
    now = utcnow()
    numbers = []
    async with database.transaction() as session:
        known_error = await known_errors.create(
            session=session, principal=SYSTEM,
            draft=KnownErrorDraft(title="Shared volume quota too small for build caches",
                                  symptoms="EDQUOT on the build agents"),
        )  # fmt: skip
        service = await catalog.create(
            session=session, principal=SYSTEM, slug="files", name="Files"
        )
        for title, description in [
            ("Builds fail: disk quota exceeded", "EDQUOT on agents while writing caches"),
            ("Nightly build fails: disk quota exceeded", "EDQUOT again on the build agents"),
            ("Uploads fail: disk quota exceeded", "EDQUOT on the upload volume"),
            ("Build cache volume full: disk quota exceeded", "EDQUOT on build agent caches"),
            ("Reports fail: disk quota exceeded", "EDQUOT on the reports volume"),
            ("Exports fail: disk quota exceeded", "EDQUOT on the exports volume"),
        ]:
            incident = await incidents.report(
                session=session, principal=principal(reporter),
                policy=settings.incident_policy(), now=now, title=title,
                description=description, impact=Level.HIGH, urgency=Level.MEDIUM,
                service_id=service.id,
            )  # fmt: skip
            numbers.append(incident.reference)
            if len(numbers) <= 2:
                await incidents.add_note(
                    session=session, principal=principal(responder), now=now,
                    incident_id=incident.id, text="Quota is 10G; caches use 9.8G",
                )  # fmt: skip
                await incidents.resolve(
                    session=session, principal=principal(responder), now=now,
                    incident_id=incident.id, expected_version=incident.version,
                    code=ResolutionCode.FIXED, notes="Raised the quota to 50G", article_id=fix_id,
                )  # fmt: skip
    yield World(
        database, settings, fix_id, known_error.key, responder, viewer,
        resolved=numbers[0], open=numbers[2:5], unresolved=numbers[5],
    )  # fmt: skip
    await empty(database)


def environment(world: World, token: str | None, index: str) -> dict[str, str]:
    env = {
        "KNOWNFIX_DATABASE_URL": world.database.url,
        "KNOWNFIX_INDEX_DIR": str(world.settings.index_dir / index),
    }
    if token is not None:
        env[TOKEN_VARIABLE] = token
    return env


@dataclasses.dataclass
class Servers:
    responder: McpServer
    viewer: McpServer


@pytest.fixture(scope="module")
async def servers(world: World) -> AsyncIterator[Servers]:
    running = Servers(
        McpServer(environment(world, world.responder.token, "responder")),
        McpServer(environment(world, world.viewer.token, "viewer")),
    )
    await asyncio.gather(running.responder.start(), running.viewer.start())
    yield running
    await asyncio.gather(running.responder.stop(), running.viewer.stop())


@pytest.fixture
def responder(servers: Servers) -> McpServer:
    return servers.responder


@pytest.fixture
def viewer(servers: Servers) -> McpServer:
    return servers.viewer


# --- what is offered --------------------------------------------------------------------


async def test_a_responder_is_offered_every_tool_with_schemas(responder: McpServer) -> None:
    tools = await responder.tools()

    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    for name, tool in tools.items():
        assert tool.description, name
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in READ_TOOLS)
    assert tools["suggest_resolutions"].input_schema["required"] == ["title"]
    assert set(tools["resolve_incident"].input_schema["properties"]["code"]["enum"]) == {
        code.value for code in ResolutionCode
    }
    assert "rita (responder)" in responder.instructions


async def test_a_viewer_is_offered_only_the_tools_that_read(viewer: McpServer) -> None:
    assert set(await viewer.tools()) == READ_TOOLS
    assert "vic (viewer)" in viewer.instructions


async def test_a_viewer_calling_a_tool_that_writes_is_told_why_it_may_not(
    viewer: McpServer, world: World
) -> None:
    error = await viewer.error("add_work_note", number=world.open[0], text="hello")
    assert error == {
        "code": "permission_denied",
        "message": "add_work_note requires the responder role; you are viewer",
        "field": None,
    }
    shown = await viewer.ok("get_incident", number=world.open[0])
    assert "hello" not in [e["message"] for e in shown["timeline"]]
    # even with arguments that would not do: the role is what stops it
    refused = await viewer.error("resolve_incident", number="nope")
    assert refused["code"] == "permission_denied"


# --- reading ----------------------------------------------------------------------------


async def test_search_knowledge_finds_every_kind_with_ids_and_references(
    viewer: McpServer, world: World
) -> None:
    found = await viewer.ok("search_knowledge", query="disk quota")

    first = found["hits"][0]
    assert (first["kind"], first["ref"], first["id"]) == (
        "article", "disk-quota-exceeded", to_global_id("Article", world.fix_id),
    )  # fmt: skip
    assert first["score"] > 0
    assert any("<mark" in fragment for fragment in first["highlights"]["title"])
    assert {h["kind"] for h in found["hits"]} == {"article", "known_error", "incident"}
    assert "quota-notes" not in {h["ref"] for h in found["hits"]}, "drafts stay hidden"


async def test_search_knowledge_keeps_to_a_kind_and_a_page_size(viewer: McpServer) -> None:
    found = await viewer.ok("search_knowledge", query="quota", kind="incident", first=1)
    assert [h["kind"] for h in found["hits"]] == ["incident"]
    assert found["has_more"] is True


async def test_the_index_catches_up_before_answering(viewer: McpServer, world: World) -> None:
    await publish(world.database, "Kerberos clock skew", "## Resolution\nSync NTP.",
                  slug="kerberos-skew")  # fmt: skip
    found = await viewer.ok("search_knowledge", query="kerberos")
    assert [h["ref"] for h in found["hits"]] == ["kerberos-skew"]


async def test_suggest_resolutions_ranks_and_explains(viewer: McpServer, world: World) -> None:
    found = await viewer.ok(
        "suggest_resolutions", title="Deploys fail: disk quota exceeded",
        description="EDQUOT when the agents write build caches", service="files", first=3,
    )  # fmt: skip

    assert found["draft"] == {
        "title": "Deploys fail: disk quota exceeded", "service": "files", "category": None,
    }  # fmt: skip
    best = found["suggestions"][0]
    assert (best["kind"], best["ref"], best["rank"]) == ("article", "disk-quota-exceeded", 1)
    assert best["id"] == to_global_id("Article", world.fix_id)
    assert 0 < best["score"] <= 1
    names = [s["name"] for s in best["signals"]]
    assert names[0] == "text"
    assert {"signature", "service", "category", "history", "success"} <= set(names)
    assert best["explanation"].startswith("title +"), "the strongest signal first"
    assert best["evidence"], "it resolved similar incidents"
    for evidence in best["evidence"]:
        assert evidence["kind"] == "incident"
        assert evidence["id"] == to_global_id("Incident", int(evidence["ref"][4:]))
        assert 0 <= evidence["similarity"] <= 1
    assert "quota" in best["matched_terms"]
    ranks = [s["rank"] for s in found["suggestions"]]
    assert ranks == list(range(1, len(ranks) + 1))


async def test_get_article_by_slug_global_id_or_number(viewer: McpServer, world: World) -> None:
    by_slug = await viewer.ok("get_article", id_or_slug="disk-quota-exceeded")
    by_id = await viewer.ok("get_article", id_or_slug=to_global_id("Article", world.fix_id))
    by_number = await viewer.ok("get_article", id_or_slug=str(world.fix_id))

    assert by_slug == by_id == by_number
    assert by_slug["body"].startswith("## Symptoms\nWrites fail with EDQUOT.")
    assert (by_slug["status"], by_slug["services"]) == ("published", [])
    assert by_slug["stats"]["resolved_incidents"] >= 2


async def test_get_article_hides_drafts_and_names_bad_ids(viewer: McpServer) -> None:
    assert await viewer.error("get_article", id_or_slug="quota-notes") == {
        "code": "not_found", "message": "no article 'quota-notes'", "field": "id_or_slug",
    }  # fmt: skip
    wrong_type = await viewer.error("get_article", id_or_slug=to_global_id("Incident", 1))
    assert (wrong_type["code"], wrong_type["message"]) == (
        "validation", "id_or_slug: expected an Article, got the id of a Incident",
    )  # fmt: skip


async def test_get_incident_shows_sla_links_and_the_timeline_for_its_role(
    viewer: McpServer, responder: McpServer, world: World
) -> None:
    as_viewer = await viewer.ok("get_incident", number=world.resolved)
    as_responder = await responder.ok("get_incident", number=1)

    assert as_viewer["number"] == world.resolved == "INC-000001"
    assert (as_viewer["status"], as_viewer["resolution_code"]) == ("resolved", "fixed")
    assert as_viewer["sla"]["resolution_due_at"] is not None
    assert [(link["relation"], link["target"]["ref"]) for link in as_viewer["links"]] == [
        ("resolved_by", "disk-quota-exceeded")
    ]
    assert "note" not in [e["kind"] for e in as_viewer["timeline"]]
    notes = [e for e in as_responder["timeline"] if e["kind"] == "note"]
    assert [(n["actor"], n["message"]) for n in notes] == [
        ("rita", "Quota is 10G; caches use 9.8G")
    ]


async def test_similar_incidents_shows_how_each_was_resolved(
    viewer: McpServer, world: World
) -> None:
    found = await viewer.ok("similar_incidents", number=world.unresolved, first=5)

    assert found["incident"]["ref"] == world.unresolved
    similar = {s["ref"]: s for s in found["similar"]}
    assert {"INC-000001", "INC-000002"} <= set(similar), "resolved ones; open ones are not"
    assert world.open[0] not in similar
    past = similar["INC-000001"]
    assert 0 < past["similarity"] <= 1
    assert (past["resolution_code"], past["resolution_notes"]) == (
        "fixed", "Raised the quota to 50G",
    )  # fmt: skip
    assert past["reason"].endswith("similar text")


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "code", "message"),
    [
        ("INC-000999", "not_found", "no incident INC-000999"),
        (999, "not_found", "no incident INC-000999"),
        ("INC-abc", "validation", "'INC-abc' is not an incident number like INC-000123"),
        ("0", "validation", "'0' is not an incident number like INC-000123"),
    ],
)
async def test_a_bad_incident_number_is_a_tool_error(
    viewer: McpServer, number: str | int, code: str, message: str
) -> None:
    error = await viewer.error("get_incident", number=number)
    assert error == {"code": code, "message": message, "field": "number"}


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("get_incident", {}, "number: Field required"),
        ("search_knowledge", {"query": "x", "first": 0}, "first: Input should be greater than"),
        ("search_knowledge", {"query": "x", "kind": "user"}, "kind: Input should be"),
        ("get_article", {"id_or_slug": "x", "extra": 1}, "extra: Extra inputs are not permitted"),
        ("suggest_resolutions", {"title": "a\nb"}, "title must be a single line"),
        ("suggest_resolutions", {"title": " "}, "write a title, a description or an error"),
    ],
)
async def test_bad_arguments_are_validation_errors(
    viewer: McpServer, name: str, arguments: dict[str, Any], message: str
) -> None:
    error = await viewer.error(name, **arguments)
    assert error["code"] == "validation"
    assert error["message"].startswith(message), error


async def test_an_unknown_tool_is_a_tool_error(viewer: McpServer) -> None:
    error = await viewer.error("drop_tables")
    assert error["code"] == "not_found"


# --- writing ----------------------------------------------------------------------------


async def test_a_responder_adds_a_work_note(responder: McpServer, world: World) -> None:
    added = await responder.ok("add_work_note", number=world.open[0], text="Looking at quotas")

    assert added["incident"]["ref"] == world.open[0]
    assert (added["note"]["kind"], added["note"]["actor"]) == ("note", "rita")
    shown = await responder.ok("get_incident", number=world.open[0])
    assert ("rita", "Looking at quotas") in [(e["actor"], e["message"]) for e in shown["timeline"]]


async def test_a_responder_resolves_an_incident_with_the_article_that_fixed_it(
    responder: McpServer, world: World
) -> None:
    number = world.open[1]
    before = await responder.ok("get_incident", number=number)

    stale = await responder.error(
        "resolve_incident", number=number, code="fixed", notes="Raised the quota",
        article="disk-quota-exceeded", expected_version=before["version"] + 5,
    )  # fmt: skip
    assert (stale["code"], stale["field"], stale["current_version"]) == (
        "conflict", "expected_version", before["version"],
    )  # fmt: skip

    resolved = await responder.ok(
        "resolve_incident", number=number, code="fixed", notes="Raised the quota",
        article="disk-quota-exceeded", expected_version=before["version"],
    )  # fmt: skip
    assert (resolved["status"], resolved["resolution_notes"]) == ("resolved", "Raised the quota")
    assert resolved["version"] > before["version"]
    assert [(link["relation"], link["target"]["ref"]) for link in resolved["links"]] == [
        ("resolved_by", "disk-quota-exceeded")
    ]

    again = await responder.error("resolve_incident", number=number, code="fixed", notes="x")
    assert (again["code"], again["field"]) == ("invalid_transition", "number")


async def test_resolving_with_a_known_error_and_without_the_version(
    responder: McpServer, world: World
) -> None:
    resolved = await responder.ok(
        "resolve_incident", number=world.open[2], code="known_error",
        notes="Known: the quota is too small", known_error=world.known_error_key,
    )  # fmt: skip
    assert resolved["status"] == "resolved"
    assert [(link["relation"], link["target"]["ref"]) for link in resolved["links"]] == [
        ("resolved_by", world.known_error_key)
    ]


async def test_resolving_refuses_what_cannot_resolve(responder: McpServer, world: World) -> None:
    missing = await responder.error(
        "resolve_incident", number=world.open[0], code="fixed", notes="x", article="nope"
    )
    assert (missing["code"], missing["field"]) == ("not_found", "article")
    both = await responder.error(
        "resolve_incident", number=world.open[0], code="fixed", notes="x",
        article="disk-quota-exceeded", known_error=world.known_error_key,
    )  # fmt: skip
    assert (both["code"], both["field"]) == ("validation", "article")


# --- starting -------------------------------------------------------------------------


async def test_a_bad_token_stops_the_server_before_it_serves(world: World) -> None:
    command, args = knownfix_command()
    env = environment(world, "kfx_" + "A" * 43, "bad-token")
    process = await asyncio.create_subprocess_exec(
        command, *args, env={**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=migrate.PROJECT_ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT)
    assert process.returncode == 2
    assert err.decode().startswith(f"knownfix: configuration error: {TOKEN_VARIABLE}: ")
    assert out == b""


# --- in this process: what a subprocess cannot show cheaply ----------------------------


@pytest.fixture
async def runtime(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Account]]:
    """The server's runtime as a fresh responder token opens it."""
    holder = await Accounts(world.database).create(Role.RESPONDER, f"agent-{uuid.uuid4().hex}")
    monkeypatch.setenv(TOKEN_VARIABLE, holder.token)
    rt = await Runtime.open(dataclasses.replace(world.settings, index_dir=tmp_path / "index"))
    yield rt, holder
    await rt.close()


async def test_a_token_revoked_while_serving_stops_working_at_once(
    runtime: tuple[Runtime, Account], world: World
) -> None:
    rt, holder = runtime
    assert not (await call(rt, "get_incident", {"number": world.resolved})).is_error

    async with world.database.transaction() as session:
        await tokens.revoke(session=session, principal=SYSTEM, token_id=holder.token_id)

    refused = await call(rt, "get_incident", {"number": world.resolved})
    assert refused.is_error
    assert refused.structured_content["error"]["code"] == "unauthenticated"
    assert refused.structured_content["error"]["field"] == TOKEN_VARIABLE


async def test_an_unexpected_failure_is_logged_not_shown(
    runtime: tuple[Runtime, Account], world: World, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("secret detail: password=hunter2")

    rt, _ = runtime
    spec = TOOLS["get_incident"]
    monkeypatch.setitem(TOOLS, "get_incident", dataclasses.replace(spec, run=broken))

    result = await call(rt, "get_incident", {"number": world.resolved})

    assert result.is_error
    assert result.structured_content["error"] == {
        "code": "internal",
        "message": "unexpected error; the server's log has the details",
        "field": None,
    }
    assert "hunter2" not in json.dumps(result.model_dump(mode="json"))
    assert "hunter2" in caplog.text


async def test_while_a_server_writes_the_index_the_tools_only_search_it(
    runtime: tuple[Runtime, Account], world: World
) -> None:
    """A ``knownfix serve`` on the host holds the index's writer lock; the MCP server
    must not write beside it, but takes over the writing once it is gone."""
    rt, _ = runtime
    root = rt.index.root
    server = WriterLock(root)  # a real flock, as a serving process holds it
    assert server.acquire(), "the MCP server holds the lock only while it writes"
    try:
        before = index_files(root)
        slug = f"wombat-{uuid.uuid4().hex}"
        await publish(world.database, "Wombat queue stalls", "Restart the consumer.", slug=slug)

        found = await call(rt, "search_knowledge", {"query": "disk quota"})

        assert not found.is_error
        assert found.structured_content["hits"], "it searches what the server wrote"
        assert index_files(root) == before, "it wrote an index the server writes"
    finally:
        server.release()

    found = await call(rt, "search_knowledge", {"query": "wombat"})
    assert [h["ref"] for h in found.structured_content["hits"]] == [slug]
