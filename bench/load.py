"""Mixed-workload load test over a real uvicorn, then a check that no acknowledged write was lost.

    python bench/load.py --quick                       # SQLite, about 1 minute
    python bench/load.py --clients 16 --seconds 30     # SQLite, the defaults
    python bench/load.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

1. Builds a temporary database (SQLite in a temporary folder, or with ``--database-url`` a
   fresh database of its own on that PostgreSQL server, dropped afterwards): migrations,
   the demo data and an admin token, like ``bench/graphql.py``. Starts ``knownfix serve``
   on it in production mode (limits on, errors masked, log level ``warning``) and reports
   ``--incidents`` incidents through the API so that there is something to read.
2. ``--clients`` concurrent clients, each its own ``httpx.AsyncClient`` (one keep-alive
   connection), run the weighted mix in ``OPERATIONS`` back to back for ``--seconds``:
   70% reads (search, suggestResolutions on a draft, the incident list, an incident by
   id, an article by id) and 30% writes (reportIncident, addWorkNote, classifyIncident,
   resolveIncident, createArticle, updateArticle). Writes that carry an
   ``expectedVersion`` use the version this run last saw, which another client may have
   changed since: a ``ConflictError`` is then the expected answer, counted as such and
   followed by a read of the object (counted with the reads). So is an
   ``InvalidTransitionError`` for an incident another client has just resolved.
   Everything else counts as an error: an HTTP status other than 200, a top-level
   GraphQL ``errors`` (masked or not), an unexpected error type in the payload, a
   transport error or a timeout (``--timeout``).
3. Reports requests/s, p50/p95/p99 per operation and overall, and the errors.
4. Checks every acknowledged write (the server answered with the object): the incident
   exists with its title, the work note is on its timeline, the classification and the
   resolution are there, the article and every acknowledged revision of it exist (read
   back through ``nodes`` and ``articleRevisions``). Then polls ``search`` (bounded by
   ``--search-deadline``) until the writes that search shows are found: created and
   updated articles (drafts, which an admin may search for) by a marker word of their
   own, and resolved incidents by the marker in their resolution notes. Open incidents
   and work notes are not in search results by design. It reports how many writes were
   verified and lists the missing ones.

The load generator shares the machine with the server: on two cores the server (one
process, at most one core) and the clients compete. This is a benchmark: it reports
numbers and asserts nothing about them (the exit status is 1 only when an
acknowledged write is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder would come first on sys.path, and bench/graphql.py would
# then shadow the graphql package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench import graphql as gql  # noqa: E402 (needs ROOT on sys.path first)

READ, WRITE = "read", "write"
# name, kind, weight (percent of operations)
OPERATIONS = (
    ("search", READ, 20),
    ("suggestResolutions", READ, 15),
    ("incidents(first: 20)", READ, 15),
    ("incident by id", READ, 10),
    ("article by id", READ, 10),
    ("reportIncident", WRITE, 9),
    ("addWorkNote", WRITE, 8),
    ("classifyIncident", WRITE, 5),
    ("resolveIncident", WRITE, 3),
    ("createArticle", WRITE, 2),
    ("updateArticle", WRITE, 3),
)
SEARCHES = (
    "redis timeout",
    "disk full",
    "502 bad gateway",
    "certificate expired",
    "connection refused",
    "out of memory",
    '"too many clients"',
    "replication lag",
    "dns NXDOMAIN",
    "kafka consumer lag",
    "deploy rollback",
    "OOMKilled pod restart",
)
LEVELS = ("LOW", "MEDIUM", "HIGH")

SEARCH = """
query($q: String!) {
  search(query: $q, first: 10) {
    totalCount
    edges { node { __typename
      ... on ArticleHit { score article { id slug title } }
      ... on IncidentHit { score incident { id number title } }
      ... on KnownErrorHit { score knownError { id key } } } }
  }
}
"""
SUGGEST = """
query($input: DraftInput!) {
  suggestResolutions(input: $input, first: 5) {
    rank score explanation article { id slug title } knownError { id key }
  }
}
"""
INCIDENT = """
query($id: ID!) {
  incident(id: $id) {
    id number title status version priority
    service { slug name } assignee { username }
    timeline { kind message occurredAt }
  }
}
"""
ARTICLE = """
query($id: ID!) {
  article(id: $id) { id slug title summary body status version currentRevision tags }
}
"""
ERROR_FIELDS = "... on Error { __typename message code }"
REPORT = f"""
mutation($input: ReportIncidentInput!) {{
  reportIncident(input: $input) {{
    __typename ... on Incident {{ id number version }} {ERROR_FIELDS}
  }}
}}
"""
WORK_NOTE = f"""
mutation($input: AddWorkNoteInput!) {{
  addWorkNote(input: $input) {{
    __typename ... on IncidentEvent {{ id kind incident {{ id version }} }} {ERROR_FIELDS}
  }}
}}
"""
CLASSIFY = f"""
mutation($input: ClassifyIncidentInput!) {{
  classifyIncident(input: $input) {{
    __typename
    ... on ClassifiedIncident {{ incident {{ id version priority }} suggestions {{ rank }} }}
    {ERROR_FIELDS}
  }}
}}
"""
RESOLVE = f"""
mutation($input: ResolveIncidentInput!) {{
  resolveIncident(input: $input) {{
    __typename ... on Incident {{ id version status }} {ERROR_FIELDS}
  }}
}}
"""
CREATE_ARTICLE = f"""
mutation($input: CreateArticleInput!) {{
  createArticle(input: $input) {{
    __typename ... on Article {{ id version currentRevision }} {ERROR_FIELDS}
  }}
}}
"""
UPDATE_ARTICLE = f"""
mutation($input: UpdateArticleInput!) {{
  updateArticle(input: $input) {{
    __typename ... on Article {{ id version currentRevision }} {ERROR_FIELDS}
  }}
}}
"""
CATALOG = """
{ services { nodes { id } }
  articles(first: 50) { nodes { id } }
  incidents(first: 100) { nodes { id version status } } }
"""
EXPECTED = {"ConflictError", "InvalidTransitionError"}
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Timeout\w*): ")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class GraphQLFailure(Exception):
    """An answer that counts as an error: not HTTP 200, or top-level GraphQL errors."""


@dataclasses.dataclass
class Write:
    """An acknowledged write, and what must be found afterwards."""

    kind: str
    node_id: str  # the incident or article it changed
    marker: str = ""  # a word of its own in what it wrote
    searchable: bool = False


@dataclasses.dataclass
class State:
    """What the clients share (one event loop: no locks needed)."""

    run: str
    services: list[str]
    articles: list[str]  # the demo's, read only
    incidents: dict[str, int]  # id -> the last version seen
    open_incidents: list[str]
    own_articles: dict[str, int] = dataclasses.field(default_factory=dict)  # id -> version
    writes: list[Write] = dataclasses.field(default_factory=list)
    counter: int = 0

    def marker(self) -> str:
        """A word that appears nowhere else: lower-case letters and digits, no suffix
        the stemmer would cut."""
        self.counter += 1
        return f"lt{self.run}{self.counter:06d}q"


@dataclasses.dataclass
class Tally:
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = dataclasses.field(default_factory=lambda: defaultdict(int))
    expected: dict[str, int] = dataclasses.field(default_factory=lambda: defaultdict(int))
    samples: list[str] = dataclasses.field(default_factory=list)

    def error(self, name: str, what: str) -> None:
        self.errors[name] += 1
        if len(self.samples) < 8:
            self.samples.append(f"{name}: {what[:300]}")


async def call(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    reply = await http.post("/graphql", json={"query": query, "variables": variables})
    if reply.status_code != 200:
        raise GraphQLFailure(f"HTTP {reply.status_code}: {reply.text[:200]}")
    payload = reply.json()
    if payload.get("errors"):
        raise GraphQLFailure(f"errors: {json.dumps(payload['errors'])[:200]}")
    data: dict[str, Any] = payload["data"]
    return data


# --- the operations: each returns the typename of a payload union, or "ok" --------------


Operation = Callable[[httpx.AsyncClient, State, random.Random], Awaitable[tuple[str, str | None]]]


async def op_search(http: httpx.AsyncClient, state: State, rng: random.Random) -> tuple[str, None]:
    await call(http, SEARCH, {"q": rng.choice(SEARCHES)})
    return "ok", None


async def op_suggest(http: httpx.AsyncClient, state: State, rng: random.Random) -> tuple[str, None]:
    title, error_text = rng.choice(gql.REPORTS)
    await call(http, SUGGEST, {"input": {"title": title, "errorText": error_text}})
    return "ok", None


async def op_list(http: httpx.AsyncClient, state: State, rng: random.Random) -> tuple[str, None]:
    await call(http, gql.LIST, {"first": 20})
    return "ok", None


async def read_incident(http: httpx.AsyncClient, state: State, incident_id: str) -> None:
    found = (await call(http, INCIDENT, {"id": incident_id}))["incident"]
    state.incidents[incident_id] = found["version"]
    if found["status"] not in ("NEW", "IN_PROGRESS", "ON_HOLD") and (
        incident_id in state.open_incidents
    ):
        state.open_incidents.remove(incident_id)


async def op_incident(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, None]:
    await read_incident(http, state, rng.choice(list(state.incidents)))
    return "ok", None


async def read_article(http: httpx.AsyncClient, state: State, article_id: str) -> None:
    found = (await call(http, ARTICLE, {"id": article_id}))["article"]
    if article_id in state.own_articles:
        state.own_articles[article_id] = found["version"]


async def op_article(http: httpx.AsyncClient, state: State, rng: random.Random) -> tuple[str, None]:
    pool = state.articles + list(state.own_articles)
    await read_article(http, state, rng.choice(pool))
    return "ok", None


async def op_report(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, str | None]:
    title, error_text = rng.choice(gql.REPORTS)
    marker = state.marker()
    draft = {
        "title": f"{title} {marker}",
        "errorText": error_text,
        "serviceId": rng.choice(state.services),
        "impact": rng.choice(LEVELS),
        "urgency": rng.choice(LEVELS),
    }
    result = (await call(http, REPORT, {"input": draft}))["reportIncident"]
    if result["__typename"] == "Incident":
        state.incidents[result["id"]] = result["version"]
        state.open_incidents.append(result["id"])
        state.writes.append(Write("reportIncident", result["id"], marker))
    return result["__typename"], None


async def op_work_note(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, str | None]:
    incident_id = rng.choice(state.open_incidents)
    marker = state.marker()
    note = {"incidentId": incident_id, "text": f"Load test note {marker}: restarted the pod."}
    result = (await call(http, WORK_NOTE, {"input": note}))["addWorkNote"]
    if result["__typename"] == "IncidentEvent":
        state.incidents[incident_id] = result["incident"]["version"]
        state.writes.append(Write("addWorkNote", incident_id, marker))
    return result["__typename"], incident_id


async def op_classify(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, str | None]:
    incident_id = rng.choice(state.open_incidents)
    category = rng.choice(("database", "network", "application"))
    change = {
        "id": incident_id,
        "expectedVersion": state.incidents[incident_id],
        "impact": rng.choice(LEVELS),
        "urgency": rng.choice(LEVELS),
        "category": category,
    }
    result = (await call(http, CLASSIFY, {"input": change}))["classifyIncident"]
    if result["__typename"] == "ClassifiedIncident":
        state.incidents[incident_id] = result["incident"]["version"]
        state.writes.append(Write("classifyIncident", incident_id, category))
    return result["__typename"], incident_id


async def op_resolve(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, str | None]:
    incident_id = rng.choice(state.open_incidents)
    marker = state.marker()
    change = {
        "id": incident_id,
        "expectedVersion": state.incidents[incident_id],
        "code": "FIXED",
        "notes": f"Restarted the service and cleared the queue ({marker}).",
    }
    result = (await call(http, RESOLVE, {"input": change}))["resolveIncident"]
    if result["__typename"] == "Incident":
        state.incidents[incident_id] = result["version"]
        with contextlib.suppress(ValueError):
            state.open_incidents.remove(incident_id)
        state.writes.append(Write("resolveIncident", incident_id, marker, searchable=True))
    return result["__typename"], incident_id


async def op_create_article(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, str | None]:
    title, error_text = rng.choice(gql.REPORTS)
    marker = state.marker()
    article = {
        "title": f"{title}: what to do ({marker})",
        "summary": "Written by the load test.",
        "body": f"## Symptoms\n\n{error_text}\n\n## Resolution\n\n1. Restart it.\n",
        "tags": ["load-test"],
        "serviceIds": [rng.choice(state.services)],
    }
    result = (await call(http, CREATE_ARTICLE, {"input": article}))["createArticle"]
    if result["__typename"] == "Article":
        state.own_articles[result["id"]] = result["version"]
        state.writes.append(Write("createArticle", result["id"], marker, searchable=True))
    return result["__typename"], None


async def op_update_article(
    http: httpx.AsyncClient, state: State, rng: random.Random
) -> tuple[str, str | None]:
    article_id = rng.choice(list(state.own_articles))
    marker = state.marker()
    change = {
        "id": article_id,
        "expectedVersion": state.own_articles[article_id],
        "body": f"## Resolution\n\n1. Restart it.\n2. Check the queue ({marker}).\n",
        "changeNote": f"load test {marker}",
    }
    result = (await call(http, UPDATE_ARTICLE, {"input": change}))["updateArticle"]
    if result["__typename"] == "Article":
        state.own_articles[article_id] = result["version"]
        state.writes.append(Write("updateArticle", article_id, marker, searchable=True))
    return result["__typename"], article_id


OPERATION_FUNCTIONS: dict[str, Operation] = {
    "search": op_search,
    "suggestResolutions": op_suggest,
    "incidents(first: 20)": op_list,
    "incident by id": op_incident,
    "article by id": op_article,
    "reportIncident": op_report,
    "addWorkNote": op_work_note,
    "classifyIncident": op_classify,
    "resolveIncident": op_resolve,
    "createArticle": op_create_article,
    "updateArticle": op_update_article,
}
SUCCESS = {"ok", "Incident", "IncidentEvent", "ClassifiedIncident", "Article"}
NEEDS_OPEN_INCIDENT = {"addWorkNote", "classifyIncident", "resolveIncident"}


async def client(
    number: int, base_url: str, token: str, state: State, tally: Tally, args: argparse.Namespace
) -> None:
    rng = random.Random(args.seed * 1000 + number)  # noqa: S311 (a workload, not security)
    names = [name for name, _, _ in OPERATIONS]
    weights = [weight for _, _, weight in OPERATIONS]
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=args.timeout,
        limits=httpx.Limits(max_connections=1),
    ) as http:
        while time.perf_counter() < args.stop_at:
            name = rng.choices(names, weights)[0]
            if name in NEEDS_OPEN_INCIDENT and not state.open_incidents:
                name = "reportIncident"
            if name == "updateArticle" and not state.own_articles:
                name = "createArticle"
            started = time.perf_counter()
            try:
                outcome, subject = await OPERATION_FUNCTIONS[name](http, state, rng)
            except httpx.TimeoutException:
                tally.error(name, "timeout")
                continue
            except (GraphQLFailure, httpx.TransportError) as error:
                tally.error(name, f"{type(error).__name__}: {error}")
                continue
            finally:
                tally.latencies[name].append(time.perf_counter() - started)
            if outcome in SUCCESS:
                continue
            if outcome not in EXPECTED:
                tally.error(name, f"payload {outcome}")
                continue
            tally.expected[f"{name}: {outcome}"] += 1
            # Read what another client changed, as a user would, and carry on from there.
            if subject is None:
                continue
            refresh = "article by id" if subject in state.own_articles else "incident by id"
            started = time.perf_counter()
            try:
                if refresh == "article by id":
                    await read_article(http, state, subject)
                else:
                    await read_incident(http, state, subject)
            except (GraphQLFailure, httpx.TransportError, httpx.TimeoutException) as error:
                tally.error(refresh, f"{type(error).__name__}: {error}")
            finally:
                tally.latencies[refresh].append(time.perf_counter() - started)


# --- setting up -------------------------------------------------------------------------


def serving(
    env: dict[str, str], port: int, log: Path, workers: int = 1
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``knownfix serve``, its stderr in ``log``."""
    command = [gql.KNOWNFIX, "serve", "--port", str(port), "--workers", str(workers)]
    return gql.running(command, env, port, "/readyz", log=log)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (uvicorn's workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    total = 0.0
    for member in tree:
        with contextlib.suppress(OSError):
            total += gql.cpu_seconds(member)
    return total


def logged_errors(log: Path) -> dict[str, int]:
    """The exceptions the server logged, by message, with how often (a masked error
    tells the client only its request id; the log has the exception)."""
    counts: dict[str, int] = defaultdict(int)
    for line in log.read_text(errors="replace").splitlines():
        if EXCEPTION_LINE.match(line):
            counts[line.strip()[:300]] += 1
    return dict(counts)


async def catalog(base_url: str, token: str, run: str) -> State:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        found = await call(http, CATALOG, {})
    incidents = {node["id"]: node["version"] for node in found["incidents"]["nodes"]}
    return State(
        run=run,
        services=[node["id"] for node in found["services"]["nodes"]],
        articles=[node["id"] for node in found["articles"]["nodes"]],
        incidents=incidents,
        open_incidents=[
            node["id"]
            for node in found["incidents"]["nodes"]
            if node["status"] in ("NEW", "IN_PROGRESS", "ON_HOLD")
        ],
    )


# --- checking the writes ----------------------------------------------------------------

CHECK = """
query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename
    ... on Incident { id title status category resolutionNotes timeline { kind message } }
    ... on Article { id title body }
  }
}
"""
REVISIONS = "query($id: ID!) { articleRevisions(articleId: $id) { number title body } }"
FIND = """
query($q: String!, $types: [SearchType!], $filter: SearchFilter) {
  search(query: $q, types: $types, filter: $filter, first: 20) {
    edges { node { __typename
      ... on ArticleHit { article { id } } ... on IncidentHit { incident { id } } } }
  }
}
"""


def stored(write: Write, node: dict[str, Any] | None, revisions: list[dict[str, Any]]) -> bool:
    """Whether the database holds what ``write`` was acknowledged for."""
    if node is None:
        return False
    if write.kind == "reportIncident":
        return write.marker in node["title"]
    if write.kind == "addWorkNote":
        return any(write.marker in event["message"] for event in node["timeline"])
    if write.kind == "classifyIncident":
        # A later classification may have changed the category again; the event stays.
        return any(event["kind"] == "CLASSIFIED" for event in node["timeline"])
    if write.kind == "resolveIncident":
        return write.marker in node["resolutionNotes"] and node["status"] in ("RESOLVED", "CLOSED")
    if write.kind == "createArticle":
        return write.marker in node["title"]
    if write.kind == "updateArticle":
        return any(write.marker in revision["body"] for revision in revisions)
    raise ValueError(write.kind)


async def found_by_search(http: httpx.AsyncClient, write: Write) -> bool:
    if write.kind == "resolveIncident":
        variables: dict[str, Any] = {"q": write.marker, "types": ["INCIDENT"]}
    else:
        variables = {"q": write.marker, "types": ["ARTICLE"], "filter": {"status": ["draft"]}}
    edges = (await call(http, FIND, variables))["search"]["edges"]
    hits = {
        (edge["node"].get("article") or edge["node"].get("incident") or {}).get("id")
        for edge in edges
    }
    return write.node_id in hits


async def verify(base_url: str, token: str, state: State, deadline: float) -> dict[str, Any]:
    """Read every acknowledged write back, then poll search for the searchable ones."""
    missing: list[str] = []
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as http:
        ids = sorted({write.node_id for write in state.writes})
        nodes: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            found = (await call(http, CHECK, {"ids": ids[start : start + 100]}))["nodes"]
            nodes.update({node["id"]: node for node in found if node})
        revisions: dict[str, list[dict[str, Any]]] = {}
        for article_id in {w.node_id for w in state.writes if w.kind == "updateArticle"}:
            revisions[article_id] = (await call(http, REVISIONS, {"id": article_id}))[
                "articleRevisions"
            ]
        in_database = 0
        by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # acknowledged, found
        for write in state.writes:
            by_kind[write.kind][0] += 1
            if stored(write, nodes.get(write.node_id), revisions.get(write.node_id, [])):
                in_database += 1
                by_kind[write.kind][1] += 1
            else:
                missing.append(f"not in the database: {write}")

        # Only the latest revision of an article is indexed: check that one per article.
        latest: dict[str, Write] = {}
        for write in state.writes:
            if write.searchable:
                latest[write.node_id if write.kind != "resolveIncident" else write.marker] = write
        pending = list(latest.values())
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(4)

        async def check(write: Write) -> bool:
            async with semaphore:
                return await found_by_search(http, write)

        while pending:
            found_now = await asyncio.gather(*(check(write) for write in pending))
            pending = [write for write, ok in zip(pending, found_now, strict=True) if not ok]
            if not pending or time.perf_counter() - started > deadline:
                break
            await asyncio.sleep(0.5)
        lag = time.perf_counter() - started
        missing += [f"not found by search after {deadline:.0f} s: {write}" for write in pending]
    return {
        "acknowledged_writes": len(state.writes),
        "in_database": in_database,
        "by_kind": {
            kind: {"acknowledged": a, "in_database": f} for kind, (a, f) in by_kind.items()
        },
        "searchable_checked": len(latest),
        "searchable_found": len(latest) - len(pending),
        "seconds_until_searchable": lag,
        "missing": missing,
    }


# --- reporting --------------------------------------------------------------------------


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": 1000 * gql.percentile(ordered, 0.50),
        "p95_ms": 1000 * gql.percentile(ordered, 0.95),
        "p99_ms": 1000 * gql.percentile(ordered, 0.99),
    }


def summarise(tally: Tally, seconds: float) -> dict[str, Any]:
    kinds = {name: kind for name, kind, _ in OPERATIONS}
    operations: dict[str, Any] = {}
    for name, _, _ in OPERATIONS:
        latencies = tally.latencies.get(name, [])
        operations[name] = {
            "kind": kinds[name],
            "requests": len(latencies),
            "rps": len(latencies) / seconds,
            "errors": tally.errors.get(name, 0),
            **percentiles(latencies),
        }
    result: dict[str, Any] = {"operations": operations}
    for label, selected in (("reads", READ), ("writes", WRITE), ("all", None)):
        latencies = [
            latency
            for name, values in tally.latencies.items()
            if selected is None or kinds[name] == selected
            for latency in values
        ]
        result[label] = {
            "requests": len(latencies),
            "rps": len(latencies) / seconds,
            "errors": sum(n for name, n in tally.errors.items() if selected in (None, kinds[name])),
            **percentiles(latencies),
        }
    result["expected_outcomes"] = dict(tally.expected)
    result["error_samples"] = tally.samples
    return result


def table(summary: dict[str, Any]) -> list[str]:
    header = (
        f"{'operation':<22} {'kind':<5} {'requests':>8} {'req/s':>7} {'p50 ms':>8}"
        f" {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    rows = [(name, figures) for name, figures in summary["operations"].items()]
    rows += [(label, {"kind": "", **summary[label]}) for label in ("reads", "writes", "all")]
    for name, figures in rows:
        if name == "reads":
            lines.append("-" * len(header))
        lines.append(
            f"{name:<22} {figures['kind']:<5} {figures['requests']:>8,} {figures['rps']:>7.1f}"
            f" {figures['p50_ms']:>8.1f} {figures['p95_ms']:>8.1f} {figures['p99_ms']:>8.1f}"
            f" {figures['errors']:>6}"
        )
    return lines


def uptime() -> str:
    try:
        return subprocess.run(
            ["/usr/bin/uptime"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average %.2f %.2f %.2f" % os.getloadavg()  # noqa: UP031


# --- main -------------------------------------------------------------------------------


async def run_load(base_url: str, token: str, state: State, args: argparse.Namespace) -> Tally:
    tally = Tally()
    args.stop_at = time.perf_counter() + args.seconds
    await asyncio.gather(
        *(client(n, base_url, token, state, tally, args) for n in range(args.clients))
    )
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs")
    parser.add_argument("--quick", action="store_true", help="8 s and 8 clients: a smoke run")
    parser.add_argument("--incidents", type=int, default=20, help="incidents to report first")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, in seconds")
    parser.add_argument(
        "--search-deadline", type=float, default=60.0, help="how long to wait for search"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1, help="knownfix serve --workers")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="run on a fresh database of its own on this PostgreSQL server instead of"
        " SQLite, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients = min(args.seconds, 8.0), min(args.clients, 8)

    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "uptime_before": uptime(),
    }
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="knownfix-load-")))
        database_url = None
        if args.database_url:
            database_url = stack.enter_context(gql.postgres_database(args.database_url))
        results["database"] = "postgresql" if args.database_url else "sqlite"
        env = gql.environment(workdir, database_url)
        token = asyncio.run(gql.prepare_database(env))
        port = gql.free_port()
        log = workdir / "server.log"
        with serving(env, port, log, args.workers) as process:
            gql.report_incidents(port, token, args.incidents)
            base_url = f"http://127.0.0.1:{port}"
            state = asyncio.run(catalog(base_url, token, uuid.uuid4().hex[:4]))
            cpu_before = tree_cpu_seconds(process.pid)
            started = time.perf_counter()
            tally = asyncio.run(run_load(base_url, token, state, args))
            elapsed = time.perf_counter() - started
            results["server_cpu_share"] = (tree_cpu_seconds(process.pid) - cpu_before) / elapsed
            results["uptime_after"] = uptime()
            results["elapsed"] = elapsed
            results.update(summarise(tally, elapsed))
            results["verification"] = asyncio.run(
                verify(base_url, token, state, args.search_deadline)
            )
        results["server_errors"] = logged_errors(log)

    _out(
        f"{args.clients} clients for {elapsed:.1f} s on {results['database']};"
        f" {results['cpus']} CPUs, Python {results['python']}"
    )
    _out(f"before: {results['uptime_before']}")
    _out(f"after:  {results['uptime_after']}")
    _out(f"server ({args.workers} worker processes): {results['server_cpu_share']:.0%} of one core")
    for line in table(results):
        _out(line)
    if results["expected_outcomes"]:
        expected = ", ".join(f"{k} {v}" for k, v in sorted(results["expected_outcomes"].items()))
        _out(f"expected refusals (not errors): {expected}")
    for sample in results["error_samples"]:
        _out(f"error: {sample}")
    for line, count in results["server_errors"].items():
        _out(f"server log, {count}x: {line}")
    check = results["verification"]
    _out(
        f"acknowledged writes: {check['acknowledged_writes']}, in the database:"
        f" {check['in_database']}; searchable: {check['searchable_found']} of"
        f" {check['searchable_checked']}"
        f" (after {check['seconds_until_searchable']:.1f} s of polling)"
    )
    _out(
        "  "
        + ", ".join(
            f"{kind} {n['in_database']}/{n['acknowledged']}" for kind, n in check["by_kind"].items()
        )
    )
    for line in check["missing"][:20]:
        _out(f"MISSING {line}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if check["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
