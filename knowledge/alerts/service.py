"""Alert ingestion: Prometheus Alertmanager webhooks (payload version 4) open incidents.

A firing alert opens an incident, or, when an open incident already carries the
same fingerprint, counts another occurrence on it (deduplication). A resolved
alert notes the recovery on the open incident; a person still resolves it. A
payload is validated completely before anything is written, and written in one
transaction, so a bad delivery changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.accounts.tokens import generate_secret, hash_token
from knowledge.alerts.models import AlertSource
from knowledge.catalog.models import Service
from knowledge.db import flush_or_conflict
from knowledge.errors import AuthenticationError, ValidationError
from knowledge.incidents import service as incidents
from knowledge.incidents.models import EventKind, Incident, Level
from knowledge.incidents.policy import IncidentPolicy
from knowledge.validation import clean_line, clean_slug

MAX_ALERTS = 1000
SEVERITY: dict[str, tuple[Level, Level]] = {
    "critical": (Level.HIGH, Level.HIGH),
    "page": (Level.HIGH, Level.HIGH),
    "error": (Level.HIGH, Level.MEDIUM),
    "major": (Level.HIGH, Level.MEDIUM),
    "warning": (Level.MEDIUM, Level.MEDIUM),
    "minor": (Level.MEDIUM, Level.LOW),
    "info": (Level.LOW, Level.LOW),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    status: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: dt.datetime
    ends_at: dt.datetime | None

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")


@dataclasses.dataclass
class IngestReport:
    opened: list[str] = dataclasses.field(default_factory=list)
    opened_ids: list[int] = dataclasses.field(default_factory=list)
    deduplicated: list[str] = dataclasses.field(default_factory=list)
    recovered: list[str] = dataclasses.field(default_factory=list)
    unmatched: int = 0


async def create_source(
    *,
    session: AsyncSession,
    principal: Principal,
    slug: str,
    name: str,
    default_service_id: int | None = None,
) -> tuple[AlertSource, str]:
    """A new alert source and its token (shown once, stored hashed)."""
    principal.require(Role.ADMIN, "Creating alert sources")
    secret = generate_secret()
    source = AlertSource(
        slug=clean_slug(slug),
        name=clean_line(name, field="name"),
        token_hash=hash_token(secret),
        default_service_id=default_service_id,
    )
    session.add(source)
    await flush_or_conflict(session, what=f"alert source {slug!r}", field="slug")
    return source, secret


async def authenticate_source(*, session: AsyncSession, secret: str | None) -> AlertSource:
    if not secret:
        raise AuthenticationError("send the alert source's token as 'Authorization: Bearer ...'")
    source = await session.scalar(
        sa.select(AlertSource).where(AlertSource.token_hash == hash_token(secret))
    )
    if source is None or source.revoked_at is not None:
        raise AuthenticationError("unknown or revoked alert source token")
    return source


def _time(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, str):
        raise ValidationError(f"{where}: expected an RFC 3339 time", field=where)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{where}: {value!r} is not an RFC 3339 time", field=where) from None
    if moment.tzinfo is None:
        raise ValidationError(f"{where}: the time has no offset", field=where)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        raise ValidationError(f"{where}: {value!r} is out of range in UTC", field=where) from None


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationError(f"{where}: expected an object of strings", field=where)
    return value


def parse_alertmanager(payload: Any) -> list[Alert]:
    """The alerts of an Alertmanager webhook body, or a ValidationError saying what is wrong."""
    if not isinstance(payload, dict):
        raise ValidationError("expected a JSON object", field="body")
    if payload.get("version") != "4":
        raise ValidationError(
            f"unsupported payload version {payload.get('version')!r}; expected '4'", field="version"
        )
    if payload.get("status") not in ("firing", "resolved"):
        raise ValidationError("status: expected firing or resolved", field="status")
    raw = payload.get("alerts")
    if not isinstance(raw, list) or not raw:
        raise ValidationError("alerts: expected a non-empty list", field="alerts")
    if len(raw) > MAX_ALERTS:
        raise ValidationError(f"alerts: at most {MAX_ALERTS} per delivery", field="alerts")
    alerts = []
    for n, item in enumerate(raw):
        where = f"alerts[{n}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: expected an object", field=where)
        status = item.get("status")
        if status not in ("firing", "resolved"):
            raise ValidationError(
                f"{where}.status: expected firing or resolved", field=f"{where}.status"
            )
        labels = _string_map(item.get("labels"), f"{where}.labels")
        if not labels.get("alertname", "").strip():
            raise ValidationError(f"{where}.labels: alertname is missing", field=f"{where}.labels")
        fingerprint = item.get("fingerprint")
        if fingerprint is None:  # older Alertmanagers: derive it from the label set
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[
                :16
            ]
        if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 200:
            raise ValidationError(f"{where}.fingerprint: expected a short string",
                                  field=f"{where}.fingerprint")  # fmt: skip
        ends = item.get("endsAt")
        ends_at = (
            None if ends in (None, "", "0001-01-01T00:00:00Z") else _time(ends, f"{where}.endsAt")
        )
        alerts.append(Alert(
            status=status, fingerprint=fingerprint, labels=labels,
            annotations=_string_map(item.get("annotations"), f"{where}.annotations"),
            starts_at=_time(item.get("startsAt"), f"{where}.startsAt"), ends_at=ends_at,
        ))  # fmt: skip
    return alerts


async def _lock_fingerprints(session: AsyncSession, fingerprints: Sequence[str]) -> None:
    """Serialise deliveries of the same alert. SQLite write transactions are already
    serialised (BEGIN IMMEDIATE); PostgreSQL takes a transaction advisory lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for fingerprint in sorted(set(fingerprints)):  # one order everywhere: no deadlocks
        await session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:fp, 0))"), {"fp": fingerprint}
        )


async def _open_incident(session: AsyncSession, fingerprint: str) -> Incident | None:
    return await session.scalar(
        sa.select(Incident)
        .where(Incident.alert_fingerprint == fingerprint, Incident.status.in_(incidents.OPEN))
        .order_by(Incident.id.desc())
        .limit(1)
    )


def _printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable() or c in "\n\t")


def _describe(alert: Alert) -> str:
    lines = [alert.annotations.get("description", "")]
    lines += [f"{k}={v}" for k, v in sorted(alert.labels.items())]
    if url := alert.annotations.get("runbook_url"):
        lines.append(f"runbook: {url}")
    return "\n".join(line for line in lines if line)


async def ingest(
    *,
    session: AsyncSession,
    source: AlertSource,
    policy: IncidentPolicy,
    now: dt.datetime,
    alerts: Sequence[Alert],
) -> IngestReport:
    actor = Principal(user_id=None, username=f"alert:{source.slug}", role=Role.REPORTER)
    await _lock_fingerprints(session, [a.fingerprint for a in alerts])
    services = dict((await session.execute(sa.select(Service.slug, Service.id))).all())
    report = IngestReport()
    for alert in alerts:
        incident = await _open_incident(session, alert.fingerprint)
        if alert.status == "resolved":
            if incident is None:
                report.unmatched += 1
                continue
            ended = alert.ends_at.isoformat() if alert.ends_at else None
            await incidents.add_event(
                session, incident, EventKind.ALERT_RESOLVED, actor, f"{alert.name} recovered",
                {"fingerprint": alert.fingerprint, "ends_at": ended, "source": source.slug}, at=now,
            )  # fmt: skip
            report.recovered.append(incident.reference)
        elif incident is not None:
            incident.alert_occurrences += 1
            await flush_or_conflict(session, what=f"incident {incident.reference}")
            times = incident.alert_occurrences
            await incidents.add_event(
                session, incident, EventKind.ALERT_FIRED, actor,
                f"{alert.name} fired again ({times} times)",
                {"fingerprint": alert.fingerprint, "source": source.slug},
                at=now,
            )  # fmt: skip
            report.deduplicated.append(incident.reference)
        else:
            impact, urgency = SEVERITY.get(alert.labels.get("severity", "").lower(),
                                           (Level.MEDIUM, Level.MEDIUM))  # fmt: skip
            service = alert.labels.get("service") or alert.labels.get("job") or ""
            # Alert text is whatever a rule author wrote: fold it into what incidents accept.
            title = " ".join(alert.annotations.get("summary", "").split())[:200] or alert.name
            category = alert.labels.get("category", "").strip().lower()
            if not (0 < len(category) <= 80 and category.isprintable()):
                category = ""
            incident = await incidents.report(
                session=session, principal=actor, policy=policy, now=now,
                title=title, description=_printable(_describe(alert))[:20_000],
                impact=impact, urgency=urgency, category=category or None,
                service_id=services.get(service, source.default_service_id),
                detected_at=min(alert.starts_at, now), alert_fingerprint=alert.fingerprint,
            )  # fmt: skip
            await incidents.add_event(
                session, incident, EventKind.ALERT_FIRED, actor, f"{alert.name} fired",
                {"fingerprint": alert.fingerprint, "source": source.slug}, at=now,
            )  # fmt: skip
            report.opened.append(incident.reference)
            report.opened_ids.append(incident.id)
    return report
