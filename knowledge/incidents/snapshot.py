"""An incident as an event left it, carried by the event's outbox row.

Events reach subscribers after they commit, read from the outbox by each
process's dispatcher: under load, or when several events are read in one batch,
the incident may have changed again by then. A subscriber told "incident X was
classified" must see the incident as that classification left it, not as it is
at delivery. So each event's outbox row carries the incident's own values as
JSON, and the dispatcher rebuilds the incident from them.

The texts an incident is reported with (``UNCHANGING``) are set once and never
changed afterwards (no service function writes them after ``report``); they are
up to 20,000 characters each, so they are read with the incident at delivery
instead of being copied into every event's row. Whatever hangs off the incident
(its timeline, links, suggestions, review) and the rows it names (service,
team, people) are not part of it: they are read at delivery too.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa

from knowledge.db import UTCDateTime
from knowledge.incidents.models import Incident

UNCHANGING = frozenset({"description", "error_text", "error_signature"})


def _columns() -> dict[str, sa.types.TypeEngine[Any]]:
    """The incident's recorded attributes, with their column types."""
    return {
        attribute.key: attribute.columns[0].type
        for attribute in sa.inspect(Incident).column_attrs
        if attribute.key not in UNCHANGING
    }


def snapshot_of(incident: Incident) -> dict[str, Any]:
    """The incident's own values, as JSON (call after the change is flushed)."""
    values: dict[str, Any] = {}
    for key in _columns():
        value = getattr(incident, key)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        values[key] = value
    return values


def incident_as_of(current: Incident, snapshot: dict[str, Any]) -> Incident:
    """A detached incident with the values ``snapshot`` recorded, and the unchanging
    texts of ``current`` (the incident as it is now)."""
    then = Incident()
    for key, kind in _columns().items():
        if key not in snapshot:  # a column added after the event was recorded
            setattr(then, key, getattr(current, key))
            continue
        value = snapshot[key]
        if value is not None and isinstance(kind, UTCDateTime):
            value = dt.datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, sa.Enum) and kind.enum_class is not None:
            value = kind.enum_class(value)
        setattr(then, key, value)
    for key in UNCHANGING:
        setattr(then, key, getattr(current, key))
    return then
