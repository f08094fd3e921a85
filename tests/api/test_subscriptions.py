"""Subscriptions over a real websocket: a uvicorn server in this process serves the app,
subscribers speak graphql-transport-ws, and another client changes incidents over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from websockets.typing import Subprotocol

from api.app import create_app
from api.relay import to_global_id
from knowledge.accounts.roles import Role
from knowledge.config import Environment, Settings
from knowledge.db import Database
from knowledge.outbox import dispatch
from tests.support import Account, Accounts, GraphQLClient

RECEIVE_TIMEOUT = 10.0
STARTUP_TIMEOUT = 10.0
PROTOCOL = Subprotocol("graphql-transport-ws")

EVENT_FIELDS = "id kind message actor { username } incident { id number }"
EVENTS = f"""
subscription($filter: IncidentEventFilter) {{
  incidentEvents(filter: $filter) {{ {EVENT_FIELDS} }}
}}
"""
INCIDENT_FIELDS = "id number status version priority assignee { username }"
INCIDENT = f"subscription($id: ID!) {{ incident(id: $id) {{ {INCIDENT_FIELDS} }} }}"

RESULT = f"""
  __typename
  ... on Incident {{ {INCIDENT_FIELDS} }}
  ... on Error {{ message code field }}
"""
REPORT = (
    f"mutation($input: ReportIncidentInput!) {{ reportIncident(input: $input) {{ {RESULT} }} }}"
)
CLASSIFY = f"""
mutation($input: ClassifyIncidentInput!) {{ classifyIncident(input: $input) {{
  __typename
  ... on ClassifiedIncident {{ incident {{ {INCIDENT_FIELDS} }} }}
  ... on Error {{ message code field }}
}} }}
"""
ASSIGN = (
    f"mutation($input: AssignIncidentInput!) {{ assignIncident(input: $input) {{ {RESULT} }} }}"
)
CHANGE_STATUS = f"""
mutation($input: ChangeIncidentStatusInput!) {{ changeIncidentStatus(input: $input) {{ {RESULT} }} }}
"""
RESOLVE = (
    f"mutation($input: ResolveIncidentInput!) {{ resolveIncident(input: $input) {{ {RESULT} }} }}"
)
NOTE = """
mutation($input: AddWorkNoteInput!) { addWorkNote(input: $input) {
  __typename ... on IncidentEvent { id kind message } ... on Error { message code field } } }
"""
CREATE_SERVICE = """
mutation($input: CreateServiceInput!) { createService(input: $input) {
  __typename ... on Service { id slug } ... on Error { message code field } } }
"""


# --- the server ------------------------------------------------------------------------


class Served:
    """A running uvicorn server: its URLs and a GraphQL client over real HTTP."""

    def __init__(self, app: Starlette, port: int, http: httpx.AsyncClient) -> None:
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"
        self.client = GraphQLClient(http)

    async def catch_up(self) -> None:
        """Let the dispatcher deliver everything committed so far. It runs after each
        commit, but in the background: a subscription made before it ran would also hear
        events committed just before the subscription (harmless, but not what a test of
        "only what happens next" should race against)."""
        await self.app.state.events.dispatch()

    def subscriber_count(self) -> int:
        """How many subscriptions the app's event dispatcher is feeding."""
        return len(self.app.state.events._subscribers)

    async def until_subscribers(self, count: int) -> None:
        """A subscription only hears what happens after it registered with the dispatcher,
        and graphql-transport-ws does not acknowledge a subscribe: wait (bounded) until
        the server has registered it."""
        await until(lambda: self.subscriber_count() == count, f"{count} subscribers")


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll, bounded, for server state that no message announces."""
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while not condition():  # noqa: ASYNC110 - the state is the server's, not an Event
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[Served]:
    """Serve ``app`` (its lifespan already running) with uvicorn on a free local port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while not server.started:
                assert not task.done(), "uvicorn stopped while starting"
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield Served(app, port, http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, STARTUP_TIMEOUT)


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[Served]:
    async with serving(app) as running:
        yield running


# --- subscribers -----------------------------------------------------------------------


class Subscription:
    def __init__(self, ws: websockets.ClientConnection, field: str) -> None:
        self.ws = ws
        self.field = field

    async def message(self) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), RECEIVE_TIMEOUT))
        return reply

    async def end_or_next(self, seconds: float) -> dict[str, Any]:
        """The next message; {"type": "closed"} if the server closed the websocket,
        {"type": "silence"} if nothing came within ``seconds``."""
        try:
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), seconds))
        except websockets.ConnectionClosed:
            return {"type": "closed"}
        except TimeoutError:
            return {"type": "silence"}
        return reply

    async def next(self) -> dict[str, Any]:
        """The next result of operation 1, which must have no errors."""
        reply = await self.message()
        assert reply.get("type") == "next", reply
        assert reply["id"] == "1", reply
        assert not reply["payload"].get("errors"), reply
        value: dict[str, Any] = reply["payload"]["data"][self.field]
        return value


async def connect(
    served: Served, token: str | None, headers: dict[str, str] | None = None
) -> websockets.ClientConnection:  # the caller closes it
    ws = await websockets.connect(
        served.ws_url, subprotocols=[PROTOCOL], additional_headers=headers
    )
    payload = {} if token is None else {"Authorization": f"Bearer {token}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


@asynccontextmanager
async def subscribed(
    served: Served,
    token: str | None,
    query: str = EVENTS,
    variables: dict[str, Any] | None = None,
    *,
    field: str = "incidentEvents",
    wait: bool = True,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Subscription]:
    """A websocket with one subscription (id "1") that the server has registered."""
    await served.catch_up()
    before = served.subscriber_count()
    ws = await connect(served, token, headers)
    try:
        ack = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT))
        assert ack["type"] == "connection_ack", ack
        subscribe = {"query": query, "variables": variables or {}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        if wait:
            await served.until_subscribers(before + 1)
        yield Subscription(ws, field)
    finally:
        await ws.close()


async def refusal_code(served: Served, payload: dict[str, str]) -> int | None:
    """The close code of a websocket whose connection_init carried ``payload``."""
    async with websockets.connect(served.ws_url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT)
    return closed.value.rcvd.code if closed.value.rcvd else None


# --- the other client: mutations over HTTP ---------------------------------------------


class Desk:
    """Moves incidents through their lifecycle over HTTP, as another client would."""

    def __init__(self, client: GraphQLClient) -> None:
        self.client = client

    async def _run(self, query: str, field: str, token: str, **input: Any) -> dict[str, Any]:
        result: dict[str, Any] = (await self.client(query, {"input": input}, token=token)).data[
            field
        ]
        assert "code" not in result, result
        result.pop("__typename")
        return result

    async def report(self, who: Account, title: str, **input: Any) -> dict[str, Any]:
        return await self._run(REPORT, "reportIncident", who.token, title=title, **input)

    async def classify(
        self, who: Account, incident: dict[str, Any], **input: Any
    ) -> dict[str, Any]:
        result = await self._run(
            CLASSIFY,
            "classifyIncident",
            who.token,
            id=incident["id"],
            expectedVersion=incident["version"],
            **input,
        )
        classified: dict[str, Any] = result["incident"]
        return classified

    async def assign(self, who: Account, incident: dict[str, Any], to: Account) -> dict[str, Any]:
        return await self._run(
            ASSIGN,
            "assignIncident",
            who.token,
            id=incident["id"],
            expectedVersion=incident["version"],
            assigneeId=to_global_id("User", to.id),
        )

    async def change_status(
        self, who: Account, incident: dict[str, Any], status: str, reason: str = ""
    ) -> dict[str, Any]:
        return await self._run(
            CHANGE_STATUS,
            "changeIncidentStatus",
            who.token,
            id=incident["id"],
            expectedVersion=incident["version"],
            status=status,
            reason=reason,
        )

    async def resolve(self, who: Account, incident: dict[str, Any], notes: str) -> dict[str, Any]:
        return await self._run(
            RESOLVE,
            "resolveIncident",
            who.token,
            id=incident["id"],
            expectedVersion=incident["version"],
            code="FIXED",
            notes=notes,
        )

    async def note(self, who: Account, incident: dict[str, Any], text: str) -> dict[str, Any]:
        return await self._run(NOTE, "addWorkNote", who.token, incidentId=incident["id"], text=text)

    async def service(self, who: Account, slug: str) -> str:
        result = await self._run(
            CREATE_SERVICE, "createService", who.token, slug=slug, name=slug.title()
        )
        service_id: str = result["id"]
        return service_id


@pytest.fixture
def desk(served: Served) -> Desk:
    return Desk(served.client)


@pytest.fixture
async def reporter(accounts: Accounts) -> Account:
    return await accounts.create(Role.REPORTER, "rita")


@pytest.fixture
async def responder(accounts: Accounts) -> Account:
    return await accounts.create(Role.RESPONDER, "rex")


@pytest.fixture
async def viewer(accounts: Accounts) -> Account:
    return await accounts.create(Role.VIEWER, "vera")


def summary(event: dict[str, Any]) -> tuple[str, str, str | None, str]:
    actor = event["actor"]["username"] if event["actor"] else None
    return event["kind"], event["message"], actor, event["incident"]["number"]


# --- 1. the lifecycle, in order --------------------------------------------------------


async def test_a_subscriber_hears_an_incident_lifecycle_in_order(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    async with subscribed(served, viewer.token) as events:
        reported = await desk.report(reporter, "Checkout returns 502")
        classified = await desk.classify(responder, reported, impact="HIGH", urgency="HIGH")
        assigned = await desk.assign(responder, classified, to=responder)
        started = await desk.change_status(responder, assigned, "IN_PROGRESS")
        await desk.resolve(responder, started, notes="Restarted the payment gateway pods")

        received = [await events.next() for _ in range(5)]

    number = reported["number"]
    assert [summary(e) for e in received] == [
        ("REPORTED", "Checkout returns 502", "rita", number),
        ("CLASSIFIED", "P1 (high impact, high urgency)", "rex", number),
        ("ASSIGNED", "Assigned to rex", "rex", number),
        ("STATUS_CHANGED", "new -> in_progress", "rex", number),
        ("RESOLVED", "Restarted the payment gateway pods", "rex", number),
    ]
    assert {e["incident"]["id"] for e in received} == {reported["id"]}
    assert len({e["id"] for e in received}) == 5


async def test_events_arrive_in_commit_order_across_incidents(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    async with subscribed(served, responder.token) as events:
        first = await desk.report(reporter, "Disk full on db-1")
        second = await desk.report(reporter, "Login page slow")
        await desk.note(responder, first, "Rotating logs")
        await desk.change_status(responder, second, "ON_HOLD", reason="Waiting for the vendor")

        received = [summary(await events.next()) for _ in range(4)]

    assert received == [
        ("REPORTED", "Disk full on db-1", "rita", first["number"]),
        ("REPORTED", "Login page slow", "rita", second["number"]),
        ("NOTE", "Rotating logs", "rex", first["number"]),
        ("STATUS_CHANGED", "Waiting for the vendor", "rex", second["number"]),
    ]


# --- 2. incident(id) -------------------------------------------------------------------


async def test_the_incident_subscription_yields_each_new_state(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    incident = await desk.report(reporter, "Queue consumers stuck", impact="LOW", urgency="LOW")
    assert (incident["status"], incident["priority"]) == ("NEW", 5)
    variables = {"id": incident["id"]}
    async with subscribed(served, viewer.token, INCIDENT, variables, field="incident") as updates:
        changes: list[Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = [
            lambda i: desk.classify(responder, i, impact="HIGH", urgency="MEDIUM"),
            lambda i: desk.assign(responder, i, to=responder),
            lambda i: desk.change_status(responder, i, "IN_PROGRESS"),
            lambda i: desk.change_status(responder, i, "ON_HOLD"),
            lambda i: desk.change_status(responder, i, "IN_PROGRESS"),
            lambda i: desk.resolve(responder, i, notes="Redeployed the consumers"),
            lambda i: desk.change_status(responder, i, "CLOSED"),
        ]
        seen = [incident]
        for change in changes:
            changed = await change(seen[-1])
            pushed = await updates.next()
            assert pushed == changed
            seen.append(pushed)

    assert [(i["status"], i["version"]) for i in seen] == [
        ("NEW", 1),
        ("NEW", 2),
        ("NEW", 3),
        ("IN_PROGRESS", 4),
        ("ON_HOLD", 5),
        ("IN_PROGRESS", 6),
        ("RESOLVED", 7),
        ("CLOSED", 8),
    ]
    assert seen[1]["priority"] == 2
    assert seen[2]["assignee"] == {"username": "rex"}
    assert {i["id"] for i in seen} == {incident["id"]}


async def test_the_incident_subscription_ignores_other_incidents(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    watched = await desk.report(reporter, "Watched")
    other = await desk.report(reporter, "Other")
    variables = {"id": watched["id"]}
    async with subscribed(served, viewer.token, INCIDENT, variables, field="incident") as updates:
        await desk.change_status(responder, other, "IN_PROGRESS")
        await desk.report(reporter, "Yet another")
        changed = await desk.change_status(responder, watched, "ON_HOLD")
        assert await updates.next() == changed


# --- 3. filters ------------------------------------------------------------------------


async def test_an_incident_id_filter_lets_only_that_incident_through(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    watched = await desk.report(reporter, "Watched")
    other = await desk.report(reporter, "Other")
    variables = {"filter": {"incidentId": watched["id"]}}
    async with subscribed(served, viewer.token, EVENTS, variables) as events:
        other = await desk.classify(responder, other, impact="HIGH")
        await desk.report(reporter, "Unrelated")
        watched = await desk.classify(responder, watched, urgency="HIGH")
        first = await events.next()
        await desk.change_status(responder, other, "IN_PROGRESS")
        await desk.change_status(responder, watched, "CANCELLED")
        second = await events.next()

    assert (first["kind"], first["incident"]["id"]) == ("CLASSIFIED", watched["id"])
    assert (second["kind"], second["incident"]["id"]) == ("STATUS_CHANGED", watched["id"])


async def test_a_service_filter_lets_only_that_services_incidents_through(
    served: Served, desk: Desk, accounts: Accounts, reporter: Account, responder: Account
) -> None:
    manager = await accounts.create(Role.KNOWLEDGE_MANAGER)
    payments = await desk.service(manager, "payments")
    search = await desk.service(manager, "search")
    variables = {"filter": {"serviceId": payments}}
    async with subscribed(served, responder.token, EVENTS, variables) as events:
        await desk.report(reporter, "Search is down", serviceId=search)
        unclassified = await desk.report(reporter, "Something is off")
        await desk.report(reporter, "Refunds fail", serviceId=payments)
        first = await events.next()
        # Classifying an incident into the service brings its later events through.
        await desk.classify(responder, unclassified, serviceId=payments)
        second = await events.next()

    assert summary(first)[:2] == ("REPORTED", "Refunds fail")
    assert (second["kind"], second["incident"]["id"]) == ("CLASSIFIED", unclassified["id"])


async def test_a_priority_filter_lets_only_pressing_incidents_through(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    variables = {"filter": {"maxPriority": 2}}
    async with subscribed(served, viewer.token, EVENTS, variables) as events:
        minor = await desk.report(reporter, "Typo on a page", impact="LOW", urgency="LOW")  # P5
        await desk.report(reporter, "Slow reports", impact="MEDIUM", urgency="MEDIUM")  # P3
        await desk.report(reporter, "Orders lost", impact="HIGH", urgency="MEDIUM")  # P2
        first = await events.next()
        await desk.report(reporter, "Everything is down", impact="HIGH", urgency="HIGH")  # P1
        second = await events.next()
        minor = await desk.change_status(responder, minor, "IN_PROGRESS")
        # Reclassified as P1, the minor incident's events now pass.
        await desk.classify(responder, minor, impact="HIGH", urgency="HIGH")
        third = await events.next()

    assert summary(first)[:2] == ("REPORTED", "Orders lost")
    assert summary(second)[:2] == ("REPORTED", "Everything is down")
    assert (third["kind"], third["incident"]["id"]) == ("CLASSIFIED", minor["id"])


async def test_a_kinds_filter_lets_only_those_kinds_through(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    variables = {"filter": {"kinds": ["RESOLVED", "CLOSED"]}}
    async with subscribed(served, responder.token, EVENTS, variables) as events:
        incident = await desk.report(reporter, "Cache stampede")
        incident = await desk.change_status(responder, incident, "IN_PROGRESS")
        await desk.note(responder, incident, "Warming the cache")
        incident = await desk.resolve(responder, incident, notes="Added request coalescing")
        first = await events.next()
        await desk.change_status(responder, incident, "CLOSED")
        second = await events.next()

    assert summary(first) == ("RESOLVED", "Added request coalescing", "rex", incident["number"])
    assert summary(second)[0] == "CLOSED"


async def test_filters_combine(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    watched = await desk.report(reporter, "Watched")
    other = await desk.report(reporter, "Other")
    variables = {"filter": {"incidentId": watched["id"], "kinds": ["NOTE"]}}
    async with subscribed(served, responder.token, EVENTS, variables) as events:
        await desk.note(responder, other, "Not this incident")
        await desk.change_status(responder, watched, "IN_PROGRESS")
        await desk.note(responder, watched, "This one")
        event = await events.next()

    assert summary(event) == ("NOTE", "This one", "rex", watched["number"])


async def test_a_filter_with_a_bad_id_is_an_error(served: Served, viewer: Account) -> None:
    variables = {"filter": {"serviceId": to_global_id("User", 1)}}
    async with subscribed(served, viewer.token, EVENTS, variables, wait=False) as events:
        reply = await events.message()
        assert reply["type"] == "next", reply
        assert reply["payload"]["data"] is None
        [error] = reply["payload"]["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "Service" in error["message"]
        assert await events.message() == {"id": "1", "type": "complete"}
    assert served.subscriber_count() == 0


# --- 4. permissions --------------------------------------------------------------------


async def test_work_notes_reach_responders_but_not_viewers(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    async with (
        subscribed(served, viewer.token) as as_viewer,
        subscribed(served, reporter.token) as as_reporter,
        subscribed(served, None) as as_anonymous,
        subscribed(served, responder.token) as as_responder,
    ):
        incident = await desk.report(reporter, "Mail delayed")
        await desk.note(reporter, incident, "Reporter's own note")
        await desk.note(responder, incident, "Responder's note")
        await desk.change_status(responder, incident, "IN_PROGRESS")

        responder_saw = [summary(await as_responder.next())[0] for _ in range(4)]
        others_saw = [
            [summary(await sub.next())[0] for _ in range(2)]
            for sub in (as_viewer, as_reporter, as_anonymous)
        ]

    assert responder_saw == ["REPORTED", "NOTE", "NOTE", "STATUS_CHANGED"]
    assert others_saw == [["REPORTED", "STATUS_CHANGED"]] * 3


async def test_a_bad_token_in_connection_init_is_refused(served: Served, viewer: Account) -> None:
    assert await refusal_code(served, {"Authorization": "Bearer kfx_" + "x" * 43}) == 4403
    assert await refusal_code(served, {"Authorization": f"Basic {viewer.token}"}) == 4403
    assert served.subscriber_count() == 0


async def test_a_token_may_come_in_the_handshake_headers_instead(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    headers = {"Authorization": f"Bearer {responder.token}"}
    async with subscribed(served, None, headers=headers) as events:
        incident = await desk.report(reporter, "Printer on fire")
        await desk.note(responder, incident, "Only responders read this")
        received = [summary(await events.next()) for _ in range(2)]
    assert received[1] == ("NOTE", "Only responders read this", "rex", incident["number"])

    # A bad token in the headers is refused before the websocket is accepted.
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(served, None, {"Authorization": "Bearer kfx_" + "z" * 43})
    assert refused.value.response.status_code == 403


async def test_production_refuses_a_websocket_without_a_token(
    db: Database, settings: Settings, reporter: Account, responder: Account
) -> None:
    application = create_app(settings.replace(env=Environment.PRODUCTION), db=db)
    async with application.router.lifespan_context(application), serving(application) as served:
        assert await refusal_code(served, {}) == 4403
        assert await refusal_code(served, {"Authorization": "Bearer kfx_" + "y" * 43}) == 4403
        assert served.subscriber_count() == 0

        # With a token, the same server serves subscriptions.
        async with subscribed(served, responder.token) as events:
            incident = await Desk(served.client).report(reporter, "Production incident")
            event = await events.next()
        assert summary(event) == ("REPORTED", "Production incident", "rita", incident["number"])


# --- 5. fan-out ------------------------------------------------------------------------


async def test_every_subscriber_gets_each_event_and_leavers_do_not_break_delivery(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    async with subscribed(served, viewer.token) as staying:
        async with subscribed(served, responder.token) as leaving:
            incident = await desk.report(reporter, "Payments timing out")
            heard = [await sub.next() for sub in (staying, leaving)]
            assert heard[0] == heard[1]
            assert summary(heard[0])[:2] == ("REPORTED", "Payments timing out")
        # The leaver closed its websocket: the server forgets its subscription.
        await served.until_subscribers(1)

        incident = await desk.change_status(responder, incident, "IN_PROGRESS")
        assert summary(await staying.next())[0] == "STATUS_CHANGED"

        # A client that vanishes without a closing handshake does not hurt either.
        async with subscribed(served, responder.token) as vanishing:
            await desk.note(responder, incident, "Scaling out")
            assert summary(await vanishing.next())[0] == "NOTE"
            vanishing.ws.transport.abort()
            await served.until_subscribers(1)
        await desk.change_status(responder, incident, "ON_HOLD")
        assert summary(await staying.next())[0] == "STATUS_CHANGED"


async def test_completing_a_subscription_stops_it_and_keeps_the_others(
    served: Served, desk: Desk, viewer: Account, reporter: Account
) -> None:
    async with (
        subscribed(served, viewer.token) as first,
        subscribed(served, viewer.token) as second,
    ):
        await first.ws.send(json.dumps({"id": "1", "type": "complete"}))
        await served.until_subscribers(1)
        await desk.report(reporter, "After the first one stopped")
        assert summary(await second.next())[:2] == ("REPORTED", "After the first one stopped")
        # The first connection is still open and answers pings, but hears no more events.
        await first.ws.send(json.dumps({"type": "ping"}))
        assert await first.message() == {"type": "pong"}


# --- bugs found ------------------------------------------------------------------------


async def test_an_events_incident_is_as_it_is_after_that_event(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    query = "subscription { incidentEvents { kind incident { status version } } }"
    incident = await desk.report(reporter, "Stale")
    async with subscribed(served, responder.token, query) as events:
        incident = await desk.change_status(responder, incident, "IN_PROGRESS")
        first = await events.next()
        incident = await desk.change_status(responder, incident, "ON_HOLD")
        second = await events.next()
    assert first["incident"] == {"status": "IN_PROGRESS", "version": 2}
    assert second["incident"] == {"status": "ON_HOLD", "version": 3}  # is IN_PROGRESS, 2


async def test_a_filter_judges_each_event_by_the_incident_as_that_event_left_it(
    served: Served, desk: Desk, accounts: Accounts, reporter: Account, responder: Account
) -> None:
    """The dispatcher may read an event after the incident changed again (under load, or
    a batch of events at once): a reclassification must not reach back to earlier events."""
    manager = await accounts.create(Role.KNOWLEDGE_MANAGER)
    payments = await desk.service(manager, "payments")
    minor = await desk.report(reporter, "Minor", impact="LOW", urgency="LOW")  # P5
    major = await desk.report(
        reporter, "Major", impact="HIGH", urgency="HIGH", serviceId=payments
    )  # P1
    pressing = {"filter": {"maxPriority": 2}}
    of_payments = {"filter": {"serviceId": payments}}
    async with (
        subscribed(served, responder.token, EVENTS, pressing) as by_priority,
        subscribed(served, responder.token, EVENTS, of_payments) as by_service,
    ):
        async with served.app.state.events.paused():  # one batch, read after all of it
            minor = await desk.change_status(responder, minor, "IN_PROGRESS")  # still P5
            await desk.classify(responder, minor, impact="HIGH", urgency="HIGH", serviceId=payments)
            major = await desk.change_status(responder, major, "IN_PROGRESS")  # still P1
            await desk.classify(responder, major, impact="LOW", urgency="LOW")  # now P5
        # Stop marker: a pressing incident of payments, which both filters let through.
        await desk.report(reporter, "Marker", impact="HIGH", urgency="HIGH", serviceId=payments)
        heard = {"priority": [await by_priority.next() for _ in range(3)]}
        heard["service"] = [await by_service.next() for _ in range(4)]

    def seen(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        names = {minor["id"]: "minor", major["id"]: "major"}
        return [(e["kind"], names.get(e["incident"]["id"], "marker")) for e in events]

    assert seen(heard["priority"]) == [
        ("CLASSIFIED", "minor"),  # not its status change, made while it was P5
        ("STATUS_CHANGED", "major"),  # made while it was P1, though P5 by the time it was read
        ("REPORTED", "marker"),
    ]
    assert seen(heard["service"]) == [
        ("CLASSIFIED", "minor"),  # not its status change, made before it was in payments
        ("STATUS_CHANGED", "major"),
        ("CLASSIFIED", "major"),  # still in payments
        ("REPORTED", "marker"),
    ]


async def test_an_event_shows_the_incident_as_it_left_it_though_it_changed_again_since(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    """Two quick changes, both committed before the dispatcher reads either (as under load,
    or in one batch): the first event still shows the incident as the first change left it."""
    query = f"subscription {{ incidentEvents {{ kind incident {{ {INCIDENT_FIELDS} }} }} }}"
    incident = await desk.report(reporter, "Checkout latency", impact="LOW", urgency="LOW")
    async with subscribed(served, responder.token, query) as events:
        async with served.app.state.events.paused():
            classified = await desk.classify(responder, incident, impact="HIGH", urgency="HIGH")
            assigned = await desk.assign(responder, classified, to=responder)
        first, second = await events.next(), await events.next()

    assert first == {"kind": "CLASSIFIED", "incident": classified}
    assert (classified["priority"], classified["version"], classified["assignee"]) == (1, 2, None)
    assert second == {"kind": "ASSIGNED", "incident": assigned}
    assert (assigned["version"], assigned["assignee"]) == (3, {"username": responder.username})


async def test_the_incident_subscription_shows_each_change_as_it_left_the_incident(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    incident = await desk.report(reporter, "Cache stampede", impact="LOW", urgency="LOW")
    variables = {"id": incident["id"]}
    async with subscribed(served, viewer.token, INCIDENT, variables, field="incident") as updates:
        async with served.app.state.events.paused():
            classified = await desk.classify(responder, incident, impact="HIGH", urgency="LOW")
            working = await desk.change_status(responder, classified, "IN_PROGRESS")
        pushed = [await updates.next(), await updates.next()]
    assert pushed == [classified, working]
    assert [(i["status"], i["version"]) for i in pushed] == [("NEW", 2), ("IN_PROGRESS", 3)]


async def test_the_incident_subscription_shows_the_current_timeline(
    served: Served, desk: Desk, reporter: Account, responder: Account
) -> None:
    query = "subscription($id: ID!) { incident(id: $id) { version timeline { kind message } } }"
    incident = await desk.report(reporter, "Stale timeline")
    variables = {"id": incident["id"]}
    async with subscribed(served, responder.token, query, variables, field="incident") as updates:
        incident = await desk.change_status(responder, incident, "IN_PROGRESS")
        first = await updates.next()
        await desk.change_status(responder, incident, "ON_HOLD", reason="Vendor")
        second = await updates.next()
    assert [e["kind"] for e in first["timeline"]] == ["REPORTED", "STATUS_CHANGED"]
    assert second["version"] == 3
    assert second["timeline"][-1] == {"kind": "STATUS_CHANGED", "message": "Vendor"}


async def test_a_viewer_following_an_incident_is_not_told_of_work_notes(
    served: Served, desk: Desk, viewer: Account, reporter: Account, responder: Account
) -> None:
    incident = await desk.report(reporter, "Quiet")
    variables = {"id": incident["id"]}
    async with subscribed(served, viewer.token, INCIDENT, variables, field="incident") as updates:
        await desk.note(responder, incident, "Nothing a viewer may read")
        changed = await desk.change_status(responder, incident, "IN_PROGRESS")
        assert await updates.next() == changed  # gets the unchanged incident (version 1) first


SILENCE = 3.0  # how long a subscriber that was dropped waits to be told so


async def test_a_subscriber_that_falls_behind_is_not_left_silently_deaf(
    served: Served,
    desk: Desk,
    reporter: Account,
    responder: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatch, "QUEUE_SIZE", 2)  # queues are made at subscribe()
    async with subscribed(served, responder.token) as events:
        async with served.app.state.events.paused():  # three events, delivered in one batch
            for n in range(3):
                await desk.report(reporter, f"Burst {n}")
        await desk.report(reporter, "After the burst")
        # It either keeps up after all, or its subscription visibly ends: never silence.
        expected = ["Burst 0", "Burst 1", "Burst 2", "After the burst"]
        received: list[str] = []
        while len(received) < len(expected):
            reply = await events.end_or_next(SILENCE)
            if reply["type"] != "next" or reply["payload"].get("errors"):
                break
            received.append(reply["payload"]["data"]["incidentEvents"]["message"])
    assert received == expected[: len(received)]
    if received != expected:  # actually: ["Burst 0", "Burst 1"], then silence
        assert reply["type"] in {"next", "error", "complete", "closed"}, (received, reply)
