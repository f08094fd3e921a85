"""The incident lifecycle through GraphQL: detect, classify, assess, plan, execute, review."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from api.relay import to_global_id
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.catalog import service as catalog
from knowledge.clock import ManualClock
from knowledge.db import Database
from tests.support import Account, Accounts, GraphQLClient

FIELDS = """
  id number title status impact urgency priority category version reopenCount
  detectedAt acknowledgedAt resolvedAt closedAt resolutionCode resolutionNotes
  service { slug } team { slug } assignee { username } reporter { username }
  sla { responseDueAt resolutionDueAt responseBreached resolutionBreached breached }
  timeline { kind message actor { username } }
  links { relation article { slug } knownError { key } incident { number } }
"""
RESULT = f"""
  __typename
  ... on Incident {{ {FIELDS} }}
  ... on Error {{ message code field }}
  ... on ConflictError {{ currentVersion }}
"""


def mutation(name: str, input_type: str, body: str = RESULT) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {body} }} }}"


REPORT = mutation("reportIncident", "ReportIncidentInput")
ASSIGN = mutation("assignIncident", "AssignIncidentInput")
STATUS = mutation("changeIncidentStatus", "ChangeIncidentStatusInput")
RESOLVE = mutation("resolveIncident", "ResolveIncidentInput")
REOPEN = mutation("reopenIncident", "ReopenIncidentInput")
CLASSIFY = mutation(
    "classifyIncident",
    "ClassifyIncidentInput",
    f"""__typename ... on ClassifiedIncident {{ incident {{ {FIELDS} }}
        suggestions {{ rank score article {{ slug }} }} }}
        ... on Error {{ message code field }} ... on ConflictError {{ currentVersion }}""",
)
NOTE = mutation(
    "addWorkNote", "AddWorkNoteInput",
    "__typename ... on IncidentEvent { kind message } ... on Error { message code field }",
)  # fmt: skip
REVIEW = mutation(
    "saveIncidentReview", "SaveIncidentReviewInput",
    "__typename ... on PostIncidentReview { summary actionItems version } ... on Error { message code field }",
)  # fmt: skip
CAPTURE = mutation(
    "captureKnowledge", "CaptureKnowledgeInput",
    "__typename ... on Article { slug status title body } ... on Error { message code field }",
)  # fmt: skip
INCIDENT = f"query($id: ID!) {{ incident(id: $id) {{ {FIELDS} }} }}"


@pytest.fixture
async def responder(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "rosa")


@pytest.fixture
async def reporter(accounts: Accounts) -> Account:
    return await accounts.create(Role.REPORTER, "remy")


async def call(client: GraphQLClient, document: str, token: str, **input: Any) -> dict[str, Any]:
    data = (await client(document, {"input": input}, token=token)).data
    result: dict[str, Any] = next(iter(data.values()))
    return result


async def report(client: GraphQLClient, token: str, **fields: Any) -> dict[str, Any]:
    return await call(client, REPORT, token, **{"title": "Checkout returns 502", **fields})


async def published_article(db: Database, title: str, body: str) -> int:
    async with db.transaction() as session:
        article = await articles.create(
            session=session, principal=SYSTEM, draft=ArticleDraft(title=title, body=body)
        )
        await articles.transition(
            session=session, principal=SYSTEM, article_id=article.id, action=Transition.PUBLISH
        )
    return article.id


async def test_the_whole_lifecycle_from_report_to_close(
    client: GraphQLClient, db: Database, app: Any, reporter: Account, responder: Account,
    accounts: Accounts, clock: ManualClock,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        service = await catalog.create(
            session=session, principal=SYSTEM, slug="checkout", name="Checkout"
        )
    fix = await published_article(
        db, "Upstream connection pool exhausted behind the proxy",
        "## Symptoms\nThe proxy answers 502 Bad Gateway.\n## Resolution\nRaise the pool size.",
    )  # fmt: skip
    await app.state.indexer.catch_up()

    # Detect
    incident = await report(
        client, reporter.token, description="Customers see 502 Bad Gateway at checkout",
        serviceId=to_global_id("Service", service.id), errorText="502 Bad Gateway",
    )  # fmt: skip
    assert incident["number"] == "INC-000001"
    assert (incident["status"], incident["priority"], incident["version"]) == ("NEW", 3, 1)
    assert incident["reporter"] == {"username": "remy"}
    gid = incident["id"]

    # Classify: high impact and urgency make it a P1, with suggestions in the payload
    classified = await call(client, CLASSIFY, responder.token, id=gid, expectedVersion=1,
                            impact="HIGH", urgency="HIGH", category="Networking")  # fmt: skip
    assert classified["__typename"] == "ClassifiedIncident"
    assert classified["incident"]["priority"] == 1
    assert classified["incident"]["category"] == "networking"
    suggested = [s["article"]["slug"] for s in classified["suggestions"]]
    assert suggested[:1] == ["upstream-connection-pool-exhausted-behind-the-proxy"]

    # Assess and plan: assign, start work
    sre = (await client('mutation { createTeam(input: {slug: "sre", name: "SRE"}) { ... on Team { id } } }',
                        token=(await accounts.create(Role.ADMIN)).token)).data["createTeam"]["id"]  # fmt: skip
    assigned = await call(client, ASSIGN, responder.token, id=gid, expectedVersion=2, teamId=sre,
                          assigneeId=to_global_id("User", responder.id))  # fmt: skip
    assert (assigned["team"], assigned["assignee"]) == ({"slug": "sre"}, {"username": "rosa"})
    clock.advance(minutes=5)
    started = await call(
        client, STATUS, responder.token, id=gid, expectedVersion=3, status="IN_PROGRESS"
    )
    assert started["acknowledgedAt"] is not None
    note = await call(
        client, NOTE, responder.token, incidentId=gid, text="Pool at 100% on all nodes"
    )
    assert note == {
        "__typename": "IncidentEvent",
        "kind": "NOTE",
        "message": "Pool at 100% on all nodes",
    }

    # Execute and resolve with the article that restored service
    clock.advance(minutes=40)
    resolved = await call(
        client, RESOLVE, responder.token, id=gid, expectedVersion=4, code="FIXED",
        notes="Raised the upstream pool to 200", resolvedBy={"articleId": to_global_id("Article", fix)},
    )  # fmt: skip
    assert (resolved["status"], resolved["resolutionCode"]) == ("RESOLVED", "FIXED")
    # The suggestion stored at classification stays beside what actually resolved it
    fix_slug = {"slug": "upstream-connection-pool-exhausted-behind-the-proxy"}
    assert [(link["relation"], link["article"]) for link in resolved["links"]] == [
        ("SUGGESTED", fix_slug), ("RESOLVED_BY", fix_slug)]  # fmt: skip
    assert resolved["sla"]["breached"] is False

    # Review the P1, then close
    review = await call(client, REVIEW, responder.token, incidentId=gid, summary="Pool too small",
                        rootCause="Default pool of 10", actionItems=["Alert at 80% pool use"])  # fmt: skip
    assert review["actionItems"] == ["Alert at 80% pool use"]
    closed = await call(client, STATUS, responder.token, id=gid, expectedVersion=5, status="CLOSED")
    assert closed["status"] == "CLOSED"
    assert closed["closedAt"] is not None
    kinds = [e["kind"] for e in closed["timeline"]]
    assert kinds == ["REPORTED", "SUGGESTION_SHOWN", "CLASSIFIED", "SUGGESTION_SHOWN", "ASSIGNED",
                     "STATUS_CHANGED", "NOTE", "RESOLVED", "REVIEWED", "CLOSED"]  # fmt: skip
    # People did everything but suggesting, which the engine did on its own account
    actors = {e["kind"]: e["actor"] for e in closed["timeline"]}
    assert actors.pop("SUGGESTION_SHOWN") is None
    assert {a["username"] for a in actors.values()} == {"remy", "rosa"}
    # The resolved article now counts the incident it resolved.
    stats = await client(
        f'{{ article(id: "{to_global_id("Article", fix)}") {{ stats {{ resolvedIncidents }} }} }}'
    )
    assert stats.data["article"]["stats"] == {"resolvedIncidents": 1}


INVALID: list[tuple[list[tuple[str, dict[str, Any]]], str, dict[str, Any]]] = [
    ([], STATUS, {"status": "RESOLVED"}),
    ([], STATUS, {"status": "CLOSED"}),
    ([], STATUS, {"status": "NEW"}),
    ([], REOPEN, {"reason": "still broken"}),
    ([(STATUS, {"status": "CANCELLED"})], STATUS, {"status": "IN_PROGRESS"}),
    ([(STATUS, {"status": "CANCELLED"})], RESOLVE, {"code": "FIXED", "notes": "n"}),
    ([(RESOLVE, {"code": "FIXED", "notes": "n"})], STATUS, {"status": "ON_HOLD"}),
    ([(RESOLVE, {"code": "FIXED", "notes": "n"})], RESOLVE, {"code": "FIXED", "notes": "n"}),
    ([(RESOLVE, {"code": "FIXED", "notes": "n"})], CLASSIFY, {"impact": "LOW"}),
    ([(RESOLVE, {"code": "FIXED", "notes": "n"})], ASSIGN, {}),
    ([(RESOLVE, {"code": "FIXED", "notes": "n"}), (STATUS, {"status": "CLOSED"})], REOPEN,
     {"reason": "again"}),
    ([(RESOLVE, {"code": "FIXED", "notes": "n"}), (STATUS, {"status": "CLOSED"})], STATUS,
     {"status": "IN_PROGRESS"}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "document", "change"), INVALID)
async def test_every_invalid_transition_is_a_typed_error(
    client: GraphQLClient, responder: Account,
    path: list[tuple[str, dict[str, Any]]], document: str, change: dict[str, Any],
) -> None:  # fmt: skip
    incident = await report(client, responder.token)
    version = incident["version"]
    for step, fields in path:
        moved = await call(
            client, step, responder.token, id=incident["id"], expectedVersion=version, **fields
        )
        version = (moved.get("incident") or moved)["version"]
    result = await call(
        client, document, responder.token, id=incident["id"], expectedVersion=version, **change
    )
    assert result["__typename"] == "InvalidTransitionError", result
    after = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert after["version"] == version, "a refused transition changes nothing"


async def test_reopening_counts_and_clears_the_resolution_time(
    client: GraphQLClient, responder: Account
) -> None:
    incident = await report(client, responder.token)
    resolved = await call(client, RESOLVE, responder.token, id=incident["id"], expectedVersion=1,
                          code="WORKAROUND", notes="Restarted")  # fmt: skip
    reopened = await call(client, REOPEN, responder.token, id=incident["id"],
                          expectedVersion=resolved["version"], reason="Came back after an hour")  # fmt: skip
    assert (reopened["status"], reopened["reopenCount"], reopened["resolvedAt"]) == (
        "IN_PROGRESS",
        1,
        None,
    )
    assert reopened["timeline"][-1] == {"kind": "REOPENED", "message": "Came back after an hour",
                                        "actor": {"username": "rosa"}}  # fmt: skip


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.VIEWER, set()), (Role.REPORTER, {"report", "note-own"}),
     (Role.RESPONDER, {"report", "note-own", "note-other", "classify", "assign", "status", "resolve"}),
     (Role.ADMIN, {"report", "note-own", "note-other", "classify", "assign", "status", "resolve"})],
)  # fmt: skip
async def test_each_role_may_do_what_its_rank_allows(
    client: GraphQLClient, accounts: Accounts, role: Role, allowed: set[str]
) -> None:
    account = await accounts.create(role)
    other = await report(client, (await accounts.create(Role.REPORTER)).token)
    outcomes = {"report": await report(client, account.token)}
    own = outcomes["report"] if outcomes["report"]["__typename"] == "Incident" else other
    outcomes["note-own"] = await call(client, NOTE, account.token, incidentId=own["id"], text="n")
    outcomes["note-other"] = await call(
        client, NOTE, account.token, incidentId=other["id"], text="n"
    )
    outcomes["classify"] = await call(
        client, CLASSIFY, account.token, id=other["id"], expectedVersion=1, impact="LOW"
    )
    fresh = (await client(INCIDENT, {"id": other["id"]})).data["incident"]["version"]
    outcomes["assign"] = await call(
        client, ASSIGN, account.token, id=other["id"], expectedVersion=fresh
    )
    fresh = (await client(INCIDENT, {"id": other["id"]})).data["incident"]["version"]
    outcomes["status"] = await call(
        client, STATUS, account.token, id=other["id"], expectedVersion=fresh, status="ON_HOLD"
    )
    fresh = (await client(INCIDENT, {"id": other["id"]})).data["incident"]["version"]
    outcomes["resolve"] = await call(client, RESOLVE, account.token, id=other["id"], expectedVersion=fresh,
                                     code="NO_FAULT", notes="n")  # fmt: skip
    granted = {
        name for name, result in outcomes.items() if result["__typename"] != "PermissionDeniedError"
    }
    assert granted == allowed


async def test_sla_due_times_and_breaches_follow_the_clock(
    client: GraphQLClient, responder: Account, clock: ManualClock
) -> None:
    p1 = await report(client, responder.token, title="Payments down", impact="HIGH", urgency="HIGH")
    p5 = await report(
        client, responder.token, title="Typo on status page", impact="LOW", urgency="LOW"
    )
    assert p1["sla"] == {"responseDueAt": p1["sla"]["responseDueAt"], "resolutionDueAt": p1["sla"]["resolutionDueAt"],
                         "responseBreached": False, "resolutionBreached": False, "breached": False}  # fmt: skip
    breached = "query($b: Boolean) { incidents(filter: {breached: $b}) { nodes { number sla { responseBreached resolutionBreached } } } }"

    clock.advance(minutes=16)  # past the P1 response target (15 min), not the P5 one (1 day)
    late = (await client(breached, {"b": True})).data["incidents"]["nodes"]
    assert late == [
        {"number": p1["number"], "sla": {"responseBreached": True, "resolutionBreached": False}}
    ]
    on_time = (await client(breached, {"b": False})).data["incidents"]["nodes"]
    assert [n["number"] for n in on_time] == [p5["number"]]

    # Acknowledging late stays a breach; resolving within 4 hours meets the resolution target.
    started = await call(
        client, STATUS, responder.token, id=p1["id"], expectedVersion=1, status="IN_PROGRESS"
    )
    assert started["sla"]["responseBreached"] is True
    clock.advance(hours=1)
    resolved = await call(
        client, RESOLVE, responder.token, id=p1["id"], expectedVersion=2, code="FIXED", notes="ok"
    )
    clock.advance(days=2)
    assert resolved["sla"]["resolutionBreached"] is False
    assert (await client(INCIDENT, {"id": p1["id"]})).data["incident"]["sla"][
        "resolutionBreached"
    ] is False
    assert (await client(INCIDENT, {"id": p5["id"]})).data["incident"]["sla"][
        "responseBreached"
    ] is True


async def test_concurrent_updates_give_one_winner_and_lose_nothing(
    client: GraphQLClient, responder: Account
) -> None:
    incident = await report(client, responder.token)
    results = await asyncio.gather(*(
        call(client, CLASSIFY, responder.token, id=incident["id"], expectedVersion=1, category=f"c{n}")
        for n in range(5)
    ))  # fmt: skip
    winners = [r for r in results if r["__typename"] == "ClassifiedIncident"]
    assert len(winners) == 1
    assert sorted(r["__typename"] for r in results if r not in winners) == ["ConflictError"] * 4
    assert all(r["currentVersion"] in (None, 2) for r in results if r not in winners)
    stored = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert (stored["category"], stored["version"]) == (winners[0]["incident"]["category"], 2)
    assert [e["kind"] for e in stored["timeline"]] == ["REPORTED", "CLASSIFIED"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"title": ""}, "input.title"), ({"title": "t" * 201}, "input.title"),
     ({"title": "line\nbreak"}, "input.title"), ({"description": "d" * 20_001}, "input.description"),
     ({"errorText": "\x00"}, "input.errorText"), ({"serviceId": "bogus"}, "input.serviceId"),
     ({"serviceId": to_global_id("Service", 404)}, "input.serviceId"),
     ({"detectedAt": "2999-01-01T00:00:00+00:00"}, "input.detectedAt"),
     ({"detectedAt": "2024-01-01T00:00:00"}, "input.detectedAt")],
)  # fmt: skip
async def test_bad_reports_are_refused_and_nothing_is_stored(
    client: GraphQLClient, reporter: Account, fields: dict[str, Any], field: str
) -> None:
    result = await report(client, reporter.token, **fields)
    assert result["__typename"] in ("ValidationError", "NotFoundError")
    assert result["field"] == field
    assert (await client("{ incidents { nodes { id } } }")).data["incidents"]["nodes"] == []


async def test_resolving_checks_what_it_names(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    incident = await report(client, responder.token)
    async with db.transaction() as session:
        draft_id = (
            await articles.create(
                session=session, principal=SYSTEM, draft=ArticleDraft(title="WIP")
            )
        ).id
    cases = [
        ({"code": "FIXED", "notes": ""}, "input.notes"),
        ({"code": "DUPLICATE", "notes": "dup"}, "input.resolvedBy"),
        ({"code": "FIXED", "notes": "n", "resolvedBy": {"articleId": to_global_id("Article", draft_id)}},
         "input.resolvedBy.articleId"),
        ({"code": "FIXED", "notes": "n", "resolvedBy": {"incidentId": incident["id"]}}, "input.resolvedBy.incidentId"),
        ({"code": "FIXED", "notes": "n", "resolvedBy": {"articleId": to_global_id("Article", draft_id),
                                                        "knownErrorId": to_global_id("KnownError", 1)}},
         "input.resolvedBy"),
        ({"code": "FIXED", "notes": "n", "resolvedBy": {"knownErrorId": to_global_id("KnownError", 77)}},
         "input.resolvedBy.knownErrorId"),
    ]  # fmt: skip
    for fields, field in cases:
        result = await call(
            client, RESOLVE, responder.token, id=incident["id"], expectedVersion=1, **fields
        )
        assert result["__typename"] in ("ValidationError", "NotFoundError"), fields
        assert result["field"] == field
    duplicate_of = await report(client, responder.token, title="First report")
    result = await call(client, RESOLVE, responder.token, id=incident["id"], expectedVersion=1,
                        code="DUPLICATE", notes="Same outage", resolvedBy={"incidentId": duplicate_of["id"]})  # fmt: skip
    assert result["links"][0]["relation"] == "DUPLICATE_OF"
    assert result["links"][0]["incident"] == {"number": duplicate_of["number"]}


async def test_reviews_are_for_resolved_p1_and_p2_incidents(
    client: GraphQLClient, responder: Account
) -> None:
    p3 = await report(client, responder.token)
    p1 = await report(client, responder.token, impact="HIGH", urgency="HIGH")
    early = await call(
        client, REVIEW, responder.token, incidentId=p1["id"], summary="s", rootCause="r"
    )
    assert early["__typename"] == "InvalidTransitionError"
    for incident in (p3, p1):
        await call(
            client,
            RESOLVE,
            responder.token,
            id=incident["id"],
            expectedVersion=1,
            code="FIXED",
            notes="n",
        )
    low = await call(
        client, REVIEW, responder.token, incidentId=p3["id"], summary="s", rootCause="r"
    )
    assert low["__typename"] == "InvalidTransitionError"
    first = await call(
        client, REVIEW, responder.token, incidentId=p1["id"], summary="s", rootCause="r"
    )
    assert first["version"] == 1
    blind = await call(
        client, REVIEW, responder.token, incidentId=p1["id"], summary="s2", rootCause="r"
    )
    assert (blind["__typename"], blind["field"]) == ("ValidationError", "input.expectedVersion")
    updated = await call(client, REVIEW, responder.token, incidentId=p1["id"], summary="s2", rootCause="r",
                         expectedVersion=1)  # fmt: skip
    assert (updated["summary"], updated["version"]) == ("s2", 2)


async def test_capturing_knowledge_drafts_an_article_for_review_once(
    client: GraphQLClient, responder: Account
) -> None:
    incident = await report(client, responder.token, title="Ledger sync stuck", description="Sync job hangs",
                            errorText="TimeoutError: ledger did not answer in 30s")  # fmt: skip
    too_early = await call(client, CAPTURE, responder.token, incidentId=incident["id"])
    assert too_early["__typename"] == "InvalidTransitionError"
    await call(client, RESOLVE, responder.token, id=incident["id"], expectedVersion=1, code="FIXED",
               notes="Restarted the ledger consumer")  # fmt: skip
    article = await call(client, CAPTURE, responder.token, incidentId=incident["id"])
    assert (article["status"], article["title"]) == ("IN_REVIEW", "Ledger sync stuck")
    assert "Restarted the ledger consumer" in article["body"]
    assert "TimeoutError: ledger did not answer in 30s" in article["body"]
    again = await call(client, CAPTURE, responder.token, incidentId=incident["id"])
    assert again["__typename"] == "InvalidTransitionError"
    queue = await client(
        "{ articles(filter: {statuses: [IN_REVIEW]}) { nodes { slug } } }", token=responder.token
    )
    assert queue.data["articles"]["nodes"] == [{"slug": article["slug"]}]


async def test_incidents_are_found_by_number_and_filtered(
    client: GraphQLClient, responder: Account
) -> None:
    first = await report(client, responder.token, impact="HIGH", urgency="HIGH")
    await report(client, responder.token)
    by_number = await client('{ incident(number: "inc-000001") { id } }')
    assert by_number.data["incident"] == {"id": first["id"]}
    assert (await client('{ incident(number: "INC-999999") { id } }')).data["incident"] is None
    assert (await client('{ incident(number: "garbage") { id } }')).data["incident"] is None
    p1 = await client("{ incidents(filter: {priorities: [1]}) { nodes { number } } }")
    assert p1.data["incidents"]["nodes"] == [{"number": "INC-000001"}]
    newest_first = await client("{ incidents { nodes { number } } }")
    assert [n["number"] for n in newest_first.data["incidents"]["nodes"]] == [
        "INC-000002",
        "INC-000001",
    ]
    bad = await client("{ incidents(filter: {priorities: [9]}) { nodes { number } } }")
    assert bad.error_codes == ["BAD_USER_INPUT"]


async def test_metrics_are_served_over_graphql(
    client: GraphQLClient, responder: Account, clock: ManualClock
) -> None:
    incident = await report(client, responder.token, impact="HIGH", urgency="HIGH")
    clock.advance(minutes=6)
    await call(
        client, STATUS, responder.token, id=incident["id"], expectedVersion=1, status="IN_PROGRESS"
    )
    clock.advance(minutes=54)
    await call(
        client,
        RESOLVE,
        responder.token,
        id=incident["id"],
        expectedVersion=2,
        code="FIXED",
        notes="n",
    )
    query = """query($w: TimeWindow!) { incidentMetrics(window: $w, groupBy: PRIORITY) {
        key count resolved mttaSeconds mttrMeanSeconds slaBreachRate resolvedByKnowledgeRate } }"""
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    window = {"start": start.isoformat(), "end": (start + dt.timedelta(days=3)).isoformat()}
    groups = (await client(query, {"w": window})).data["incidentMetrics"]
    assert groups == [{"key": "P1", "count": 1, "resolved": 1, "mttaSeconds": 360.0,
                       "mttrMeanSeconds": 3600.0, "slaBreachRate": 0.0, "resolvedByKnowledgeRate": 0.0}]  # fmt: skip
    naive = await client(
        query, {"w": {"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"}}
    )
    assert naive.error_codes == ["BAD_USER_INPUT"]


async def test_cancelled_incidents_do_not_count_as_breached(
    client: GraphQLClient, responder: Account, clock: ManualClock
) -> None:
    incident = await report(client, responder.token, impact="HIGH", urgency="HIGH")
    await call(
        client, STATUS, responder.token, id=incident["id"], expectedVersion=1, status="CANCELLED"
    )
    clock.advance(days=2)
    stored = (await client(INCIDENT, {"id": incident["id"]})).data["incident"]
    assert stored["sla"]["breached"] is False
    breached = await client("{ incidents(filter: {breached: true}) { nodes { number } } }")
    assert breached.data["incidents"]["nodes"] == []


async def test_reopening_forgets_what_did_not_resolve_it(
    client: GraphQLClient, db: Database, responder: Account
) -> None:
    fix = await published_article(db, "Restart the cache", "## Resolution\nRestart it.")
    incident = await report(client, responder.token)
    await call(client, RESOLVE, responder.token, id=incident["id"], expectedVersion=1, code="FIXED",
               notes="n", resolvedBy={"articleId": to_global_id("Article", fix)})  # fmt: skip
    reopened = await call(
        client, REOPEN, responder.token, id=incident["id"], expectedVersion=2, reason="Back"
    )
    assert reopened["links"] == []
    stats = await client(
        f'{{ article(id: "{to_global_id("Article", fix)}") {{ stats {{ resolvedIncidents }} }} }}'
    )
    assert stats.data["article"]["stats"] == {"resolvedIncidents": 0}


async def test_assigning_a_team_keeps_the_responder_unless_cleared(
    client: GraphQLClient, responder: Account, accounts: Accounts
) -> None:
    admin = await accounts.create(Role.ADMIN)
    team = (await client('mutation { createTeam(input: {slug: "db", name: "DB"}) { ... on Team { id } } }',
                         token=admin.token)).data["createTeam"]["id"]  # fmt: skip
    incident = await report(client, responder.token)
    me = to_global_id("User", responder.id)
    first = await call(
        client, ASSIGN, responder.token, id=incident["id"], expectedVersion=1, assigneeId=me
    )
    second = await call(
        client, ASSIGN, responder.token, id=incident["id"], expectedVersion=2, teamId=team
    )
    assert (second["team"], second["assignee"]) == ({"slug": "db"}, {"username": "rosa"})
    cleared = await call(
        client, ASSIGN, responder.token, id=incident["id"], expectedVersion=3, assigneeId=None
    )
    assert (cleared["team"], cleared["assignee"]) == ({"slug": "db"}, None)
    assert first["assignee"] == {"username": "rosa"}
