"""Search benchmark: our Whoosh index against plain Whoosh defaults, side by side.

    python bench/search.py [--sizes 10000,100000] [--queries 200] [--out results.json]

For every size the parent generates N synthetic articles (seeded, from the
vocabulary below; nothing is read from the shared data sets) into a JSON-lines
file, and a query list. Each (size, engine) pair then runs in its own child
process, so that peak RSS is that child's alone (read with ``os.wait4``, which
reports the rusage of one child; ``RUSAGE_CHILDREN`` is a high-water mark over
every child reaped so far and would let one run's peak leak into the next).

"ours" goes through the product's code: ``SearchIndex`` with ``begin_rebuild``,
``Rebuild.add`` in batches of 500 and ``finish``; queries are parsed with
``knowledge.search.query.parse`` and run the way ``service._run`` runs them
(visibility filter, facets, ``terms=True``, did-you-mean when nothing matched).
"baseline" is Whoosh with defaults: TEXT fields, the default analyzer, one
writer, ``MultifieldParser`` with ``OrGroup``, ``search(q, limit=20)``.

This is a benchmark: it reports numbers and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import functools
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = 20241129
BATCH = 500
LIMIT_OURS = 21  # service.search asks for one page (20) plus one, to know has_next
LIMIT_BASELINE = 20
ENGINES = ("ours", "baseline")
QUERY_MIX = (("2-word", 30), ("4-word", 25), ("12-word", 20), ("phrase", 15), ("typo", 10))
WARMUP = 10

T = TypeVar("T")

# --- vocabulary (our own words) -----------------------------------------------------------

PRODUCTS = (
    "PostgreSQL", "Redis", "Kafka", "Nginx", "Kubernetes", "MySQL", "RabbitMQ", "Elasticsearch",
    "HAProxy", "Docker", "Jenkins", "Vault", "etcd", "Consul", "MongoDB", "Cassandra",
    "Prometheus", "Grafana", "Envoy", "Istio", "Keycloak", "OpenLDAP", "Memcached", "Celery",
    "Airflow", "Spark", "ZooKeeper", "MinIO", "Ceph", "Traefik", "GitLab Runner", "Terraform",
    "Ansible", "Alertmanager", "OpenVPN", "WireGuard", "BIND", "Postfix", "Samba", "NFS",
    "Tomcat", "Node.js", "JVM", "Gunicorn", "uWSGI", "Sidekiq", "CoreDNS", "containerd",
    "Fluent Bit", "Logstash", "Kibana", "Jaeger", "Argo CD", "Helm", "Calico", "Cilium",
)  # fmt: skip
ERRORS = (
    "connection refused", "connection timeout", "read timeout", "too many open files",
    "out of memory", "disk full", "certificate expired", "TLS handshake failure",
    "permission denied", "authentication failed", "deadlock detected", "replication lag",
    "split brain", "DNS resolution failure", "502 bad gateway", "503 service unavailable",
    "504 gateway timeout", "high CPU usage", "memory leak", "slow queries",
    "lock wait timeout", "consumer lag", "leader election loop", "crash loop",
    "OOMKilled pods", "image pull backoff", "segmentation fault", "rate limit exceeded",
    "quota exceeded", "clock skew", "stale cache entries", "broken pipe",
    "connection reset by peer", "no space left on device", "inode exhaustion",
    "index corruption", "checksum mismatch", "failed schema migration",
    "max connections reached", "thread pool exhausted", "long GC pauses", "token expired",
    "session dropped", "mount hangs", "packet loss", "MTU mismatch", "queue backlog",
    "duplicate messages", "stuck jobs", "failed health checks", "readiness probe failures",
    "certificate chain incomplete", "unexpected restarts", "high latency", "partial outage",
)  # fmt: skip
COMPONENTS = (
    "primary node", "read replica", "load balancer", "ingress controller", "worker nodes",
    "API gateway", "build agents", "batch scheduler", "message broker", "cache cluster",
    "auth service", "payment service", "checkout flow", "login page", "reporting jobs",
    "nightly backup", "VPN gateway", "mail relay", "file share", "CI pipeline",
    "staging cluster", "production cluster", "edge proxies", "search cluster",
    "control plane", "sidecar proxies", "service mesh", "object storage", "job queue",
    "web frontend", "mobile API", "data warehouse", "ETL pipeline", "metrics pipeline",
    "log shipper", "bastion host", "internal DNS", "single sign-on", "admin console",
)  # fmt: skip
SERVICES = (
    "payments", "checkout", "identity", "billing", "search", "notifications", "reporting",
    "inventory", "shipping", "crm", "erp", "email", "vpn", "intranet", "ci-cd",
    "data-platform", "mobile-api", "web-frontend", "logging", "monitoring", "storage",
    "messaging", "hr-portal", "warehouse", "analytics",
)  # fmt: skip
CATEGORIES = (
    "network", "database", "storage", "compute", "security", "application", "identity",
    "messaging", "ci-cd", "observability", "email", "endpoint",
)  # fmt: skip
TAGS = (
    "outage", "degradation", "performance", "config", "upgrade", "regression", "certificate",
    "dns", "tls", "memory", "disk", "latency", "timeout", "auth", "kubernetes", "database",
    "network", "capacity", "deploy", "rollback", "monitoring", "alerting", "backup",
    "replication", "security", "permissions", "cache", "queue", "proxy", "storage",
    "scheduler", "batch", "cron", "vpn", "email", "sso", "ldap", "container", "jvm", "gc",
)  # fmt: skip
HOST_ROLES = ("db", "web", "app", "cache", "mq", "lb", "k8s-node", "build", "es", "proxy")
DATACENTERS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "dc1", "dc2")
KEY_PREFIXES = ("max", "min", "default", "idle", "initial", "read", "write", "keepalive")
KEY_THINGS = (
    "pool", "connection", "buffer", "heap", "queue", "worker", "thread", "session", "cache",
    "socket", "request", "batch", "retry", "fetch", "commit", "wal", "segment", "file",
)  # fmt: skip
KEY_SUFFIXES = ("size", "timeout", "limit", "count", "interval", "bytes", "ms", "ratio")
METRICS = (
    "p99 latency", "error rate", "CPU load", "memory usage", "disk usage", "queue depth",
    "connection count", "GC time", "request rate", "open file descriptors", "IOPS",
)  # fmt: skip
STATUSES = ("published",) * 17 + ("draft", "in_review", "retired")
COMMANDS = (
    "systemctl restart {p}", "kubectl rollout restart deployment/{s}", "kubectl describe pod",
    "df -h", "df -i", "ulimit -n", "journalctl -u {p}", "openssl s_client -connect {h}:443",
    "dig +short {h}", "ss -tanp", "iostat -x 5", "vmstat 1", "free -m", "top -H",
    "kubectl get events --sort-by=.lastTimestamp", "helm rollback {s}",
)  # fmt: skip

SYMPTOMS = (
    "Users report {error} when they open the {component}.",
    "Requests to the {service} service fail with {error} after about {n} seconds.",
    "{product} logs show `{signature}` every few minutes.",
    "Alerts fire for {metric} above {pct}% on {host}.",
    "The {component} stops answering and health checks fail.",
    "Latency on {service} rises from {n} ms to {m} ms during peak hours.",
    "Some pods on the {component} restart with {error} and come back after a while.",
    "Dashboards show {metric} climbing steadily since the last deploy.",
    "Only clients in {dc} are affected; other regions look normal.",
    "The {component} returns {error} for roughly {pct}% of requests.",
    "Retries make it worse: {metric} doubles and the {component} falls behind.",
    "Nothing changed on our side, but {product} started reporting {error} overnight.",
)  # fmt: skip
CAUSES = (
    "`{key}` was set to {n}, lower than the number of clients the {component} opens.",
    "An upgrade of {product} to {version} changed the default of `{key}`.",
    "The disk on {host} filled up with old logs, so {product} could not write.",
    "The certificate used by the {component} expired and was not renewed.",
    "A misconfigured firewall rule dropped traffic between {host} and the {component}.",
    "A long running query held locks that blocked the {component}.",
    "The {component} ran out of memory because `{key}` was unbounded.",
    "A network partition in {dc} left two nodes believing they were the leader.",
    "The health check timeout was shorter than a normal {product} start-up.",
    "A batch job started at the same time as the nightly backup and saturated IOPS.",
    "Connection pooling was disabled after a config change, so every request opened a socket.",
    "DNS records for {host} still pointed at a decommissioned address.",
)  # fmt: skip
FIXES = (
    "Increase `{key}` to {m} and restart {product}.",
    "Run `{command}` on {host} to confirm the diagnosis.",
    "Roll back {product} to {version} until the regression is fixed upstream.",
    "Rotate the certificate and reload the {component}.",
    "Free disk space on {host} and enable log rotation for {product}.",
    "Add an alert on {metric} so the next occurrence is caught early.",
    "Move the batch job to a quieter window and cap its concurrency at {n}.",
    "Restart the affected pods one at a time and watch {metric}.",
    "Re-enable connection pooling and set `{key}` to {m}.",
    "Fix the DNS record for {host} and flush resolver caches.",
    "Raise the health check timeout to {n} seconds for the {component}.",
    "Fail over to the replica in {dc}, then rebuild the broken node.",
)  # fmt: skip
NOTES = (
    "This article applies to {product} {version} and later.",
    "Seen first during the {service} migration; see the linked post-mortem.",
    "If the fix does not help, escalate to the {category} on-call team.",
    "Related: the {component} runbook and the capacity plan for {dc}.",
    "Keep an eye on {metric} for a day after applying the change.",
)  # fmt: skip
SIGNATURES = (
    "ERROR: {error} (host={host}, port={port})",
    "{product}: fatal: {error} after {n} ms",
    "java.net.SocketTimeoutException: {error} at {host}:{port}",
    "kernel: {product}[{pid}]: {error}",
    "E{code} {error}: request id {hexid}",
    "WARN {key} exceeded ({m} > {n}) on {host}",
    "upstream {error} while reading response header from {host}:{port}",
)  # fmt: skip
INTROS = (
    "This article explains how to recognise and fix {error} on the {component}.",
    "{product} on the {component} can show {error} under load.",
    "A recurring problem for the {service} team: {error} on {product}.",
    "How to restore service when {product} reports {error}.",
)  # fmt: skip
QUERY_FILLERS = (
    "after", "deploy", "since", "morning", "users", "cannot", "login", "errors", "intermittent",
    "every", "few", "minutes", "again", "production", "customers", "failing", "slow", "today",
)  # fmt: skip


class Zipf:
    """Pick from a list with Zipf-like weights (the first entries are the common ones)."""

    def __init__(self, items: Sequence[T], s: float = 1.0) -> None:
        self.items: Sequence[Any] = items
        total, cumulative = 0.0, []
        for rank in range(len(items)):
            total += 1.0 / (rank + 1) ** s
            cumulative.append(total)
        self.cumulative, self.total = cumulative, total

    def __call__(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect(self.cumulative, rng.random() * self.total)]


class Vocabulary:
    def __init__(self) -> None:
        self.product = Zipf(PRODUCTS)
        self.error = Zipf(ERRORS, 0.8)
        self.component = Zipf(COMPONENTS, 0.8)
        self.service = Zipf(SERVICES)
        self.category = Zipf(CATEGORIES, 0.7)
        self.tag = Zipf(TAGS, 0.9)
        self.metric = Zipf(METRICS)

    def slots(self, rng: random.Random, product: str, error: str, component: str) -> dict[str, Any]:
        host = f"{rng.choice(HOST_ROLES)}-{rng.randint(1, 60):02d}.{rng.choice(DATACENTERS)}"
        key = "_".join((rng.choice(KEY_PREFIXES), rng.choice(KEY_THINGS), rng.choice(KEY_SUFFIXES)))
        service = self.service(rng)
        values = {
            "product": product if rng.random() < 0.8 else self.product(rng),
            "error": error if rng.random() < 0.7 else self.error(rng),
            "component": component if rng.random() < 0.7 else self.component(rng),
            "service": service,
            "host": host,
            "key": key,
            "metric": self.metric(rng),
            "dc": rng.choice(DATACENTERS),
            "category": self.category(rng),
            "version": f"{rng.randint(1, 17)}.{rng.randint(0, 12)}.{rng.randint(0, 30)}",
            "n": rng.choice((3, 5, 10, 30, 50, 100, 128, 256, 500, 1000)),
            "m": rng.choice((200, 400, 1024, 2000, 4096, 8000, 10000)),
            "pct": rng.randint(2, 99),
            "port": rng.choice((443, 5432, 6379, 9092, 5672, 9200, 8080, 3306, 2379)),
            "pid": rng.randint(100, 65000),
            "code": rng.randint(1000, 9999),
            "hexid": f"{rng.getrandbits(48):012x}",
        }
        values["signature"] = rng.choice(SIGNATURES).format(**values)
        values["command"] = rng.choice(COMMANDS).format(p=product.lower(), s=service, h=host)
        return values


def _sentences(rng: random.Random, templates: Sequence[str], count: int, slots: Any) -> list[str]:
    return [rng.choice(templates).format(**slots()) for _ in range(count)]


def generate_articles(count: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Documents in the exact shape ``knowledge.search.documents.article_document`` makes."""
    from knowledge.articles.models import Article, ArticleStatus
    from knowledge.search.documents import article_document

    vocab = Vocabulary()
    rng = random.Random(seed)  # noqa: S311 (synthetic text, not security)
    for number in range(1, count + 1):
        product, error, component = vocab.product(rng), vocab.error(rng), vocab.component(rng)

        def slots(p: str = product, e: str = error, c: str = component) -> dict[str, Any]:
            return vocab.slots(rng, p, e, c)

        first = slots()
        title = f"{product} {error} on {component}"
        if rng.random() < 0.3:
            title += f" after {rng.choice(('upgrade', 'deploy', 'failover', 'restart'))}"
        summary = rng.choice(INTROS).format(**first)
        parts = [" ".join(_sentences(rng, INTROS, rng.randint(1, 2), slots))]
        parts.append(
            "## Symptoms\n" + " ".join(_sentences(rng, SYMPTOMS, rng.randint(2, 5), slots))
        )
        signatures = [slots()["signature"] for _ in range(rng.randint(0, 3))]
        if signatures:
            parts[-1] += "\n\n```\n" + "\n".join(signatures) + "\n```"
        parts.append("## Cause\n" + " ".join(_sentences(rng, CAUSES, rng.randint(1, 3), slots)))
        steps = _sentences(rng, FIXES, rng.randint(2, 6), slots)
        parts.append(
            "## Resolution\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, start=1))
        )
        if rng.random() < 0.5:
            parts.append("## Notes\n" + " ".join(_sentences(rng, NOTES, rng.randint(1, 2), slots)))
        tags = sorted({vocab.tag(rng) for _ in range(rng.randint(1, 5))})
        services = sorted({vocab.service(rng) for _ in range(rng.randint(1, 3))})
        article = Article(
            id=number,
            title=title,
            summary=summary,
            body="\n\n".join(parts),
            status=ArticleStatus(rng.choice(STATUSES)),
            category=vocab.category(rng),
            error_signatures=signatures,
        )
        yield article_document(article, tags, services)


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 5:
        return word
    i = rng.randint(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1 :]  # dropped letter
    if kind == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swapped letters
    return word[:i] + word[i] + word[i:]  # doubled letter


def generate_queries(count: int, seed: int = SEED) -> list[dict[str, str]]:
    vocab = Vocabulary()
    rng = random.Random(seed + 1)  # noqa: S311 (synthetic text, not security)
    total = sum(weight for _, weight in QUERY_MIX)
    plan = [kind for kind, weight in QUERY_MIX for _ in range(round(count * weight / total))]
    plan = (plan + [QUERY_MIX[0][0]] * count)[:count]
    rng.shuffle(plan)
    queries = []
    for kind in plan:
        product, error, component = vocab.product(rng), vocab.error(rng), vocab.component(rng)
        if kind == "2-word":
            text = rng.choice(
                (
                    f"{product} {error.split()[-1]}",
                    " ".join(error.split()[:2]),
                    f"{component.split()[0]} {error.split()[0]}",
                )
            )
        elif kind == "4-word":
            words = f"{product} {error} {component}".split()
            text = " ".join(words[:4])
        elif kind == "12-word":
            slots = vocab.slots(rng, product, error, component)
            sentence = rng.choice(SYMPTOMS).format(**slots)
            words = [w.strip(".,:;`") for w in sentence.split()]
            words += f"{product} {error} {component}".split()
            while len(words) < 12:
                words.append(rng.choice(QUERY_FILLERS))
            text = " ".join(w for w in words[:12])
        elif kind == "phrase":
            text = f'"{error}" {product}' if rng.random() < 0.7 else f'"{component}" {error}'
        else:
            words = f"{product} {error}".split()[:3]
            text = " ".join(_typo(rng, w) if rng.random() < 0.7 else w for w in words)
        queries.append({"kind": kind, "text": text})
    return queries


# --- measuring ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms) if ms else float("nan"),
        "max": max(ms, default=float("nan")),
    }


def dir_size(path: Path) -> tuple[int, dict[str, int]]:
    total, by_ext = 0, dict[str, int]()
    for file in path.rglob("*"):
        if file.is_file() and not file.is_symlink():
            size = file.stat().st_size
            total += size
            ext = file.suffix or file.name
            by_ext[ext] = by_ext.get(ext, 0) + size
    return total, dict(sorted(by_ext.items(), key=lambda item: -item[1]))


def read_batches(path: Path, size: int) -> Iterator[list[dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        while batch := [json.loads(line) for line in itertools.islice(lines, size)]:
            yield batch


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(message: str) -> None:
    sys.stderr.write(f"  {message}\n")
    sys.stderr.flush()


def time_queries(
    queries: Sequence[dict[str, str]], run: Callable[[str], int]
) -> tuple[list[float], list[int], float]:
    """Latencies (s) and hit counts per query, after a warm-up; plus the first query run
    cold (compare it with ``latencies[0]``, the same query warm)."""
    started = time.perf_counter()
    run(queries[0]["text"])
    cold = time.perf_counter() - started
    for query in queries[1:WARMUP]:
        run(query["text"])
    latencies, counts = [], []
    for query in queries:
        started = time.perf_counter()
        counts.append(run(query["text"]))
        latencies.append(time.perf_counter() - started)
    return latencies, counts, cold


def by_kind(queries: Sequence[dict[str, str]], latencies: Sequence[float]) -> dict[str, Any]:
    groups: dict[str, list[float]] = {}
    for query, latency in zip(queries, latencies, strict=True):
        groups.setdefault(query["kind"], []).append(latency)
    return {kind: summary_ms(values) for kind, values in groups.items()}


def drop_coordination(node: Any) -> Any:
    """The query without ``OrGroup.factory(0.9)``'s coordination bonus (``Or.scale``)."""
    from whoosh import query as q

    node = node.apply(drop_coordination)
    if isinstance(node, q.Or) and node.scale:
        node = copy.copy(node)
        node.scale = None
    return node


def child_ours(
    docs: Path, queries: list[dict[str, str]], workdir: Path, breakdown: int
) -> dict[str, Any]:
    from whoosh import query as q
    from whoosh import sorting

    from knowledge.accounts.principal import ANONYMOUS_VIEWER
    from knowledge.search.index import SearchIndex
    from knowledge.search.query import parse
    from knowledge.search.service import (
        FACETS,
        SearchFilter,
        _did_you_mean,
        _run,
        _visibility,
    )

    index = SearchIndex(workdir / "ours")
    index.open()
    rss_before = rss_mb()
    indexing = 0.0
    count = 0
    rebuild = index.begin_rebuild()
    for batch in read_batches(docs, BATCH):
        started = time.perf_counter()
        rebuild.add(batch)
        indexing += time.perf_counter() - started
        count += len(batch)
    started = time.perf_counter()
    rebuild.finish(count)
    commit = time.perf_counter() - started
    indexing += commit
    rss_indexing = rss_mb()
    generation = (workdir / "ours" / os.readlink(workdir / "ours" / "current")).resolve()
    size, size_by_ext = dir_size(generation)
    log(f"ours: indexed {count} docs in {indexing:.1f}s (commit {commit:.1f}s)")

    schema = index.searcher().schema
    visible = _visibility(ANONYMOUS_VIEWER, SearchFilter(kinds=["article"]))
    facets = sorting.Facets()
    for field in FACETS.values():
        facets.add_field(field, allow_overlap=field != "category")
    fallbacks: set[str] = set()
    matched: dict[str, int] = {}

    def search(text: str, options: dict[str, Any], *, full: bool, no_coord: bool = False) -> int:
        """One query the way ``service._run`` runs it (``full``), or a stripped variant."""
        parsed, _ = parse(schema, text)
        if no_coord:
            parsed = drop_coordination(parsed)
        with index.reading():
            results = index.run_query(parsed, limit=LIMIT_OURS, **options)
            if full and results.is_empty() and not isinstance(parsed, q.Every):
                suggestion = _did_you_mean(index, text)
                fallbacks.add(text)
                if suggestion:
                    parsed, _ = parse(schema, suggestion)
                    results = index.run_query(parsed, limit=LIMIT_OURS, **options)
            keys, terms = [], []
            for hit in results:
                keys.append(hit["key"])
                if full and results.has_matched_terms():
                    terms.append(hit.matched_terms())
            if full:
                for field in FACETS.values():
                    results.groups(field)
                matched[text] = len(results)  # service._run reports the total
        return len(keys)

    def product_path(text: str, with_facets: bool) -> int:
        """The search service's own ``_run``: what a GraphQL search (facets) or a
        suggestion (no facets) costs, long-query term selection included."""
        hits, total, _, suggestion, _ = _run(index, text, visible, LIMIT_OURS, with_facets)
        matched[text] = total
        if suggestion is not None:
            fallbacks.add(text)
        return len(hits)

    latencies, counts, cold = time_queries(queries, lambda text: product_path(text, True))
    no_facets, _, _ = time_queries(queries, lambda text: product_path(text, False))
    log(f"ours: {len(queries)} queries, p50 {percentile(latencies, 50) * 1000:.1f} ms")
    result: dict[str, Any] = {
        "docs": count,
        "index_seconds": indexing,
        "commit_seconds": commit,
        "docs_per_second": count / indexing,
        "index_bytes": size,
        "index_bytes_by_ext": size_by_ext,
        "latency_ms": summary_ms(latencies),
        "latency_ms_without_facets": summary_ms(no_facets),
        "latency_ms_by_kind": by_kind(queries, latencies),
        "cold_query_ms": cold * 1000,
        "first_query_warm_ms": latencies[0] * 1000,
        "did_you_mean_runs": sum(1 for query in queries if query["text"] in fallbacks),
        "zero_hit_queries": sum(1 for c in counts if c == 0),
        "matched_percent_by_kind": {
            kind: statistics.median(
                100 * matched[query["text"]] / count for query in queries if query["kind"] == kind
            )
            for kind in dict.fromkeys(query["kind"] for query in queries)
        },
        "rss_before_index_mb": rss_before,
        "rss_after_index_mb": rss_indexing,
    }
    if breakdown:
        subset = queries[:breakdown]
        parse_times = []
        for query in subset:
            started = time.perf_counter()
            parse(schema, query["text"])
            parse_times.append(time.perf_counter() - started)
        category_only = sorting.Facets()
        category_only.add_field("category")
        variants: dict[str, tuple[dict[str, Any], bool]] = {
            "bare: parse + search, no options": ({}, False),
            "bare, coordination bonus off": ({}, True),
            "+ filter": ({"filter": visible}, False),
            "+ facets (category, services, tags)": (
                {"groupedby": facets, "maptype": sorting.Count},
                False,
            ),
            "+ category facet only (a column)": (
                {"groupedby": category_only, "maptype": sorting.Count},
                False,
            ),
            "+ terms=True": ({"terms": True}, False),
        }
        timings: dict[str, dict[str, float]] = {"parse only": summary_ms(parse_times)}
        for name, (options, no_coord) in variants.items():
            times, _, _ = time_queries(
                subset, functools.partial(search, options=options, full=False, no_coord=no_coord)
            )
            timings[name] = summary_ms(times)
            log(f"ours {name}: p50 {percentile(times, 50) * 1000:.1f} ms")
        timings["product path (all of it, did-you-mean too)"] = summary_ms(latencies[:breakdown])
        result["breakdown_queries"] = len(subset)
        result["breakdown_ms"] = timings
    index.close()
    return result


def child_baseline(docs: Path, queries: list[dict[str, str]], workdir: Path) -> dict[str, Any]:
    from whoosh import index as whoosh_index
    from whoosh.fields import ID, TEXT, Schema
    from whoosh.qparser import MultifieldParser, OrGroup

    from knowledge.search.schema import TEXT_FIELDS

    path = workdir / "baseline"
    path.mkdir()
    schema = Schema(key=ID(stored=True, unique=True), **{name: TEXT() for name in TEXT_FIELDS})
    ix = whoosh_index.create_in(str(path), schema)
    rss_before = rss_mb()
    wanted = ("key", *TEXT_FIELDS)
    indexing = 0.0
    count = 0
    writer = ix.writer()
    for batch in read_batches(docs, BATCH):
        documents = [{name: document[name] for name in wanted} for document in batch]
        started = time.perf_counter()
        for document in documents:
            writer.add_document(**document)
        indexing += time.perf_counter() - started
        count += len(batch)
    started = time.perf_counter()
    writer.commit()
    commit = time.perf_counter() - started
    indexing += commit
    rss_indexing = rss_mb()
    size, size_by_ext = dir_size(path)
    log(f"baseline: indexed {count} docs in {indexing:.1f}s (commit {commit:.1f}s)")

    parser = MultifieldParser(list(TEXT_FIELDS), ix.schema, group=OrGroup)
    searcher = ix.searcher()

    def search(text: str) -> int:
        results = searcher.search(parser.parse(text), limit=LIMIT_BASELINE)
        return len([hit["key"] for hit in results])

    latencies, counts, cold = time_queries(queries, search)
    log(f"baseline: {len(queries)} queries, p50 {percentile(latencies, 50) * 1000:.1f} ms")
    searcher.close()
    return {
        "docs": count,
        "index_seconds": indexing,
        "commit_seconds": commit,
        "docs_per_second": count / indexing,
        "index_bytes": size,
        "index_bytes_by_ext": size_by_ext,
        "latency_ms": summary_ms(latencies),
        "latency_ms_by_kind": by_kind(queries, latencies),
        "cold_query_ms": cold * 1000,
        "first_query_warm_ms": latencies[0] * 1000,
        "zero_hit_queries": sum(1 for c in counts if c == 0),
        "rss_before_index_mb": rss_before,
        "rss_after_index_mb": rss_indexing,
    }


def run_child(args: argparse.Namespace) -> None:
    # Both engines import the same modules, so peak RSS differs by what the engine does.
    import whoosh.qparser  # noqa: F401

    import knowledge.search.service  # noqa: F401

    workdir = Path(args.workdir)
    queries = json.loads(Path(args.queries_file).read_text(encoding="utf-8"))
    docs = Path(args.docs)
    if args.child == "ours":
        result = child_ours(docs, queries, workdir, breakdown=int(args.breakdown))
    else:
        result = child_baseline(docs, queries, workdir)
    result["engine"] = args.child
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


# --- the parent: generate, spawn, report ------------------------------------------------------


def spawn(engine: str, docs: Path, queries: Path, workdir: Path, breakdown: int) -> dict[str, Any]:
    result_path = workdir / f"result-{engine}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        engine,
        "--docs",
        str(docs),
        "--queries-file",
        str(queries),
        "--workdir",
        str(workdir),
        "--result",
        str(result_path),
        "--breakdown",
        str(breakdown),
    ]
    started = time.perf_counter()
    load_before = os.getloadavg()
    process = subprocess.Popen(command, cwd=ROOT)  # noqa: S603 (our own script, fixed args)
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN is a maximum over all children.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{engine} child failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["load_average_before"] = load_before
    result["rusage_children_maxrss_mb"] = (
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    )
    result["child_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["child_wall_seconds"] = time.perf_counter() - started
    result["load_average_after"] = os.getloadavg()
    return result


COLUMNS: tuple[tuple[str, str, Callable[[dict[str, Any]], float]], ...] = (
    ("docs/s", "{:,.0f}", lambda r: r["docs_per_second"]),
    ("index MB", "{:,.1f}", lambda r: r["index_bytes"] / 1e6),
    ("p50 ms", "{:,.1f}", lambda r: r["latency_ms"]["p50"]),
    ("p95 ms", "{:,.1f}", lambda r: r["latency_ms"]["p95"]),
    ("p99 ms", "{:,.1f}", lambda r: r["latency_ms"]["p99"]),
    ("peak RSS MB", "{:,.0f}", lambda r: r["peak_rss_mb"]),
)


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(size: int, results: dict[str, dict[str, Any]], minutes: float) -> str:
    ours, base = results["ours"], results["baseline"]
    rows = [["engine", *(name for name, *_ in COLUMNS)]]
    for engine in ENGINES:
        rows.append([engine, *(fmt.format(get(results[engine])) for _, fmt, get in COLUMNS)])
    rows.append(["ours/baseline", *(f"{get(ours) / get(base):.2f}x" for _, _, get in COLUMNS)])
    out = [f"\n== {size:,} articles ({minutes:.1f} min for this size) ==", table(rows)]

    kinds = list(ours["latency_ms_by_kind"])
    rows = [["p50 ms by query kind", *kinds]]
    for engine in ENGINES:
        by = results[engine]["latency_ms_by_kind"]
        rows.append([engine, *(f"{by[k]['p50']:,.1f}" for k in kinds)])
    share = ours["matched_percent_by_kind"]
    rows.append(["median % of docs matched", *(f"{share[k]:.0f}%" for k in kinds)])
    out += ["", table(rows)]

    if "breakdown_ms" in ours:
        rows = [[f"ours, first {ours['breakdown_queries']} queries", "p50 ms", "p95 ms", "p99 ms"]]
        for name, values in ours["breakdown_ms"].items():
            rows.append([name, *(f"{values[p]:,.1f}" for p in ("p50", "p95", "p99"))])
        out += ["", table(rows)]
    out.append(
        f"\nindexing commit: ours {ours['commit_seconds']:.1f}s, baseline "
        f"{base['commit_seconds']:.1f}s; first query cold/warm: ours "
        f"{ours['cold_query_ms']:.0f}/{ours['first_query_warm_ms']:.0f} ms, baseline "
        f"{base['cold_query_ms']:.0f}/{base['first_query_warm_ms']:.0f} ms; zero-hit queries: ours "
        f"{ours['zero_hit_queries']}, baseline {base['zero_hit_queries']}; did-you-mean "
        f"re-runs: {ours['did_you_mean_runs']}"
    )
    quiet = ours["latency_ms_without_facets"]
    out.append(
        f"ours without facets (the suggestion path): p50 {quiet['p50']:,.1f} ms, "
        f"p95 {quiet['p95']:,.1f} ms, p99 {quiet['p99']:,.1f} ms"
    )
    busy = []
    for engine in ENGINES:
        r = results[engine]
        busy.append(
            f"{engine} {r['child_cpu_seconds'] / r['child_wall_seconds']:.2f} "
            f"(load {r['load_average_before'][0]:.1f} -> {r['load_average_after'][0]:.1f})"
        )
    out.append("child CPU time / wall time (below 1 means it waited for a CPU): " + ", ".join(busy))
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000", help="comma separated article counts")
    parser.add_argument("--queries", type=int, default=200, help="queries per run")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--breakdown",
        type=int,
        default=50,
        help="time our search with each option on its own over the first N queries (0: skip)",
    )
    for hidden in ("--child", "--docs", "--queries-file", "--workdir", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    stdout = sys.stdout
    stdout.write(
        f"search benchmark: sizes {sizes}, {args.queries} queries, seed {args.seed}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    everything: dict[str, Any] = {"seed": args.seed, "queries": args.queries, "runs": []}
    for size in sizes:
        started = time.perf_counter()
        workdir = Path(tempfile.mkdtemp(prefix=f"knownfix-bench-{size}-"))
        try:
            docs, queries = workdir / "docs.jsonl", workdir / "queries.json"
            generating = time.perf_counter()
            with docs.open("w", encoding="utf-8") as out:
                for document in generate_articles(size, args.seed):
                    out.write(json.dumps(document) + "\n")
            query_list = generate_queries(args.queries, args.seed)
            queries.write_text(json.dumps(query_list), encoding="utf-8")
            log(
                f"generated {size:,} articles ({docs.stat().st_size / 1e6:,.0f} MB of JSON) in "
                f"{time.perf_counter() - generating:.1f}s"
            )
            results = {
                engine: spawn(engine, docs, queries, workdir, args.breakdown) for engine in ENGINES
            }
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        minutes = (time.perf_counter() - started) / 60
        stdout.write(report(size, results, minutes))
        stdout.flush()
        everything["runs"].append(
            {"size": size, "minutes": minutes, "query_sample": query_list[:10], **results}
        )
    if args.out:
        args.out.write_text(json.dumps(everything, indent=2), encoding="utf-8")
        stdout.write(f"\nwrote {args.out}\n")


if __name__ == "__main__":
    main()
