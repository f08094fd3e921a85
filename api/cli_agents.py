"""The ``knownfix`` commands for scripts and agents: ``search``, ``suggest``, ``incident show``
and ``mcp`` (the MCP server, in ``api.mcp_server``).

Unlike the operator commands (which act as the system), these answer questions
as somebody: the holder of the token in ``KNOWNFIX_TOKEN``, with exactly the
permissions that token has in GraphQL, or without one a read-only viewer. A shell
that can read the database URL is not thereby a knowledge manager, and a script
should not see drafts or work notes its author could not see in the API.

``--json`` prints one JSON object (built by ``api.plain``, for the MCP server to
share); otherwise the same facts as text for people. Commands that answer
from the search index (``search``, ``suggest``, the MCP server) first bring the
index up to date from the outbox, as the server would, so a script run on a host
without a server still finds what was just written.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from api import plain
from api.auth import authenticate
from api.cli import _err, _out, _settings
from knowledge.accounts.principal import ANONYMOUS_VIEWER, Principal
from knowledge.config import ConfigError, Settings
from knowledge.db import Database, utcnow
from knowledge.errors import AuthenticationError, DomainError, NotFoundError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import format_incident_number
from knowledge.pagination import MAX_PAGE_SIZE
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.schema import KINDS
from knowledge.search.sync import Indexer
from knowledge.suggestions import service as suggestions

TOKEN_VARIABLE = "KNOWNFIX_TOKEN"  # noqa: S105 - the name of the variable, not a token


async def principal_from_env(db: Database) -> Principal:
    """Who the command acts as: the ``KNOWNFIX_TOKEN`` holder, or a read-only viewer."""
    secret = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not secret:
        return ANONYMOUS_VIEWER
    try:
        return await authenticate(db, f"Bearer {secret}", allow_anonymous=False)
    except AuthenticationError as error:
        raise ConfigError(TOKEN_VARIABLE, error.message) from None


async def open_fresh_index(db: Database, settings: Settings) -> SearchIndex:
    """The index, caught up with the database (built first if it is missing or broken),
    or, while a server writes it, as that server has it."""
    index = SearchIndex(settings.index_dir, postings_cache_bytes=settings.search_cache_bytes)
    await refresh_index(Indexer(db, index))
    return index


async def refresh_index(indexer: Indexer) -> None:
    """Bring the index up to date if nobody else writes it; otherwise open what is there.

    Only the holder of the directory's ``WriterLock`` may write it: opening an index
    it cannot read (a deploy changed the schema version) makes a new generation and
    deletes the others, which must never happen under a running server. So a
    command takes the lock only if it is free, and releases it when done: the
    server's indexer tries the lock on every round, and a command holding it
    longer would stop the server indexing. When a server holds it, the server
    keeps the index current, and searches follow its generations by themselves.
    Applying outbox rows twice is harmless; if the index cannot be written (a
    read-only folder, Whoosh's own lock held too long), the search goes on with
    what the index has, and a warning says so.
    """
    index, lock = indexer.index, indexer.writer_lock
    if not await asyncio.to_thread(lock.acquire):
        if index.is_open or await asyncio.to_thread(index.open_existing):
            return
        holder = lock.holder()
        raise DomainError(
            f"the search index in {index.root} is being built by "
            f"{f'process {holder}' if holder else 'another process'}; try again shortly"
        )
    try:
        if await asyncio.to_thread(index.open):
            await indexer.catch_up()
        else:
            await indexer.rebuild()
    except Exception as error:
        if not index.is_open:
            raise DomainError(f"cannot open the search index in {index.root}: {error}") from None
        _err(f"knownfix: warning: the search index may be behind the database: {error}")
    finally:
        lock.release()


def _print_json(value: dict[str, Any]) -> None:
    _out(json.dumps(value, indent=2, ensure_ascii=False))


# Stored text has no control characters (validation refuses them), but text printed
# to a terminal is checked again: an escape sequence must never reach it.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """One line of text, safe for a terminal."""
    return _UNPRINTABLE.sub("\ufffd", " ".join(text.split()))


def short_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _table(rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell; the last column runs on."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in cells
    ]


# --- knownfix search ----------------------------------------------------------------


async def _search(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    db = settings.database()
    index: SearchIndex | None = None
    try:
        principal = await principal_from_env(db)
        index = await open_fresh_index(db, settings)
        async with db.read() as session:
            results = await search.search(
                session=session,
                principal=principal,
                index=index,
                text=args.query,
                filter=search.SearchFilter(kinds=args.kind or None),
                first=args.first,
                with_facets=False,
            )
        return plain.search_view(args.query, results)
    finally:
        if index is not None:
            await asyncio.to_thread(index.close)
        await db.dispose()


def render_search(view: dict[str, Any]) -> list[str]:
    hits = view["hits"]
    lines = []
    if not hits:
        lines.append(printable(f"No results for {view['query']!r}."))
    else:
        more = " (more with --first)" if view["has_more"] else ""
        lines.append(
            printable(f"{len(hits)} of {view['total']} results for {view['query']!r}{more}")
        )
        rows = [["KIND", "REF", "SCORE", "TITLE"]]
        rows += [[h["kind"], h["ref"], f"{h['score']:.2f}", h["title"]] for h in hits]
        lines += _table(rows)
    if view["did_you_mean"]:
        lines.append(printable(f"(searched for {view['did_you_mean']!r} instead)"))
    return lines


def cmd_search(args: argparse.Namespace) -> int:
    view = asyncio.run(_search(_settings(args), args))
    if args.json:
        _print_json(view)
    else:
        for line in render_search(view):
            _out(line)
    return 0


# --- knownfix suggest ---------------------------------------------------------------

STDIN = "-"


def read_draft(args: argparse.Namespace) -> tuple[str, str]:
    """The title and description, from the options or from standard input.

    Without ``--title``, piped input gives the title on its first line and the
    description after it; ``--description -`` reads the description from it.
    """
    title, description = args.title, args.description
    piped = title is None or description == STDIN
    if not piped:
        return title, description or ""
    if title is None and sys.stdin.isatty() and description != STDIN:
        args.usage_error("give --title, or pipe the title and description on standard input")
    text = sys.stdin.read()
    if title is None:
        first, _, rest = text.lstrip("\n").partition("\n")
        title, text = first.strip(), rest
        if description not in (None, STDIN) and text.strip():
            args.usage_error("the description comes from --description or stdin, not both")
        if description not in (None, STDIN):
            return title, description
    return title, text.strip("\n")


async def _suggest(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    title, description = read_draft(args)
    db = settings.database()
    index: SearchIndex | None = None
    try:
        principal = await principal_from_env(db)
        index = await open_fresh_index(db, settings)
        async with db.read() as session:
            return await plain.suggest(
                session=session, principal=principal, index=index, title=title,
                description=description, error_text=args.error_text or "",
                service=args.service, category=args.category, first=args.first,
            )  # fmt: skip
    finally:
        if index is not None:
            await asyncio.to_thread(index.close)
        await db.dispose()


def render_suggestions(view: dict[str, Any]) -> list[str]:
    found, title = view["suggestions"], view["draft"]["title"] or "(untitled)"
    if not found:
        return [printable(f"No suggestions for {title!r}.")]
    lines = [printable(f"{len(found)} suggestions for {title!r}, best first")]
    rows = [["#", "SCORE", "KIND", "REF", "TITLE"]]
    rows += [[str(s["rank"]), f"{s['score']:.2f}", s["kind"], s["ref"], s["title"]] for s in found]
    lines += _table(rows)
    lines += ["", "Why:"]
    for s in found:
        lines.append(f"  {s['rank']}. " + printable(s["explanation"] or "no signal fired"))
        if s["evidence"]:
            past = ", ".join(f"{e['ref']} ({e['similarity']:.0%} alike)" for e in s["evidence"])
            lines.append("     " + printable(f"resolved before: {past}"))
    return lines


def cmd_suggest(args: argparse.Namespace) -> int:
    view = asyncio.run(_suggest(_settings(args), args))
    if args.json:
        _print_json(view)
    else:
        for line in render_suggestions(view):
            _out(line)
    return 0


# --- knownfix incident show ---------------------------------------------------------


def incident_number(value: str) -> str:
    """``INC-000123`` (or ``123``), as written; anything else is a usage error."""
    digits = value.strip().upper().removeprefix("INC-")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 12:
        raise argparse.ArgumentTypeError(f"{value!r} is not an incident number like INC-000123")
    return value


async def _incident(settings: Settings, number: str) -> dict[str, Any]:
    db = settings.database()
    try:
        principal = await principal_from_env(db)
        async with db.read() as session:
            incident = await incidents.get_by_number(
                session=session, principal=principal, number=number
            )
            if incident is None:
                digits = int(number.strip().upper().removeprefix("INC-"))
                raise NotFoundError(f"no incident {format_incident_number(digits)}")
            return await plain.incident_view(
                session=session, principal=principal, incident=incident, now=utcnow()
            )
    finally:
        await db.dispose()


def _due(due: str | None, breached: bool, done: str | None) -> str:
    if due is None:
        return "-"
    state = "BREACHED" if breached else ("met" if done else "running")
    return f"{short_time(due)} ({state})"


def render_incident(view: dict[str, Any]) -> list[str]:
    sla = view["sla"]

    def value(key: str) -> str:
        found = view[key]
        return "-" if found in (None, "") else str(found)

    fields = [
        ("status", value("status")),
        ("priority", f"P{view['priority']} (impact {view['impact']}, urgency {view['urgency']})"),
        ("service", value("service")),
        ("category", value("category")),
        ("team", value("team")),
        ("assignee", value("assignee")),
        ("reporter", value("reporter")),
        ("detected", short_time(view["detected_at"])),
        ("acknowledged", short_time(view["acknowledged_at"])),
        ("resolved", short_time(view["resolved_at"])),
        ("closed", short_time(view["closed_at"])),
        ("respond by", _due(sla["response_due_at"], sla["response_breached"],
                            view["acknowledged_at"])),
        ("resolve by", _due(sla["resolution_due_at"], sla["resolution_breached"],
                            view["resolved_at"])),
    ]  # fmt: skip
    if view["resolution_code"]:
        fields.append(("resolution", f"{view['resolution_code']}: {view['resolution_notes']}"))
    if view["reopen_count"]:
        fields.append(("reopened", f"{view['reopen_count']} times"))
    lines = [f"{view['number']}  {printable(view['title'])}", ""]
    lines += _table([[f"{name}:", text] for name, text in fields])
    if view["description"]:
        lines += ["", *(printable(line) for line in view["description"].splitlines())]
    links = []
    for link in view["links"]:
        target = link["target"] or {"kind": "-", "ref": "(not visible to you)", "title": ""}
        links.append([link["relation"], target["kind"], target["ref"], target["title"]])
    events = [
        [short_time(e["occurred_at"]), e["kind"], e["actor"] or "-", e["message"]]
        for e in view["timeline"]
    ]
    for title, rows in (("Links", links), ("Timeline", events)):
        lines += ["", f"{title}:", *("  " + line for line in _table(rows))] if rows else []
    return lines


def cmd_incident_show(args: argparse.Namespace) -> int:
    view = asyncio.run(_incident(_settings(args), args.number))
    if args.json:
        _print_json(view)
    else:
        for line in render_incident(view):
            _out(line)
    return 0


# --- registration -------------------------------------------------------------------


def page_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAX_PAGE_SIZE}")
    return size


def suggestion_count(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        size = 0
    most = suggestions.MAX_SUGGESTIONS
    if not 1 <= size <= most:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {most}")
    return size


def add_commands(
    commands: Any,
    with_database: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """Add the agent commands to the ``knownfix`` parser's subcommands."""
    found = with_database(
        commands.add_parser(
            "search",
            help="search articles, known errors and resolved incidents",
            description=f"Acts as the holder of ${TOKEN_VARIABLE}, else as a read-only viewer.",
        )
    )
    found.add_argument("query", help='words, "phrases", AND/OR/NOT, -word, word~')
    found.add_argument("--kind", action="append", choices=KINDS, help="only this kind; repeat")
    found.add_argument("--first", type=page_size, default=10, help="how many hits (1-100)")
    found.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    found.add_argument("--json", action="store_true", help="one JSON object")
    found.set_defaults(handler=cmd_search)

    suggest = with_database(
        commands.add_parser(
            "suggest",
            help="suggest articles and known errors for an incident being written",
            description=f"Acts as the holder of ${TOKEN_VARIABLE}, else as a read-only viewer. "
            "Without --title, reads the title (first line) and the description from "
            "standard input.",
        )
    )
    suggest.add_argument("--title", help="one line; else the first line of standard input")
    suggest.add_argument("--description", help="the description; '-' reads standard input")
    suggest.add_argument("--error-text", help="an error message or log lines")
    suggest.add_argument("--service", metavar="SLUG", help="the affected service")
    suggest.add_argument("--category", help="the incident's category")
    suggest.add_argument(
        "--first", type=suggestion_count, default=5,
        help=f"how many suggestions (1-{suggestions.MAX_SUGGESTIONS})",
    )  # fmt: skip
    suggest.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    suggest.add_argument("--json", action="store_true", help="one JSON object")
    suggest.set_defaults(handler=cmd_suggest, usage_error=suggest.error)

    incident = commands.add_parser("incident", help="incidents").add_subparsers(
        dest="incident_command", required=True, metavar="ACTION"
    )
    show = with_database(
        incident.add_parser(
            "show",
            help="an incident with its SLA, links and timeline",
            description=f"Acts as the holder of ${TOKEN_VARIABLE}, else as a read-only viewer.",
        )
    )
    show.add_argument("number", type=incident_number, help="e.g. INC-000123")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(handler=cmd_incident_show)

    mcp = with_database(
        commands.add_parser(
            "mcp",
            help="serve the knowledge base to AI agents (Model Context Protocol, stdio)",
            description=f"Acts as the holder of ${TOKEN_VARIABLE}, else as a read-only viewer; "
            "responder tokens also get the tools that write (work notes, resolving).",
        )
    )
    mcp.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    mcp.set_defaults(handler=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    # Imported on use: the MCP SDK takes a second to import, which no other command needs.
    from api import mcp_server

    return mcp_server.serve(_settings(args))
