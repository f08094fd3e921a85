"""Every worked GraphQL example in docs/*.md runs against the real app, with a result.

A worked example is a ```graphql block preceded by ``<!-- example: NAME -->``; a ```json
block right after it holds example variables, and ``<!-- response: NAME -->`` before a
```json block marks a response the example gives. Each name has a scenario below that
sets the scene, runs the example (with the documented variables, ids replaced by the
test's own) and checks the answer means something; documented responses must be
exactly what the app answers. Subscriptions run over a real websocket.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from graphql import parse, validate
from starlette.applications import Starlette

from api.relay import decode_global_id, to_global_id
from api.schema import schema
from knowledge import migrate
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.articles import service as articles
from knowledge.articles.service import ArticleDraft, Transition
from knowledge.config import Settings
from knowledge.db import Database, utcnow
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Level, ResolutionCode
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.service import KnownErrorDraft
from tests.api.test_subscriptions import serving, subscribed
from tests.support import Account, Accounts, GraphQLClient

DOCS = migrate.PROJECT_ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARK = re.compile(r"<!--\s*(example|response):\s*([\w-]+)\s*-->\s*$")


@dataclasses.dataclass
class Example:
    name: str
    where: str
    query: str
    variables: dict[str, Any] = dataclasses.field(default_factory=dict)
    responses: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def variables_with(self, **changes: Any) -> dict[str, Any]:
        """The documented variables with some values replaced (nested dicts merged)."""

        def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
            merged = copy.deepcopy(base)
            for key, value in extra.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = merge(merged[key], value)
                else:
                    merged[key] = value
            return merged

        return merge(self.variables, changes)


def read_examples(files: list[Path]) -> tuple[dict[str, Example], list[str]]:
    """The named examples in ``files``, and the problems found (unnamed blocks...)."""
    found: dict[str, Example] = {}
    problems: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        previous: Example | None = None
        previous_end = -1
        for fence in FENCE.finditer(text):
            language, body = fence.group(1), fence.group(2)
            line = text.count("\n", 0, fence.start()) + 1
            where = f"{path.name}:{line}"
            before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = MARK.search(before)
            if language == "graphql":
                if mark is None or mark.group(1) != "example":
                    problems.append(f"{where}: a graphql block without <!-- example: NAME -->")
                    continue
                name = mark.group(2)
                if name in found:
                    problems.append(f"{where}: example {name!r} is named twice")
                previous = found[name] = Example(name, where, body)
            elif language == "json" and mark is not None and mark.group(1) == "response":
                if mark.group(2) not in found:
                    problems.append(f"{where}: response for unknown example {mark.group(2)!r}")
                else:
                    found[mark.group(2)].responses.append(json.loads(body))
            elif language == "json" and previous is not None:
                between = text[previous_end : fence.start()]
                if not between.strip():  # right after its query: the variables
                    previous.variables = json.loads(body)
            previous_end = fence.end()
    return found, problems


EXAMPLES, PROBLEMS = read_examples(sorted(DOCS.glob("*.md")))


def test_every_graphql_block_in_the_docs_is_a_named_example() -> None:
    assert EXAMPLES, "no worked examples found in docs/"
    assert PROBLEMS == []


def test_every_example_has_a_scenario_here() -> None:
    assert sorted(EXAMPLES) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_is_valid_against_the_schema(name: str) -> None:
    errors = validate(schema._schema, parse(EXAMPLES[name].query))
    assert errors == [], f"{EXAMPLES[name].where}: {errors}"


def the_id_of(value: str, type_name: str) -> None:
    """A documented id is a real-looking id of the right type."""
    decoded = decode_global_id(value)
    assert decoded is not None, value
    assert decoded[0] == type_name, value


# --- the scene ------------------------------------------------------------------------

FIX_SLUG = "upstream-connection-pool-exhausted"
FIX_BODY = """## Symptoms
Checkout answers 502 Bad Gateway; the proxy logs
`upstream prematurely closed connection while reading response header`.

## Resolution
Raise the upstream connection pool size and restart the proxy.
"""


@dataclasses.dataclass
class Scene:
    client: GraphQLClient
    app: Starlette
    db: Database
    reporter: Account
    responder: Account
    other_responder: Account
    fix_id: int
    known_error_id: int
    known_error_key: str

    async def run(
        self, example: Example, variables: dict[str, Any], who: Account | None = None
    ) -> dict[str, Any]:
        """The example's data; there must be no top-level errors."""
        token = (who or self.responder).token
        return (await self.client(example.query, variables, token=token)).data

    async def report(self, **changes: Any) -> dict[str, Any]:
        """An incident reported through the documented example."""
        example = EXAMPLES["report-incident"]
        data = await self.run(example, example.variables_with(input=changes), self.reporter)
        incident: dict[str, Any] = data["reportIncident"]
        assert incident["__typename"] == "Incident", incident
        return incident


@pytest.fixture
async def scene(
    client: GraphQLClient, app: Starlette, db: Database, accounts: Accounts, settings: Settings
) -> Scene:
    """A published fix, a known error, and a past incident the fix resolved."""
    reporter = await accounts.create(Role.REPORTER, "remy")
    responder = await accounts.create(Role.RESPONDER, "rosa")
    other = await accounts.create(Role.RESPONDER, "omar")
    now = utcnow()
    async with db.transaction() as session:
        fix = await articles.create(
            session=session, principal=SYSTEM, slug=FIX_SLUG,
            draft=ArticleDraft(title="Upstream connection pool exhausted behind the proxy",
                               body=FIX_BODY, summary="502s from the proxy under load",
                               tags=["proxy", "checkout"]),
        )  # fmt: skip
        await articles.transition(
            session=session, principal=SYSTEM, article_id=fix.id, action=Transition.PUBLISH
        )
        known_error = await known_errors.create(
            session=session, principal=SYSTEM,
            draft=KnownErrorDraft(
                title="Proxy keep-alive shorter than the upstream's: 502 Bad Gateway",
                symptoms="502 Bad Gateway at checkout after idle periods",
                workaround="Restart the proxy",
            ),
        )  # fmt: skip
        past = await incidents.report(
            session=session, principal=SYSTEM, policy=settings.incident_policy(), now=now,
            title="Checkout 502 Bad Gateway after deploy",
            description="Customers get 502 at checkout",
            error_text="upstream prematurely closed connection while reading response header",
            impact=Level.HIGH, urgency=Level.HIGH,
        )  # fmt: skip
        await incidents.resolve(
            session=session, principal=SYSTEM, now=now, incident_id=past.id,
            expected_version=past.version, code=ResolutionCode.FIXED,
            notes="Raised the pool size", article_id=fix.id,
        )  # fmt: skip
    await app.state.indexer.catch_up()
    return Scene(
        client, app, db, reporter, responder, other, fix.id, known_error.id, known_error.key
    )


# --- one scenario per example -----------------------------------------------------------

Scenario = Callable[[Scene, Example], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(run: Scenario) -> Scenario:
        SCENARIOS[name] = run
        return run

    return register


@scenario("who-am-i")
async def who_am_i(scene: Scene, example: Example) -> None:
    data = await scene.run(example, {})
    assert data["me"] == {
        "role": "RESPONDER", "isAuthenticated": True, "user": {"username": "rosa"},
    }  # fmt: skip


@scenario("suggest-while-typing")
async def suggest_while_typing(scene: Scene, example: Example) -> None:
    found = (await scene.run(example, example.variables, scene.reporter))["suggestResolutions"]

    assert 1 <= len(found) <= example.variables["first"]
    best = found[0]
    assert best["rank"] == 1
    assert best["article"]["slug"] == FIX_SLUG
    assert best["knownError"] is None
    assert 0 < best["score"] <= 1
    assert {"text", "signature", "history"} <= {s["name"] for s in best["signals"]}
    assert best["explanation"]
    assert [e["incident"]["number"] for e in best["evidence"]] == ["INC-000001"]
    assert any(s["knownError"] for s in found), "the known error is suggested too"


@scenario("report-incident")
async def report_incident(scene: Scene, example: Example) -> None:
    first = await scene.report()
    second = await scene.report()  # the same outage, reported twice

    assert (first["number"], first["status"], first["priority"]) == ("INC-000002", "NEW", 2)
    the_id_of(first["id"], "Incident")
    assert first["suggestions"][0]["article"]["slug"] == FIX_SLUG
    assert first["suggestions"][0]["reason"].startswith("title +")
    assert first["possibleDuplicates"] == []
    duplicate = second["possibleDuplicates"][0]
    assert duplicate["incident"]["number"] == first["number"]
    assert duplicate["similarity"] == pytest.approx(1.0)
    # The error field's line is the signature, whether or not it says "error"
    assert (duplicate["sameSignature"], duplicate["reason"]) == (True, "same error signature")


@scenario("incident-suggestions")
async def incident_suggestions(scene: Scene, example: Example) -> None:
    reported = await scene.report()
    data = await scene.run(example, {"number": reported["number"]}, scene.reporter)

    shown = data["incident"]

    def summary(links: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(s["rank"], s["score"], s["reason"], (s["article"] or {}).get("slug"),
                 (s["knownError"] or {}).get("key")) for s in links]  # fmt: skip

    assert summary(shown["suggestions"]) == summary(reported["suggestions"])
    assert shown["suggestions"][0]["article"]["slug"] == FIX_SLUG
    # a number that names nothing is no error: the incident is null
    assert await scene.run(example, {"number": "INC-999999"}) == {"incident": None}
    assert shown["possibleDuplicates"] == []


@scenario("accept-suggestion")
async def accept_suggestion(scene: Scene, example: Example) -> None:
    the_id_of(example.variables["input"]["incidentId"], "Incident")
    the_id_of(example.variables["input"]["articleId"], "Article")
    reported = await scene.report()
    assert (reported["number"], reported["version"]) == ("INC-000002", 1)
    # given: another responder judged the incident first
    other = await scene.run(example, example.variables_with(input={
        "incidentId": reported["id"], "articleId": None,
        "knownErrorId": to_global_id("KnownError", scene.known_error_id),
    }), scene.other_responder)  # fmt: skip
    assert other["acceptSuggestion"]["__typename"] == "Incident"

    # when: we send what we read before that
    variables = example.variables_with(
        input={"incidentId": reported["id"], "articleId": to_global_id("Article", scene.fix_id)}
    )
    stale = await scene.run(example, variables)

    # then: nothing is written, and the conflict says where the incident is now
    assert stale == example.responses[0]
    current = stale["acceptSuggestion"]["currentVersion"]
    retried = example.variables_with(input={**variables["input"], "expectedVersion": current})
    accepted = (await scene.run(example, retried))["acceptSuggestion"]
    assert accepted["__typename"] == "Incident"
    assert accepted["version"] == current + 1
    judged = {(link["relation"], (link["article"] or {}).get("slug"),
               (link["knownError"] or {}).get("key")) for link in accepted["links"]}  # fmt: skip
    assert {("ACCEPTED", FIX_SLUG, None), ("ACCEPTED", None, scene.known_error_key)} <= judged


@scenario("reject-suggestion")
async def reject_suggestion(scene: Scene, example: Example) -> None:
    reported = await scene.report()
    known_error = to_global_id("KnownError", scene.known_error_id)
    assert any(s["knownError"] for s in reported["suggestions"])
    data = await scene.run(example, {"input": {
        "incidentId": reported["id"], "expectedVersion": reported["version"],
        "knownErrorId": known_error, "reason": "Keep-alive is already longer",
    }})  # fmt: skip

    rejected = data["rejectSuggestion"]
    assert rejected["__typename"] == "Incident"
    assert {
        "relation": "REJECTED", "reason": "Keep-alive is already longer", "article": None,
        "knownError": {"key": scene.known_error_key},
    } in rejected["links"]  # fmt: skip


STATUS = """mutation($input: ChangeIncidentStatusInput!) { changeIncidentStatus(input: $input) {
  __typename ... on Error { code message } } }"""
NOTE = """mutation($input: AddWorkNoteInput!) { addWorkNote(input: $input) {
  __typename ... on Error { code message } } }"""


@scenario("follow-incident")
async def follow_incident(scene: Scene, example: Example) -> None:
    reported = await scene.report()
    async with (
        serving(scene.app) as served,
        subscribed(served, scene.reporter.token, example.query, {"id": reported["id"]},
                   field="incident") as subscription,
    ):  # fmt: skip
        changed = await scene.client(STATUS, {"input": {
            "id": reported["id"], "expectedVersion": reported["version"], "status": "IN_PROGRESS",
        }}, token=scene.responder.token)  # fmt: skip
        assert changed.data["changeIncidentStatus"]["__typename"] == "Incident"
        update = await subscription.next()
    assert (update["number"], update["status"]) == (reported["number"], "IN_PROGRESS")
    assert update["version"] == reported["version"] + 1


@scenario("incident-events")
async def incident_events(scene: Scene, example: Example) -> None:
    reported = await scene.report()
    filter = {"incidentId": reported["id"], "kinds": ["NOTE"]}
    async with (
        serving(scene.app) as served,
        subscribed(served, scene.responder.token, example.query, {"filter": filter},
                   field="incidentEvents") as subscription,
    ):  # fmt: skip
        noted = await scene.client(NOTE, {"input": {
            "incidentId": reported["id"], "text": "Pool at 100%: raising it",
        }}, token=scene.other_responder.token)  # fmt: skip
        assert noted.data["addWorkNote"]["__typename"] == "IncidentEvent"
        event = await subscription.next()
    assert (event["kind"], event["message"]) == ("NOTE", "Pool at 100%: raising it")
    assert event["actor"] == {"username": "omar"}
    assert event["incident"]["number"] == reported["number"]


@scenario("page-through-incidents")
async def page_through_incidents(scene: Scene, example: Example) -> None:
    numbers = [
        (await scene.report(title=f"Checkout slow, report {n}"))["number"] for n in (1, 2, 3)
    ]
    pages, after = [], None
    while True:
        data = await scene.run(example, {"first": 2, "after": after}, scene.reporter)
        page = data["incidents"]
        pages.append([edge["node"]["number"] for edge in page["edges"]])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]

    assert pages == [numbers[::-1][:2], numbers[::-1][2:]], "newest first; resolved ones left out"


@scenario("search-knowledge")
async def search_knowledge(scene: Scene, example: Example) -> None:
    first = (await scene.run(example, {"query": "502 bad gateway", "first": 1}))["search"]
    assert first["totalCount"] == 2
    assert first["pageInfo"]["hasNextPage"] is True
    second = (await scene.run(example, {
        "query": "502 bad gateway", "first": 1, "after": first["pageInfo"]["endCursor"],
    }))["search"]  # fmt: skip
    assert second["pageInfo"]["hasNextPage"] is False

    hits = [first["edges"][0]["node"], second["edges"][0]["node"]]
    assert {h["__typename"] for h in hits} == {"ArticleHit", "KnownErrorHit"}
    article = next(h for h in hits if h["__typename"] == "ArticleHit")
    assert article["article"]["slug"] == FIX_SLUG
    assert any("<mark" in f for h in article["highlights"] for f in h["fragments"])
    assert {"value": "proxy", "count": 1} in first["facets"]["tags"]


@scenario("resolve-incident")
async def resolve_incident(scene: Scene, example: Example) -> None:
    the_id_of(example.variables["input"]["id"], "Incident")
    the_id_of(example.variables["input"]["resolvedBy"]["articleId"], "Article")
    reported = await scene.report()
    variables = example.variables_with(input={
        "id": reported["id"], "expectedVersion": reported["version"],
        "resolvedBy": {"articleId": to_global_id("Article", scene.fix_id)},
    })  # fmt: skip

    assert await scene.run(example, variables) == example.responses[0]

    variables["input"]["notes"] = "Raised the pool size"
    resolved = (await scene.run(example, variables))["resolveIncident"]
    assert resolved == {
        "__typename": "Incident", "number": reported["number"], "status": "RESOLVED",
        "version": reported["version"] + 1, "resolutionCode": "FIXED",
        "resolutionNotes": "Raised the pool size",
    }  # fmt: skip
    stale = (await scene.run(example, variables))["resolveIncident"]
    assert (stale["__typename"], stale["currentVersion"]) == ("ConflictError", resolved["version"])


@scenario("knowledge-report")
async def knowledge_report(scene: Scene, example: Example) -> None:
    # given two incidents of one outage resolved without knowledge (besides the past one
    # the fix resolved)
    gap = [await scene.report(title=f"Checkout 502, report {n}") for n in (1, 2)]
    async with scene.db.transaction() as session:
        for reported in gap:
            incident = await incidents.get_by_number(
                session=session, principal=SYSTEM, number=reported["number"]
            )
            assert incident is not None
            await incidents.resolve(
                session=session, principal=SYSTEM, now=utcnow(), incident_id=incident.id,
                expected_version=incident.version, code=ResolutionCode.FIXED,
                notes="Restarted the proxy",
            )  # fmt: skip
    manager = await Accounts(scene.db).create(Role.KNOWLEDGE_MANAGER, "kim")
    now = utcnow()
    window = {"start": (now - dt.timedelta(days=1)).isoformat(),
              "end": (now + dt.timedelta(days=1)).isoformat()}  # fmt: skip

    found = (await scene.run(example, {"window": window}, manager))["knowledgeReport"]

    gaps = found["knowledgeGaps"]
    assert gaps["uncoveredIncidents"] == 2
    [outage] = gaps["gaps"]
    assert (outage["count"], outage["reason"]) == (2, "same error signature")
    assert {i["number"] for i in outage["incidents"]} == {g["number"] for g in gap}
    assert outage["captureKnowledge"]["mutation"] == "captureKnowledge"
    assert outage["captureKnowledge"]["incidentId"] in {g["id"] for g in gap}
    assert outage["downtimeSeconds"] >= 0
    assert found["topArticles"] == [
        {"incidentsResolved": 1, "downtimeSavedSeconds": 0.0, "article": {"slug": FIX_SLUG}}
    ], "no saving claimed without three uncovered incidents to compare with"
    assert found["staleArticles"] == {"total": 0, "articles": []}
    assert (found["poorPerformers"], found["possibleDuplicates"]) == ([], [])
    # a responder may not read it
    refused = await scene.client(example.query, {"window": window}, token=scene.responder.token)
    assert refused.error_codes == ["FORBIDDEN"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_every_example_gives_a_meaningful_answer(scene: Scene, name: str) -> None:
    await SCENARIOS[name](scene, EXAMPLES[name])
