"""The ``knownfix`` command.

Commands act as the system principal: whoever runs them already holds the
database. The commands for scripts and agents (``search``, ``suggest``, ``incident
show`` and the MCP server ``mcp``, registered by ``api.cli_agents``) act as the
holder of a token instead. Errors print one line
to stderr and exit with status 2 (bad usage or configuration) or 1 (the
operation failed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from api import indexer_process, process_tree
from api.progress import ProgressBar
from knowledge import migrate, semantic
from knowledge.accounts import tokens
from knowledge.accounts.models import User
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.config import ConfigError, Settings, validate_database_url
from knowledge.db import DatabaseBusyError, utcnow
from knowledge.errors import DomainError
from knowledge.transfer.service import ImportReport

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger("knownfix")

SCHEMA_FILE = migrate.PROJECT_ROOT / "schema.graphql"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    database_url = getattr(args, "database_url", None)
    if database_url:
        validate_database_url("--database-url", database_url)
    return settings.replace(
        database_url=database_url,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        index_dir=Path(args.index_dir) if getattr(args, "index_dir", None) else None,
    )


def _ensure_var_dir(settings: Settings) -> None:
    """The embedded SQLite file needs its folder before the first connection."""
    if settings.is_sqlite:
        from sqlalchemy.engine import make_url

        database = make_url(settings.database_url).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)


async def _upgrade(settings: Settings, revision: str) -> str | None:
    _ensure_var_dir(settings)
    db = settings.database()
    try:
        await migrate.upgrade(db.engine, revision)
        return await migrate.current_revision(db.engine)
    finally:
        await db.dispose()


async def _current(settings: Settings) -> tuple[str | None, str | None]:
    db = settings.database()
    try:
        return await migrate.current_revision(db.engine), migrate.head_revision()
    finally:
        await db.dispose()


def _require_schema_at_head(current: str | None) -> None:
    head = migrate.head_revision()
    if current != head:
        raise ConfigError(
            "KNOWNFIX_DATABASE_URL",
            f"database schema is at {current}, this code needs {head}: run 'knownfix db upgrade'",
        )


async def _prepare_for_serving(settings: Settings) -> None:
    """Refuse to serve an out-of-date schema; seed a fresh development database."""
    from knowledge.demo import loader

    db = settings.database()
    try:
        _require_schema_at_head(await migrate.current_revision(db.engine))
        if settings.is_production:
            return
        async with db.transaction() as session:
            if await loader.is_empty(session):
                report = await loader.load(session)
                _out(
                    f"Loaded the demo knowledge base ({report.articles} articles, "
                    f"{report.known_errors} known errors, {report.incidents} incidents)."
                )
            secret = await loader.ensure_dev_admin(session)
        if secret:
            token_file = settings.var_dir / "admin-token"
            token_file.parent.mkdir(parents=True, exist_ok=True)
            token_file.touch(mode=0o600)
            token_file.write_text(secret + "\n", encoding="utf-8")
            _out(f"Development admin token (also in {token_file}):\n  {secret}")
    finally:
        await db.dispose()


MAX_WORKERS = 64


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    # /readyz inspects the migration state on every probe; Alembic would log each one.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))


def serving_app() -> Starlette:
    """The app as uvicorn builds it in each worker process, from the environment
    (``cmd_serve`` has put its command-line flags there)."""
    from api.app import create_app

    if (
        (supervisor := multiprocessing.parent_process()) is not None
        and supervisor.pid
        and not process_tree.stop_with(supervisor.pid)
    ):
        # A worker of ``serve --workers N``: it must not serve on after its server dies.
        raise SystemExit("the server that started this worker is gone")
    settings = Settings.from_env()
    _configure_logging(settings)
    return create_app(settings, settle_after_start=True, stand_in=True)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not 1 <= args.workers <= MAX_WORKERS:
        raise ConfigError(
            "--workers", f"expected a number between 1 and {MAX_WORKERS}, got {args.workers}"
        )
    _configure_logging(settings)
    # Every worker and the index writer load it: a missing or damaged one is refused
    # here, with one line, before anything starts (it is not kept in this process).
    semantic.Encoder(semantic.model_directory())
    _ensure_var_dir(settings)
    asyncio.run(_prepare_for_serving(settings))
    # Worker processes start afresh and read the environment: hand them the flags.
    os.environ.update(
        KNOWNFIX_DATABASE_URL=settings.database_url,
        KNOWNFIX_INDEX_DIR=str(settings.index_dir),
        KNOWNFIX_HOST=settings.host,
        KNOWNFIX_PORT=str(settings.port),
    )
    # A stop asked for from here on ends in the ``finally`` that stops the index writer.
    # With one worker, uvicorn shuts down gracefully and then raises the signal again,
    # for the handler it found: without this one, SIGTERM's default ends the process.
    # SIGINT too: a Ctrl-C while the index writer catches up would print a traceback.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _stopped)
    writer = indexer_process.Supervisor()
    started = writer.start()
    _out(
        f"Knownfix ({settings.env.value}) serving GraphQL at http://{settings.host}:{settings.port}/graphql"
        + (f" with {args.workers} worker processes" if args.workers > 1 else "")
        + _index_writer(started)
    )
    try:
        _serve(settings, args.workers)
    finally:
        writer.stop()
    return 0


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _index_writer(writer: indexer_process.Started | None) -> str:
    if writer is None:
        return ""
    if writer.writing:
        return f", the index written by process {writer.process.pid}"
    return (
        f", the index written by another server's process (process {writer.process.pid}"
        " takes over when it stops)"
    )


def _serve(settings: Settings, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "api.cli:serving_app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
        proxy_headers=True,
        ws_max_size=settings.max_body_bytes,  # a websocket message is a request body too
    )


def cmd_indexer(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings)
    semantic.encoder_for(None)  # as serve does; this process keeps it
    _ensure_var_dir(settings)
    _require_schema_at_head(asyncio.run(_current(settings))[0])  # as serve does
    return asyncio.run(indexer_process.run(settings, parent=args.parent, ready=args.ready))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    revision = asyncio.run(_upgrade(settings, args.revision))
    _out(f"database at revision {revision}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    current, head = asyncio.run(_current(_settings(args)))
    state = "up to date" if current == head else f"behind: head is {head}"
    _out(f"{current or '(empty)'} ({state})")
    return 0 if current == head else 1


async def _create_token(settings: Settings, args: argparse.Namespace) -> str:
    import datetime as dt

    import sqlalchemy as sa

    from knowledge.accounts import service as accounts
    from knowledge.db import utcnow

    role = Role.parse(args.role)
    db = settings.database()
    try:
        async with db.transaction() as session:
            user = await session.scalar(sa.select(User).where(User.username == args.user))
            if user is None:
                user = await accounts.create_user(
                    session=session, principal=SYSTEM, username=args.user, role=role
                )
                _err(f"created user {user.username} ({role.value})")
            elif not user.role.includes(role):
                if not args.promote:
                    raise DomainError(
                        f"{user.username} is {user.role.value}; "
                        f"pass --promote to make them {role.value}"
                    )
                user.role = role
                _err(f"promoted {user.username} to {role.value}")
            expires = (
                utcnow() + dt.timedelta(days=args.expires_in_days) if args.expires_in_days else None
            )
            issued = await tokens.create(
                session=session,
                principal=SYSTEM,
                user=user,
                role=role,
                name=args.name,
                expires_at=expires,
            )
            return issued.secret
    finally:
        await db.dispose()


def cmd_token_create(args: argparse.Namespace) -> int:
    _out(asyncio.run(_create_token(_settings(args), args)))
    return 0


def cmd_schema_export(args: argparse.Namespace) -> int:
    from api.schema import schema

    sdl = schema.as_str() + "\n"
    target = Path(args.output)
    if args.check:
        if not target.exists() or target.read_text(encoding="utf-8") != sdl:
            _err(f"{target} is stale: run 'knownfix schema export'")
            return 1
        _out(f"{target} is up to date")
        return 0
    target.write_text(sdl, encoding="utf-8")
    _out(f"wrote {target}")
    return 0


async def _load_demo(settings: Settings) -> str:
    from knowledge.demo import loader

    db = settings.database()
    try:
        async with db.transaction() as session:
            report = await loader.load(session)
    finally:
        await db.dispose()
    if report.total == 0:
        return "demo knowledge already loaded; nothing added"
    return (
        f"added {report.articles} articles, {report.known_errors} known errors, "
        f"{report.incidents} incidents, {report.services} services, {report.teams} teams, "
        f"{report.users} users"
    )


def cmd_demo_load(args: argparse.Namespace) -> int:
    _out(asyncio.run(_load_demo(_settings(args))))
    return 0


REINDEX_WAIT_SECONDS = 600.0  # a rebuild of 110,000 documents took 252 s (bench/README.md)
REINDEX_POLL_SECONDS = 0.5


async def _reindex(settings: Settings, wait: float) -> str:
    """Rebuild the index here if nobody writes it; otherwise ask its writer to, and wait.

    Writing an index that another process writes would break it (a rebuild deletes
    the generations beside the one it swaps in, the writer's included), so the command
    takes the directory's ``WriterLock`` first. A running server holds that lock for as
    long as it runs: the command then leaves it a request, which the server honours
    on its next round, and waits up to ``wait`` seconds for it to be done. Should the
    writer exit meanwhile, the command takes the lock and rebuilds the index itself.
    """
    from knowledge.search.index import SearchIndex
    from knowledge.search.sync import Indexer
    from knowledge.search.writer_lock import request_rebuild

    db = settings.database()
    index = SearchIndex(settings.index_dir, postings_cache_bytes=settings.search_cache_bytes)
    indexer = Indexer(db, index)
    lock, root = indexer.writer_lock, settings.index_dir
    request: Path | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        while not await asyncio.to_thread(lock.acquire):
            holder = lock.holder()
            who = f"process {holder}" if holder else "another process"
            if wait <= 0:
                raise DomainError(
                    f"the search index in {root} is written by {who} (a running "
                    "'knownfix serve'?); nothing was done. Run 'knownfix reindex --wait "
                    "SECONDS' to have that process rebuild it, or stop it first"
                )
            if request is None:
                request = await asyncio.to_thread(request_rebuild, root)
                _err(
                    f"knownfix: {who} writes the search index in {root}; asked it to "
                    f"rebuild the index, waiting up to {wait:g} s"
                )
            elif not request.exists():
                await asyncio.to_thread(index.open_existing)
                count = await asyncio.to_thread(index.doc_count)
                return f"{who} rebuilt the index in {root} ({count} documents)"
            if loop.time() >= deadline:
                raise DomainError(
                    f"{who}, which writes the search index in {root}, has not rebuilt it "
                    f"within {wait:g} s (it may still be at it: see its log); the request "
                    "is withdrawn. Run again with a longer --wait"
                )
            await asyncio.sleep(REINDEX_POLL_SECONDS)
        # Nobody else writes the index now (a writer that held it has exited).
        bar = ProgressBar("indexing")
        try:
            await asyncio.to_thread(index.open)
            count = await indexer.rebuild(progress=bar)
        finally:
            bar.close()
        return f"indexed {count} documents into {root} (swapped in atomically)"
    finally:
        if request is not None:  # honoured by this rebuild, or withdrawn
            request.unlink(missing_ok=True)
        await asyncio.to_thread(index.close)
        lock.release()
        await db.dispose()


def cmd_reindex(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise ConfigError("--wait", f"expected seconds, 0 or more, got {args.wait:g}")
    _out(asyncio.run(_reindex(_settings(args), args.wait)))
    return 0


async def _prune_outbox(settings: Settings, days: int) -> int:
    from knowledge.outbox.service import prune

    db = settings.database()
    try:
        return await prune(db=db, older_than=utcnow() - dt.timedelta(days=days))
    finally:
        await db.dispose()


def cmd_outbox_prune(args: argparse.Namespace) -> int:
    settings = _settings(args)
    days = settings.outbox_retention_days if args.older_than_days is None else args.older_than_days
    if days < 0:
        raise ConfigError("--older-than-days", f"expected 0 or more, got {days}")
    if args.older_than_days is None and days == 0:
        _out("KNOWNFIX_OUTBOX_RETENTION_DAYS is 0 (keep for ever): nothing pruned")
        return 0
    count = asyncio.run(_prune_outbox(settings, days))
    _out(f"pruned {count} outbox rows older than {days} days")
    return 0


async def _import(settings: Settings, path: Path, dry_run: bool) -> ImportReport:
    from knowledge.transfer import service as transfer

    db = settings.database()
    bar = ProgressBar("importing")
    try:
        async with db.transaction() as session:
            report = await transfer.import_path(session, path, dry_run=dry_run, progress=bar)
            if report.problems:
                # Nothing of a batch with problems is kept, even what was valid.
                await session.rollback()
    finally:
        bar.close()
        await db.dispose()
    return report


def cmd_import(args: argparse.Namespace) -> int:
    report = asyncio.run(_import(_settings(args), Path(args.path), args.dry_run))
    for problem in report.problems:
        _err(str(problem))
    if report.problems:
        _err(f"knownfix: {len(report.problems)} problem(s); nothing was imported")
        return 1
    if args.dry_run:
        _out(f"{report.checked} records are valid; nothing was written (dry run)")
    else:
        counts = f"{report.created} created, {report.updated} updated"
        _out(f"imported: {counts}, {report.unchanged} unchanged")
    return 0


async def _export(settings: Settings) -> dict[str, str]:
    from knowledge.transfer import service as transfer

    db = settings.database()
    try:
        async with db.read() as session:
            return await transfer.export_files(session)
    finally:
        await db.dispose()


def cmd_export(args: argparse.Namespace) -> int:
    files = asyncio.run(_export(_settings(args)))
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    _out(f"wrote {len(files)} files to {directory}")
    return 0


async def _create_alert_source(settings: Settings, args: argparse.Namespace) -> str:
    import sqlalchemy as sa

    from knowledge.alerts import service as alerts
    from knowledge.catalog.models import Service

    db = settings.database()
    try:
        async with db.transaction() as session:
            service_id = None
            if args.service:
                service_id = await session.scalar(
                    sa.select(Service.id).where(Service.slug == args.service)
                )
                if service_id is None:
                    raise DomainError(f"no service {args.service!r}")
            _, secret = await alerts.create_source(
                session=session, principal=SYSTEM, slug=args.slug,
                name=args.name or args.slug, default_service_id=service_id,
            )  # fmt: skip
            return secret
    finally:
        await db.dispose()


def cmd_alert_source_create(args: argparse.Namespace) -> int:
    _out(asyncio.run(_create_alert_source(_settings(args), args)))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from knowledge.evaluation import service as evaluation

    try:
        ks = sorted({int(k) for k in args.k.split(",") if k.strip()})
    except ValueError:
        raise ConfigError("--k", f"expected numbers like 1,3,5,10, got {args.k!r}") from None
    if not ks or ks[0] < 1:
        raise ConfigError("--k", "expected positive numbers like 1,3,5,10")
    reports = asyncio.run(
        evaluation.run(
            article_files=[Path(a) for a in args.articles],
            incidents_file=Path(args.incidents),
            mode=args.mode,
            ks=ks,
            replay=args.replay,
            baseline=args.baseline,
        )
    )
    if args.json:
        _out(json.dumps(evaluation.summary_json(reports), indent=2))
        return 0
    header = f"{'engine':<10} {'mode':<6} " + " ".join(f"{'R@' + str(k):>6}" for k in ks)
    _out(header + f" {'MRR':>6} {'p50 ms':>8} {'p95 ms':>8}  ({reports[0].incidents} incidents)")
    for r in reports:
        recall = " ".join(f"{r.recall[k]:>6.3f}" for k in ks)
        _out(f"{r.engine:<10} {r.mode:<6} {recall} {r.mrr:>6.3f} "
             f"{r.latency_ms_p50:>8.1f} {r.latency_ms_p95:>8.1f}")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="knownfix", description="Incident knowledge platform")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_database(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--database-url", help="overrides KNOWNFIX_DATABASE_URL")
        return p

    serve = with_database(commands.add_parser("serve", help="serve the GraphQL API"))
    serve.add_argument("--host", help="overrides KNOWNFIX_HOST")
    serve.add_argument("--port", type=int, help="overrides KNOWNFIX_PORT")
    serve.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on this host; they search one index, written beside them",
    )
    serve.set_defaults(handler=cmd_serve)

    indexer = with_database(
        commands.add_parser(
            "indexer", help="keep the search index in step with the database (serve runs one)"
        )
    )
    indexer.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    indexer.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    indexer.add_argument("--ready", action="store_true", help=argparse.SUPPRESS)
    indexer.set_defaults(handler=cmd_indexer)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    upgrade = with_database(db.add_parser("upgrade", help="apply migrations"))
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    with_database(db.add_parser("current", help="show the schema revision")).set_defaults(
        handler=cmd_db_current
    )

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    create = with_database(token.add_parser("create", help="create a token and print it once"))
    create.add_argument("--user", required=True, help="username; created when missing")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", default="", help="what the token is for")
    create.add_argument("--expires-in-days", type=int, default=None)
    create.add_argument("--promote", action="store_true", help="raise the user's role if lower")
    create.set_defaults(handler=cmd_token_create)

    schema = commands.add_parser("schema", help="GraphQL schema").add_subparsers(
        dest="schema_command", required=True, metavar="ACTION"
    )
    export = schema.add_parser("export", help="write schema.graphql")
    export.add_argument("--output", default=str(SCHEMA_FILE))
    export.add_argument("--check", action="store_true", help="fail when the file is stale")
    export.set_defaults(handler=cmd_schema_export)

    reindex = with_database(
        commands.add_parser("reindex", help="rebuild the search index from the database")
    )
    reindex.add_argument("--index-dir", help="overrides KNOWNFIX_INDEX_DIR")
    reindex.add_argument(
        "--wait",
        type=float,
        default=REINDEX_WAIT_SECONDS,
        metavar="SECONDS",
        help="when a running server writes the index, how long to wait for it to rebuild "
        f"it (default {REINDEX_WAIT_SECONDS:g}; 0: fail at once instead)",
    )
    reindex.set_defaults(handler=cmd_reindex)

    outbox = commands.add_parser("outbox", help="the change log").add_subparsers(
        dest="outbox_command", required=True, metavar="ACTION"
    )
    pruning = with_database(
        outbox.add_parser("prune", help="delete old outbox rows (servers do it every hour)")
    )
    pruning.add_argument(
        "--older-than-days",
        type=int,
        help="overrides KNOWNFIX_OUTBOX_RETENTION_DAYS (index replicas behind what is "
        "deleted rebuild from the database)",
    )
    pruning.set_defaults(handler=cmd_outbox_prune)

    importing = with_database(
        commands.add_parser("import", help="import articles (.md) and known errors (.jsonl)")
    )
    importing.add_argument("path", help="a .md or .jsonl file, or a folder of them")
    importing.add_argument("--dry-run", action="store_true", help="validate only")
    importing.set_defaults(handler=cmd_import)

    exporting = with_database(commands.add_parser("export", help="write the knowledge base out"))
    exporting.add_argument("directory")
    exporting.set_defaults(handler=cmd_export)

    evaluate = commands.add_parser("eval", help="measure suggestions on labelled incidents")
    evaluate.add_argument("--articles", action="append", required=True, help="JSON Lines; repeat")
    evaluate.add_argument("--incidents", required=True, help="labelled incidents, JSON Lines")
    evaluate.add_argument("--mode", choices=("full", "title"), default="full")
    evaluate.add_argument("--replay", action="store_true", help="learn from earlier incidents")
    evaluate.add_argument("--baseline", action="store_true", help="plain Whoosh side by side")
    evaluate.add_argument("--k", default="1,3,5,10", help="cut-offs for Recall@k")
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.set_defaults(handler=cmd_eval)

    # Imported here: api.cli_agents uses this module's helpers, now all defined.
    from api import cli_agents, cli_report

    cli_agents.add_commands(commands, with_database)
    cli_report.add_command(commands, with_database)

    sources = commands.add_parser("alert-source", help="alert webhooks").add_subparsers(
        dest="source_command", required=True, metavar="ACTION"
    )
    source = with_database(sources.add_parser("create", help="create a source, print its token"))
    source.add_argument("--slug", required=True)
    source.add_argument("--name", default="")
    source.add_argument("--service", help="service slug for alerts that name none")
    source.set_defaults(handler=cmd_alert_source_create)

    demo = commands.add_parser("demo", help="demo knowledge").add_subparsers(
        dest="demo_command", required=True, metavar="ACTION"
    )
    with_database(demo.add_parser("load", help="load the demo knowledge base")).set_defaults(
        handler=cmd_demo_load
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except ConfigError as error:
        _err(f"knownfix: configuration error: {error}")
        return 2
    except semantic.ModelError as error:
        _err(f"knownfix: {error}")
        return 2
    except (DomainError, ValueError) as error:
        _err(f"knownfix: {error}")
        return 1
    except DatabaseBusyError as error:
        _err(f"knownfix: the database is busy ({error}); nothing was changed: run it again")
        return 1
    except (OSError, SQLAlchemyError) as error:
        _err(f"knownfix: cannot reach the database or files: {str(error).splitlines()[0]}")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
