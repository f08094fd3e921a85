"""Suggestions over HTTP right after writes: ``knownfix serve --workers N``, end to end.

    python bench/suggest.py --articles 100000 --incidents 100000 --keep   # prints DIR
    python bench/serve_writes.py --data DIR/ours [--workers 2] [--writes 100] [--runs 2]
    python bench/serve_writes.py --data DIR/ours --code /tmp/baseline     # side by side

``bench/suggest.py`` times ``suggest`` inside one process. This starts the real
server on a copy of a kept database and index (a fresh copy per run: the writes
stay in it) and times ``suggestResolutions`` with highlights, signals and
explanation from a client on the same machine:

- new texts, nothing written meanwhile;
- new texts, each sent the moment a ``reportIncident`` and a ``resolveIncident``
  of another incident have returned, for every pair of (worker that took the
  write, worker that took the suggestion): an HTTP connection stays on the worker
  that accepted it, so one connection per worker pins each request.

It also reports each server process's CPU time per write (the index writer's
included). With ``--code DIR`` (another checkout, e.g. ``git worktree add
/tmp/baseline REV``) it alternates runs of that code and this checkout's.
Every text comes from the vocabulary of ``bench/search.py``. This is a benchmark:
it reports numbers and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.suggest import generate_queries  # noqa: E402 (needs ROOT on sys.path first)

SETTLE_SECONDS = 20  # postings arrays mapped, heap settled (a server's first seconds)
SUGGEST = """query($i: DraftInput!) { suggestResolutions(input: $i, first: 5) {
  rank score explanation article { id title } matchedTerms highlights { field fragments }
  signals { name value weight } } }"""
REPORT = """mutation($i: ReportIncidentInput!) { reportIncident(input: $i) {
  __typename ... on Incident { id version } ... on Error { message } } }"""
RESOLVE = """mutation($i: ResolveIncidentInput!) { resolveIncident(input: $i) {
  __typename ... on Error { message } } }"""


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU time of ``root`` and its descendants, by command (pid-free, to compare runs)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(stat[1])
        times[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        commands[pid] = command.decode(errors="replace")
    found: dict[str, float] = {}
    for pid in times:
        walk, depth = pid, 0
        while walk not in (root, 0, 1) and depth < 8:
            walk, depth = parents.get(walk, 0), depth + 1
        if walk == root:
            kind = (
                "index writer" if " indexer " in commands[pid]
                else "server" if pid == root
                else "worker" if "multiprocessing-fork" in commands[pid]
                else "other"
            )  # fmt: skip
            name = f"{kind} {pid}"
            found[name] = times[pid]
    return found


def one_run(args: argparse.Namespace, code: Path, port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="knownfix-serve-writes-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(args.data, data, symlinks=True)
        with sqlite3.connect(data / "bench.db") as connection:  # bulk-inserted numbers
            connection.execute(
                "INSERT OR REPLACE INTO counters (name, value) "
                "SELECT 'incident', coalesce(max(number), 0) FROM incidents"
            )
        env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "KNOWNFIX_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'bench.db'}",
            "KNOWNFIX_INDEX_DIR": str(data / "index"),
            "KNOWNFIX_LOG_LEVEL": "warning",
            "KNOWNFIX_RESPONSE_CACHE_BYTES": "0",  # every text is new anyway
        }
        cli = [sys.executable, "-P", "-m", "api.cli"]
        created = subprocess.run(  # noqa: S603 (our own command, fixed args)
            [*cli, "token", "create", "--user", "bench", "--role", "responder"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        token = created.stdout.split()[-1]
        server = subprocess.Popen(  # noqa: S603 (our own command, fixed args)
            [*cli, "serve", "--workers", str(args.workers), "--port", str(port)], env=env
        )
        try:
            return asyncio.run(measure(args, server.pid, port, token))
        finally:
            server.terminate()
            server.wait(60)


async def measure(args: argparse.Namespace, server: int, port: int, token: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    pinned: dict[int, httpx.AsyncClient] = {}
    spare: list[httpx.AsyncClient] = []
    try:
        deadline = time.monotonic() + 600
        while len(pinned) < args.workers and time.monotonic() < deadline:
            client = httpx.AsyncClient(base_url=url, timeout=60, headers=headers)
            try:
                ready = (await client.get("/readyz")).json()
            except (httpx.HTTPError, ValueError):
                await client.aclose()
                await asyncio.sleep(0.5)
                continue
            pid = ready["process"]["pid"]
            if ready["status"] != "ready" or pid in pinned:
                spare.append(client)
            else:
                pinned[pid] = client
        if len(pinned) < args.workers:
            raise SystemExit("the server's workers did not all answer, ready")
        await asyncio.sleep(SETTLE_SECONDS)
        workers = sorted(pinned)

        async def suggest(client: httpx.AsyncClient, text: dict[str, Any]) -> tuple[float, Any]:
            started = time.perf_counter()
            reply = await client.post("/graphql", json={"query": SUGGEST, "variables": {
                "i": {"title": text["title"], "description": text["description"]}}})  # fmt: skip
            elapsed = (time.perf_counter() - started) * 1000
            body = reply.json()
            if body.get("errors"):
                raise SystemExit(f"suggestResolutions failed: {body['errors']}")
            return elapsed, body["data"]["suggestResolutions"]

        kinds = ("short", "long")
        quiet: dict[str, list[float]] = {k: [] for k in kinds}
        articles: list[str] = []
        for n, text in enumerate(generate_queries(args.writes, args.writes // 2, args.seed)):
            elapsed, found = await suggest(pinned[workers[n % len(workers)]], text)
            quiet[text["kind"]].append(elapsed)
            articles += [s["article"]["id"] for s in found[:1] if s["article"]]
        written = generate_queries(args.writes, args.writes // 2, args.seed + 1)
        asked = generate_queries(args.writes, args.writes // 2, args.seed + 2)
        pairs = list(itertools.product(range(len(workers)), repeat=2))
        after: dict[str, list[float]] = {}
        writes: list[float] = []
        cpu_before = cpu_seconds(server)
        for n, (text, ask) in enumerate(zip(written, asked, strict=True)):
            by, asker = pairs[n % len(pairs)]
            client = pinned[workers[by]]
            started = time.perf_counter()
            reported = (await client.post("/graphql", json={"query": REPORT, "variables": {"i": {
                "title": text["title"][:200], "description": text["description"][:20_000]}}})
            ).json()["data"]["reportIncident"]  # fmt: skip
            if reported["__typename"] != "Incident":
                raise SystemExit(f"reportIncident failed: {reported}")
            resolved = (await client.post("/graphql", json={"query": RESOLVE, "variables": {"i": {
                "id": reported["id"], "expectedVersion": reported["version"], "code": "FIXED",
                "notes": "bench", "resolvedBy": {"articleId": articles[n % len(articles)]}}}})
            ).json()["data"]["resolveIncident"]  # fmt: skip
            if resolved["__typename"] != "Incident":
                raise SystemExit(f"resolveIncident failed: {resolved}")
            writes.append((time.perf_counter() - started) * 1000)
            elapsed, _ = await suggest(pinned[workers[asker]], ask)
            key = f"{ask['kind']}, write on worker {by + 1}, asked on worker {asker + 1}"
            after.setdefault(key, []).append(elapsed)
        cpu_after = cpu_seconds(server)
    finally:
        for client in [*pinned.values(), *spare]:
            await client.aclose()
    cpu = {
        name: round((cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / len(written), 1)
        for name in cpu_after
    }
    summary = {f"{kind}, nothing written": v for kind, v in quiet.items()} | dict(
        sorted(after.items())
    )
    return {
        "latency_ms": {
            key: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)}
            for key, v in summary.items()
        },
        "write_ms": {"p50": percentile(writes, 50), "p95": percentile(writes, 95)},
        "cpu_ms_per_write": cpu,
        "mean_after_write_ms": statistics.fmean(itertools.chain(*after.values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a kept bench/suggest.py run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--writes", type=int, default=100, help="and as many short texts")
    parser.add_argument("--runs", type=int, default=1, help="runs of each code")
    parser.add_argument("--code", type=Path, help="another checkout, run side by side")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--seed", type=int, default=20241130)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if not (args.data / "bench.db").exists():
        parser.error(f"no bench.db in {args.data}: give a kept bench/suggest.py directory")
    codes = {"this checkout": ROOT} | ({"--code": args.code.resolve()} if args.code else {})
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    for run in range(args.runs):
        for name, code in codes.items():
            port = args.port + sum(len(done) for done in results.values())
            result = one_run(args, code, port)
            results[name].append(result)
            say(f"\n{name} ({code}), run {run + 1}, {args.workers} workers")
            for key, row in result["latency_ms"].items():
                say(f"  {key:48} n={row['n']:3} p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms")
            write = result["write_ms"]
            say(f"  report + resolve: p50 {write['p50']:.1f} ms, p95 {write['p95']:.1f} ms")
            for process, ms in sorted(result["cpu_ms_per_write"].items()):
                say(f"  CPU per write, {process}: {ms} ms")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
