"""An incident as an event left it: what an event's outbox row carries, and back."""

from __future__ import annotations

import json

import sqlalchemy as sa

from knowledge.accounts.principal import SYSTEM
from knowledge.db import Database, utcnow
from knowledge.incidents import service as incidents
from knowledge.incidents.models import Incident, Level, ResolutionCode
from knowledge.incidents.policy import IncidentPolicy
from knowledge.incidents.snapshot import UNCHANGING, incident_as_of, snapshot_of


def values(incident: Incident) -> dict[str, object]:
    return {a.key: getattr(incident, a.key) for a in sa.inspect(Incident).column_attrs}


async def test_every_value_of_the_incident_comes_back_as_the_event_left_it(db: Database) -> None:
    # given an incident with a value in every kind of column (times, enums, ids, text)
    async with db.transaction() as session:
        incident = await incidents.report(
            session=session, principal=SYSTEM, policy=IncidentPolicy(), now=utcnow(),
            title="Disk full on db-3", description="Writes fail.", impact=Level.HIGH,
            urgency=Level.HIGH, error_text="OSError: [Errno 28] No space left on device",
        )  # fmt: skip
        incident = await incidents.resolve(
            session=session, principal=SYSTEM, now=utcnow(), incident_id=incident.id,
            expected_version=incident.version, code=ResolutionCode.WORKAROUND,
            notes="Rotated the logs.",
        )  # fmt: skip
        # when it is recorded as JSON, as the outbox stores it
        recorded = json.loads(json.dumps(snapshot_of(incident)))
        then = values(incident)
    assert not UNCHANGING & recorded.keys(), "the long unchanging texts are not copied"

    # and it changes again before the event is delivered
    async with db.transaction() as session:
        current = await session.get_one(Incident, incident.id)
        current.resolution_notes = "changed since"
        current.priority = 4

    # then the incident rebuilt from the record is the incident as it was, value for value
    async with db.read() as session:
        current = await session.get_one(Incident, incident.id)
        rebuilt = incident_as_of(current, recorded)
    assert values(rebuilt) == then
    assert rebuilt.resolved_at is not None
    assert rebuilt.resolved_at.tzinfo is not None
