"""Suggestions through GraphQL, against the real app and index: what a responder is shown
for an incident (or a draft of one), why, and what their verdicts change.

Fixtures are built so the expected answer is known by construction: "twin" articles
have the same text, so only the signal under test can tell them apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from starlette.applications import Starlette

from api.relay import to_global_id
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleStatus
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.catalog import service as catalog
from knowledge.db import Database
from knowledge.incidents.models import Incident, IncidentEvent, IncidentLink
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.service import KnownErrorDraft
from knowledge.search import arrays
from tests.conftest import TEST_DATABASE_URL
from tests.support import Account, Accounts, GraphQLClient, Response

SUGGESTION = """
  rank score explanation matchedTerms
  highlights { field fragments }
  article { id slug } knownError { id key }
  signals { name value weight contribution detail }
  evidence { similarity incident { id number } }
"""
SUGGEST = f"""
query($input: DraftInput!, $first: Int! = 5) {{
  suggestResolutions(input: $input, first: $first) {{ {SUGGESTION} }}
}}
"""
CLASSIFY_DRAFT = """
query($input: DraftInput!) {
  suggestClassification(input: $input) {
    categories { value confidence supporting basis }
    services { confidence supporting service { slug } }
    impacts { impact confidence supporting }
    neighbours { number }
  }
}
"""
SIMILAR = """
query($id: ID!, $first: Int! = 5) {
  similarIncidents(id: $id, first: $first) {
    similarity sameSignature reason incident { number }
  }
}
"""
INCIDENT_FIELDS = """
  id number version status
  suggestions { relation rank score reason article { slug } knownError { key } }
  links { relation reason article { slug } }
  timeline { kind message data actor { username } }
"""
INCIDENT_RESULT = f"""
  __typename
  ... on Incident {{ {INCIDENT_FIELDS} }}
  ... on Error {{ message code field }}
  ... on ConflictError {{ currentVersion }}
"""
REPORT = f"""
mutation($input: ReportIncidentInput!) {{ reportIncident(input: $input) {{ {INCIDENT_RESULT} }} }}
"""
RESOLVE = f"""
mutation($input: ResolveIncidentInput!) {{ resolveIncident(input: $input) {{ {INCIDENT_RESULT} }} }}
"""
CLASSIFY = f"""
mutation($input: ClassifyIncidentInput!) {{
  classifyIncident(input: $input) {{
    __typename
    ... on ClassifiedIncident {{ incident {{ {INCIDENT_FIELDS} }} suggestions {{ {SUGGESTION} }} }}
    ... on Error {{ message code field }}
  }}
}}
"""
ACCEPT = f"""
mutation($input: JudgeSuggestionInput!) {{ acceptSuggestion(input: $input) {{ {INCIDENT_RESULT} }} }}
"""
REJECT = f"""
mutation($input: JudgeSuggestionInput!) {{ rejectSuggestion(input: $input) {{ {INCIDENT_RESULT} }} }}
"""
INCIDENT = f"query($id: ID!) {{ incident(id: $id) {{ {INCIDENT_FIELDS} }} }}"
DUPLICATES = """
query($id: ID!, $first: Int! = 5) {
  incident(id: $id) {
    possibleDuplicates(first: $first) { similarity sameSignature reason incident { number } }
  }
}
"""
SIGNAL_NAMES = {"text", "title", "signature", "service", "category", "history", "success"}

# The error line one fault prints, as two reports of it would paste it.
PASSWORD_ERROR = (
    'connection to server at "db-7.prod.internal" (10.0.3.17), port 5432 failed: '
    'FATAL: password authentication failed for user "svc_orders"'
)
PASSWORD_ERROR_AGAIN = (
    'connection to server at "db-2.prod.internal" (10.0.9.4), port 6432 failed: '
    'FATAL: password authentication failed for user "svc_billing"'
)


# --- fixtures -----------------------------------------------------------------------


@dataclasses.dataclass
class Library:
    """Published knowledge, by name: article and known error ids, and service ids."""

    articles: dict[str, int]
    known_errors: dict[str, int]
    services: dict[str, int]

    def article(self, name: str) -> str:
        return to_global_id("Article", self.articles[name])

    def service(self, name: str) -> str:
        return to_global_id("Service", self.services[name])

    def slug(self, name: str) -> str:
        return SLUGS[name]


SLUGS = {
    "password": "db-password-rotation",
    "pool": "orders-db-pool-exhausted",
    "dns": "dns-timeouts",
    "disk": "disk-quota",
    "twin-a": "kafka-lag-twin-a",
    "twin-b": "kafka-lag-twin-b",
    "draft": "unfinished-notes",
}
TWIN_TITLE = "Kafka consumer lag grows after a partition rebalance"
TWIN_BODY = (
    "## Symptoms\nConsumer lag on the events topic climbs for minutes after a rebalance.\n"
    "## Cause\nConsumers commit offsets too rarely.\n"
    "## Resolution\nLower the commit interval and restart the consumer group."
)


async def _article(session: Any, slug: str, draft: ArticleDraft, publish: bool = True) -> int:
    article = await articles.create(session=session, principal=SYSTEM, slug=slug, draft=draft)
    if publish:
        await articles.transition(
            session=session, principal=SYSTEM, article_id=article.id, action=Transition.PUBLISH
        )
    return article.id


def tie_order(ids: Sequence[int]) -> list[int]:
    """Articles in the order the ranking puts them when everything else ties (by key)."""
    return sorted(ids, key=lambda i: f"article:{i}")


@pytest.fixture
async def library(db: Database, app: Starlette) -> Library:
    async with db.transaction() as session:
        services = {
            slug: (await catalog.create(session=session, principal=SYSTEM, slug=slug, name=slug)).id
            for slug in ("checkout", "billing", "events")
        }
        ids = {
            "password": await _article(session, SLUGS["password"], ArticleDraft(
                title="Database password authentication fails after a credential rotation",
                summary="Pods keep the old secret after the database password is rotated.",
                category="database", service_ids=[services["checkout"]],
                error_signatures=[PASSWORD_ERROR],
                body="## Symptoms\nServices cannot log in to the database: password "
                     "authentication failed for their service account.\n"
                     "## Resolution\nRestart the pods so they read the rotated secret.")),
            "pool": await _article(session, SLUGS["pool"], ArticleDraft(
                title="Orders API cannot reach its database: connection pool exhausted",
                category="database", service_ids=[services["checkout"]],
                error_signatures=["remaining connection slots are reserved for superuser"],
                body="## Symptoms\nThe orders API cannot reach its database; requests queue "
                     "for a connection.\n## Resolution\nRaise the pool size.")),
            "dns": await _article(session, SLUGS["dns"], ArticleDraft(
                title="DNS lookups time out under load", category="networking",
                body="## Cause\nconntrack table full.\n## Resolution\nRaise nf_conntrack_max.")),
            "disk": await _article(session, SLUGS["disk"], ArticleDraft(
                title="Disk quota exceeded on shared volumes", category="storage",
                body="## Symptoms\nWrites fail with EDQUOT.\n## Resolution\nRaise the quota.")),
            "draft": await _article(session, SLUGS["draft"], ArticleDraft(
                title="Unfinished notes on kafka consumer lag", body="WIP"), publish=False),
        }  # fmt: skip
        # Twins: the same words, so the text signal ties and only context can part them.
        twin = ArticleDraft(title=TWIN_TITLE, body=TWIN_BODY)
        ids["twin-a"] = await _article(session, SLUGS["twin-a"], twin)
        ids["twin-b"] = await _article(session, SLUGS["twin-b"], twin)
        certificate = await known_errors.create(
            session=session,
            principal=SYSTEM,
            draft=KnownErrorDraft(
                title="Proxy serves an expired certificate after renewal",
                symptoms="Clients still see the old certificate after it was renewed",
                workaround="Reload the proxy",
                category="tls",
            ),
        )
    await app.state.indexer.catch_up()
    return Library(ids, {"certificate": certificate.id}, services)


@pytest.fixture
async def responder(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "rosa")


async def suggest(
    client: GraphQLClient, *, token: str | None = None, first: int = 5, **draft: Any
) -> list[dict[str, Any]]:
    reply = await client(SUGGEST, {"input": draft, "first": first}, token=token)
    found: list[dict[str, Any]] = reply.data["suggestResolutions"]
    return found


def slugs(suggestions: list[dict[str, Any]]) -> list[str]:
    return [s["article"]["slug"] if s["article"] else s["knownError"]["key"] for s in suggestions]


def signal(suggestion: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in suggestion["signals"] if s["name"] == name)
    return found


def by_slug(suggestions: list[dict[str, Any]], slug: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in suggestions if s["article"]["slug"] == slug)
    return found


def total(suggestion: dict[str, Any]) -> float:
    return float(sum(s["contribution"] for s in suggestion["signals"]))


async def mutate(client: GraphQLClient, document: str, token: str, **input: Any) -> dict[str, Any]:
    data = (await client(document, {"input": input}, token=token)).data
    result: dict[str, Any] = next(iter(data.values()))
    return result


async def report(client: GraphQLClient, token: str, **fields: Any) -> dict[str, Any]:
    return await mutate(client, REPORT, token, **{"title": "Checkout returns 502", **fields})


async def resolve(
    client: GraphQLClient, token: str, incident: dict[str, Any], article: str | None = None
) -> dict[str, Any]:
    # Notes without words of their own: the incidents' texts alone make them alike.
    resolved = await mutate(
        client, RESOLVE, token, id=incident["id"], expectedVersion=incident["version"],
        code="FIXED", notes="Mitigated.",
        **({"resolvedBy": {"articleId": article}} if article else {}),
    )  # fmt: skip
    assert resolved["__typename"] == "Incident", resolved
    return resolved


async def rows(db: Database) -> dict[str, int]:
    async with db.read() as session:
        return {
            model.__name__: int(
                await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            )
            for model in (Incident, IncidentLink, IncidentEvent)
        }


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The event dispatcher polls the outbox in the background: not this request's.
        if "outbox" not in statement:
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


def assert_clear(reply: Response, code: str) -> None:
    """A client's mistake: HTTP 200, an error with the given code, never an unexpected one."""
    assert reply.status == 200, reply.body
    assert reply.error_codes == [code], reply.body


# --- suggesting for a draft ---------------------------------------------------------


async def test_a_draft_gets_suggestions_and_nothing_is_saved(
    client: GraphQLClient, db: Database, library: Library
) -> None:
    before = await rows(db)
    found = await suggest(client, title="Orders API lost its database connection",
                          errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    assert found, "a draft that matches knowledge gets suggestions"
    assert await rows(db) == before, "no incident, link or event was created"


async def test_the_article_matching_text_and_error_signature_ranks_first(
    client: GraphQLClient, library: Library
) -> None:
    # The pool article shares more of the title's words; the password article has the
    # same error line (another host, port and user).
    found = await suggest(client, title="Orders API lost its database connection",
                          errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    assert slugs(found)[:2] == [library.slug("password"), library.slug("pool")]
    best = found[0]
    assert signal(best, "signature")["value"] == 1.0
    assert "same error line" in signal(best, "signature")["detail"]
    assert signal(found[1], "signature")["value"] < 1.0
    without_error = await suggest(client, title="Orders API lost its database connection")
    assert slugs(without_error)[0] == library.slug("pool"), "the error line made the difference"


async def test_an_error_line_that_is_part_of_the_articles_is_not_called_the_same(
    client: GraphQLClient, library: Library
) -> None:
    # The draft's title is an error line ("cannot") that the pool article's title contains.
    found = await suggest(client, title="Orders API cannot reach its database")
    pool = by_slug(found, library.slug("pool"))
    line = signal(pool, "signature")
    assert line["value"] > 0
    assert "same error line" not in line["detail"]


async def test_an_identifier_in_the_title_finds_the_article_that_spells_it_out(
    client: GraphQLClient, library: Library
) -> None:
    # An alert names the exception class; the article writes the same words with spaces.
    found = await suggest(client, title="DiskQuotaExceeded")
    assert slugs(found)[:1] == [library.slug("disk")]
    assert {"disk", "quota"} <= set(found[0]["matchedTerms"])


async def test_a_title_in_other_words_is_alike_in_meaning_to_the_articles(
    client: GraphQLClient, library: Library
) -> None:
    # Not a word in common with the password article's title; "cannot" is in the pool's.
    found = await suggest(client, title="Services cannot log in after the secret was changed")
    assert slugs(found)[0] == library.slug("password")
    password, pool = found[0], found[slugs(found).index(library.slug("pool"))]
    assert signal(password, "title")["value"] == 1.0, "the likest title of all candidates"
    assert "alike in meaning" in signal(password, "title")["detail"]
    assert 0 < signal(pool, "title")["value"] < 0.7


async def test_every_suggestion_explains_itself(client: GraphQLClient, library: Library) -> None:
    found = await suggest(client, first=20, title="Orders API lost its database connection",
                          description="Checkout fails; the database refuses the password",
                          errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    assert len(found) >= 2
    for suggestion in found:
        names = [s["name"] for s in suggestion["signals"]]
        assert set(names) >= SIGNAL_NAMES, names
        assert len(names) == len(set(names)), "one of each"
        for s in suggestion["signals"]:
            assert s["contribution"] == pytest.approx(s["value"] * s["weight"])
            assert s["detail"].strip()
        assert suggestion["explanation"].strip()
        assert 0.0 <= suggestion["score"] <= 1.0
    best = found[0]
    assert signal(best, "text")["value"] > 0
    assert "text" in best["explanation"]
    assert "signature" in best["explanation"]
    assert {"password", "authent"} & {t[:7] for t in best["matchedTerms"]}
    assert best["highlights"], "the text match is shown"
    assert any("<mark" in f for h in best["highlights"] for f in h["fragments"])


async def test_ranks_count_up_and_scores_go_down(client: GraphQLClient, library: Library) -> None:
    found = await suggest(client, first=20, title="Database connection problems",
                          description="orders cannot reach the database, password refused, "
                          "kafka lag, dns timeouts, disk quota")  # fmt: skip
    assert len(found) >= 4
    assert [s["rank"] for s in found] == list(range(1, len(found) + 1))
    scores = [s["score"] for s in found]
    assert scores == sorted(scores, reverse=True)
    totals = [total(s) for s in found]
    assert totals == sorted(totals, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


async def test_first_limits_the_number_of_suggestions(
    client: GraphQLClient, library: Library
) -> None:
    draft: dict[str, Any] = {
        "title": "Database connection problems",
        "description": "kafka lag dns disk quota",
    }
    everything = await suggest(client, first=20, **draft)
    assert len(everything) > 2
    assert slugs(await suggest(client, first=2, **draft)) == slugs(everything)[:2]


async def test_drafts_and_known_errors_are_treated_as_they_should_be(
    client: GraphQLClient, library: Library
) -> None:
    found = await suggest(client, first=20, title="Kafka consumer lag and an expired certificate")
    assert library.slug("draft") not in slugs(found), "unpublished articles are never suggested"
    errors = [s for s in found if s["knownError"]]
    assert [s["knownError"]["key"] for s in errors] == ["KE-0001"]
    assert errors[0]["article"] is None


async def test_the_incidents_service_raises_the_article_linked_to_it(
    client: GraphQLClient, db: Database, library: Library
) -> None:
    # given twins that tie on text, the one that loses the tie linked to a service
    first, second = tie_order([library.articles["twin-a"], library.articles["twin-b"]])
    async with db.transaction() as session:
        article = await articles.get(session=session, principal=SYSTEM, article_id=second)
        await articles.update(session=session, principal=SYSTEM, article_id=second,
                              expected_version=article.version,
                              draft=ArticleDraft(service_ids=[library.services["events"]]))  # fmt: skip
    draft: dict[str, Any] = {"title": TWIN_TITLE}

    anywhere = (await suggest(client, **draft))[:2]
    on_events = (await suggest(client, serviceId=library.service("events"), **draft))[:2]

    ids = {library.articles[n]: library.slug(n) for n in ("twin-a", "twin-b")}
    assert slugs(anywhere) == [ids[first], ids[second]]
    assert total(anywhere[0]) == pytest.approx(total(anywhere[1])), "a tie without a service"
    assert slugs(on_events) == [ids[second], ids[first]]
    linked, other = on_events
    assert signal(linked, "service")["value"] == 1.0
    assert signal(linked, "service")["detail"] == "linked to the incident's service"
    assert signal(other, "service")["value"] == 0.0
    assert total(linked) - total(other) == pytest.approx(signal(linked, "service")["weight"])
    assert linked["score"] > other["score"]


async def test_the_incidents_category_raises_the_article_with_that_category(
    client: GraphQLClient, db: Database, library: Library
) -> None:
    first, second = tie_order([library.articles["twin-a"], library.articles["twin-b"]])
    async with db.transaction() as session:
        article = await articles.get(session=session, principal=SYSTEM, article_id=second)
        await articles.update(session=session, principal=SYSTEM, article_id=second,
                              expected_version=article.version,
                              draft=ArticleDraft(category="messaging"))  # fmt: skip

    found = (await suggest(client, title=TWIN_TITLE, category="Messaging"))[:2]

    ids = {library.articles[n]: library.slug(n) for n in ("twin-a", "twin-b")}
    assert slugs(found) == [ids[second], ids[first]]
    same = signal(found[0], "category")
    assert (same["value"], same["detail"]) == (1.0, "category messaging")
    assert signal(found[1], "category")["value"] == 0.0
    assert total(found[0]) - total(found[1]) == pytest.approx(same["weight"])


async def test_an_incident_resolved_by_an_article_raises_it_for_similar_incidents(
    client: GraphQLClient, app: Starlette, library: Library, responder: Account
) -> None:
    first, second = tie_order([library.articles["twin-a"], library.articles["twin-b"]])
    slug = {library.articles[n]: library.slug(n) for n in ("twin-a", "twin-b")}
    draft: dict[str, Any] = {"title": "Kafka consumer lag after the rebalance on the events topic"}
    before = await suggest(client, **draft)
    assert slugs(before)[:2] == [slug[first], slug[second]]
    assert signal(by_slug(before, slug[second]), "history")["value"] == 0.0

    # when an incident like the draft is resolved by the second twin
    incident = await report(client, responder.token, title="Consumer lag on the events topic "
                            "after a kafka rebalance", description="Lag climbs for minutes")  # fmt: skip
    async with app.state.indexer.paused():
        await resolve(client, responder.token, incident, to_global_id("Article", second))
        # the outcome counts at once (read from the database), before any indexing ...
        meanwhile = by_slug(await suggest(client, **draft), slug[second])
        assert signal(meanwhile, "success")["value"] > 0
        assert signal(meanwhile, "history")["value"] == 0.0, "its text is not indexed yet"
    # ... and once the indexer has the resolved incident, it is evidence
    await app.state.indexer.catch_up()
    after = await suggest(client, **draft)

    assert slugs(after)[:2] == [slug[second], slug[first]]
    raised = after[0]
    assert signal(raised, "history")["value"] > 0
    assert "resolved 1 similar incident" in signal(raised, "history")["detail"]
    assert [e["incident"]["number"] for e in raised["evidence"]] == [incident["number"]]
    assert 0 < raised["evidence"][0]["similarity"] <= 1
    assert "history" in raised["explanation"]
    assert after[1]["evidence"] == []
    assert total(raised) > total(by_slug(before, slug[second]))


async def test_suggesting_costs_the_same_statements_for_one_suggestion_or_twenty(
    client: GraphQLClient, db: Database, app: Starlette, library: Library
) -> None:
    draft: dict[str, Any] = {
        "title": "Database connection problems",
        "description": "kafka lag dns disk quota",
    }
    counts, shown = {}, {}
    async with app.state.indexer.paused():  # count this request's statements only
        await suggest(client, first=20, **draft)
        for first in (1, 20):
            # Background tasks share the engine; they can only add, so keep the least.
            tries = []
            for _ in range(3):
                with counting_statements(db) as statements:
                    shown[first] = len(await suggest(client, first=first, **draft))
                tries.append(len(statements))
            counts[first] = min(tries)
    assert (shown[1], shown[20] > 3) == (1, True)
    assert counts[20] == counts[1], counts


ARTICLES_FOUND_BY = """
query($query: String!) {
  search(query: $query, types: [ARTICLE]) { edges { node { ... on ArticleHit { article { slug } } } } }
}
"""
REOPEN = f"""
mutation($input: ReopenIncidentInput!) {{ reopenIncident(input: $input) {{ {INCIDENT_RESULT} }} }}
"""


async def test_an_article_is_found_by_the_words_of_the_incidents_it_resolved(
    client: GraphQLClient, library: Library, responder: Account, app: Starlette
) -> None:
    async def found_by(words: str) -> list[str]:
        await app.state.indexer.catch_up()
        edges = (await client(ARTICLES_FOUND_BY, {"query": words})).data["search"]["edges"]
        return [e["node"]["article"]["slug"] for e in edges]

    # Reporters' words that the disk quota article never uses.
    words = "uploads spinner freezes"
    assert await found_by(words) == []
    incident = await report(client, responder.token, title="Uploads spinner freezes forever")
    resolved = await resolve(client, responder.token, incident, library.article("disk"))
    assert await found_by(words) == [library.slug("disk")]
    # Reopened: what resolved it did not hold, so the article no longer has its words.
    reopened = await mutate(client, REOPEN, responder.token, id=resolved["id"],
                            expectedVersion=resolved["version"], reason="still frozen")  # fmt: skip
    assert reopened["__typename"] == "Incident", reopened
    assert await found_by(words) == []


async def test_an_accepted_suggestion_lends_the_article_the_incidents_words(
    client: GraphQLClient, library: Library, responder: Account, app: Starlette
) -> None:
    incident = await report(client, responder.token, title="Uploads spinner freezes forever")
    accepted = await mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
                            expectedVersion=incident["version"],
                            articleId=library.article("disk"))  # fmt: skip
    assert accepted["__typename"] == "Incident", accepted
    await app.state.indexer.catch_up()
    edges = (await client(ARTICLES_FOUND_BY, {"query": "spinner"})).data["search"]["edges"]
    assert [e["node"]["article"]["slug"] for e in edges] == [library.slug("disk")]


# --- reporting stores what it suggested ---------------------------------------------


async def test_reporting_stores_the_suggestions_it_shows(
    client: GraphQLClient, library: Library, responder: Account
) -> None:
    incident = await report(client, responder.token, title="Orders cannot log in to the database",
                            errorText=PASSWORD_ERROR_AGAIN,
                            serviceId=library.service("checkout"))  # fmt: skip
    assert incident["__typename"] == "Incident"
    stored = incident["suggestions"]
    assert stored, "the report has suggestions"
    assert stored[0]["article"] == {"slug": library.slug("password")}
    assert [s["relation"] for s in stored] == ["SUGGESTED"] * len(stored)
    assert [s["rank"] for s in stored] == list(range(1, len(stored) + 1))
    assert all(0.0 < s["score"] <= 1.0 for s in stored)
    assert [s["score"] for s in stored] == sorted((s["score"] for s in stored), reverse=True)
    assert all(s["reason"].strip() for s in stored)
    assert "signature" in stored[0]["reason"]
    shown = [e for e in incident["timeline"] if e["kind"] == "SUGGESTION_SHOWN"]
    assert len(shown) == 1
    assert shown[0]["actor"] is None, "the engine suggests on its own account"
    listed = shown[0]["data"]["suggestions"]
    assert [s["rank"] for s in listed] == [s["rank"] for s in stored]
    assert (listed[0]["kind"], listed[0]["id"]) == ("article", library.articles["password"])
    assert [s["score"] for s in listed] == [round(s["score"], 4) for s in stored]
    assert "best: Database password authentication fails" in shown[0]["message"]
    # What was stored is what the incident shows later.
    again = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert again["suggestions"] == stored


@pytest.mark.skipif(TEST_DATABASE_URL != "", reason="SQLite's single write lock")
async def test_reporting_searches_for_suggestions_without_holding_the_write_lock(
    client: GraphQLClient,
    library: Library,
    responder: Account,
    app: Starlette,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # While the report's suggestions are searched for, another writer must get the lock
    # at once: a search under the lock would make every other write wait it out.
    score, lock_free = arrays.scores, []

    def scores(*args: Any, **kwargs: Any) -> Any:
        other = sqlite3.connect(db.engine.url.database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            lock_free.append(True)
        except sqlite3.OperationalError:
            lock_free.append(False)
        finally:
            other.close()
        return score(*args, **kwargs)

    monkeypatch.setattr(arrays, "scores", scores)
    incident = await report(client, responder.token, title="Orders cannot log in to the database",
                            errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    assert incident["suggestions"], "the report was given suggestions"
    assert lock_free, "the suggestions were searched for"
    assert all(lock_free), lock_free


async def test_a_database_failure_while_storing_suggestions_keeps_the_saved_report(
    client: GraphQLClient, library: Library, responder: Account, db: Database
) -> None:
    # The report is committed before its suggestions are stored: if storing them fails,
    # an error answer would invite a retry and a duplicate incident.
    def fail_on_links(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INCIDENT_LINKS"):
            raise sa.exc.OperationalError(statement, None, ConnectionResetError("reset"))

    event.listen(db.engine.sync_engine, "before_cursor_execute", fail_on_links)
    try:
        reply = await client(REPORT, {"input": {"title": "Orders cannot log in to the database",
                                                "errorText": PASSWORD_ERROR_AGAIN}},
                             token=responder.token)  # fmt: skip
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", fail_on_links)
    assert reply.status == 200, reply.body
    incident = reply.data["reportIncident"]
    assert incident["__typename"] == "Incident", incident
    assert incident["suggestions"] == []
    assert (await rows(db))["Incident"] == 1
    again = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert again["number"] == incident["number"]


async def test_a_stored_suggestion_shows_its_article_only_to_those_who_may_see_it(
    client: GraphQLClient, library: Library, responder: Account, accounts: Accounts, db: Database
) -> None:
    incident = await report(client, responder.token, title="Orders cannot log in to the database",
                            errorText=PASSWORD_ERROR_AGAIN,
                            serviceId=library.service("checkout"))  # fmt: skip
    assert incident["suggestions"][0]["article"] == {"slug": library.slug("password")}
    # The article goes back to draft after it was suggested: viewers may not see drafts.
    async with db.transaction() as session:
        await session.execute(
            sa.update(Article)
            .where(Article.id == library.articles["password"])
            .values(status=ArticleStatus.DRAFT)
        )
    viewer = await accounts.create(Role.VIEWER)
    listing = "query { incidents { nodes { suggestions { rank article { slug } } } } }"
    for token, expected in ((viewer.token, None), (responder.token, library.slug("password"))):
        shown = (await client(INCIDENT, {"id": incident["id"]}, token=token)).data["incident"]
        assert shown["suggestions"][0]["rank"] == 1
        first = shown["suggestions"][0]["article"]
        assert (first and first["slug"]) == expected
        page = (await client(listing, token=token)).data["incidents"]["nodes"]
        assert page[0]["suggestions"][0]["article"] == (expected and {"slug": expected})


async def test_a_report_that_matches_nothing_has_no_suggestions_and_no_error(
    client: GraphQLClient, library: Library, responder: Account
) -> None:
    incident = await report(client, responder.token, title="Zxqv wobbles fnord",
                            description="Plimsoll quux")  # fmt: skip
    assert incident["__typename"] == "Incident"
    assert incident["suggestions"] == []
    assert [e["kind"] for e in incident["timeline"]] == ["REPORTED"]


async def test_a_report_with_an_empty_knowledge_base_has_no_suggestions(
    client: GraphQLClient, app: Starlette, responder: Account
) -> None:
    incident = await report(client, responder.token, errorText=PASSWORD_ERROR)
    assert incident["__typename"] == "Incident"
    assert incident["suggestions"] == []


# --- verdicts -----------------------------------------------------------------------


@pytest.fixture
async def incident(client: GraphQLClient, library: Library, responder: Account) -> dict[str, Any]:
    """An open incident about the password error, with the password article suggested."""
    reported = await report(client, responder.token, title="Orders cannot log in to the database",
                            errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    assert reported["suggestions"][0]["article"] == {"slug": library.slug("password")}
    return reported


async def test_accepting_a_suggestion_records_the_verdict_on_the_timeline(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    accepted = await mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
                            expectedVersion=incident["version"],
                            articleId=library.article("password"), reason="Restart fixed it")  # fmt: skip
    assert accepted["__typename"] == "Incident", accepted
    assert accepted["version"] == incident["version"] + 1
    assert ("ACCEPTED", "Restart fixed it", {"slug": library.slug("password")}) in [
        (link["relation"], link["reason"], link["article"]) for link in accepted["links"]
    ]
    last = accepted["timeline"][-1]
    assert last["kind"] == "SUGGESTION_ACCEPTED"
    assert "Restart fixed it" in last["message"]
    assert last["data"]["reason"] == "Restart fixed it"
    assert last["data"]["article_id"] == library.articles["password"]
    assert last["actor"] == {"username": "rosa"}


async def test_rejecting_a_suggestion_records_the_verdict_on_the_timeline(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    rejected = await mutate(client, REJECT, responder.token, incidentId=incident["id"],
                            expectedVersion=incident["version"],
                            articleId=library.article("password"), reason="Not our database")  # fmt: skip
    assert rejected["__typename"] == "Incident", rejected
    last = rejected["timeline"][-1]
    assert (last["kind"], last["data"]["reason"]) == ("SUGGESTION_REJECTED", "Not our database")
    assert "Not our database" in last["message"]


async def test_a_changed_mind_replaces_the_earlier_verdict(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    target = {"incidentId": incident["id"], "articleId": library.article("password")}
    first = await mutate(client, REJECT, responder.token, expectedVersion=incident["version"],
                         **target)  # fmt: skip
    second = await mutate(client, ACCEPT, responder.token, expectedVersion=first["version"],
                          **target)  # fmt: skip
    verdicts = [link["relation"] for link in second["links"] if link["relation"] != "SUGGESTED"]
    assert verdicts == ["ACCEPTED"]


async def test_a_rejected_suggestion_is_not_suggested_again_when_reclassified(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    rejected = await mutate(client, REJECT, responder.token, incidentId=incident["id"],
                            expectedVersion=incident["version"],
                            articleId=library.article("password"))  # fmt: skip
    classified = await mutate(client, CLASSIFY, responder.token, id=incident["id"],
                              expectedVersion=rejected["version"], impact="HIGH")  # fmt: skip
    assert classified["__typename"] == "ClassifiedIncident", classified
    password = library.slug("password")
    assert classified["suggestions"], "other suggestions are still made"
    assert password not in slugs(classified["suggestions"])
    stored = classified["incident"]["suggestions"]
    assert password not in [s["article"]["slug"] for s in stored if s["article"]]
    assert [s["rank"] for s in stored] == list(range(1, len(stored) + 1))
    assert ("REJECTED", {"slug": password}) in [
        (link["relation"], link["article"]) for link in classified["incident"]["links"]
    ]


async def test_a_rejection_counts_against_the_article_for_other_incidents(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    draft: dict[str, Any] = {
        "title": "Database password rotation broke logins",
        "errorText": PASSWORD_ERROR,
    }
    before = signal(by_slug(await suggest(client, **draft), library.slug("password")), "success")
    await mutate(client, REJECT, responder.token, incidentId=incident["id"],
                 expectedVersion=incident["version"], articleId=library.article("password"))  # fmt: skip
    after = signal(by_slug(await suggest(client, **draft), library.slug("password")), "success")
    assert before["value"] == 0.0
    assert after["value"] < 0.0


async def test_helpful_and_unhelpful_votes_move_the_articles_success_signal(
    client: GraphQLClient, library: Library, accounts: Accounts
) -> None:
    """Votes count with links, at once: two readers find it helpful, then all three
    say it was not (the same readers changing their minds count once each)."""
    draft: dict[str, Any] = {
        "title": "Database password rotation broke logins",
        "errorText": PASSWORD_ERROR,
    }
    rate = """mutation($input: RateArticleInput!) { rateArticle(input: $input) {
                __typename ... on Error { code } } }"""

    async def success() -> float:
        found = by_slug(await suggest(client, **draft), library.slug("password"))
        return float(signal(found, "success")["value"])

    async def vote(voter: Account, helpful: bool) -> None:
        answer = await client(
            rate, {"input": {"articleId": library.article("password"), "helpful": helpful}},
            token=voter.token,
        )  # fmt: skip
        assert answer.data["rateArticle"]["__typename"] == "ArticleFeedback"

    voters = [await accounts.create(Role.VIEWER) for _ in range(3)]
    before = await success()
    for voter in voters[:2]:
        await vote(voter, True)
    liked = await success()
    for voter in voters:
        await vote(voter, False)
    disliked = await success()
    assert before == 0.0
    assert liked > 0.0
    assert disliked < 0.0


async def test_two_verdicts_on_one_version_give_one_winner_and_one_conflict(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    results = await asyncio.gather(
        mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
               expectedVersion=incident["version"], articleId=library.article("password")),
        mutate(client, REJECT, responder.token, incidentId=incident["id"],
               expectedVersion=incident["version"], articleId=library.article("pool")),
    )  # fmt: skip
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["ConflictError", "Incident"], results
    winner = next(r for r in results if r["__typename"] == "Incident")
    stored = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert stored["version"] == incident["version"] + 1 == winner["version"]
    verdicts = [e["kind"] for e in stored["timeline"] if e["kind"].startswith("SUGGESTION_")]
    assert verdicts.count("SUGGESTION_ACCEPTED") + verdicts.count("SUGGESTION_REJECTED") == 1


async def test_a_stale_version_is_a_conflict_naming_the_current_one(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    first = await mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
                         expectedVersion=incident["version"], articleId=library.article("pool"))  # fmt: skip
    stale = await mutate(client, REJECT, responder.token, incidentId=incident["id"],
                         expectedVersion=incident["version"],
                         articleId=library.article("password"))  # fmt: skip
    assert stale["__typename"] == "ConflictError"
    assert stale["currentVersion"] == first["version"]
    assert stale["field"] == "input.expectedVersion"


async def test_a_resolved_incidents_suggestions_are_settled(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    resolved = await resolve(client, responder.token, incident)
    late = await mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
                        expectedVersion=resolved["version"],
                        articleId=library.article("password"))  # fmt: skip
    assert late["__typename"] == "InvalidTransitionError"


@pytest.mark.parametrize(
    ("target", "typename"),
    [({}, "ValidationError"),
     ({"articleId": "article", "knownErrorId": "known_error"}, "ValidationError"),
     ({"articleId": "draft"}, "ValidationError"),
     ({"articleId": "missing"}, "NotFoundError"),
     ({"knownErrorId": "missing"}, "NotFoundError"),
     ({"knownErrorId": "known_error"}, "Incident")],
)  # fmt: skip
async def test_a_verdict_names_exactly_one_published_target(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any],
    target: dict[str, str], typename: str,
) -> None:  # fmt: skip
    ids = {
        "article": library.article("password"),
        "draft": library.article("draft"),
        "known_error": to_global_id("KnownError", library.known_errors["certificate"]),
    }
    given = {
        field: ids.get(name)
        or to_global_id("Article" if field == "articleId" else "KnownError", 424242)
        for field, name in target.items()
    }
    result = await mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
                          expectedVersion=incident["version"], **given)  # fmt: skip
    assert result["__typename"] == typename, result
    if typename != "Incident":
        after = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
        assert after["version"] == incident["version"], "a refused verdict changes nothing"


@pytest.mark.parametrize("reason", ["r" * 2001, "bell \x07", "nul \x00"])
async def test_a_verdicts_reason_is_checked_like_any_text(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any],
    reason: str,
) -> None:  # fmt: skip
    result = await mutate(client, REJECT, responder.token, incidentId=incident["id"],
                          expectedVersion=incident["version"],
                          articleId=library.article("password"), reason=reason)  # fmt: skip
    assert (result["__typename"], result["field"]) == ("ValidationError", "input.reason")


async def test_a_verdict_on_a_missing_incident_is_not_found(
    client: GraphQLClient, library: Library, responder: Account
) -> None:
    result = await mutate(client, ACCEPT, responder.token,
                          incidentId=to_global_id("Incident", 424242), expectedVersion=1,
                          articleId=library.article("password"))  # fmt: skip
    assert result["__typename"] == "NotFoundError"


async def test_a_missing_target_names_the_input_field_at_fault(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any]
) -> None:
    no_incident = await mutate(client, ACCEPT, responder.token,
                               incidentId=to_global_id("Incident", 424242), expectedVersion=1,
                               articleId=library.article("password"))  # fmt: skip
    no_article = await mutate(client, ACCEPT, responder.token, incidentId=incident["id"],
                              expectedVersion=incident["version"],
                              articleId=to_global_id("Article", 424242))  # fmt: skip
    assert (no_incident["__typename"], no_incident["field"]) == (
        "NotFoundError", "input.incidentId")  # fmt: skip
    assert (no_article["__typename"], no_article["field"]) == ("NotFoundError", "input.articleId")


@pytest.mark.parametrize(
    ("field", "value"),
    [("incidentId", "bogus"), ("incidentId", to_global_id("Article", 1)), ("incidentId", ""),
     ("articleId", "bogus"), ("articleId", to_global_id("Incident", 1)),
     ("knownErrorId", "!!!"), ("knownErrorId", to_global_id("Service", 1))],
)  # fmt: skip
async def test_malformed_ids_in_a_verdict_are_validation_errors(
    client: GraphQLClient, library: Library, responder: Account, incident: dict[str, Any],
    field: str, value: str,
) -> None:  # fmt: skip
    given = {"incidentId": incident["id"], "articleId": library.article("password"), field: value}
    if field == "knownErrorId":
        del given["articleId"]
    reply = await client(ACCEPT, {"input": {"expectedVersion": incident["version"], **given}},
                         token=responder.token)  # fmt: skip
    result = reply.data["acceptSuggestion"]
    assert (result["__typename"], result["field"]) == ("ValidationError", f"input.{field}")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REPORTER, None])
async def test_only_responders_and_up_may_judge_suggestions(
    client: GraphQLClient, accounts: Accounts, library: Library, incident: dict[str, Any],
    role: Role | None,
) -> None:  # fmt: skip
    token = (await accounts.create(role)).token if role else None  # None: anonymous
    for document in (ACCEPT, REJECT):
        reply = await client(document, {"input": {
            "incidentId": incident["id"], "expectedVersion": incident["version"],
            "articleId": library.article("password")}}, token=token)  # fmt: skip
        result = next(iter(reply.data.values()))
        assert result["__typename"] == "PermissionDeniedError"
    after = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert after["version"] == incident["version"]


# --- possible duplicates and similar incidents --------------------------------------


async def test_possible_duplicates_are_open_incidents_on_the_same_service(
    client: GraphQLClient, library: Library, responder: Account
) -> None:
    checkout, billing = library.service("checkout"), library.service("billing")
    this = await report(client, responder.token, serviceId=checkout,
                        title="Orders page broken after the secret rotation",
                        description="Every order submission breaks since the credentials "
                                    "rotated at noon", errorText=PASSWORD_ERROR)  # fmt: skip
    same_error = await report(client, responder.token, serviceId=checkout,
                              title="Checkout unavailable for some shoppers",
                              errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    same_words = await report(client, responder.token, serviceId=checkout,
                              title="Orders page broken after secret rotation",
                              description="Order submission breaks since credentials rotated "
                                          "at noon")  # fmt: skip
    resolved = await report(client, responder.token, serviceId=checkout,
                            title="Checkout unavailable", errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    await resolve(client, responder.token, resolved)
    await report(client, responder.token, serviceId=billing, title="Invoices unavailable",
                 errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    await report(client, responder.token, serviceId=checkout,
                 title="Slow product images on the storefront")  # fmt: skip

    found = (await client(DUPLICATES, {"id": this["id"]})).data["incident"]["possibleDuplicates"]

    assert [d["incident"]["number"] for d in found] == [same_error["number"], same_words["number"]]
    by_signature, by_text = found
    assert (by_signature["sameSignature"], by_signature["reason"]) == (
        True, "same error signature")  # fmt: skip
    assert by_text["sameSignature"] is False
    assert by_text["similarity"] >= 0.5
    assert by_text["reason"].endswith("similar text")


async def test_the_same_error_is_a_duplicate_whoever_reported_it_first(
    client: GraphQLClient, library: Library, responder: Account
) -> None:
    first = await report(client, responder.token, serviceId=library.service("checkout"),
                         title="Checkout unavailable", errorText=PASSWORD_ERROR)  # fmt: skip
    second = await report(client, responder.token, serviceId=library.service("checkout"),
                          title="Payments page errors", errorText=PASSWORD_ERROR_AGAIN)  # fmt: skip
    for this, other in ((first, second), (second, first)):
        found = (await client(DUPLICATES, {"id": this["id"]})).data["incident"]
        assert [d["incident"]["number"] for d in found["possibleDuplicates"]] == [other["number"]]


async def test_similar_incidents_are_resolved_ones_most_similar_first(
    client: GraphQLClient, app: Starlette, library: Library, responder: Account
) -> None:
    target = await report(client, responder.token, title="Kafka consumer lag on the events "
                          "topic after a broker restart", description="Lag grows for an hour")  # fmt: skip
    closest = await report(client, responder.token, title="Kafka consumer lag on the events "
                           "topic after broker restart", description="Lag grows for an hour")  # fmt: skip
    related = await report(client, responder.token, title="Broker restart slowed the kafka "
                           "producers", description="Publishing latency doubled")  # fmt: skip
    unrelated = await report(client, responder.token, title="Expired TLS certificate on the "
                             "edge proxy", description="Browsers warn visitors")  # fmt: skip
    still_open = await report(client, responder.token, title="Kafka consumer lag on the events "
                              "topic after a broker restart", description="Lag grows for an hour")  # fmt: skip
    for incident in (target, closest, related, unrelated):
        await resolve(client, responder.token, incident)
    await app.state.indexer.catch_up()

    found = (await client(SIMILAR, {"id": target["id"]})).data["similarIncidents"]

    numbers = [s["incident"]["number"] for s in found]
    assert numbers == [closest["number"], related["number"]]
    assert target["number"] not in numbers, "not the incident itself"
    assert still_open["number"] not in numbers, "open incidents are not resolved ones"
    assert found[0]["similarity"] > found[1]["similarity"] > 0
    one = (await client(SIMILAR, {"id": target["id"], "first": 1})).data["similarIncidents"]
    assert [s["incident"]["number"] for s in one] == [closest["number"]]


# --- classification -----------------------------------------------------------------


async def test_a_classification_is_voted_by_similar_resolved_incidents(
    client: GraphQLClient, app: Starlette, library: Library, responder: Account
) -> None:
    events, billing = library.service("events"), library.service("billing")
    voters = [
        await report(client, responder.token, title="Kafka consumer lag grows on the events "
                     "cluster", category="messaging", serviceId=events, impact="HIGH"),
        await report(client, responder.token, title="Kafka consumer lag keeps growing on the "
                     "events cluster", category="messaging", serviceId=events, impact="HIGH"),
        await report(client, responder.token, title="Consumer lag after a billing deploy",
                     category="deploys", serviceId=billing, impact="LOW"),
        await report(client, responder.token, title="Expired TLS certificate on the edge",
                     category="tls", serviceId=billing, impact="LOW"),
    ]  # fmt: skip
    for incident in voters:
        await resolve(client, responder.token, incident)
    await app.state.indexer.catch_up()

    reply = await client(CLASSIFY_DRAFT, {"input": {
        "title": "Kafka consumer lag growing on the events cluster"}})  # fmt: skip
    found = reply.data["suggestClassification"]

    top = found["categories"][0]
    assert (top["value"], top["basis"], top["supporting"]) == ("messaging", "incidents", 2)
    assert top["confidence"] > 0.5
    assert found["services"][0]["service"] == {"slug": "events"}
    assert found["services"][0]["supporting"] == 2
    assert found["impacts"][0]["impact"] == "HIGH"
    neighbours = [n["number"] for n in found["neighbours"]]
    assert {voters[0]["number"], voters[1]["number"]} <= set(neighbours)
    assert voters[3]["number"] not in neighbours, "an unrelated incident has no vote"
    for guesses in (found["categories"], found["services"], found["impacts"]):
        assert sum(g["confidence"] for g in guesses) == pytest.approx(1.0)


async def test_without_incident_history_categories_come_from_articles(
    client: GraphQLClient, library: Library
) -> None:
    reply = await client(CLASSIFY_DRAFT, {"input": {
        "title": "Disk quota exceeded", "description": "Writes fail with EDQUOT"}})  # fmt: skip
    found = reply.data["suggestClassification"]
    assert found["categories"][0]["value"] == "storage"
    assert {g["basis"] for g in found["categories"]} == {"articles"}
    assert (found["services"], found["impacts"], found["neighbours"]) == ([], [], [])


# --- hostile and invalid input ------------------------------------------------------

BAD_DRAFTS: list[tuple[dict[str, Any], str]] = [
    ({}, "title"),
    ({"title": "   ", "description": "\n\t"}, "title"),
    ({"title": "t" * 201}, "title"),
    ({"title": "first line\nsecond line"}, "title"),
    ({"title": "carriage\rreturn"}, "title"),
    ({"description": "d" * 20_001}, "description"),
    ({"errorText": "e" * 20_001}, "errorText"),
    ({"title": "bell \x07 in the title"}, "title"),
    ({"title": "ok", "description": "nul \x00 byte"}, "description"),
    ({"title": "ok", "errorText": "escape \x1b[31m red"}, "errorText"),
    ({"title": "ok", "serviceId": "bogus"}, "serviceId"),
    ({"title": "ok", "serviceId": ""}, "serviceId"),
    ({"title": "ok", "serviceId": to_global_id("Article", 1)}, "serviceId"),
    ({"title": "ok", "serviceId": "U2VydmljZTotMQ"}, "serviceId"),  # "Service:-1"
]


@pytest.mark.parametrize(("draft", "field"), BAD_DRAFTS)
async def test_a_bad_draft_is_a_clear_error_for_suggestions(
    client: GraphQLClient, draft: dict[str, Any], field: str
) -> None:
    reply = await client(SUGGEST, {"input": draft})
    assert_clear(reply, "BAD_USER_INPUT")
    assert reply.errors[0]["extensions"].get("field", "").endswith(field)


@pytest.mark.parametrize(("draft", "field"), BAD_DRAFTS)
async def test_a_bad_draft_is_a_clear_error_for_classification(
    client: GraphQLClient, draft: dict[str, Any], field: str
) -> None:
    reply = await client(CLASSIFY_DRAFT, {"input": draft})
    assert_clear(reply, "BAD_USER_INPUT")
    assert reply.errors[0]["extensions"].get("field", "").endswith(field)


async def test_a_bad_draft_names_its_field_as_a_path_from_the_argument(
    client: GraphQLClient,
) -> None:
    for draft, field in (({"title": "t" * 201}, "input.title"),
                         ({"title": "ok", "serviceId": "bogus"}, "input.serviceId")):  # fmt: skip
        reply = await client(SUGGEST, {"input": draft})
        assert reply.errors[0]["extensions"]["field"] == field


@pytest.mark.parametrize("first", [0, -1, 21, 1000])
async def test_first_out_of_range_is_a_clear_error(
    client: GraphQLClient, responder: Account, first: int
) -> None:
    assert_clear(await client(SUGGEST, {"input": {"title": "kafka"}, "first": first}),
                 "BAD_USER_INPUT")  # fmt: skip
    incident = await report(client, responder.token)
    assert_clear(await client(SIMILAR, {"id": incident["id"], "first": first}), "BAD_USER_INPUT")


async def test_first_beyond_a_32_bit_int_is_refused_by_graphql(client: GraphQLClient) -> None:
    reply = await client(SUGGEST, {"input": {"title": "kafka"}, "first": 2**40})
    assert reply.status in (200, 400)
    assert "INTERNAL_SERVER_ERROR" not in reply.error_codes


async def test_possible_duplicates_page_size_is_checked(
    client: GraphQLClient, responder: Account
) -> None:
    incident = await report(client, responder.token)
    assert_clear(await client(DUPLICATES, {"id": incident["id"], "first": 1000}),
                 "BAD_USER_INPUT")  # fmt: skip
    none = await client(DUPLICATES, {"id": incident["id"], "first": 0})
    assert none.data["incident"]["possibleDuplicates"] == []


@pytest.mark.parametrize(
    "value",
    ["bogus", "", "!!!", to_global_id("Article", 1), "SW5jaWRlbnQ6MA", "a" * 5000],
)
async def test_malformed_incident_ids_for_similar_incidents_are_clear_errors(
    client: GraphQLClient, value: str
) -> None:
    assert_clear(await client(SIMILAR, {"id": value}), "BAD_USER_INPUT")


async def test_similar_incidents_of_a_missing_incident_is_not_found(client: GraphQLClient) -> None:
    assert_clear(await client(SIMILAR, {"id": to_global_id("Incident", 424242)}), "NOT_FOUND")


@pytest.mark.parametrize(
    "draft",
    [{"title": "!!! ??? ..."}, {"title": "the and of to"}, {"title": "💥🔥"},
     {"title": '"unbalanced (quote', "description": "NOT AND OR ~ *"},
     {"errorText": "\n".join(f"ERROR: worker {n} failed at 0x{n:08x}" for n in range(400))},
     {"title": "kafka", "serviceId": to_global_id("Service", 424242), "category": "  "}],
)  # fmt: skip
async def test_odd_but_valid_drafts_are_answered(
    client: GraphQLClient, library: Library, draft: dict[str, Any]
) -> None:
    found = await suggest(client, **draft)
    assert all(0.0 <= s["score"] <= 1.0 for s in found)
    classification = (await client(CLASSIFY_DRAFT, {"input": draft})).data
    assert "suggestClassification" in classification


# --- who may ask --------------------------------------------------------------------


async def test_viewers_and_anonymous_readers_may_ask_for_suggestions(
    client: GraphQLClient, accounts: Accounts, library: Library, responder: Account
) -> None:
    viewer = await accounts.create(Role.VIEWER)
    incident = await report(client, responder.token, title="Kafka consumer lag")
    for token in (viewer.token, None):
        found = await suggest(client, token=token, title=TWIN_TITLE)
        assert found
        assert (await client(CLASSIFY_DRAFT, {"input": {"title": "kafka"}}, token=token)).data
        assert (await client(SIMILAR, {"id": incident["id"]}, token=token)).data
        assert (await client(DUPLICATES, {"id": incident["id"]}, token=token)).data


async def test_production_refuses_anonymous_suggestion_requests(
    production_client: GraphQLClient,
) -> None:
    reply = await production_client(SUGGEST, {"input": {"title": "kafka"}})
    assert reply.status == 401
    assert reply.error_codes == ["UNAUTHENTICATED"]
