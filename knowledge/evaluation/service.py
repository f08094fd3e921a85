"""``knownfix eval``: run labelled incidents through the real suggestion path.

The knowledge base is loaded into a fresh temporary database and index (never
the user's) with the same import code as ``knownfix import``; each incident goes
through the same function the API uses for a draft. Recall@k counts incidents
with an expected article in the top k; MRR averages 1/rank of the first one.
``--replay`` records each incident as resolved by its expected article after
scoring it (the history a responder would leave); ``--baseline`` ranks the same
articles with plain Whoosh BM25F (defaults, an OR over all fields).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from knowledge import migrate
from knowledge.accounts.principal import SYSTEM
from knowledge.articles.models import Article, ArticleStatus
from knowledge.db import Database, utcnow
from knowledge.errors import ValidationError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import ResolutionCode
from knowledge.incidents.policy import IncidentPolicy
from knowledge.search.documents import article_document
from knowledge.search.index import SearchIndex
from knowledge.search.sync import Indexer
from knowledge.suggestions import service as suggestions
from knowledge.suggestions.weights import DEFAULT, Weights
from knowledge.transfer import service as transfer

MODES = ("full", "title")
Observer = Callable[["LabelledIncident", list[suggestions.Candidate], dict[int, str]], None]
DEPTH = 10


@dataclasses.dataclass(frozen=True, slots=True)
class LabelledIncident:
    id: str
    title: str
    description: str
    expected: frozenset[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Ranking:
    incident: str
    ranked: list[str]
    rank: int | None  # 1-based rank of the first expected article
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class EvalReport:
    engine: str
    mode: str
    incidents: int
    recall: dict[int, float]
    mrr: float
    latency_ms_p50: float
    latency_ms_p95: float
    rankings: list[Ranking]
    articles: int = 0
    replay: bool = False

    def to_json(self) -> dict[str, Any]:
        """The metrics under the key names other tools rely on (issue 5's contract)."""
        return {
            **{f"recall@{k}": v for k, v in self.recall.items()},
            "mrr": self.mrr,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
            "incidents": self.incidents,
            "articles": self.articles,
            "mode": self.mode,
            "replay": self.replay,
        }


def summary_json(reports: Sequence[EvalReport]) -> dict[str, Any]:
    """One object: ours at the top level, the baseline (when run) under ``baseline``."""
    ours, *others = reports
    summary = ours.to_json()
    for other in others:
        summary[other.engine] = other.to_json()
    return summary


def read_incidents(path: Path) -> list[LabelledIncident]:
    labelled = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            labelled.append(LabelledIncident(
                id=str(item["id"]), title=str(item["title"]),
                description=str(item.get("description") or ""),
                expected=frozenset(str(e) for e in item["expected"]),
            ))  # fmt: skip
        except (ValueError, KeyError, TypeError) as error:
            raise ValidationError(f"{path}:{number}: not a labelled incident ({error})") from None
    return labelled


def score(
    engine: str,
    mode: str,
    rankings: list[Ranking],
    ks: Sequence[int],
    articles: int = 0,
    replay: bool = False,
) -> EvalReport:
    n = len(rankings) or 1
    latencies = sorted(r.seconds * 1000 for r in rankings) or [0.0]
    return EvalReport(
        engine=engine,
        mode=mode,
        incidents=len(rankings),
        recall={k: sum(r.rank is not None and r.rank <= k for r in rankings) / n for k in ks},
        mrr=sum(1 / r.rank for r in rankings if r.rank) / n,
        latency_ms_p50=statistics.median(latencies),
        latency_ms_p95=latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        rankings=rankings,
        articles=articles,
        replay=replay,
    )


def _rank(incident: LabelledIncident, ranked: list[str], seconds: float) -> Ranking:
    rank = next((i for i, slug in enumerate(ranked, start=1) if slug in incident.expected), None)
    return Ranking(incident=incident.id, ranked=ranked, rank=rank, seconds=seconds)


def _baseline(documents: list[dict[str, Any]], workdir: Path) -> Callable[[str], list[str]]:
    """Plain Whoosh BM25F: default analyzer, no boosts, an OR over every field."""
    from whoosh import index as whoosh_index
    from whoosh.fields import ID, TEXT, Schema
    from whoosh.qparser import MultifieldParser, OrGroup

    fields = ("title", "summary", "symptoms", "cause", "resolution", "body")
    schema = Schema(slug=ID(stored=True), **{f: TEXT() for f in fields})
    path = workdir / "baseline"
    path.mkdir()
    ix = whoosh_index.create_in(str(path), schema)
    with ix.writer() as writer:
        for document in documents:
            writer.add_document(slug=document["slug"], **{f: document[f] for f in fields})
    parser = MultifieldParser(list(fields), ix.schema, group=OrGroup)
    searcher = ix.searcher()

    def rank(text: str) -> list[str]:
        return [hit["slug"] for hit in searcher.search(parser.parse(text), limit=DEPTH)]

    return rank


async def run(
    *,
    article_files: Sequence[Path],
    incidents_file: Path,
    mode: str = "full",
    ks: Sequence[int] = (1, 3, 5, 10),
    replay: bool = False,
    baseline: bool = False,
    weights: Weights = DEFAULT,
    observe: Observer | None = None,
) -> list[EvalReport]:
    """Score every labelled incident; ``observe`` also receives each incident's full
    candidate list (for ``bench/tune_suggestions.py``, which refits the weights)."""
    if mode not in MODES:
        raise ValidationError(f"mode is one of {', '.join(MODES)}", field="mode")
    labelled = read_incidents(incidents_file)
    with tempfile.TemporaryDirectory(prefix="knownfix-eval-") as tmp:
        workdir = Path(tmp)
        db = Database(f"sqlite+aiosqlite:///{workdir / 'eval.db'}")
        indexer = Indexer(db, SearchIndex(workdir / "index"))
        try:
            await migrate.upgrade(db.engine)
            async with db.transaction() as session:
                for path in article_files:
                    report = await transfer.import_path(session, path)
                    if report.problems:
                        raise ValidationError("; ".join(str(p) for p in report.problems[:5]))
            await indexer.start()
            async with db.read() as session:
                articles = list(await session.scalars(
                    sa.select(Article).where(Article.status == ArticleStatus.PUBLISHED)
                ))  # fmt: skip
            slugs = {a.id: a.slug for a in articles}
            ours: list[Ranking] = []
            for incident in labelled:
                description = incident.description if mode == "full" else ""
                started = time.perf_counter()
                async with db.read() as session:
                    found = await suggestions.suggest(
                        session=session, principal=SYSTEM, index=indexer.index,
                        draft=suggestions.Draft(title=incident.title, description=description),
                        first=DEPTH, weights=weights,
                    )  # fmt: skip
                ranked = [slugs[s.target.id] for s in found if isinstance(s.target, Article)]
                ours.append(_rank(incident, ranked, time.perf_counter() - started))
                if observe is not None:
                    async with db.read() as session:
                        everything, _ = await suggestions.candidates(
                            session=session, principal=SYSTEM, index=indexer.index,
                            draft=suggestions.Draft(title=incident.title, description=description),
                        )  # fmt: skip
                    observe(incident, everything, slugs)
                if replay:
                    await _record_resolution(db, incident, slugs)
                    await indexer.catch_up()
            reports = [score("knownfix", mode, ours, ks, len(articles), replay)]
            if baseline:
                rank = _baseline([article_document(a, [], []) | {"slug": a.slug} for a in articles],
                                 workdir)  # fmt: skip
                plain = []
                for incident in labelled:
                    text = (
                        incident.title
                        if mode == "title"
                        else f"{incident.title} {incident.description}"
                    )
                    started = time.perf_counter()
                    ranked = rank(" ".join(suggestions.plain_words(text)))
                    plain.append(_rank(incident, ranked, time.perf_counter() - started))
                reports.append(score("baseline", mode, plain, ks, len(articles), replay))
            return reports
        finally:
            await indexer.stop()
            await db.dispose()


async def _record_resolution(
    db: Database, incident: LabelledIncident, slugs: dict[int, str]
) -> None:
    """What a responder does after the fact: the incident, resolved by its article."""
    by_slug = {slug: article_id for article_id, slug in slugs.items()}
    target = next((by_slug[s] for s in sorted(incident.expected) if s in by_slug), None)
    if target is None:
        return
    async with db.transaction() as session:
        now = utcnow()
        row = await incidents.report(
            session=session, principal=SYSTEM, policy=IncidentPolicy(), now=now,
            title=incident.title[:200], description=incident.description[:20_000],
        )  # fmt: skip
        await incidents.resolve(
            session=session, principal=SYSTEM, now=now, incident_id=row.id,
            expected_version=row.version, code=ResolutionCode.FIXED,
            notes=f"Resolved by {sorted(incident.expected)[0]}", article_id=target,
        )  # fmt: skip
