"""``knownfix search`` and ``knownfix incident show``, run in-process against the test database.

The database and the index come from the environment, as in a script; the
commands build and catch up the index themselves (no server runs here).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.cli_agents import TOKEN_VARIABLE, render_incident
from api.relay import to_global_id
from knowledge.accounts import tokens
from knowledge.accounts.principal import SYSTEM, Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.catalog import service as catalog
from knowledge.config import Settings
from knowledge.db import Database, utcnow
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Level, ResolutionCode
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.service import KnownErrorDraft
from knowledge.search.query import MAX_QUERY_LENGTH
from knowledge.search.writer_lock import WriterLock
from tests.api.test_cli import knownfix
from tests.support import Account, Accounts


@dataclasses.dataclass
class World:
    fix_id: int
    incident_number: str
    responder: Account
    reporter: Account


def principal(account: Account) -> Principal:
    return Principal(user_id=account.id, username=account.username, role=account.role)


async def publish(db: Database, title: str, body: str, *, slug: str, draft: bool = False) -> int:
    async with db.transaction() as session:
        article = await articles.create(
            session=session, principal=SYSTEM, slug=slug, draft=ArticleDraft(title=title, body=body)
        )
        if not draft:
            await articles.transition(
                session=session, principal=SYSTEM, article_id=article.id, action=Transition.PUBLISH
            )
    return article.id


@pytest.fixture
async def world(
    db: Database, settings: Settings, accounts: Accounts, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> World:  # fmt: skip
    return await build_world(db, settings, accounts, monkeypatch, tmp_path)


async def build_world(
    db: Database, settings: Settings, accounts: Accounts, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> World:  # fmt: skip
    """Published and draft knowledge, and a resolved incident with a work note; the
    commands find the database and the index through the environment."""
    monkeypatch.setenv("KNOWNFIX_DATABASE_URL", db.url)
    monkeypatch.setenv("KNOWNFIX_INDEX_DIR", str(tmp_path / "cli-index"))
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    reporter = await accounts.create(Role.REPORTER, "remy")
    responder = await accounts.create(Role.RESPONDER, "rita")
    fix_id = await publish(
        db, "Disk quota exceeded on shared volumes",
        "## Symptoms\nWrites fail with EDQUOT.\n## Resolution\nRaise the quota.",
        slug="disk-quota-exceeded",
    )  # fmt: skip
    await publish(db, "Disk quota draft notes", "Work in progress.", slug="quota-notes", draft=True)
    now = utcnow()
    async with db.transaction() as session:
        await known_errors.create(
            session=session, principal=SYSTEM,
            draft=KnownErrorDraft(title="Shared volume quota too small for build caches",
                                  symptoms="EDQUOT on the build agents"),
        )  # fmt: skip
        service = await catalog.create(
            session=session, principal=SYSTEM, slug="files", name="Files"
        )
        incident = await incidents.report(
            session=session, principal=principal(reporter), policy=settings.incident_policy(),
            now=now, title="Builds fail: disk quota exceeded", description="EDQUOT on agents",
            impact=Level.HIGH, urgency=Level.HIGH, service_id=service.id,
        )  # fmt: skip
        await incidents.add_note(
            session=session, principal=principal(responder), now=now,
            incident_id=incident.id, text="Quota is 10G; caches use 9.8G",
        )  # fmt: skip
        await incidents.resolve(
            session=session, principal=principal(responder), now=now, incident_id=incident.id,
            expected_version=incident.version, code=ResolutionCode.FIXED,
            notes="Raised the quota to 50G", article_id=fix_id,
        )  # fmt: skip
    return World(fix_id, incident.reference, responder, reporter)


async def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert await knownfix(*argv, "--json") == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


# --- search ---------------------------------------------------------------------------


async def test_search_prints_one_json_object_with_references_and_highlights(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    found = await run_json(capsys, "search", "disk quota")

    assert found["query"] == "disk quota"
    first = found["hits"][0]
    assert (first["kind"], first["ref"], first["status"]) == (
        "article", "disk-quota-exceeded", "published",
    )  # fmt: skip
    assert first["id"] == to_global_id("Article", world.fix_id)
    assert any("<mark" in f for f in first["highlights"]["title"])
    assert first["score"] > 0
    kinds = {h["kind"] for h in found["hits"]}
    assert kinds == {"article", "known_error", "incident"}
    # a reader without a token is a viewer: drafts stay hidden
    assert "quota-notes" not in {h["ref"] for h in found["hits"]}
    assert found["total"] == len(found["hits"]) == 3


async def test_search_prints_a_table_for_people(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("search", "quota", "--first", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 of 3 results for 'quota' (more with --first)"
    assert lines[1].split() == ["KIND", "REF", "SCORE", "TITLE"]
    assert len(lines) == 4


async def test_search_finds_nothing_politely(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("search", "zebra") == 0
    assert capsys.readouterr().out.strip() == "No results for 'zebra'."


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (["known_error"], {"known_error"}),
        (["incident"], {"incident"}),
        (["article", "incident"], {"article", "incident"}),
    ],
)
async def test_search_keeps_to_the_kinds_asked_for(
    world: World, capsys: pytest.CaptureFixture[str], kinds: list[str], expected: set[str]
) -> None:
    options = [part for kind in kinds for part in ("--kind", kind)]
    found = await run_json(capsys, "search", "quota", *options)
    assert {h["kind"] for h in found["hits"]} == expected


async def test_search_catches_up_with_what_was_written_since(
    world: World, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await run_json(capsys, "search", "kerberos"))["hits"] == []
    await publish(db, "Kerberos clock skew", "## Resolution\nSync NTP.", slug="kerberos-skew")
    found = await run_json(capsys, "search", "kerberos")
    assert [h["ref"] for h in found["hits"]] == ["kerberos-skew"]


@pytest.mark.parametrize(
    "query", ['"unbalanced (( AND OR NOT ~~ -', "*", "' OR 1=1 --", "<script>", "\u202edisk"]
)
async def test_hostile_queries_are_searched_as_words(
    world: World, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    found = await run_json(capsys, "search", query)
    assert found["query"] == query


async def test_a_query_too_long_is_refused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("search", "disk " * MAX_QUERY_LENGTH) == 1
    assert capsys.readouterr().err.startswith(
        f"knownfix: query is at most {MAX_QUERY_LENGTH} characters"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["search"],
        ["search", "x", "--first", "0"],
        ["search", "x", "--first", "101"],
        ["search", "x", "--first", "ten"],
        ["search", "x", "--kind", "user"],
        ["incident"],
        ["incident", "show"],
        ["incident", "show", "INC-abc"],
        ["incident", "show", "INC-0000000000001"],
        ["incident", "show", "\uff11\uff12\uff13"],  # full-width digits
        ["incident", "show", ""],
    ],
)
async def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        await knownfix(*argv)
    assert exited.value.code == 2
    assert "usage: knownfix" in capsys.readouterr().err


# --- acting as somebody ---------------------------------------------------------------


async def test_a_token_gives_its_holders_permissions(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    anonymous = await run_json(capsys, "incident", "show", world.incident_number)
    assert "note" not in [e["kind"] for e in anonymous["timeline"]]

    monkeypatch.setenv(TOKEN_VARIABLE, world.responder.token)
    as_responder = await run_json(capsys, "incident", "show", world.incident_number)
    notes = [e for e in as_responder["timeline"] if e["kind"] == "note"]
    assert [(n["actor"], n["message"]) for n in notes] == [
        ("rita", "Quota is 10G; caches use 9.8G")
    ]


@pytest.mark.parametrize("secret", ["nonsense", "kfx_" + "A" * 43, "Bearer x"])
async def test_a_bad_token_is_a_configuration_error_naming_the_variable(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], secret: str
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, secret)
    assert await knownfix("search", "quota") == 2
    assert capsys.readouterr().err.startswith(f"knownfix: configuration error: {TOKEN_VARIABLE}: ")


async def test_a_revoked_token_no_longer_works(
    world: World, db: Database, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await tokens.revoke(session=session, principal=SYSTEM, token_id=world.reporter.token_id)
    monkeypatch.setenv(TOKEN_VARIABLE, world.reporter.token)
    assert await knownfix("incident", "show", world.incident_number) == 2
    assert TOKEN_VARIABLE in capsys.readouterr().err


async def test_an_empty_token_variable_means_no_token(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_VARIABLE, "  ")
    assert (await run_json(capsys, "search", "quota"))["total"] == 3


# --- incident show --------------------------------------------------------------------


async def test_incident_show_prints_fields_sla_links_and_timeline(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = await run_json(capsys, "incident", "show", world.incident_number)

    assert shown["number"] == world.incident_number == "INC-000001"
    assert (shown["status"], shown["priority"], shown["impact"]) == ("resolved", 1, "high")
    assert (shown["service"], shown["reporter"], shown["resolution_code"]) == (
        "files", "remy", "fixed",
    )  # fmt: skip
    assert shown["sla"]["breached"] is False
    assert shown["sla"]["resolution_due_at"] is not None
    assert [
        (link["relation"], link["target"]["ref"], link["created_by"]) for link in shown["links"]
    ] == [("resolved_by", "disk-quota-exceeded", "rita")]
    assert [e["kind"] for e in shown["timeline"]] == ["reported", "resolved"]
    assert shown["timeline"][0]["actor"] == "remy"


async def test_incident_show_accepts_plain_numbers_and_reads_as_text(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await knownfix("incident", "show", "1") == 0
    text = capsys.readouterr().out
    assert text.startswith("INC-000001  Builds fail: disk quota exceeded\n")
    for expected in ("priority:", "P1 (impact high, urgency high)", "resolve by:", "(met)",
                     "Links:", "resolved_by  article  disk-quota-exceeded", "Timeline:",
                     "resolved  rita  Raised the quota to 50G"):  # fmt: skip
        assert expected in text


@pytest.mark.parametrize("number", ["INC-000999", "999", "inc-999"])
async def test_an_unknown_incident_is_a_clear_error(
    world: World, capsys: pytest.CaptureFixture[str], number: str
) -> None:
    assert await knownfix("incident", "show", number) == 1
    assert capsys.readouterr().err.strip() == "knownfix: no incident INC-000999"


async def test_a_database_flag_overrides_the_environment(
    world: World, db: Database, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("KNOWNFIX_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    shown = await run_json(capsys, "incident", "show", "1", "--database-url", db.url)
    assert shown["number"] == "INC-000001"


def test_text_never_carries_control_characters_to_the_terminal() -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07 title\r\nnext"
    view: dict[str, Any] = {
        "number": "INC-000001", "title": hostile, "description": hostile, "status": "new",
        "priority": 3, "impact": "low", "urgency": "low", "service": None, "category": None,
        "team": None, "assignee": hostile, "reporter": None, "detected_at": None,
        "acknowledged_at": None, "resolved_at": None, "closed_at": None,
        "resolution_code": None, "resolution_notes": "", "reopen_count": 0,
        "sla": {"response_due_at": None, "resolution_due_at": None,
                "response_breached": False, "resolution_breached": False},
        "links": [{"relation": "related", "target": None}],
        "timeline": [{"occurred_at": None, "kind": "note", "actor": None, "message": hostile}],
    }  # fmt: skip
    text = "\n".join(render_incident(view))
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\r" not in text
    assert "(not visible to you)" in text


# --- sharing the index with a server ----------------------------------------------------


def index_files(root: Path) -> dict[str, int]:
    """Every file of every generation, with its size: a write adds or grows one."""
    return {
        str(path.relative_to(root)): path.stat().st_size
        for path in sorted(root.glob("gen-*/**/*"))
        if path.is_file()
    }


def generations(root: Path) -> list[str]:
    return sorted(path.name for path in root.glob("gen-*"))


@pytest.fixture
def server_lock(world: World, tmp_path: Path) -> Iterator[WriterLock]:
    """The index directory's writer lock, held as a running server holds it (a real
    ``flock``: two locks on one file exclude each other within a process too)."""
    lock = WriterLock(tmp_path / "cli-index")
    yield lock
    lock.release()


async def test_search_leaves_the_index_to_the_server_that_writes_it(
    world: World, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    server_lock: WriterLock,
) -> None:  # fmt: skip
    root = tmp_path / "cli-index"
    await run_json(capsys, "search", "quota")  # no server yet: the command builds the index
    assert server_lock.acquire(), "the command gave the lock back when it was done"
    before = index_files(root)
    await publish(db, "Kerberos clock skew", "## Resolution\nSync NTP.", slug="kerberos-skew")

    found = await run_json(capsys, "search", "quota")

    assert found["total"] == 3
    assert index_files(root) == before, "the command wrote an index the server writes"


async def test_search_never_replaces_an_index_the_server_is_rebuilding(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], server_lock: WriterLock
) -> None:
    """What a deploy that changes the index schema looks like to a command: the current
    generation is unreadable to it, and the server is writing the new one."""
    root = tmp_path / "cli-index"
    await run_json(capsys, "search", "quota")
    (root / "gen-unreadable").mkdir()
    (root / "current").unlink()
    (root / "current").symlink_to("gen-unreadable")
    assert server_lock.acquire()
    before = generations(root)

    assert await knownfix("search", "quota") == 1
    assert "is being built by" in capsys.readouterr().err
    assert generations(root) == before

    server_lock.release()  # the server is gone: now the command rebuilds it
    assert (await run_json(capsys, "search", "quota"))["total"] == 3
    assert "gen-unreadable" not in generations(root)
