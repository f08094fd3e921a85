"""knowledgeReport over the real app: what a knowledge manager sees and can act on, who
else is refused, and what bad, oversized and hostile input gets."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from api.relay import parse_global_id
from knowledge.accounts.roles import Role
from knowledge.config import Settings
from knowledge.db import Database
from knowledge.incidents.models import LinkRelation
from tests.api.test_dataloaders import counting_statements
from tests.knowledge.test_reports import END, OLD, POOL_ERROR, START, Seed, feb
from tests.support import Account, Accounts, GraphQLClient

WINDOW = {"start": START.isoformat(), "end": END.isoformat()}
REPORT = """
query($window: TimeWindow!, $stale: Int! = 90, $first: Int) {
  knowledgeReport(window: $window, staleAfterDays: $stale) {
    start end staleAfterDays
    knowledgeGaps(first: $first) {
      totalGaps uncoveredIncidents clusteredIncidents textCompared
      gaps {
        count downtimeSeconds category errorSignature terms title reason
        service { slug }
        incidents { id number title }
        captureKnowledge { mutation incidentId incident { number } }
      }
    }
    staleArticles(first: $first) {
      total
      articles { article { slug } lastViewedAt lastLinkedAt lastActivityAt idleDays }
    }
    poorPerformers(first: $first) {
      article { slug } shown rejected accepted resolved helpfulVotes unhelpfulVotes
      rejectionRate helpfulRatio score reasons
    }
    possibleDuplicates(first: $first) {
      first { slug } second { slug } overlap textSimilarity sharedSignatures reasons
    }
    topArticles(first: $first) {
      article { slug } incidentsResolved downtimeSavedSeconds medianTimeToRestoreSeconds
    }
  }
}
"""
GAPS = """
query($window: TimeWindow!, $first: Int) {
  knowledgeReport(window: $window) {
    knowledgeGaps(first: $first) {
      totalGaps
      gaps { count title incidents { number service { slug } } captureKnowledge { incidentId } }
    }
  }
}
"""
SECTION = "query($window: TimeWindow!, $first: Int) {{ knowledgeReport(window: $window) {{ {} }} }}"
SECTIONS = {
    "knowledgeGaps": "knowledgeGaps(first: $first) { totalGaps }",
    "staleArticles": "staleArticles(first: $first) { total }",
    "poorPerformers": "poorPerformers(first: $first) { score }",
    "possibleDuplicates": "possibleDuplicates(first: $first) { overlap }",
    "topArticles": "topArticles(first: $first) { incidentsResolved }",
}
CAPTURE = """
mutation($input: CaptureKnowledgeInput!) {
  captureKnowledge(input: $input) { __typename ... on Article { status title } }
}
"""
HOUR = 3600.0


@pytest.fixture
async def manager(accounts: Accounts) -> Account:
    return await accounts.create(Role.KNOWLEDGE_MANAGER, "kim")


@pytest.fixture
def seed(db: Database) -> Seed:
    return Seed(db)


async def report(client: GraphQLClient, token: str, **variables: Any) -> Any:
    sent = {"window": WINDOW, **variables}
    return (await client(REPORT, sent, token=token)).data["knowledgeReport"]


async def test_a_manager_reads_every_section_and_closes_a_gap_with_its_action(
    client: GraphQLClient, seed: Seed, manager: Account
) -> None:
    # given two uncovered incidents with one signature, 1 h and 2 h long
    pay = await seed.service("pay")
    for n, hours in enumerate((1, 2)):
        await seed.incident(f"Pool outage {n}", hours=hours, service_id=pay, category="database",
                            error_text=POOL_ERROR.format("u", n), notes="Restart" * (n + 1))  # fmt: skip
    # an article resolving a third, 30 min long, against a 1.5 h median baseline
    fix = await seed.article("Pool fix")
    covered = await seed.incident("Covered outage", hours=0.5, category="database")
    await seed.link(covered, fix, LinkRelation.RESOLVED_BY, feb(15))
    await seed.incident("Another uncovered", hours=1.5, category="database")
    # and a stale article
    await seed.article("Forgotten runbook", published_at=OLD)

    found = await report(client, manager.token)

    assert (found["start"], found["end"], found["staleAfterDays"]) == (
        "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
        90,
    )
    gaps = found["knowledgeGaps"]
    assert (gaps["totalGaps"], gaps["uncoveredIncidents"], gaps["textCompared"]) == (2, 3, True)
    pool = gaps["gaps"][0]
    assert (pool["count"], pool["downtimeSeconds"], pool["reason"]) == (
        2,
        3 * HOUR,
        "same error signature",
    )
    assert (pool["service"], pool["category"]) == ({"slug": "pay"}, "database")
    assert pool["title"] == "Pool outage 1", "the one with the fullest notes"
    assert pool["captureKnowledge"]["mutation"] == "captureKnowledge"
    assert pool["captureKnowledge"]["incident"]["number"] == "INC-000002"
    assert {i["number"] for i in pool["incidents"]} == {"INC-000001", "INC-000002"}
    assert [s["article"]["slug"] for s in found["staleArticles"]["articles"]] == [
        "forgotten-runbook"
    ]
    assert found["staleArticles"]["articles"][0]["lastActivityAt"] == OLD.isoformat()
    assert found["topArticles"] == [
        {
            "article": {"slug": "pool-fix"},
            "incidentsResolved": 1,
            "downtimeSavedSeconds": 1.5 * HOUR - 0.5 * HOUR,
            "medianTimeToRestoreSeconds": 0.5 * HOUR,
        }
    ]
    assert (found["poorPerformers"], found["possibleDuplicates"]) == ([], [])

    # when the manager acts on the gap as the report says
    action = pool["captureKnowledge"]
    captured = await client(CAPTURE, {"input": {"incidentId": action["incidentId"]}},
                            token=manager.token)  # fmt: skip
    assert captured.data["captureKnowledge"] == {
        "__typename": "Article",
        "status": "IN_REVIEW",
        "title": "Pool outage 1",
    }

    # then that incident is covered, and the gap holds the other one
    after = (await report(client, manager.token))["knowledgeGaps"]
    assert after["uncoveredIncidents"] == 2
    assert [i["number"] for g in after["gaps"] for i in g["incidents"]].count("INC-000002") == 0


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.REPORTER, Role.RESPONDER])
async def test_only_knowledge_managers_and_admins_read_the_report(
    client: GraphQLClient, accounts: Accounts, seed: Seed, role: Role | None
) -> None:
    await seed.incident("Secret outage")
    token = None if role is None else (await accounts.create(role)).token

    refused = await client(REPORT, {"window": WINDOW}, token=token)
    # an invalid window is refused for permission first: nothing is said about the input
    backwards = await client(
        REPORT, {"window": {"start": WINDOW["end"], "end": WINDOW["start"]}}, token=token
    )

    for reply in (refused, backwards):
        assert reply.error_codes == ["FORBIDDEN"]
        assert "knowledge_manager role" in reply.errors[0]["message"]
        assert reply.body["data"] is None


async def test_admins_read_it_too(client: GraphQLClient, accounts: Accounts, seed: Seed) -> None:
    await seed.incident("Lonely outage", hours=2)
    admin = await accounts.create(Role.ADMIN)
    gaps = (await report(client, admin.token))["knowledgeGaps"]
    assert [g["downtimeSeconds"] for g in gaps["gaps"]] == [2 * HOUR]


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}, "window"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "window"),
        ({"start": "2025-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "window"),
        ({"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "window"),
        ({"start": "2026-02-01T00:00:00", "end": "2026-03-01T00:00:00Z"}, "window.start"),
        ({"start": "2026-02-01T00:00:00Z", "end": "9999-12-31T23:59:59-14:00"}, "window.end"),
    ],
)
async def test_bad_windows_are_refused_with_the_field_at_fault(
    client: GraphQLClient, manager: Account, window: dict[str, str], field: str
) -> None:
    refused = await client(REPORT, {"window": window}, token=manager.token)
    assert refused.error_codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["field"] == field


@pytest.mark.parametrize(
    "window",
    [
        None,
        {},
        {"start": "2026-02-01T00:00:00Z"},
        {"start": "yesterday", "end": "2026-03-01T00:00:00Z"},
        {"start": "'; DROP TABLE incidents; --", "end": "2026-03-01T00:00:00Z"},
        {"start": "2026-02-01T00:00:00Z" * 1000, "end": "2026-03-01T00:00:00Z"},
        {"start": 20260201, "end": "2026-03-01T00:00:00Z"},
        {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T00:00:00Z", "extra": 1},
        "2026-02-01/2026-03-01",
    ],
)
async def test_missing_and_malformed_windows_never_reach_the_report(
    client: GraphQLClient, manager: Account, window: Any
) -> None:
    refused = await client(REPORT, {"window": window}, token=manager.token)
    assert refused.status in (200, 400)
    assert refused.errors
    assert refused.body.get("data") is None
    assert "INTERNAL_SERVER_ERROR" not in refused.error_codes


@pytest.mark.parametrize("stale", [0, -1, 3651, 2**31 - 1])
async def test_stale_thresholds_are_bounded(
    client: GraphQLClient, manager: Account, stale: int
) -> None:
    refused = await client(REPORT, {"window": WINDOW, "stale": stale}, token=manager.token)
    assert refused.error_codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["field"] == "staleAfterDays"


@pytest.mark.parametrize("section", sorted(SECTIONS))
@pytest.mark.parametrize("first", [-1, 101, 2**31 - 1])
async def test_every_section_bounds_its_length(
    client: GraphQLClient, manager: Account, section: str, first: int
) -> None:
    query = SECTION.format(SECTIONS[section])
    refused = await client(query, {"window": WINDOW, "first": first}, token=manager.token)
    assert refused.error_codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["field"] == f"{section}.first"
    allowed = await client(query, {"window": WINDOW, "first": 100}, token=manager.token)
    assert allowed.data["knowledgeReport"] is not None


async def test_expensive_sections_cannot_be_repeated_through_aliases(
    client: GraphQLClient, seed: Seed, manager: Account
) -> None:
    """Each gaps or duplicates section may query the index fifty times: one full report
    fits the default query budget, the same sections asked twice over do not."""
    await seed.incident("Outage")
    again = "again: possibleDuplicates { overlap } gapsAgain: knowledgeGaps { totalGaps }"
    repeated = REPORT.replace("topArticles(first: $first)", again + " topArticles(first: $first)")

    allowed = await client(REPORT, {"window": WINDOW}, token=manager.token)
    refused = await client(repeated, {"window": WINDOW}, token=manager.token)

    assert allowed.data["knowledgeReport"]["knowledgeGaps"]["uncoveredIncidents"] == 1
    assert refused.body.get("data") is None, "a refused report must not run at all"
    [error] = refused.errors
    assert (error["extensions"]["code"], error["extensions"]["limit"]) == (
        "LIMIT_EXCEEDED",
        "maxQueryCost",
    )
    assert error["extensions"]["actual"] > error["extensions"]["max"] == Settings().max_query_cost


async def test_gap_incident_lists_are_bounded_too(
    client: GraphQLClient, seed: Seed, manager: Account
) -> None:
    query = """query($window: TimeWindow!) {
      knowledgeReport(window: $window) { knowledgeGaps { gaps { incidents(first: 101) { number } } } }
    }"""
    await seed.incident("Outage")
    refused = await client(query, {"window": WINDOW}, token=manager.token)
    assert refused.error_codes == ["BAD_USER_INPUT"]
    assert refused.errors[0]["extensions"]["field"] == "incidents.first"


async def test_hostile_text_comes_back_as_text(
    client: GraphQLClient, seed: Seed, manager: Account
) -> None:
    titles = [
        "<script>alert('x')</script> checkout blank page",
        "'; DROP TABLE incidents; -- checkout blank page",
        "Ünïcödé 🚨 checkout blank page \u202e",
    ]
    for title in titles:
        await seed.incident(title)
    found = await report(client, manager.token)
    shown = {i["title"] for g in found["knowledgeGaps"]["gaps"] for i in g["incidents"]}
    assert shown == set(titles)


async def test_gaps_cost_the_same_statements_at_any_length(
    client: GraphQLClient, db: Database, app: Starlette, seed: Seed, manager: Account
) -> None:
    services = [await seed.service(f"svc-{n}") for n in range(5)]
    for n, service_id in enumerate(services):
        await seed.incident(f"Unrelated outage number {n} of kind {n * 7}", service_id=service_id)
    await client(GAPS, {"window": WINDOW}, token=manager.token)  # the token's first use
    counts = {}
    for first in (1, 5):
        async with app.state.indexer.paused(), app.state.events.paused():
            with counting_statements(db) as statements:
                reply = await client(GAPS, {"window": WINDOW, "first": first}, token=manager.token)
                assert len(reply.data["knowledgeReport"]["knowledgeGaps"]["gaps"]) == first
        counts[first] = len(statements)
    # the token, the count, the incidents, then one batch of services
    assert counts[1] == counts[5] <= 4, counts


async def test_gap_incidents_are_real_incident_ids(
    client: GraphQLClient, seed: Seed, manager: Account
) -> None:
    incident = await seed.incident("Outage")
    reply = await client(GAPS, {"window": WINDOW}, token=manager.token)
    gap = reply.data["knowledgeReport"]["knowledgeGaps"]["gaps"][0]
    assert parse_global_id(gap["captureKnowledge"]["incidentId"]) == ("Incident", incident.id)
