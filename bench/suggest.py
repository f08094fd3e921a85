"""Suggestion latency benchmark: the product's ``suggest`` against plain Whoosh, side by side.

    python bench/suggest.py --quick                                  # smoke run, < 1 min
    python bench/suggest.py --articles 10000,100000 --incidents 100000 [--out results.json]

For every article count, a child process builds a temporary SQLite database the
way the product has it (``Database`` + ``migrate.upgrade``), bulk-inserts
services, published articles (the synthetic corpus of ``bench/search.py``) with
their tags and services, and resolved incidents, each with a ``resolved_by`` link
to an article of its own product and error. It then builds the index with the
real rebuild (``Indexer(db, SearchIndex(dir)).start()``), waits for the postings
arrays a server writes beside large segments and settles the heap as a server
process does once started (``knowledge/heap.py``), and times
``knowledge.suggestions.service.suggest`` for short one-line alerts and for long
pasted logs and stack traces (30-80 lines), one read session per query, the way
``knownfix eval`` and the API call it. Then as many new texts again on the caches
the first pass left, and with ``--writes N`` a third set each right after a
write: an incident reported and resolved through the service and applied to the
index, as a responder's write would be (a kept database keeps those incidents).

A second child runs the baseline on the same articles and the same texts: plain
Whoosh BM25F as ``knowledge.evaluation.service._baseline`` has it (default
analyzer ``TEXT`` fields, no boosts, ``MultifieldParser`` with ``OrGroup`` over
every article field, an OR of every word of the incident text, ``limit=10``). It
indexes the articles only, like ``_baseline``; ours also holds the incidents.

Each child's peak RSS comes from ``os.wait4``. Nothing is read from the shared
data sets: every word comes from the vocabulary in ``bench/search.py``.

This is a benchmark: it reports numbers and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import search as corpus  # noqa: E402 (needs ROOT on sys.path first)

SEED = corpus.SEED
SHORT, LONG = 200, 100
WARMUP = 10  # queries (half short, half long) run before the timed ones
FIRST = 5  # suggestions asked for, as the incident form shows them
BASELINE_LIMIT = 10  # knowledge.evaluation.service.DEPTH
INSERT_BATCH = 5000
LOG_SHARE = 0.1  # indexed incidents whose error text is a pasted log
BASELINE_FIELDS = ("title", "summary", "symptoms", "cause", "resolution", "body")
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
KINDS = ("short", "long")

T = TypeVar("T")
Family = tuple[str, str]  # (product, error)

# --- incident text (our own words, on top of bench/search.py's vocabulary) -------------------

ALERTS = (
    "[FIRING:{k}] {product} {error} on {host}",
    "CRITICAL - {product} on {host}: {error}",
    "{service}: {error} from the {component}",
    "ALERT {metric} above {pct}% on {host} ({product} {error})",
    "{signature}",
    "{product} {error} after deploy of {service} {version}",
    "PagerDuty: {service} {error} ({dc})",
    "{component} down: {error}",
)  # fmt: skip
CLASS_ROLES = (
    "Manager", "Handler", "Client", "Factory", "Executor", "Dispatcher", "Listener", "Adapter",
    "Provider", "Service", "Controller", "Resolver",
)  # fmt: skip
METHODS = (
    "acquire", "release", "connect", "send", "receive", "poll", "flush", "commit", "execute",
    "dispatch", "handle", "refresh", "read", "write", "open", "close", "run", "invoke",
)  # fmt: skip
PACKAGES = ("com.acme", "io.shopfront", "org.opsteam", "net.backoffice")
BENIGN = (
    "GET /api/{service}/orders 200 {n}ms",
    "heartbeat ok from {host}",
    "retrying in {n}s (attempt {k}/5)",
    "connected to {host}:{port}",
    "flushed {m} records to {component}",
    "config reloaded: {key}={m}",
    "health check passed for {service}",
)  # fmt: skip
LEVELS = ("ERROR", "WARN", "INFO", "INFO", "ERROR", "FATAL")
KUBE_EVENTS = (
    "Warning  BackOff    {age}  kubelet  Back-off restarting failed container {service}",
    "Warning  Unhealthy  {age}  kubelet  Readiness probe failed: {error}",
    "Normal   Pulled     {age}  kubelet  Container image {service}:{version} already present",
    "Warning  Failed     {age}  kubelet  Error: {error}",
    "Normal   Killing    {age}  kubelet  Stopping container {service}",
)  # fmt: skip


def camel(text: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in text.replace("-", " ").split())


class Texts:
    """Seeded incident texts for a (product, error, component) family."""

    def __init__(self, seed: int) -> None:
        self.vocab = corpus.Vocabulary()
        self.rng = random.Random(seed)  # noqa: S311 (synthetic text, not security)

    def family(self) -> tuple[str, str, str]:
        v, rng = self.vocab, self.rng
        return v.product(rng), v.error(rng), v.component(rng)

    def slots(self, product: str, error: str, component: str) -> dict[str, Any]:
        slots = self.vocab.slots(self.rng, product, error, component)
        slots["k"] = self.rng.randint(1, 9)
        slots["age"] = f"{self.rng.randint(1, 59)}m"
        return slots

    def alert(self, product: str, error: str, component: str) -> str:
        # The alert names its own family: slots() may swap the product or error.
        slots = self.slots(product, error, component) | {"product": product, "error": error}
        return self.rng.choice(ALERTS).format(**slots)[:200]

    def _log_line(self, slots: dict[str, Any], stamp: dt.datetime) -> str:
        rng = self.rng
        level = rng.choice(LEVELS)
        message = (
            rng.choice(BENIGN).format(**slots)
            if level == "INFO"
            else rng.choice(corpus.SIGNATURES).format(**slots)
        )
        logger = f"{rng.choice(PACKAGES)}.{slots['service'].replace('-', '')}.{camel(rng.choice(corpus.KEY_THINGS))}{rng.choice(CLASS_ROLES)}"  # noqa: E501
        return f"{stamp.isoformat(timespec='milliseconds')} {level} [worker-{rng.randint(1, 32)}] {logger}: {message}"  # noqa: E501

    def _java(self, slots: dict[str, Any]) -> list[str]:
        rng = self.rng
        package = f"{rng.choice(PACKAGES)}.{slots['service'].replace('-', '')}"
        lines = [f"{package}.{camel(slots['error'])}Exception: {slots['signature']}"]

        def frames(count: int) -> list[str]:
            out = []
            for _ in range(count):
                cls = camel(rng.choice(corpus.KEY_THINGS)) + rng.choice(CLASS_ROLES)
                out.append(
                    f"\tat {package}.{cls}.{rng.choice(METHODS)}({cls}.java:{rng.randint(20, 900)})"
                )
            return out

        lines += frames(rng.randint(5, 14))
        if rng.random() < 0.6:
            cause = rng.choice(("java.net.SocketTimeoutException", "java.io.IOException",
                                "java.util.concurrent.TimeoutException"))  # fmt: skip
            lines.append(f"Caused by: {cause}: {slots['error']}")
            lines += frames(rng.randint(3, 8))
            lines.append(f"\t... {rng.randint(5, 40)} more")
        return lines

    def _python(self, slots: dict[str, Any]) -> list[str]:
        rng = self.rng
        lines = ["Traceback (most recent call last):"]
        for _ in range(rng.randint(3, 8)):
            module = rng.choice(corpus.KEY_THINGS)
            function = f"{rng.choice(METHODS)}_{rng.choice(corpus.KEY_THINGS)}"
            lines.append(
                f'  File "/srv/{slots["service"]}/{module}.py", line {rng.randint(10, 700)}, '
                f"in {function}"
            )
            lines.append(f"    self.{module}.{rng.choice(METHODS)}({slots['key']}={slots['n']})")
        lines.append(f"{camel(slots['error'])}Error: {slots['signature']}")
        return lines

    def _kubectl(self, slots: dict[str, Any]) -> list[str]:
        rng = self.rng
        lines = ["NAME                              READY   STATUS             RESTARTS   AGE"]
        for _ in range(rng.randint(2, 6)):
            status = rng.choice(("Running", "CrashLoopBackOff", "Error", "OOMKilled"))
            lines.append(
                f"{slots['service']}-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}   "
                f"{rng.randint(0, 1)}/1     {status:<18} {rng.randint(0, 40):<10} {slots['age']}"
            )
        lines.append("Events:")
        lines += [rng.choice(KUBE_EVENTS).format(**slots) for _ in range(rng.randint(3, 8))]
        return lines

    def log(self, product: str, error: str, component: str, lines: int) -> str:
        """About ``lines`` lines of pasted output: app logs, stack traces, kubectl."""
        rng = self.rng
        stamp = NOW - dt.timedelta(minutes=rng.randint(5, 60 * 24 * 300))
        out: list[str] = []
        while len(out) < lines:
            slots = self.slots(product, error, component)
            block = rng.random()
            if block < 0.45:
                for _ in range(rng.randint(4, 12)):
                    stamp += dt.timedelta(milliseconds=rng.randint(5, 4000))
                    out.append(self._log_line(slots, stamp))
            elif block < 0.7:
                out += self._java(slots)
            elif block < 0.85:
                out += self._python(slots)
            else:
                out += self._kubectl(slots)
        return "\n".join(out[:lines])

    def prose(self, product: str, error: str, component: str, sentences: int) -> str:
        return " ".join(
            self.rng.choice(corpus.SYMPTOMS).format(**self.slots(product, error, component))
            for _ in range(sentences)
        )


def generate_queries(short: int, long: int, seed: int) -> list[dict[str, Any]]:
    """One-line alerts (title only) and pasted logs (a title, a sentence, 30-80 lines)."""
    texts = Texts(seed + 2)
    queries = []
    for kind in ["short"] * short + ["long"] * long:
        product, error, component = texts.family()
        title = texts.alert(product, error, component)
        description = ""
        if kind == "long":
            lines = texts.rng.randint(30, 80)
            description = (
                f"{texts.prose(product, error, component, 1)} Pasted from the affected host:\n\n"
                + texts.log(product, error, component, lines)
            )
        queries.append(
            {"kind": kind, "title": title, "description": description,
             "family": [product, error]}
        )  # fmt: skip
    texts.rng.shuffle(queries)
    return queries


# --- the corpus in the database ------------------------------------------------------------


def split_title(title: str) -> Family:
    """(product, error) of a generated article title ("{product} {error} on {component}...")."""
    product = max((p for p in corpus.PRODUCTS if title.startswith(p + " ")), key=len)
    rest = title[len(product) + 1 :]
    error = max((e for e in corpus.ERRORS if rest.startswith(e + " ")), key=len)
    return product, error


def article_rows(count: int, seed: int) -> Iterator[tuple[dict[str, Any], list[str], list[str]]]:
    """Article rows (all published) from bench/search.py's generator, with tags and services.

    The generator yields index documents; the body is put back together from its
    sections (intro and notes first, then symptoms, cause and resolution), which the
    index splits again the same way.
    """
    from knowledge.articles.models import ArticleKind, ArticleStatus

    for document in corpus.generate_articles(count, seed):
        article_id = int(document["key"].split(":")[1])
        body = "\n\n".join(
            part
            for part in (
                document["body"],
                f"## Symptoms\n{document['symptoms']}",
                f"## Cause\n{document['cause']}",
                f"## Resolution\n{document['resolution']}",
            )
            if part
        )
        row = {
            "id": article_id,
            "slug": f"bench-{article_id}",
            "title": document["title"],
            "summary": document["summary"],
            "body": body,
            "kind": ArticleKind.TROUBLESHOOTING,
            "status": ArticleStatus.PUBLISHED,
            "category": document["category"],
            "error_signatures": [s for s in document["signatures"].split("\n") if s],
            "sources": [],
            "published_at": NOW - dt.timedelta(days=article_id % 700),
        }
        tags = [t for t in document["tags"].split(",") if t]
        services = [s for s in document["services"].split(",") if s]
        yield row, tags, services


def pick_article(
    rng: random.Random, family: Family, by_family: dict[Family, list[int]],
    by_error: dict[str, list[int]], by_product: dict[str, list[int]], count: int,
) -> int:  # fmt: skip
    """A plausible article that resolved an incident: same product and error if one
    exists, else the same error, else the same product."""
    for pool in (by_family.get(family), by_error.get(family[1]), by_product.get(family[0])):
        if pool:
            return rng.choice(pool)
    return rng.randint(1, count)


def incident_rows(
    count: int, seed: int, service_ids: dict[str, int], families: dict[int, Family], articles: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Resolved incidents (a title, a few sentences, error lines or a pasted log,
    resolution notes) and their ``resolved_by`` links."""
    from knowledge.incidents.models import (
        IncidentStatus,
        Level,
        LinkRelation,
        ResolutionCode,
    )
    from knowledge.suggestions import signatures

    by_family: dict[Family, list[int]] = {}
    by_error: dict[str, list[int]] = {}
    by_product: dict[str, list[int]] = {}
    for article_id, (product, error) in families.items():
        by_family.setdefault((product, error), []).append(article_id)
        by_error.setdefault(error, []).append(article_id)
        by_product.setdefault(product, []).append(article_id)
    texts = Texts(seed + 3)
    rng = texts.rng
    for number in range(1, count + 1):
        product, error, component = texts.family()
        slots = texts.slots(product, error, component)
        title = (
            texts.alert(product, error, component)
            if rng.random() < 0.5
            else f"{product} {error} on {component}"
        )
        description = texts.prose(product, error, component, rng.randint(1, 4))
        if rng.random() < LOG_SHARE:
            error_text = texts.log(product, error, component, rng.randint(10, 40))
        else:
            error_text = "\n".join(
                rng.choice(corpus.SIGNATURES).format(**texts.slots(product, error, component))
                for _ in range(rng.randint(0, 3))
            )
        detected = NOW - dt.timedelta(minutes=rng.randint(60, 60 * 24 * 700))
        resolved = detected + dt.timedelta(minutes=rng.randint(5, 60 * 48))
        target = pick_article(rng, (product, error), by_family, by_error, by_product, articles)
        impact, urgency = rng.choice(tuple(Level)), rng.choice(tuple(Level))
        incident = {
            "id": number,
            "number": number,
            "title": title,
            "description": description,
            "status": IncidentStatus.RESOLVED,
            "impact": impact,
            "urgency": urgency,
            "priority": rng.randint(1, 5),
            "category": texts.vocab.category(rng),
            "service_id": service_ids[slots["service"]],
            "detected_at": detected,
            "acknowledged_at": detected + dt.timedelta(minutes=rng.randint(1, 30)),
            "resolved_at": resolved,
            "resolution_code": ResolutionCode.FIXED,
            "resolution_notes": " ".join(
                rng.choice(corpus.FIXES).format(**texts.slots(product, error, component))
                for _ in range(rng.randint(1, 3))
            )
            + f" See bench-{target}.",
            "error_text": error_text,
            "error_signature": signatures.primary([error_text, title, description]),
        }
        link = {
            "incident_id": number,
            "relation": LinkRelation.RESOLVED_BY,
            "article_id": target,
            "reason": "resolved by",
            "created_at": resolved,
        }
        yield incident, link


def batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def populate(db: Any, articles: int, incidents: int, seed: int) -> dict[int, Family]:
    """Bulk-insert with SQLAlchemy core executemany; returns each article's family."""
    import sqlalchemy as sa

    from knowledge.articles.models import Article, ArticleService, ArticleTag
    from knowledge.catalog.models import Service
    from knowledge.incidents.models import Incident, IncidentLink

    service_ids = {slug: n for n, slug in enumerate(corpus.SERVICES, start=1)}
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.insert(Service),
            [{"id": n, "slug": slug, "name": slug.replace("-", " ").title()}
             for slug, n in service_ids.items()],
        )  # fmt: skip
    families: dict[int, Family] = {}
    for batch in batched(article_rows(articles, seed), INSERT_BATCH):
        for row, _, _ in batch:
            families[row["id"]] = split_title(row["title"])
        async with db.engine.begin() as conn:
            await conn.execute(sa.insert(Article), [row for row, _, _ in batch])
            await conn.execute(
                sa.insert(ArticleTag),
                [{"article_id": row["id"], "tag": tag} for row, tags, _ in batch for tag in tags],
            )
            await conn.execute(
                sa.insert(ArticleService),
                [{"article_id": row["id"], "service_id": service_ids[slug]}
                 for row, _, slugs in batch for slug in slugs],
            )  # fmt: skip
    rows = incident_rows(incidents, seed, service_ids, families, articles)
    for chunk in batched(rows, INSERT_BATCH):
        async with db.engine.begin() as conn:
            await conn.execute(sa.insert(Incident), [incident for incident, _ in chunk])
            await conn.execute(sa.insert(IncidentLink), [link for _, link in chunk])
    return families


# --- measuring ------------------------------------------------------------------------------


def summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50": corpus.percentile(ms, 50),
        "p95": corpus.percentile(ms, 95),
        "p99": corpus.percentile(ms, 99),
        "max": max(ms, default=float("nan")),
        "n": len(ms),
    }


async def time_all(
    queries: Sequence[dict[str, Any]],
    run: Callable[[dict[str, Any]], Awaitable[list[Family]]],
    before: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Warm up, then time every query (after ``before``, timed apart); latencies per kind
    and how often the top 5 held an article of the query's own product and error."""
    warm = [q for q in queries if q["kind"] == "short"][: WARMUP // 2]
    warm += [q for q in queries if q["kind"] == "long"][: WARMUP // 2]
    for query in warm:
        await run(query)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    same: dict[str, int] = dict.fromkeys(KINDS, 0)
    befores: list[float] = []
    began = time.perf_counter()
    for done, query in enumerate(queries, start=1):
        if before is not None:
            started = time.perf_counter()
            await before(query)
            befores.append(time.perf_counter() - started)
        started = time.perf_counter()
        top = await run(query)
        times[query["kind"]].append(time.perf_counter() - started)
        same[query["kind"]] += tuple(query["family"]) in top[:FIRST]
        if done % 50 == 0:
            corpus.log(f"{done}/{len(queries)} queries in {time.perf_counter() - began:.0f}s")
    return {
        "latency_ms": {kind: summary(values) for kind, values in times.items()},
        "family_at_5": {kind: same[kind] / max(1, len(times[kind])) for kind in KINDS},
        **({"before_ms": summary(befores)} if befores else {}),
    }


def a_write(
    db: Any, indexer: Any, texts: Sequence[dict[str, Any]]
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """What a responder's write does to the index: an incident reported and resolved
    through the service, then applied (a new segment and a new searcher). Its text is
    the next of ``texts``, not the query's: the query is not about it."""
    pending = iter(texts)
    import sqlalchemy as sa

    from knowledge import numbering
    from knowledge.accounts.principal import SYSTEM
    from knowledge.incidents import service as incidents
    from knowledge.incidents.models import Incident, ResolutionCode
    from knowledge.incidents.policy import IncidentPolicy

    async def write(_: dict[str, Any]) -> None:
        written = next(pending)
        async with db.transaction() as session:
            # The incidents were bulk-inserted with their numbers: draw the next ones.
            highest = await session.scalar(sa.select(sa.func.max(Incident.number)))
            await numbering.raise_counter(session, "incident", int(highest or 0))
            row = await incidents.report(
                session=session, principal=SYSTEM, policy=IncidentPolicy(), now=NOW,
                title=written["title"][:200], description=written["description"][:20_000],
            )  # fmt: skip
            await incidents.resolve(
                session=session, principal=SYSTEM, now=NOW, incident_id=row.id,
                expected_version=row.version, code=ResolutionCode.FIXED, notes="bench",
            )  # fmt: skip
        await indexer.catch_up()

    return write


def rss_mb() -> float:
    return corpus.rss_mb()


async def child_ours(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import sqlalchemy as sa

    from knowledge import heap, migrate
    from knowledge.accounts.principal import SYSTEM
    from knowledge.articles.models import Article
    from knowledge.db import Database
    from knowledge.search.index import SearchIndex
    from knowledge.search.sync import Indexer
    from knowledge.suggestions.service import Draft, suggest

    queries = json.loads(Path(args.queries_file).read_text(encoding="utf-8"))  # noqa: ASYNC240
    reused = (workdir / "bench.db").exists()  # --reuse: a kept run's database and index
    db = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
    await migrate.upgrade(db.engine)
    started = time.perf_counter()
    if reused:
        async with db.read() as session:
            rows = await session.execute(sa.select(Article.id, Article.title))
            families = {article_id: split_title(title) for article_id, title in rows}
    else:
        families = await populate(db, args.child_articles, args.incidents, args.seed)
    inserting = time.perf_counter() - started
    corpus.log(f"ours: {'reused' if reused else 'inserted'} {args.child_articles:,} articles "
               f"and {args.incidents:,} incidents in {inserting:.1f}s")  # fmt: skip
    rss_before = rss_mb()

    # Poll rarely: nothing is written while we measure, and a poll would steal time.
    indexer = Indexer(db, SearchIndex(workdir / "index"), poll_interval=3600)
    started = time.perf_counter()
    await indexer.start()
    building = time.perf_counter() - started
    if indexer.last_error:
        raise SystemExit(f"the index build failed: {indexer.last_error}")
    index = indexer.index
    # A server writes large segments' postings arrays in the background after a
    # rebuild or merge (``segment_arrays``); the timed queries come after that.
    started = time.perf_counter()
    await asyncio.to_thread(index.segment_arrays.wait)
    writing_arrays = time.perf_counter() - started
    heap.settle()  # as a server process does once started (``knownfix serve``)
    generation = (workdir / "index" / os.readlink(workdir / "index" / "current")).resolve()
    size, _ = corpus.dir_size(generation)
    arrays_size = sum(p.stat().st_size for p in generation.glob("*.postings_*.npy"))
    documents = index.doc_count()
    rss_built = rss_mb()
    corpus.log(f"ours: indexed {documents:,} documents in {building:.1f}s, {size / 1e6:.0f} MB "
               f"(postings arrays {arrays_size / 1e6:.0f} MB, {writing_arrays:.1f}s)")  # fmt: skip

    async def run(query: dict[str, Any]) -> list[Family]:
        async with db.read() as session:
            found = await suggest(
                session=session, principal=SYSTEM, index=index, first=FIRST,
                draft=Draft(title=query["title"], description=query["description"]),
            )  # fmt: skip
        return [families[s.target.id] for s in found if isinstance(s.target, Article)]

    load_before = os.getloadavg()
    measured = await time_all(queries, run)
    # A server answers query after query: time as many again, with texts of their own
    # (another seed), on the caches the first pass left (postings, frequencies, the
    # articles and incidents analysed so far).
    shorts = sum(q["kind"] == "short" for q in queries)
    again = generate_queries(shorts, len(queries) - shorts, args.seed + 1)
    measured["second_pass"] = await time_all(again, run)
    if args.writes:
        # A server also takes writes, each bringing a new searcher (and a new segment):
        # time queries of a third set each right after an incident is reported and
        # resolved through the service and applied to the index.
        after = generate_queries(args.writes, args.writes // 2, args.seed + 2)
        written = generate_queries(args.writes, args.writes // 2, args.seed + 3)
        measured["after_writes"] = await time_all(after, run, before=a_write(db, indexer, written))
    latency = measured["latency_ms"]
    corpus.log(
        f"ours: p50 {latency['short']['p50']:.1f} ms short, {latency['long']['p50']:.1f} long"
    )
    result: dict[str, Any] = {
        "articles": args.child_articles,
        "incidents": args.incidents,
        "insert_seconds": inserting,
        "reused": reused,
        "index_seconds": building,
        "index_bytes": size,
        "postings_arrays_bytes": arrays_size,
        "postings_arrays_seconds": writing_arrays,
        "indexed_documents": documents,
        "database_bytes": corpus.dir_size(workdir)[0] - size,
        "rss_before_index_mb": rss_before,
        "rss_after_index_mb": rss_built,
        "load_during_queries": [load_before, os.getloadavg()],
        **measured,
    }
    if args.profile:
        result["stages"] = await stages(queries, run, args.profile)
        result["profile"] = await profile(queries, run, args.profile)
    await indexer.stop()
    await db.dispose()
    return result


# The steps of ``suggest``, as module attributes it looks up at call time (nested: the
# term vectors are part of the evidence, the resolutions and incident rows too).
STAGES = (
    ("knowledge.search.service", "informative_words", "keep the 32 rarest words (Whoosh df)"),
    ("knowledge.search.service", "match", "two Whoosh searches (targets, incidents)"),
    ("knowledge.suggestions.service", "_evidence", "evidence from similar incidents"),
    ("knowledge.suggestions.history", "resolved_incidents", "  rows and links (SQL)"),
    ("knowledge.search.service", "term_vectors", "  TF-IDF vectors (Whoosh df)"),
    ("knowledge.search.service", "hits_for", "hydrate rows (twice: candidates, top 5)"),
    ("knowledge.suggestions.history", "outcomes", "outcome counts (SQL)"),
    ("knowledge.suggestions.service", "target_signatures", "target error signatures"),
    ("knowledge.suggestions.service", "_titles_alike", "titles in meaning (draft encoded)"),
)


def _timed(function: Callable[..., Any], name: str, spent: dict[str, float]) -> Any:
    if asyncio.iscoroutinefunction(function):

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return timed_async

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    return timed


async def stages(
    queries: Sequence[dict[str, Any]],
    run: Callable[[dict[str, Any]], Awaitable[list[Family]]],
    count: int,
) -> dict[str, Any]:
    """Where a suggestion's wall time goes, per step, without a profiler's overhead:
    the steps are wrapped with timers for ``count`` short and ``count`` long queries."""
    import importlib

    report: dict[str, Any] = {}
    for kind in KINDS:
        subset = [q for q in queries if q["kind"] == kind][:count]
        spent = dict.fromkeys((label for _, _, label in STAGES), 0.0)
        originals = []
        for module_name, attribute, label in STAGES:
            module = importlib.import_module(module_name)
            originals.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, _timed(getattr(module, attribute), label, spent))
        try:
            started = time.perf_counter()
            for query in subset:
                await run(query)
            wall = time.perf_counter() - started
        finally:
            for module, attribute, original in originals:
                setattr(module, attribute, original)
        report[kind] = {
            "queries": len(subset),
            "ms_per_query": wall * 1000 / max(1, len(subset)),
            "share": {label: seconds / wall for label, seconds in spent.items()},
        }
    return report


async def profile(
    queries: Sequence[dict[str, Any]],
    run: Callable[[dict[str, Any]], Awaitable[list[Family]]],
    count: int,
) -> dict[str, Any]:
    """cProfile over ``count`` short and ``count`` long queries.

    cProfile sees one thread, and the product sends the Whoosh work to threads with
    ``asyncio.to_thread``: here that runs inline, so the search shows up. SQLite
    itself runs in aiosqlite's thread; its time shows up as the event loop waiting
    (``select.epoll.poll``).
    """
    original = asyncio.to_thread

    async def inline(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return function(*args, **kwargs)

    report: dict[str, Any] = {}
    asyncio.to_thread = inline
    try:
        for kind in KINDS:
            subset = [q for q in queries if q["kind"] == kind][:count]
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for query in subset:
                await run(query)
            profiler.disable()
            wall = time.perf_counter() - started
            stats = pstats.Stats(profiler)
            path = Path(tempfile.gettempdir()) / f"knownfix-suggest-profile-{kind}.pstats"
            stats.dump_stats(str(path))
            report[kind] = {"queries": len(subset), "wall_seconds": wall, "pstats": str(path),
                            "top": hot_spots(stats, wall)}  # fmt: skip
    finally:
        asyncio.to_thread = original
    return report


def hot_spots(stats: pstats.Stats, wall: float, count: int = 25) -> list[dict[str, Any]]:
    """The functions with the most cumulative time, as a share of the wall time."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in raw.items():
        where = filename
        for marker in ("/site-packages/", str(ROOT) + "/"):
            if marker in filename:
                where = filename.split(marker, 1)[1]
        rows.append({"function": f"{where}:{line}:{name}", "calls": calls,
                     "own_share": own / wall, "cumulative_share": cumulative / wall})  # fmt: skip
    rows.sort(key=lambda r: -r["cumulative_share"])
    return rows[:count]


def child_baseline(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """``knowledge.evaluation.service._baseline``, streaming the documents in."""
    from whoosh import index as whoosh_index
    from whoosh.fields import ID, TEXT, Schema
    from whoosh.qparser import MultifieldParser, OrGroup

    from knowledge.search.query import plain_words

    queries = json.loads(Path(args.queries_file).read_text(encoding="utf-8"))
    schema = Schema(slug=ID(stored=True), **{f: TEXT() for f in BASELINE_FIELDS})
    path = workdir / "baseline"
    path.mkdir()
    families: dict[int, Family] = {}
    rss_before = rss_mb()
    started = time.perf_counter()
    ix = whoosh_index.create_in(str(path), schema)
    with ix.writer() as writer:
        for document in corpus.generate_articles(args.child_articles, args.seed):
            article_id = int(document["key"].split(":")[1])
            families[article_id] = split_title(document["title"])
            writer.add_document(
                slug=f"bench-{article_id}", **{f: document[f] for f in BASELINE_FIELDS}
            )
    building = time.perf_counter() - started  # includes generating the articles
    size, _ = corpus.dir_size(path)
    corpus.log(f"baseline: indexed {args.child_articles:,} articles in {building:.1f}s")
    parser = MultifieldParser(list(BASELINE_FIELDS), ix.schema, group=OrGroup)
    searcher = ix.searcher()

    async def run(query: dict[str, Any]) -> list[Family]:
        text = " ".join(plain_words(f"{query['title']} {query['description']}"))
        hits = searcher.search(parser.parse(text), limit=BASELINE_LIMIT)
        return [families[int(hit["slug"].removeprefix("bench-"))] for hit in hits]

    load_before = os.getloadavg()
    measured = asyncio.run(time_all(queries, run))
    searcher.close()
    return {
        "articles": args.child_articles,
        "index_seconds": building,
        "index_bytes": size,
        "rss_before_index_mb": rss_before,
        "load_during_queries": [load_before, os.getloadavg()],
        **measured,
    }


def run_child(args: argparse.Namespace) -> None:
    import whoosh.qparser  # noqa: F401 (both children import the same modules)

    import knowledge.models
    import knowledge.suggestions.service  # noqa: F401

    workdir = Path(args.workdir) / args.child
    if args.child == "baseline":
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(exist_ok=True)
    if args.child == "ours":
        result = asyncio.run(child_ours(args, workdir))
    else:
        result = child_baseline(args, workdir)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


# --- the parent: spawn, report --------------------------------------------------------------


def spawn(engine: str, args: argparse.Namespace, articles: int, workdir: Path) -> dict[str, Any]:
    result_path = workdir / f"result-{engine}.json"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", engine,
        "--child-articles", str(articles), "--incidents", str(args.incidents),
        "--seed", str(args.seed), "--queries-file", str(workdir / "queries.json"),
        "--workdir", str(workdir), "--result", str(result_path),
        "--profile", str(args.profile if engine == "ours" else 0),
        "--writes", str(args.writes if engine == "ours" else 0),
    ]  # fmt: skip
    started = time.perf_counter()
    load_before = os.getloadavg()
    process = subprocess.Popen(command, cwd=ROOT)  # noqa: S603 (our own script, fixed args)
    _, status, usage = os.wait4(process.pid, 0)
    if code := os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{engine} child failed with exit code {code}")
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    wall = time.perf_counter() - started
    result |= {
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "child_wall_seconds": wall,
        "child_cpu_share": (usage.ru_utime + usage.ru_stime) / wall,
        "load_average": [load_before, os.getloadavg()],
    }
    return result


def report(ours: dict[str, Any], base: dict[str, Any], minutes: float) -> str:
    rows = [["", "ours p50", "ours p95", "base p50", "base p95", "p50 ratio", "p95 ratio",
             "ours fam@5", "base fam@5"]]  # fmt: skip
    for kind in KINDS:
        o, b = ours["latency_ms"][kind], base["latency_ms"][kind]
        rows.append([
            f"{kind} ({o['n']})", f"{o['p50']:,.1f}", f"{o['p95']:,.1f}", f"{b['p50']:,.1f}",
            f"{b['p95']:,.1f}", f"{o['p50'] / b['p50']:.2f}x", f"{o['p95'] / b['p95']:.2f}x",
            f"{ours['family_at_5'][kind]:.0%}", f"{base['family_at_5'][kind]:.0%}",
        ])  # fmt: skip
    out = [
        f"\n== {ours['articles']:,} articles + {ours['incidents']:,} resolved incidents "
        f"({minutes:.1f} min) ==",
        "latency in ms",
        corpus.table(rows),
    ]
    for name, title in (
        ("second_pass", "a second pass of as many new texts (the caches warm from the first)"),
        ("after_writes", "new texts, each right after a write (a new searcher)"),
    ):
        if passed := ours.get(name):
            out.append(f"ours, {title}:")
            for kind in KINDS:
                o = passed["latency_ms"][kind]
                out.append(f"  {kind}: p50 {o['p50']:,.1f}  p95 {o['p95']:,.1f}  "
                           f"fam@5 {passed['family_at_5'][kind]:.0%}")  # fmt: skip
            if written := passed.get("before_ms"):
                out.append(f"  the write itself (reported, resolved, applied): "
                           f"p50 {written['p50']:,.1f}  p95 {written['p95']:,.1f}")  # fmt: skip
    out += [
        "",
        corpus.table(
            [
                ["", "build s", "index MB", "documents", "peak RSS MB", "CPU share", "load 1m"],
                [
                    "ours",
                    f"{ours['index_seconds']:,.1f}",
                    f"{ours['index_bytes'] / 1e6:,.1f}",
                    f"{ours['indexed_documents']:,}",
                    f"{ours['peak_rss_mb']:,.0f}",
                    f"{ours['child_cpu_share']:.2f}",
                    f"{ours['load_average'][0][0]:.1f} -> {ours['load_average'][1][0]:.1f}",
                ],
                [
                    "baseline",
                    f"{base['index_seconds']:,.1f}",
                    f"{base['index_bytes'] / 1e6:,.1f}",
                    f"{base['articles']:,}",
                    f"{base['peak_rss_mb']:,.0f}",
                    f"{base['child_cpu_share']:.2f}",
                    f"{base['load_average'][0][0]:.1f} -> {base['load_average'][1][0]:.1f}",
                ],
            ]
        ),
        f"ours: database {'reused' if ours.get('reused') else 'insert'} "
        f"{ours['insert_seconds']:.1f}s "
        f"({ours['database_bytes'] / 1e6:,.0f} MB); RSS before the build "
        f"{ours['rss_before_index_mb']:.0f} MB, after it {ours['rss_after_index_mb']:.0f} MB; "
        f"baseline build time includes generating the articles",
    ]
    for kind, data in ours.get("stages", {}).items():
        out.append(f"\nstages, {data['queries']} {kind} queries, "
                   f"{data['ms_per_query']:.0f} ms each (share of wall time)")  # fmt: skip
        for label, share in data["share"].items():
            out.append(f"  {share:6.1%}  {label}")
    for kind, data in ours.get("profile", {}).items():
        out.append(f"\nprofile, {data['queries']} {kind} queries, {data['wall_seconds']:.1f}s "
                   "(share of wall time: cumulative / own)")  # fmt: skip
        for row in data["top"]:
            out.append(f"  {row['cumulative_share']:6.1%} {row['own_share']:6.1%} "
                       f"{row['calls']:>8} {row['function']}")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--articles", default="10000", help="comma separated article counts")
    parser.add_argument("--incidents", type=int, default=100_000, help="resolved incidents")
    parser.add_argument("--short", type=int, default=SHORT, help="one-line alerts to time")
    parser.add_argument("--long", type=int, default=LONG, help="pasted logs to time")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1,000 articles and incidents, 45 queries"
    )
    parser.add_argument(
        "--profile", type=int, default=0, help="also cProfile N short and N long queries of ours"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and index (the path is printed)"
    )
    parser.add_argument(
        "--reuse", type=Path, help="time again on a kept directory (one size; no insert or build)"
    )
    parser.add_argument(
        "--writes", type=int, default=0,
        help="also time N short and N/2 long queries, each right after a write; the "
        "written incidents stay in a kept database (later runs on it are not comparable)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    for hidden in ("--child", "--workdir", "--result", "--queries-file"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--child-articles", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return
    if args.quick:
        args.articles, args.incidents, args.short, args.long = "1000", 1000, 30, 15
    sizes = [int(s.replace("_", "")) for s in args.articles.split(",") if s.strip()]
    if args.reuse and len(sizes) != 1:
        parser.error("--reuse takes one --articles size, the one it was built with")
    stdout = sys.stdout
    stdout.write(
        f"suggestion benchmark: articles {sizes}, {args.incidents:,} incidents, "
        f"{args.short} short + {args.long} long queries, seed {args.seed}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}\n"
    )
    stdout.flush()
    everything: dict[str, Any] = {"seed": args.seed, "runs": []}
    queries = generate_queries(args.short, args.long, args.seed)
    for size in sizes:
        started = time.perf_counter()
        workdir = args.reuse or Path(tempfile.mkdtemp(prefix=f"knownfix-suggest-{size}-"))
        try:
            (workdir / "queries.json").write_text(json.dumps(queries), encoding="utf-8")
            results = {engine: spawn(engine, args, size, workdir) for engine in corpus.ENGINES}
        finally:
            if args.keep or args.reuse:
                stdout.write(f"kept {workdir}\n")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        minutes = (time.perf_counter() - started) / 60
        stdout.write(report(results["ours"], results["baseline"], minutes))
        stdout.flush()
        everything["runs"].append(
            {"articles": size, "incidents": args.incidents, "minutes": minutes,
             "query_sample": queries[:4], **results}
        )  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(everything, indent=2), encoding="utf-8")
        stdout.write(f"\nwrote {args.out}\n")


if __name__ == "__main__":
    main()
