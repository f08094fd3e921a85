"""``POST /webhooks/alertmanager``: Prometheus Alertmanager deliveries open incidents.

Every test posts Alertmanager v4 webhook bodies to the real app over HTTP with
an alert source's token, and checks the outcome through GraphQL or the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from api.cli import main
from knowledge.accounts.principal import SYSTEM
from knowledge.accounts.roles import Role
from knowledge.accounts.tokens import generate_secret
from knowledge.alerts import service as alerts
from knowledge.catalog import service as catalog
from knowledge.clock import ManualClock
from knowledge.db import Database
from knowledge.incidents.models import Incident, IncidentEvent
from knowledge.numbering import Counter
from knowledge.outbox.models import OutboxEntry
from tests.conftest import http_client
from tests.support import Accounts, GraphQLClient

WEBHOOK = "/webhooks/alertmanager"
NOT_ENDED = "0001-01-01T00:00:00Z"  # what Alertmanager sends as endsAt while an alert fires
INCIDENTS = """
{ incidents { nodes {
  id number title status impact urgency priority detectedAt alertFingerprint alertOccurrences
  version service { slug } sla { responseDueAt resolutionDueAt } timeline { kind message }
} } }
"""
RESOLVE = """
mutation($input: ResolveIncidentInput!) {
  resolveIncident(input: $input) {
    __typename
    ... on Incident { status }
    ... on Error { message field }
  }
}
"""

DISK_FULL = "5f3c9a1e7b2d4c60"
HIGH_ERRORS = "8a41c2f09e6d3b17"
LATENCY = "c07e2b9d51a4f386"


# --- Alertmanager webhook bodies -------------------------------------------------------


def rfc3339(moment: dt.datetime) -> str:
    """As Alertmanager writes times (Go's RFC 3339 with nanoseconds, in UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "417Z"


def alert(
    *,
    starts_at: dt.datetime,
    fingerprint: str = HIGH_ERRORS,
    status: str = "firing",
    alertname: str = "PaymentsHighErrorRate",
    severity: str | None = "critical",
    service: str = "payments",
    instance: str = "payments-api-7d9f8c6b5-x2lqp:8080",
    summary: str = "Payments API is failing 12% of requests",
    ends_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One alert of a delivery, as Alertmanager renders it from a Prometheus rule."""
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            **({"severity": severity} if severity is not None else {}),
            "instance": instance,
            "service": service,
            "job": "kubernetes-pods",
            "namespace": "prod",
            "prometheus": "monitoring/k8s",
        },
        "annotations": {
            "summary": summary,
            "description": (
                f"{instance} has answered more than 5% of requests with 5xx for the last 5 minutes."
            ),
            "runbook_url": f"https://runbooks.example.com/{service}/{alertname.lower()}",
        },
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at) if ends_at else NOT_ENDED,
        "generatorURL": (
            "http://prometheus-k8s-0.monitoring.svc:9090/graph?g0.expr="
            "sum+by+%28instance%29+%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D"
            "%29%29+%2F+sum+by+%28instance%29+%28rate%28http_requests_total%5B5m%5D%29%29"
            "+%3E+0.05&g0.tab=1"
        ),
        "fingerprint": fingerprint,
    }


def delivery(*items: dict[str, Any]) -> dict[str, Any]:
    """The webhook body around ``items``, with the group fields Alertmanager computes."""
    common_labels = dict(items[0]["labels"])
    common_annotations = dict(items[0]["annotations"])
    for item in items[1:]:
        common_labels = {k: v for k, v in common_labels.items() if item["labels"].get(k) == v}
        common_annotations = {
            k: v for k, v in common_annotations.items() if item["annotations"].get(k) == v
        }
    group_labels = {"alertname": common_labels["alertname"]} if "alertname" in common_labels else {}
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    group_key = f'{{}}/{{severity=~"critical|warning"}}:{{{matchers}}}'
    firing = any(item["status"] == "firing" for item in items)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "knownfix",
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": "http://alertmanager-main-0.monitoring.svc:9093",
        "alerts": list(items),
    }


# --- fixtures and helpers --------------------------------------------------------------


@dataclasses.dataclass
class Source:
    token: str
    default_service: str


@pytest.fixture
async def source(db: Database) -> Source:
    """Services ``payments`` and ``platform``; a source whose alerts default to ``platform``."""
    async with db.transaction() as session:
        await catalog.create(session=session, principal=SYSTEM, slug="payments", name="Payments")
        platform = await catalog.create(
            session=session, principal=SYSTEM, slug="platform", name="Platform"
        )
        _, secret = await alerts.create_source(
            session=session,
            principal=SYSTEM,
            slug="prometheus-prod",
            name="Prometheus (prod)",
            default_service_id=platform.id,
        )
    return Source(token=secret, default_service="platform")


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(app) as client:
        yield client


async def post(http: httpx.AsyncClient, token: str | None, body: Any) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if isinstance(body, bytes):
        return await http.post(
            WEBHOOK, content=body, headers={**headers, "Content-Type": "application/json"}
        )
    return await http.post(WEBHOOK, json=body, headers=headers)


async def deliver(http: httpx.AsyncClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await post(http, token, body)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def incidents(client: GraphQLClient) -> list[dict[str, Any]]:
    """Every incident, oldest first."""
    nodes: list[dict[str, Any]] = (await client(INCIDENTS)).data["incidents"]["nodes"]
    return nodes[::-1]


def kinds(incident: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in incident["timeline"]]


async def stored(db: Database) -> dict[str, int]:
    """How many rows the webhook could have written."""
    async with db.read() as session:
        return {
            model.__tablename__: int(
                await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            )
            for model in (Incident, IncidentEvent, OutboxEntry, Counter)
        }


async def resolve(client: GraphQLClient, token: str, incident: dict[str, Any]) -> None:
    update = {
        "id": incident["id"],
        "expectedVersion": incident["version"],
        "code": "FIXED",
        "notes": "Rolled back payments-api to 2024.05.2; error rate back under 0.1%.",
    }
    result = (await client(RESOLVE, {"input": update}, token=token)).data["resolveIncident"]
    assert result == {"__typename": "Incident", "status": "RESOLVED"}


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- 1. firing alerts open incidents ---------------------------------------------------


async def test_a_firing_alert_opens_a_p1_incident_for_its_service(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    started = clock.now() - dt.timedelta(minutes=4)

    result = await deliver(http, source.token, delivery(alert(starts_at=started)))

    assert result == {
        "opened": ["INC-000001"],
        "deduplicated": [],
        "recovered": [],
        "unmatched": 0,
    }
    [incident] = await incidents(client)
    assert incident["number"] == "INC-000001"
    assert incident["title"] == "Payments API is failing 12% of requests"
    assert (incident["impact"], incident["urgency"], incident["priority"]) == ("HIGH", "HIGH", 1)
    assert incident["status"] == "NEW"
    assert incident["service"] == {"slug": "payments"}
    assert incident["alertFingerprint"] == HIGH_ERRORS
    assert incident["alertOccurrences"] == 1
    assert moment(incident["detectedAt"]) == started, "startsAt, to the microsecond"
    # P1 targets (15 minutes to respond, 4 hours to resolve) count from when it started.
    assert moment(incident["sla"]["responseDueAt"]) == started + dt.timedelta(minutes=15)
    assert moment(incident["sla"]["resolutionDueAt"]) == started + dt.timedelta(hours=4)
    assert kinds(incident) == ["REPORTED", "ALERT_FIRED"]
    assert incident["timeline"][1]["message"] == "PaymentsHighErrorRate fired"


@pytest.mark.parametrize(
    ("severity", "impact", "urgency", "priority"),
    [
        ("critical", "HIGH", "HIGH", 1),
        ("warning", "MEDIUM", "MEDIUM", 3),
        ("info", "LOW", "LOW", 5),
        ("Critical", "HIGH", "HIGH", 1),
        (None, "MEDIUM", "MEDIUM", 3),
    ],
)
async def test_the_severity_label_sets_impact_urgency_and_priority(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    source: Source,
    clock: ManualClock,
    severity: str | None,
    impact: str,
    urgency: str,
    priority: int,
) -> None:
    firing = alert(starts_at=clock.now() - dt.timedelta(minutes=1), severity=severity)
    await deliver(http, source.token, delivery(firing))
    [incident] = await incidents(client)
    assert (incident["impact"], incident["urgency"], incident["priority"]) == (
        impact,
        urgency,
        priority,
    )


async def test_an_alert_naming_an_unknown_service_goes_to_the_sources_default_service(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    firing = alert(
        starts_at=clock.now() - dt.timedelta(minutes=2),
        fingerprint=DISK_FULL,
        alertname="NodeFilesystemAlmostFull",
        severity="warning",
        service="node-exporter",
        instance="ip-10-0-3-17.eu-west-1.compute.internal:9100",
        summary="Filesystem /var/lib/docker on ip-10-0-3-17 has 4% space left",
    )
    await deliver(http, source.token, delivery(firing))
    [incident] = await incidents(client)
    assert incident["service"] == {"slug": source.default_service}
    assert incident["title"] == "Filesystem /var/lib/docker on ip-10-0-3-17 has 4% space left"


async def test_an_alert_without_a_summary_is_titled_by_its_alertname(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    firing = alert(starts_at=clock.now() - dt.timedelta(minutes=2))
    del firing["annotations"]["summary"]
    await deliver(http, source.token, delivery(firing))
    [incident] = await incidents(client)
    assert incident["title"] == "PaymentsHighErrorRate"


# Alert text that Alertmanager sends happily but the incident rules would refuse as is.
ODD_TEXT = {
    # Rule files edited on Windows carry CRLF into multi-line summary templates.
    "CRLF in summary": lambda a: a["annotations"].update(
        summary="Payments API is failing 12% of requests\r\non payments-api-7d9f8c6b5-x2lqp"
    ),
    # A template whose labels are missing renders to blanks.
    "blank summary": lambda a: a["annotations"].update(summary="  "),
    # Label values have no length limit in Prometheus.
    "long category label": lambda a: a["labels"].update(
        category="payments/card-processing/" + "acquirer-" * 10
    ),
}


@pytest.mark.parametrize("oddity", ODD_TEXT.values(), ids=ODD_TEXT.keys())
async def test_alert_text_the_incident_rules_refuse_is_normalised_not_a_server_error(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    source: Source,
    clock: ManualClock,
    oddity: Any,
) -> None:
    firing = alert(starts_at=clock.now() - dt.timedelta(minutes=2))
    oddity(firing)
    reply = await post(http, source.token, delivery(firing))
    assert reply.status_code == 200, reply.text
    [incident] = await incidents(client)
    title = incident["title"]
    assert title.strip()
    assert "\r" not in title
    assert "\n" not in title
    assert title.split()[0] in ("Payments", "PaymentsHighErrorRate")


# --- 2. deduplication ------------------------------------------------------------------


async def test_the_same_alert_firing_again_counts_on_the_open_incident(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    body = delivery(alert(starts_at=clock.now() - dt.timedelta(minutes=4)))
    assert (await deliver(http, source.token, body))["opened"] == ["INC-000001"]
    clock.advance(minutes=5)  # Alertmanager's repeat_interval

    again = await deliver(http, source.token, body)

    assert again == {"opened": [], "deduplicated": ["INC-000001"], "recovered": [], "unmatched": 0}
    [incident] = await incidents(client)
    assert incident["alertOccurrences"] == 2
    assert kinds(incident) == ["REPORTED", "ALERT_FIRED", "ALERT_FIRED"]
    assert incident["timeline"][2]["message"] == "PaymentsHighErrorRate fired again (2 times)"
    assert incident["status"] == "NEW"


async def test_after_the_incident_is_resolved_the_alert_opens_a_new_one(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    source: Source,
    clock: ManualClock,
    accounts: Accounts,
) -> None:
    responder = await accounts.create(Role.RESPONDER)
    first = delivery(alert(starts_at=clock.now() - dt.timedelta(minutes=4)))
    await deliver(http, source.token, first)
    [incident] = await incidents(client)
    clock.advance(minutes=20)
    await resolve(client, responder.token, incident)
    clock.advance(hours=2)

    regression = delivery(alert(starts_at=clock.now() - dt.timedelta(minutes=1)))
    result = await deliver(http, source.token, regression)

    assert result["opened"] == ["INC-000002"]
    assert result["deduplicated"] == []
    old, new = await incidents(client)
    assert (old["number"], old["status"], old["alertOccurrences"]) == ("INC-000001", "RESOLVED", 1)
    assert (new["number"], new["status"], new["alertOccurrences"]) == ("INC-000002", "NEW", 1)
    assert new["alertFingerprint"] == old["alertFingerprint"] == HIGH_ERRORS
    assert kinds(old) == ["REPORTED", "ALERT_FIRED", "RESOLVED"]
    assert kinds(new) == ["REPORTED", "ALERT_FIRED"]


# --- 3. resolved alerts ----------------------------------------------------------------


async def test_a_resolved_alert_notes_the_recovery_and_leaves_the_incident_open(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    started = clock.now() - dt.timedelta(minutes=4)
    await deliver(http, source.token, delivery(alert(starts_at=started)))
    clock.advance(minutes=10)
    recovered = alert(
        starts_at=started, status="resolved", ends_at=clock.now() - dt.timedelta(seconds=30)
    )

    result = await deliver(http, source.token, delivery(recovered))

    assert result == {"opened": [], "deduplicated": [], "recovered": ["INC-000001"], "unmatched": 0}
    [incident] = await incidents(client)
    assert incident["status"] == "NEW", "a person resolves the incident, not the alert"
    assert incident["alertOccurrences"] == 1
    assert kinds(incident) == ["REPORTED", "ALERT_FIRED", "ALERT_RESOLVED"]
    assert incident["timeline"][2]["message"] == "PaymentsHighErrorRate recovered"


async def test_a_resolved_alert_without_an_open_incident_is_unmatched(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock, db: Database
) -> None:
    before = await stored(db)
    recovered = alert(
        starts_at=clock.now() - dt.timedelta(hours=1),
        status="resolved",
        ends_at=clock.now() - dt.timedelta(minutes=1),
    )

    result = await deliver(http, source.token, delivery(recovered))

    assert result == {"opened": [], "deduplicated": [], "recovered": [], "unmatched": 1}
    assert await incidents(client) == []
    assert await stored(db) == before


# --- 4. grouped deliveries -------------------------------------------------------------


async def test_a_grouped_delivery_is_handled_alert_by_alert(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    started = clock.now() - dt.timedelta(minutes=6)
    await deliver(http, source.token, delivery(alert(starts_at=started)))  # INC-000001
    clock.advance(minutes=5)
    group = delivery(
        alert(starts_at=started),  # fires again: deduplicated onto INC-000001
        alert(  # new: opens INC-000002
            starts_at=clock.now() - dt.timedelta(minutes=1),
            fingerprint=LATENCY,
            alertname="PaymentsHighLatency",
            severity="warning",
            summary="Payments API p99 latency is 2.4s",
        ),
        alert(  # resolved without an incident of its own: unmatched
            starts_at=started,
            fingerprint=DISK_FULL,
            alertname="NodeFilesystemAlmostFull",
            severity="warning",
            status="resolved",
            ends_at=clock.now() - dt.timedelta(seconds=20),
        ),
    )

    result = await deliver(http, source.token, group)

    assert result == {
        "opened": ["INC-000002"],
        "deduplicated": ["INC-000001"],
        "recovered": [],
        "unmatched": 1,
    }
    errors, latency = await incidents(client)
    assert (errors["alertOccurrences"], kinds(errors)) == (
        2,
        ["REPORTED", "ALERT_FIRED", "ALERT_FIRED"],
    )
    assert (latency["title"], latency["priority"], latency["alertFingerprint"]) == (
        "Payments API p99 latency is 2.4s",
        3,
        LATENCY,
    )
    assert kinds(latency) == ["REPORTED", "ALERT_FIRED"]

    clock.advance(minutes=3)
    both_recover = delivery(
        alert(starts_at=started, status="resolved", ends_at=clock.now()),
        alert(
            starts_at=started,
            fingerprint=LATENCY,
            alertname="PaymentsHighLatency",
            severity="warning",
            status="resolved",
            ends_at=clock.now(),
        ),
    )
    result = await deliver(http, source.token, both_recover)
    assert result["recovered"] == ["INC-000001", "INC-000002"]
    assert all(kinds(i)[-1] == "ALERT_RESOLVED" for i in await incidents(client))


# --- 5. malformed deliveries -----------------------------------------------------------


def _valid(clock: ManualClock) -> dict[str, Any]:
    return delivery(alert(starts_at=clock.now() - dt.timedelta(minutes=3)))


def _first_alert(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**body, "alerts": [{**body["alerts"][0], **changes}]}


def _labels(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    labels = {**body["alerts"][0]["labels"], **changes}
    return {k: v for k, v in labels.items() if v is not None}


# case: (how to spoil a valid delivery, what the reason says, the field named)
MALFORMED = {
    "not JSON": (lambda b: b'{"version": "4", "alerts": [', "not valid JSON", None),
    "JSON array": (lambda b: [b], "expected a JSON object", "body"),
    "version 3": (lambda b: {**b, "version": "3"}, "unsupported payload version", "version"),
    "missing alerts": (
        lambda b: {k: v for k, v in b.items() if k != "alerts"},
        "non-empty list",
        "alerts",
    ),
    "empty alerts": (lambda b: {**b, "alerts": []}, "non-empty list", "alerts"),
    "no alertname": (
        lambda b: _first_alert(b, labels=_labels(b, alertname=None)),
        "alertname is missing",
        "alerts[0].labels",
    ),
    "status pending": (
        lambda b: _first_alert(b, status="pending"),
        "expected firing or resolved",
        "alerts[0].status",
    ),
    "startsAt not a time": (
        lambda b: _first_alert(b, startsAt="yesterday"),
        "not an RFC 3339 time",
        "alerts[0].startsAt",
    ),
    "startsAt without offset": (
        lambda b: _first_alert(b, startsAt="2024-05-14T09:21:07.123456789"),
        "no offset",
        "alerts[0].startsAt",
    ),
    "startsAt beyond year 9999 in UTC": (
        lambda b: _first_alert(b, startsAt="9999-12-31T23:59:59-14:00"),
        "out of range",
        "alerts[0].startsAt",
    ),
    "startsAt before year 1 in UTC": (
        lambda b: _first_alert(b, startsAt="0001-01-01T00:00:00+14:00"),
        "out of range",
        "alerts[0].startsAt",
    ),
    "label value not a string": (
        lambda b: _first_alert(b, labels=_labels(b, replicas=3)),
        "expected an object of strings",
        "alerts[0].labels",
    ),
    "second alert malformed": (
        lambda b: {
            **b,
            "alerts": [
                b["alerts"][0],
                {**b["alerts"][0], "fingerprint": LATENCY, "startsAt": "2024-13-45T25:61:00Z"},
            ],
        },
        "not an RFC 3339 time",
        "alerts[1].startsAt",
    ),
}


@pytest.mark.parametrize(("spoil", "complaint", "field"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_delivery_is_refused_with_the_reason_and_changes_nothing(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    source: Source,
    clock: ManualClock,
    db: Database,
    spoil: Any,
    complaint: str,
    field: str | None,
) -> None:
    before = await stored(db)
    body = spoil(_valid(clock))

    reply = await post(http, source.token, body)

    assert reply.status_code == 400, reply.text
    answer = reply.json()
    assert complaint in answer["error"]
    assert answer.get("field") == field
    assert await incidents(client) == []
    assert await stored(db) == before
    # The same source can still deliver a good body afterwards.
    assert (await deliver(http, source.token, _valid(clock)))["opened"] == ["INC-000001"]


async def test_a_body_that_is_not_utf8_is_refused(
    http: httpx.AsyncClient, source: Source, clock: ManualClock, db: Database
) -> None:
    before = await stored(db)
    body = json.dumps(_valid(clock)).replace("Payments", "Paiements\xe9").encode("latin-1")
    reply = await post(http, source.token, body)
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"]
    assert await stored(db) == before


async def test_deeply_nested_json_is_refused_as_a_bad_body(
    http: httpx.AsyncClient, source: Source, db: Database
) -> None:
    before = await stored(db)
    body = b"[" * 100_000 + b"]" * 100_000
    reply = await post(http, source.token, body)
    assert reply.status_code == 400
    assert await stored(db) == before


async def test_an_integer_too_long_to_parse_is_refused_as_a_bad_body(
    http: httpx.AsyncClient, source: Source, db: Database
) -> None:
    before = await stored(db)
    body = b'{"version": "4", "status": "firing", "x": ' + b"9" * 5000 + b"}"
    reply = await post(http, source.token, body)
    assert reply.status_code == 400
    assert await stored(db) == before


async def test_a_body_over_one_megabyte_is_refused_as_too_large(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock, db: Database
) -> None:
    before = await stored(db)
    body = _valid(clock)
    body["alerts"][0]["annotations"]["description"] = "stack trace line\n" * 70_000  # ~1.2 MB
    assert len(json.dumps(body)) > 1_100_000

    reply = await post(http, source.token, body)

    assert reply.status_code == 413
    assert "larger than" in reply.json()["error"]
    assert await incidents(client) == []
    assert await stored(db) == before


# --- 6. authentication -----------------------------------------------------------------


@pytest.mark.parametrize("credential", ["missing", "wrong", "user token", "not bearer"])
async def test_a_delivery_without_the_sources_token_is_refused_and_changes_nothing(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    source: Source,
    clock: ManualClock,
    db: Database,
    accounts: Accounts,
    credential: str,
) -> None:
    admin = await accounts.create(Role.ADMIN)
    before = await stored(db)
    body = _valid(clock)
    if credential == "not bearer":
        reply = await http.post(WEBHOOK, json=body, headers={"Authorization": source.token})
    else:
        token = {
            "missing": None,
            "wrong": generate_secret(),  # well formed, but no source's
            "user token": admin.token,
        }[credential]
        reply = await post(http, token, body)

    assert reply.status_code == 401
    assert reply.json()["error"]
    assert await incidents(client) == []
    assert await stored(db) == before


# --- 7. concurrency --------------------------------------------------------------------


async def test_concurrent_deliveries_of_one_alert_open_exactly_one_incident(
    http: httpx.AsyncClient, client: GraphQLClient, source: Source, clock: ManualClock
) -> None:
    body = delivery(alert(starts_at=clock.now() - dt.timedelta(minutes=2)))

    results = await asyncio.gather(*(deliver(http, source.token, body) for _ in range(8)))

    assert sum(len(r["opened"]) for r in results) == 1
    assert sum(len(r["deduplicated"]) for r in results) == 7
    [incident] = await incidents(client)
    assert incident["alertOccurrences"] == 8
    assert kinds(incident) == ["REPORTED"] + ["ALERT_FIRED"] * 8


# --- 8. the command line ---------------------------------------------------------------


async def test_alert_source_create_prints_a_token_the_webhook_accepts(
    db: Database,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with db.transaction() as session:
        await catalog.create(session=session, principal=SYSTEM, slug="checkout", name="Checkout")
    argv = ["alert-source", "create", "--slug", "prom", "--service", "checkout"]
    exit_code = await asyncio.to_thread(main, [*argv, "--database-url", db.url])
    assert exit_code == 0
    token = capsys.readouterr().out.strip()
    assert len(token.split()) == 1, f"expected just the token, got {token!r}"

    unknown_service = alert(
        starts_at=clock.now() - dt.timedelta(minutes=1),
        service="cart-frontend",
        alertname="CartFrontendDown",
        summary="cart-frontend has no ready replicas",
    )
    result = await deliver(http, token, delivery(unknown_service))

    assert result["opened"] == ["INC-000001"]
    [incident] = await incidents(client)
    assert incident["service"] == {"slug": "checkout"}
    assert incident["title"] == "cart-frontend has no ready replicas"
