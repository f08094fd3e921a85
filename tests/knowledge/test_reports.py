"""The knowledge report, section by section, against fixtures whose answers are known
by construction: each section gets incidents and articles that must appear, with
figures worked out by hand, and near misses that must not."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from knowledge.accounts.principal import SYSTEM, Principal
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleFeedback
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.catalog import service as catalog
from knowledge.db import Database, utcnow
from knowledge.errors import PermissionDeniedError, ValidationError
from knowledge.incidents.models import (
    Incident,
    IncidentLink,
    IncidentStatus,
    LinkRelation,
    ResolutionCode,
)
from knowledge.reports import duplicates
from knowledge.reports import service as reports
from knowledge.reports.performance import wilson_lower_bound
from knowledge.reports.scope import ReportScope
from knowledge.search import service as search
from knowledge.search.index import SearchIndex
from knowledge.search.service import term_vectors
from knowledge.search.sync import Indexer
from knowledge.suggestions import signatures
from tests.api.test_dataloaders import counting_statements
from tests.knowledge.search.support import running

START = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NOW = END
HOUR = 3600.0
MANAGER = Principal(user_id=None, username="kim", role=Role.KNOWLEDGE_MANAGER)


def feb(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 2, day, hour, tzinfo=dt.UTC)


def scope(**changes: Any) -> ReportScope:
    return reports.open_scope(
        principal=changes.pop("principal", MANAGER),
        start=changes.pop("start", START),
        end=changes.pop("end", END),
        now=changes.pop("now", NOW),
        **changes,
    )


@pytest.fixture
async def indexer(db: Database, tmp_path: Path) -> AsyncIterator[Indexer]:
    async with running(db, tmp_path / "index") as started:
        yield started


@pytest.fixture
def index(indexer: Indexer) -> SearchIndex:
    return indexer.index


class Seed:
    """Rows written straight through the ORM (or the services, as the system)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.number = 0

    async def service(self, slug: str) -> int:
        async with self.db.transaction() as session:
            row = await catalog.create(session=session, principal=SYSTEM, slug=slug, name=slug)
        return row.id

    async def incident(
        self,
        title: str,
        *,
        hours: float | None = 1.0,
        resolved: dt.datetime | None = None,
        service_id: int | None = None,
        category: str | None = None,
        description: str = "",
        error_text: str = "",
        notes: str = "",
        code: ResolutionCode | None = None,
    ) -> Incident:
        """A resolved incident ``hours`` long, ending at ``resolved`` (mid-February by
        default); ``hours=None`` leaves it open."""
        self.number += 1
        end = resolved or feb(15, 12)
        row = Incident(
            number=self.number, title=title, description=description, error_text=error_text,
            error_signature=signatures.primary([title, description], error_text=error_text),
            status=IncidentStatus.NEW if hours is None else IncidentStatus.RESOLVED,
            service_id=service_id, category=category, resolution_notes=notes,
            resolution_code=code, detected_at=end - dt.timedelta(hours=hours or 0),
            resolved_at=None if hours is None else end,
        )  # fmt: skip
        async with self.db.transaction() as session:
            session.add(row)
        return row

    async def article(self, title: str, body: str = "", **columns: Any) -> int:
        """A published article; ``columns`` are set afterwards (times, status)."""
        curated = columns.pop("error_signatures", None)
        async with self.db.transaction() as session:
            row = await articles.create(
                session=session,
                principal=SYSTEM,
                draft=ArticleDraft(title=title, body=body, error_signatures=curated),
            )
            await articles.transition(
                session=session, principal=SYSTEM, article_id=row.id, action=Transition.PUBLISH
            )
            if columns:
                await session.execute(
                    sa.update(Article).where(Article.id == row.id).values(**columns)
                )
        return row.id

    async def link(
        self, incident: Incident, article_id: int, relation: LinkRelation, at: dt.datetime
    ) -> None:
        async with self.db.transaction() as session:
            session.add(
                IncidentLink(
                    incident_id=incident.id, article_id=article_id, relation=relation, created_at=at
                )
            )

    async def vote(self, article_id: int, helpful: bool, at: dt.datetime) -> None:
        async with self.db.transaction() as session:
            session.add(ArticleFeedback(article_id=article_id, helpful=helpful, created_at=at))


@pytest.fixture
def seed(db: Database) -> Seed:
    return Seed(db)


# --- knowledge gaps ------------------------------------------------------------------

POOL_ERROR = 'FATAL: sorry, too many clients already for role "{}" on host db{}.internal'


async def test_gaps_cluster_uncovered_incidents_by_signature_and_text(
    db: Database, seed: Seed, index: SearchIndex
) -> None:
    pay, web = await seed.service("pay"), await seed.service("web")
    # given three incidents with one error signature in other words, none covered
    pool = [
        await seed.incident(title, hours=hours, service_id=pay, category="database",
                            error_text=POOL_ERROR.format(user, n), notes=notes)
        for n, (title, hours, user, notes) in enumerate([
            ("Payments failing at checkout", 1, "pay", "Restarted pgbouncer"),
            ("Refund worker crash loop", 2, "refunds", "Raised max_client_conn to 400 and "
                                                        "restarted pgbouncer on every node"),
            ("Ledger export stalled", 3, "ledger", ""),
        ])
    ]  # fmt: skip
    # and two reports of one blank-page fault on another service, with no error text
    blank = [
        await seed.incident(
            "Checkout page renders blank white screen after frontend bundle deploy",
            description="Customers see an empty white checkout page; the bundle 404s.",
            service_id=web, hours=0.5,
        ),
        await seed.incident(
            "Blank white checkout page after frontend bundle deploy",
            description="Empty white page at checkout since the deploy, bundle 404.",
            service_id=web, hours=1.5,
        ),
    ]  # fmt: skip
    lone = await seed.incident("Office printer jammed on floor three", service_id=web)
    # and near misses: covered by an article, by a known error's sibling rule, outside the
    # window, a duplicate, still open
    covered = await seed.incident("Payments pool exhausted", service_id=pay,
                                  error_text=POOL_ERROR.format("pay", 9))  # fmt: skip
    await seed.link(covered, await seed.article("Pool"), LinkRelation.RESOLVED_BY, feb(15))
    related = await seed.incident("Refunds pool exhausted", service_id=pay,
                                  error_text=POOL_ERROR.format("x", 8))  # fmt: skip
    await seed.link(related, await seed.article("Pool 2"), LinkRelation.RELATED, feb(15))
    await seed.incident("Old pool outage", service_id=pay, resolved=feb(1) - dt.timedelta(hours=1),
                        error_text=POOL_ERROR.format("a", 7))  # fmt: skip
    await seed.incident("Same pool outage again", service_id=pay, code=ResolutionCode.DUPLICATE,
                        error_text=POOL_ERROR.format("b", 6))  # fmt: skip
    await seed.incident("Pool outage now", service_id=pay, hours=None,
                        error_text=POOL_ERROR.format("c", 5))  # fmt: skip

    async with db.read() as session:
        found = await reports.knowledge_gaps(session=session, scope=scope(), index=index)

    assert (found.total_gaps, found.uncovered_incidents, found.text_compared) == (3, 6, True)
    first, second, third = found.gaps
    assert {i.id for i in first.incidents} == {i.id for i in pool}
    assert first.count == 3
    assert first.downtime_seconds == 6 * HOUR
    assert (first.service_id, first.category, first.reason) == (pay, "database",
                                                                "same error signature")  # fmt: skip
    assert first.signature == pool[0].error_signature
    assert "<str>" in (first.signature or "")
    assert first.capture_from.id == pool[1].id, "the fullest resolution notes"
    assert {i.id for i in second.incidents} == {i.id for i in blank}
    assert second.downtime_seconds == 2 * HOUR
    assert second.reason == "similar text on the same service"
    assert len(second.terms) == 5
    for incident in blank:  # words (not stems) that both reports use
        text = f"{incident.title} {incident.description}".lower()
        assert all(term in text.split() for term in second.terms), (second.terms, text)
    assert [i.id for i in third.incidents] == [lone.id]
    assert third.reason == "a single incident"


async def test_gaps_without_an_index_join_by_signature_only(db: Database, seed: Seed) -> None:
    for n in range(2):
        await seed.incident("Blank white checkout page after deploy")
        await seed.incident(f"Pool {n}", error_text=POOL_ERROR.format("u", n))
    async with db.read() as session:
        found = await reports.knowledge_gaps(session=session, scope=scope(), index=None, first=1)
    assert (found.total_gaps, found.text_compared) == (3, False)
    assert [g.count for g in found.gaps] == [2]
    assert found.gaps[0].terms == []


async def test_gaps_outside_the_window_or_beyond_first_are_left_out(
    db: Database, seed: Seed
) -> None:
    await seed.incident("Late", resolved=END)  # the window ends before END
    async with db.read() as session:
        found = await reports.knowledge_gaps(session=session, scope=scope(), index=None)
        assert (found.gaps, found.uncovered_incidents) == ([], 0)
        none = await reports.knowledge_gaps(
            session=session, scope=scope(end=END + dt.timedelta(hours=1)), index=None, first=0
        )
    assert (none.gaps, none.total_gaps) == ([], 1)


# --- stale articles ------------------------------------------------------------------

OLD = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


async def test_stale_articles_are_the_published_ones_nobody_used_for_n_days(
    db: Database, seed: Seed
) -> None:
    incident = await seed.incident("Anything")
    viewed_long_ago = await seed.article("Viewed in December", published_at=OLD,
                                         last_viewed_at=dt.datetime(2025, 12, 1, tzinfo=dt.UTC))  # fmt: skip
    linked_long_ago = await seed.article("Linked in November", published_at=OLD)
    await seed.link(incident, linked_long_ago, LinkRelation.RESOLVED_BY,
                    dt.datetime(2025, 11, 1, tzinfo=dt.UTC))  # fmt: skip
    only_suggested = await seed.article("Only suggested lately", published_at=OLD)
    await seed.link(incident, only_suggested, LinkRelation.SUGGESTED, feb(20))
    await seed.link(incident, only_suggested, LinkRelation.REJECTED, feb(21))
    # near misses: viewed lately (through the service), accepted lately, published lately,
    # old but retired
    viewed = await seed.article("Viewed lately", published_at=OLD)
    async with db.transaction() as session:
        await articles.record_view(session=session, principal=SYSTEM, article_id=viewed,
                                   now=feb(20))  # fmt: skip
    accepted = await seed.article("Accepted lately", published_at=OLD)
    await seed.link(incident, accepted, LinkRelation.ACCEPTED, feb(10))
    await seed.article("Published lately", published_at=feb(15))
    retired = await seed.article("Retired", published_at=OLD)
    async with db.transaction() as session:
        await articles.transition(session=session, principal=SYSTEM, article_id=retired,
                                  action=Transition.RETIRE)  # fmt: skip

    async with db.read() as session:
        found = await reports.stale_articles(session=session, scope=scope(stale_after_days=30))
        one = await reports.stale_articles(
            session=session, scope=scope(stale_after_days=30), first=1
        )
        longer = await reports.stale_articles(session=session, scope=scope(stale_after_days=120))

    # the longest idle first: publication (June) < November link < December view
    assert [s.article.id for s in found.articles] == [only_suggested, linked_long_ago,
                                                      viewed_long_ago]  # fmt: skip
    assert found.total == 3
    by_id = {s.article.id: s for s in found.articles}
    assert by_id[linked_long_ago].last_linked_at == dt.datetime(2025, 11, 1, tzinfo=dt.UTC)
    assert by_id[viewed_long_ago].last_viewed_at == dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
    assert by_id[viewed_long_ago].idle_days == (NOW - dt.datetime(2025, 12, 1, tzinfo=dt.UTC)).days
    assert by_id[only_suggested].last_activity_at == OLD
    assert by_id[only_suggested].last_linked_at is None
    assert ([s.article.id for s in one.articles], one.total) == ([only_suggested], 3)
    # 120 days back from March 1st is November 1st: the December view is recent enough
    assert [s.article.id for s in longer.articles] == [only_suggested]


async def test_recording_a_view_remembers_when_and_is_no_edit(db: Database, seed: Seed) -> None:
    article_id = await seed.article("Read me")
    async with db.read() as session:
        edited = await session.scalar(sa.select(Article.updated_at).where(Article.id == article_id))
    async with db.transaction() as session:
        await articles.record_view(session=session, principal=SYSTEM, article_id=article_id,
                                   now=feb(3, 4))  # fmt: skip
    async with db.read() as session:
        row = await session.get(Article, article_id)
    assert row is not None
    assert (row.view_count, row.last_viewed_at) == (1, feb(3, 4))
    assert (row.updated_at, row.version) == (edited, 2), "a view is not an edit"


# --- poor performers -----------------------------------------------------------------


async def test_poor_performers_need_enough_evidence_and_rank_by_it(
    db: Database, seed: Seed
) -> None:
    incidents = [await seed.incident(f"Incident {n}", hours=None) for n in range(10)]

    async def shown(article_id: int, times: int, rejected: int, accepted: int = 0) -> None:
        for n, incident in enumerate(incidents[:times]):
            await seed.link(incident, article_id, LinkRelation.SUGGESTED, feb(10))
            if n < rejected:
                await seed.link(incident, article_id, LinkRelation.REJECTED, feb(11))
            elif n < rejected + accepted:
                await seed.link(incident, article_id, LinkRelation.ACCEPTED, feb(11))

    rejected_often = await seed.article("Rejected 8 of 10")
    await shown(rejected_often, 10, 8, accepted=1)
    unhelpful = await seed.article("Helpful in 1 of 4 votes")
    for helpful in (True, False, False, False):
        await seed.vote(unhelpful, helpful, feb(12))
    # near misses: rarely rejected; rejected once in one showing; votes outside the window;
    # rejections outside the window
    fine = await seed.article("Rejected 1 of 10")
    await shown(fine, 10, 1, accepted=5)
    once = await seed.article("Rejected 1 of 1")
    await shown(once, 1, 1)
    old_votes = await seed.article("Unhelpful last year")
    for _ in range(5):
        await seed.vote(old_votes, False, dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    old_rejections = await seed.article("Rejected last year")
    for incident in incidents:
        await seed.link(incident, old_rejections, LinkRelation.REJECTED,
                        dt.datetime(2025, 5, 1, tzinfo=dt.UTC))  # fmt: skip

    async with db.read() as session:
        found = await reports.poor_performers(session=session, scope=scope())

    assert [p.article.id for p in found] == [rejected_often, unhelpful]
    worst, voted = found
    assert (worst.shown, worst.rejected, worst.accepted, worst.resolved) == (10, 8, 1, 0)
    assert worst.rejection_rate == 0.8
    assert worst.helpful_ratio is None
    assert worst.score == pytest.approx(wilson_lower_bound(8, 10))
    assert worst.reasons == ["rejected for 8 of 10 incidents"]
    assert (voted.helpful_votes, voted.unhelpful_votes, voted.helpful_ratio) == (1, 3, 0.25)
    assert voted.reasons == ["helpful in 1 of 4 votes"]
    assert worst.score > voted.score > 0


def test_the_wilson_bound_prefers_more_evidence() -> None:
    assert wilson_lower_bound(80, 100) > wilson_lower_bound(8, 10) > wilson_lower_bound(1, 1)
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(0, 10) == 0.0


# --- possible duplicates -------------------------------------------------------------

RUNBOOK = """## Symptoms

Requests to the payments API time out after 30 seconds and the gateway answers 504.
The connection pool of the payments service is exhausted and threads wait on checkout.

## Resolution

Raise the pool size from 20 to 50, restart the payments pods one by one, and watch
the pool saturation dashboard until waiting threads drop to zero.
"""


async def test_duplicates_pair_near_copies_and_shared_signatures_only(
    db: Database, seed: Seed, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = indexer.index
    vectorised: list[int] = []  # how many texts each TF-IDF computation was given

    def counted(index: SearchIndex, texts: list[str]) -> list[dict[str, float]]:
        vectorised.append(len(texts))
        return term_vectors(index, texts)

    monkeypatch.setattr(search, "term_vectors", counted)
    original = await seed.article("Payments API timeouts: pool exhausted", RUNBOOK)
    copy = await seed.article(
        "Payments API timeouts from an exhausted pool", RUNBOOK.replace("one by one", "in turn")
    )
    shm_a = await seed.article(
        "Parallel query fails on small /dev/shm", "Give the container a bigger /dev/shm.",
        error_signatures=['ERROR: could not resize shared memory segment "/PostgreSQL.1" '
                          "to 8192 bytes: No space left on device"],
    )  # fmt: skip
    shm_b = await seed.article(
        "Dynamic shared memory errors in analytics", "Lower max_parallel_workers instead.",
        error_signatures=['ERROR: could not resize shared memory segment "/PostgreSQL.77" '
                          "to 65536 bytes: No space left on device"],
    )  # fmt: skip
    # near misses: the same topic told differently, a retired copy, an unrelated article
    await seed.article(
        "Payments API pool sizing guide",
        "How to choose a pool size for the payments API from peak concurrency and latency.",
    )
    retired = await seed.article("Payments API timeouts (old)", RUNBOOK)
    async with db.transaction() as session:
        await articles.transition(session=session, principal=SYSTEM, article_id=retired,
                                  action=Transition.RETIRE)  # fmt: skip
    await seed.article("Printer jams", "Open tray two and remove the paper.")
    await indexer.catch_up()

    now = utcnow()
    recent = scope(start=now - dt.timedelta(days=1), end=now + dt.timedelta(days=1), now=now)
    async with db.read() as session:
        found = await reports.possible_duplicates(session=session, scope=recent, index=index)
        compared_recently = list(vectorised)
        without_index = await reports.possible_duplicates(session=session, scope=recent, index=None)
        long_ago = await reports.possible_duplicates(session=session, scope=scope(), index=index)

    pairs = [(d.first.id, d.second.id) for d in found]
    assert pairs == [(shm_a, shm_b), (original, copy)]
    by_signature, by_text = found
    assert by_signature.overlap == 1.0
    assert by_signature.shared_signatures == [
        "error: could not resize shared memory segment <str> to <n> bytes: no space left on device"
    ]
    assert by_signature.reasons[0].startswith("same error signature: ")
    assert by_text.shared_signatures == []
    assert by_text.text_similarity is not None
    assert by_text.text_similarity >= 0.9
    assert by_text.overlap == by_text.text_similarity
    assert by_text.reasons == [f"{by_text.text_similarity:.0%} similar text"]
    # without an index only signatures are compared; text pairs come from recent edits only
    assert [(d.first.id, d.second.id, d.text_similarity) for d in without_index] == [
        (shm_a, shm_b, None)
    ]
    # nothing was edited long ago: the signature pair stands alone, its texts not compared
    assert [(d.first.id, d.second.id, d.text_similarity) for d in long_ago] == [
        (shm_a, shm_b, None)
    ]
    assert long_ago[0].reasons == by_signature.reasons[:1]
    assert vectorised == compared_recently, "no text vectors without text candidates"
    assert len(compared_recently) == 1


async def test_signature_pairs_are_capped_in_the_report_order(
    db: Database, seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duplicates, "MAX_SIGNATURE_PAIRS", 4)
    ids = [
        await seed.article(f"Disk full {n}", error_signatures=["OSError: [Errno 28] No space left"])
        for n in range(4)
    ]

    async with db.read() as session:
        found = await reports.possible_duplicates(session=session, scope=scope(), index=None)

    # six pairs share the signature; the four with the lowest ids are listed, as uncapped
    assert [(d.first.id, d.second.id) for d in found] == [
        (ids[0], ids[1]), (ids[0], ids[2]), (ids[0], ids[3]), (ids[1], ids[2])
    ]  # fmt: skip
    assert {d.overlap for d in found} == {1.0}


# --- top articles --------------------------------------------------------------------


async def test_top_articles_by_incidents_resolved_and_downtime_saved(
    db: Database, seed: Seed
) -> None:
    # given a baseline of uncovered incidents: database 4/6/8 h (median 6 h), network 1 h
    # three times (median 1 h); over all six the median is (1 + 4) / 2 = 2.5 h
    for hours in (4, 6, 8):
        await seed.incident("Uncovered database", hours=hours, category="database")
        await seed.incident("Uncovered network", hours=1, category="network")

    async def resolved_by(article_id: int, category: str, *hours: float, **kw: Any) -> None:
        for h in hours:
            incident = await seed.incident("Covered", hours=h, category=category, **kw)
            await seed.link(incident, article_id, kw.get("relation", LinkRelation.RESOLVED_BY),
                            feb(15))  # fmt: skip

    fast_db = await seed.article("Fast database fix")
    await resolved_by(fast_db, "database", 1, 2)  # saves (6 - 1) + (6 - 2) = 9 h
    slow_net = await seed.article("Slow network fix")
    await resolved_by(slow_net, "network", 2, 2, 2)  # slower than the 1 h median: saves 0
    storage = await seed.article("Storage fix")
    await resolved_by(storage, "storage", 1)  # no storage baseline: 2.5 - 1 = 1.5 h
    # near misses: resolved before the window; only related
    old = await seed.article("Old fix")
    await resolved_by(old, "database", 1, resolved=feb(1) - dt.timedelta(hours=1))
    related = await seed.incident("Related only", hours=1, category="database")
    await seed.link(related, old, LinkRelation.RELATED, feb(15))

    async with db.read() as session:
        by_count = await reports.top_articles(session=session, scope=scope())
        by_saving = await reports.top_articles(
            session=session, scope=scope(), order=reports.TopOrder.DOWNTIME_SAVED, first=2
        )

    assert [(t.article.id, t.incidents_resolved, t.downtime_saved_seconds) for t in by_count] == [
        (slow_net, 3, 0.0),
        (fast_db, 2, 9 * HOUR),
        (storage, 1, 1.5 * HOUR),
    ]
    assert by_count[1].median_time_to_restore_seconds == 1.5 * HOUR
    assert [t.article.id for t in by_saving] == [fast_db, storage]


async def test_top_articles_read_only_the_incident_columns_they_rank_by(
    db: Database, seed: Seed
) -> None:
    """A window holds up to a year of resolutions: whole incident rows (their notes,
    error text and description) would all be held in memory at once."""
    fix = await seed.article("Fix")
    incident = await seed.incident("Outage", hours=2, category="database", notes="x" * 10_000)
    await seed.link(incident, fix, LinkRelation.RESOLVED_BY, feb(15))

    with counting_statements(db) as statements:
        async with db.read() as session:
            found = await reports.top_articles(session=session, scope=scope())

    assert [(t.article.id, t.incidents_resolved) for t in found] == [(fix, 1)]
    assert found[0].median_time_to_restore_seconds == 2 * HOUR
    [ranking] = [s for s in statements if "FROM incident_links JOIN incidents" in s]
    selected = ranking.split("FROM")[0]
    assert "resolution_notes" not in selected
    assert "error_text" not in selected


# --- the whole report ----------------------------------------------------------------


async def test_the_report_checks_its_reader_and_input_before_anything_else(
    db: Database,
) -> None:
    for role in (Role.VIEWER, Role.REPORTER, Role.RESPONDER):
        with pytest.raises(PermissionDeniedError, match="knowledge_manager role"):
            scope(principal=Principal(user_id=None, username="r", role=role), start=END, end=START)
    bad: list[dict[str, Any]] = [
        {"start": END, "end": START},
        {"start": START, "end": START},
        {"end": START + dt.timedelta(days=367)},
        {"start": START.replace(tzinfo=None)},
        {"stale_after_days": 0},
        {"stale_after_days": 3651},
    ]
    fields = []
    for changes in bad:
        with pytest.raises(ValidationError) as refused:
            scope(**changes)
        fields.append(refused.value.field)
    assert fields == ["window", "window", "window", "window.start", "staleAfterDays",
                      "staleAfterDays"]  # fmt: skip
    async with db.read() as session:
        for first in (-1, 101):
            with pytest.raises(ValidationError, match="first is 0 to 100"):
                await reports.stale_articles(session=session, scope=scope(), first=first)
        # a scope built for a manager does not let a responder read a section
        forged = ReportScope(Principal(None, "r", Role.RESPONDER), START, END, NOW)
        with pytest.raises(PermissionDeniedError):
            await reports.top_articles(session=session, scope=forged)


async def test_the_whole_report_at_once_for_other_interfaces(
    db: Database, seed: Seed, index: SearchIndex
) -> None:
    await seed.incident("Lonely outage", hours=2)
    async with db.read() as session:
        report = await reports.knowledge_report(
            session=session, principal=SYSTEM, index=index, start=START, end=END, now=NOW
        )
    assert [g.count for g in report.gaps.gaps] == [1]
    assert report.gaps.gaps[0].downtime_seconds == 2 * HOUR
    assert (report.stale.total, report.poor_performers, report.duplicates) == (0, [], [])
    assert report.top_articles == []
