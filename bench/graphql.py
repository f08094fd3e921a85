"""GraphQL throughput: requests/s and latency of a real ``knownfix serve``, beside a plain
Starlette JSON endpoint served by the same uvicorn.

    .venv/bin/python bench/graphql.py [--seconds 10] [--connections 16] [--out results.json]
    .venv/bin/python bench/graphql.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

What it does:

1. Builds a temporary SQLite database (migrations, the demo data, an admin token) and
   starts ``knownfix serve`` on it in production mode (limits on, errors masked,
   introspection off; the log level is ``warning`` so uvicorn writes no access log).
2. Reports ``--incidents`` incidents through ``reportIncident`` on the demo services (each
   stored with its suggestions) and assigns each to a team and a responder, so the list
   query has services, assignees and suggestions to show.
3. Starts a minimal Starlette app (one JSON endpoint) under uvicorn with the same
   defaults, as the baseline: what the server and framework cost without GraphQL; and a
   second ``knownfix serve`` in development mode on the same database, where the trivial
   query runs anonymously: the difference is what authenticating the token costs (a cache
   hit after its first request: api/token_cache.py). The production server runs
   twice on that database: with the response cache (api/response_cache.py), where every
   request after the first is a hit, and with it off (``KNOWNFIX_RESPONSE_CACHE_BYTES=0``),
   where every request runs the query: the miss path. The development server runs
   with it off.
4. For each scenario, ``--connections`` keep-alive connections send requests back to
   back for ``--warmup`` seconds (discarded) and then ``--seconds`` seconds (measured).
   The client is raw asyncio (on uvloop when installed), so that it costs the shared
   CPUs as little as possible; every response must be HTTP 200 without ``errors``.
5. Stops the servers and counts SQL statements per request in process (a SQLAlchemy
   ``before_cursor_execute`` listener on the same database and app), for page sizes
   5 and 20, with the response cache off and on: the count must not grow with the page.

Server and client share the machine: on two cores, one uvicorn process gets at most one
core, and the client and everything else share the other. So beside requests/s the table
gives the server's CPU time per request (from /proc), which depends much less on what
else the machine is doing. This is a benchmark: it prints numbers and asserts nothing
about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this file's folder comes first on sys.path, and this file would then
# shadow the graphql package it benchmarks.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KNOWNFIX = str(Path(sys.executable).with_name("knownfix"))
STARTUP_TIMEOUT = 60.0

TRIVIAL = "{ __typename }"
LIST = """
query IncidentList($first: Int!) {
  incidents(first: $first) {
    nodes {
      id number title status priority detectedAt
      service { slug name }
      assignee { username displayName }
      suggestions { rank score article { slug } }
    }
  }
}
"""
SCENARIOS = (
    # name, server, path, body. "knownfix" has the response cache on (every request
    # after the first is a hit), "uncached" is the same server with it off (every
    # request runs the query: the miss path).
    ("starlette JSON (baseline)", "baseline", "/json", {"query": TRIVIAL}),
    ("graphql { __typename }", "uncached", "/graphql", {"query": TRIVIAL}),
    ("  same, response cache hit", "knownfix", "/graphql", {"query": TRIVIAL}),
    # What authenticating costs: the same query, anonymous, on a development server.
    ("  same, no token (dev server)", "development", "/graphql", {"query": TRIVIAL}),
    *(
        (
            f"{name} incidents(first: {n})",
            server,
            "/graphql",
            {"query": LIST, "variables": {"first": n}},
        )
        for n in (5, 20)
        for name, server in (("graphql", "uncached"), ("  cache hit,", "knownfix"))
    ),
)
REPORTS = (
    ("Checkout returns 502 Bad Gateway", "upstream connect error: 502 Bad Gateway from nginx"),
    ("Orders database refuses connections", "FATAL: sorry, too many clients already"),
    ("Session cache out of memory", "OOM command not allowed when used memory > 'maxmemory'"),
    ("Payments API times out", "upstream request timeout after 30s calling payments-api"),
    ("Disk full on the orders database", "could not extend file: No space left on device"),
    ("DNS lookups fail for the identity service", "NXDOMAIN identity.internal"),
    ("Replication lag on orders-db", "replica is 900 seconds behind the primary"),
    ("Edge proxy TLS handshake failures", "SSL routines: certificate has expired"),
)


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the baseline server (this script, re-invoked) ------------------------------------


def serve_baseline(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> JSONResponse:
        await request.json()
        return JSONResponse({"data": {"__typename": "Query"}})

    app = Starlette(routes=[Route("/json", endpoint, methods=["POST"])])
    # The same uvicorn settings as ``knownfix serve`` (api/cli.py), log level aside.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        proxy_headers=True,
    )


# --- setting up -----------------------------------------------------------------------


def environment(workdir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWNFIX_")}
    return {
        **env,
        "KNOWNFIX_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir / 'knownfix.db'}",
        "KNOWNFIX_INDEX_DIR": str(workdir / "index"),
        "KNOWNFIX_ENV": "production",
        "KNOWNFIX_LOG_LEVEL": "warning",
    }


async def prepare_database(env: dict[str, str]) -> str:
    """Migrations, the demo data and an admin token (production loads no demo data)."""
    from knowledge import migrate
    from knowledge.accounts import service as accounts
    from knowledge.accounts import tokens
    from knowledge.accounts.principal import SYSTEM
    from knowledge.accounts.roles import Role
    from knowledge.db import Database
    from knowledge.demo import loader

    db = Database(env["KNOWNFIX_DATABASE_URL"])
    try:
        await migrate.upgrade(db.engine)
        async with db.transaction() as session:
            await loader.load(session)
            user = await accounts.create_user(
                session=session, principal=SYSTEM, username="bench", role=Role.ADMIN
            )
            issued = await tokens.create(session=session, principal=SYSTEM, user=user)
        return issued.secret
    finally:
        await db.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server ``admin_url`` names, dropped afterwards."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"knownfix_bench_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await admin.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], port: int, probe: str, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, ready when ``probe`` answers; stopped with SIGTERM afterwards.
    Its stderr goes to ``log`` when given (a pipe nobody reads fills up and stalls a
    server that logs tracebacks under load), else to a pipe read if it fails to start."""
    import httpx

    with log.open("wb") if log else contextlib.nullcontext() as sink:
        process = subprocess.Popen(  # noqa: S603 - our own commands
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=sink if sink else subprocess.PIPE,
        )  # fmt: skip

    def output() -> str:
        if log:
            return log.read_text()[-3000:]
        assert process.stderr is not None
        return process.stderr.read().decode()

    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited:\n{output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=5).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not start in {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def report_incidents(port: int, token: str, count: int) -> int:
    """Report incidents through the API on the demo services, each stored with its
    suggestions, and assign them to a team and a responder; returns how many
    suggestions the first page of 20 shows."""
    import httpx

    report = """
    mutation($input: ReportIncidentInput!) {
      reportIncident(input: $input) { __typename ... on Incident { id version } }
    }
    """
    assign = """
    mutation($input: AssignIncidentInput!) { assignIncident(input: $input) { __typename } }
    """
    catalog = """
    { services { nodes { id } } teams { nodes { id } }
      users(role: RESPONDER) { nodes { id } } }
    """
    headers = {"Authorization": f"Bearer {token}"}

    def call(http: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> Any:
        reply = http.post("/graphql", json={"query": query, "variables": variables or {}})
        payload = reply.json()
        if reply.status_code != 200 or payload.get("errors"):
            raise RuntimeError(f"{query.split()[0:2]} failed: {reply.status_code} {payload}")
        return payload["data"]

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http:
        found = call(http, catalog)
        services, teams, responders = (
            [node["id"] for node in found[name]["nodes"]] for name in ("services", "teams", "users")
        )
        for n in range(count):
            title, error_text = REPORTS[n % len(REPORTS)]
            draft = {
                "title": f"{title} ({n})",
                "errorText": error_text,
                "serviceId": services[n % len(services)],
            }
            incident = call(http, report, {"input": draft})["reportIncident"]
            if incident["__typename"] != "Incident":
                raise RuntimeError(f"reportIncident refused: {incident}")
            change = {
                "id": incident["id"],
                "expectedVersion": incident["version"],
                "teamId": teams[n % len(teams)],
                "assigneeId": responders[n % len(responders)],
            }
            assigned = call(http, assign, {"input": change})["assignIncident"]
            if assigned["__typename"] != "Incident":
                raise RuntimeError(f"assignIncident refused: {assigned}")
        page = call(http, LIST, {"first": 20})
    return sum(len(node["suggestions"]) for node in page["incidents"]["nodes"])


# --- the load generator ---------------------------------------------------------------


def http_request(path: str, body: dict[str, Any], token: str | None) -> bytes:
    payload = json.dumps(body).encode()
    headers = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise RuntimeError(f"no Content-Length in {head!r}")
    return status, await reader.readexactly(length)


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures = 0
        self.sample_failure: bytes | None = None
        self.cpu: dict[str, float] = {}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def connection(
    port: int, request: bytes, warm_until: float, stop_at: float, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            status, body = await read_response(reader)
            finished = time.perf_counter()
            if started < warm_until:
                continue
            tally.latencies.append(finished - started)
            if status != 200 or b'"errors"' in body:
                tally.failures += 1
                tally.sample_failure = tally.sample_failure or body[:300]
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def load(
    port: int, pid: int, request: bytes, connections: int, warmup: float, seconds: float
) -> Tally:
    tally = Tally()
    start = time.perf_counter()
    warm_until, stop_at = start + warmup, start + warmup + seconds

    async def cpu_after_warmup() -> None:
        await asyncio.sleep(warmup)
        tally.cpu["server"], tally.cpu["client"] = cpu_seconds(pid), own_cpu_seconds()

    sampler = asyncio.create_task(cpu_after_warmup())
    await asyncio.gather(
        *(connection(port, request, warm_until, stop_at, tally) for _ in range(connections))
    )
    await sampler
    tally.cpu["server"] = cpu_seconds(pid) - tally.cpu["server"]
    tally.cpu["client"] = own_cpu_seconds() - tally.cpu["client"]
    return tally


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run_load(port: int, pid: int, request: bytes, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    tally = asyncio.run(load(port, pid, request, args.connections, args.warmup, args.seconds))
    ordered = sorted(tally.latencies)
    count = len(ordered)
    return {
        "requests": count,
        "failures": tally.failures,
        "sample_failure": None if tally.sample_failure is None else tally.sample_failure.decode(),
        "rps": count / args.seconds,
        "p50_ms": 1000 * percentile(ordered, 0.50),
        "p99_ms": 1000 * percentile(ordered, 0.99),
        "mean_ms": 1000 * statistics.fmean(ordered) if ordered else float("nan"),
        # What one request cost the server's one process, whatever else ran: the rate
        # a whole core would serve is 1000 / this.
        "server_cpu_ms": 1000 * tally.cpu["server"] / count if count else float("nan"),
        "server_cpu_share": tally.cpu["server"] / args.seconds,
        "client_cpu_share": tally.cpu["client"] / args.seconds,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


# --- SQL statements per request (in process, no production overhead) -------------------


async def count_statements(
    env: dict[str, str], token: str, *, cache: bool
) -> dict[str, dict[str, int]]:
    import httpx
    from sqlalchemy import event

    from api.app import create_app
    from knowledge.config import Settings
    from knowledge.db import Database

    settings = Settings.from_env(env)
    if not cache:
        settings = settings.replace(response_cache_bytes=0)
    db = Database(settings.database_url)
    statements: list[str] = []

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", counted)
    app = create_app(settings, db=db)
    counts: dict[str, dict[str, int]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers
            ) as http,
        ):
            cases = [("{ __typename }", {"query": TRIVIAL})]
            cases += [
                (f"incidents(first: {n})", {"query": LIST, "variables": {"first": n}})
                for n in (5, 20)
            ]
            for name, body in cases:
                for _ in range(2):  # the second time: nothing left to warm up
                    statements.clear()
                    reply = await http.post("/graphql", json=body)
                    if reply.status_code != 200 or reply.json().get("errors"):
                        raise RuntimeError(f"{name}: {reply.status_code} {reply.text[:300]}")
                begins = sum(1 for statement in statements if statement.startswith("BEGIN"))
                shown = name if not cache else f"{name}, cache hit"
                counts[shown] = {"statements": len(statements), "queries": len(statements) - begins}
    finally:
        await db.dispose()
    return counts


# --- main -----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded time per scenario")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--incidents", type=int, default=40, help="incidents to report first")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run on a fresh database on this PostgreSQL server instead of SQLite, e.g."
        " postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        serve_baseline(args.baseline_server)
        return 0

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "connections": args.connections,
        "seconds": args.seconds,
        "scenarios": {},
    }
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="knownfix-bench-")))
        database_url = None
        if args.postgres:
            database_url = stack.enter_context(postgres_database(args.postgres))
        results["database"] = "postgresql" if args.postgres else "sqlite"
        env = environment(workdir, database_url)
        token = asyncio.run(prepare_database(env))
        ports = {name: free_port() for name in ("knownfix", "uncached", "development", "baseline")}
        knownfix = [KNOWNFIX, "serve", "--port", str(ports["knownfix"])]
        uncached = [KNOWNFIX, "serve", "--port", str(ports["uncached"])]
        development = [KNOWNFIX, "serve", "--port", str(ports["development"])]
        # Each its own index: two indexers must not write one index.
        uncached_env = {
            **env,
            "KNOWNFIX_RESPONSE_CACHE_BYTES": "0",
            "KNOWNFIX_INDEX_DIR": str(workdir / "index-uncached"),
        }
        development_env = {
            **uncached_env,
            "KNOWNFIX_ENV": "development",
            "KNOWNFIX_INDEX_DIR": str(workdir / "index-development"),
        }
        baseline = [sys.executable, __file__, "--baseline-server", str(ports["baseline"])]
        with (
            running(knownfix, env, ports["knownfix"], "/readyz") as knownfix_process,
            running(uncached, uncached_env, ports["uncached"], "/readyz") as uncached_process,
            running(development, development_env, ports["development"], "/readyz") as dev,
            running(baseline, env, ports["baseline"], "/json") as baseline_process,
        ):
            pids = {
                "knownfix": knownfix_process.pid,
                "uncached": uncached_process.pid,
                "development": dev.pid,
                "baseline": baseline_process.pid,
            }
            started = time.perf_counter()
            shown = report_incidents(ports["knownfix"], token, args.incidents)
            _out(
                f"reported {args.incidents} incidents in {time.perf_counter() - started:.1f} s;"
                f" the first page of 20 shows {shown} stored suggestions"
            )
            results["suggestions_on_first_page"] = shown
            for name, server, path, body in SCENARIOS:
                request = http_request(path, body, None if server == "development" else token)
                figures = run_load(ports[server], pids[server], request, args)
                results["scenarios"][name] = figures
                _out(
                    f"{name}: {figures['rps']:,.0f} req/s (load average"
                    f" {figures['load_before']:.1f} -> {figures['load_after']:.1f})"
                )
        results["sql_statements"] = {
            **asyncio.run(count_statements(env, token, cache=False)),
            **asyncio.run(count_statements(env, token, cache=True)),
        }

    _out()
    _out(
        f"{args.connections} connections, {args.seconds:.0f} s per scenario after"
        f" {args.warmup:.0f} s of warm-up; {results['database']}; {results['cpus']} CPUs,"
        f" Python {results['python']}"
    )
    header = (
        f"{'scenario':<30} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6}"
        f" {'server CPU':>10} {'CPU ms/req':>10} {'req/CPU-s':>9} {'load':>9}"
    )
    _out(header)
    _out("-" * len(header))
    for name, figures in results["scenarios"].items():
        load_text = f"{figures['load_before']:.1f}-{figures['load_after']:.1f}"
        _out(
            f"{name:<30} {figures['rps']:>7,.0f} {figures['p50_ms']:>7.2f}"
            f" {figures['p99_ms']:>7.2f} {figures['failures']:>6}"
            f" {figures['server_cpu_share']:>10.0%} {figures['server_cpu_ms']:>10.3f}"
            f" {1000 / figures['server_cpu_ms']:>9,.0f} {load_text:>9}"
        )
    _out(
        "server CPU: the server process's share of one core while measured; req/CPU-s:"
        " requests per second of server CPU, the rate one free core would give"
    )
    _out()
    _out(
        "SQL per request through the app's engine, authentication included (statements:"
        " with each read's BEGIN); with the response cache on, each request also reads the"
        " data version on a connection of its own (knowledge.db.DataVersionReader)"
    )
    for name, count in results["sql_statements"].items():
        _out(f"  {name:<28} {count['statements']:>3} statements, {count['queries']:>3} queries")
    failed = {n: f["sample_failure"] for n, f in results["scenarios"].items() if f["failures"]}
    for name, sample in failed.items():
        _out(f"FAILED responses in {name}, e.g. {sample}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
