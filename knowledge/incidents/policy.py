"""Priority matrix and SLA targets: the rules a service desk tunes.

Both have ITIL-style defaults and can be replaced from configuration:

- ``KNOWNFIX_PRIORITY_MATRIX``: ``impact/urgency=priority`` pairs, e.g.
  ``high/high=1,high/medium=2,...`` (all nine combinations).
- ``KNOWNFIX_SLA``: ``P<n>=<respond>/<resolve>`` per priority with durations in
  m, h or d, e.g. ``P1=15m/4h,P2=30m/8h,P3=2h/1d,P4=8h/3d,P5=1d/5d``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping

from knowledge.incidents.models import Level
from knowledge.incidents.priority import DEFAULT_MATRIX, Matrix

DURATION = re.compile(r"^(\d{1,5})([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclasses.dataclass(frozen=True, slots=True)
class SlaTarget:
    respond: dt.timedelta
    resolve: dt.timedelta


DEFAULT_SLA: Mapping[int, SlaTarget] = {
    1: SlaTarget(dt.timedelta(minutes=15), dt.timedelta(hours=4)),
    2: SlaTarget(dt.timedelta(minutes=30), dt.timedelta(hours=8)),
    3: SlaTarget(dt.timedelta(hours=2), dt.timedelta(days=1)),
    4: SlaTarget(dt.timedelta(hours=8), dt.timedelta(days=3)),
    5: SlaTarget(dt.timedelta(days=1), dt.timedelta(days=5)),
}


@dataclasses.dataclass(frozen=True, slots=True)
class IncidentPolicy:
    matrix: Matrix = dataclasses.field(default_factory=lambda: dict(DEFAULT_MATRIX))
    sla: Mapping[int, SlaTarget] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SLA))

    def priority(self, impact: Level, urgency: Level) -> int:
        return self.matrix[(impact, urgency)]

    def due(self, priority: int, detected_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """When a response and a resolution are due for an incident detected then."""
        target = self.sla[priority]
        return detected_at + target.respond, detected_at + target.resolve


def _duration(text: str) -> dt.timedelta:
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 15m, 4h or 2d")
    return dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def parse_sla(text: str) -> dict[int, SlaTarget]:
    targets = dict(DEFAULT_SLA)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        respond, _, resolve = value.partition("/")
        if not re.fullmatch(r"P[1-5]", name.strip()) or not resolve:
            raise ValueError(f"{part!r} is not like P1=15m/4h")
        target = SlaTarget(_duration(respond), _duration(resolve))
        if target.respond > target.resolve:
            raise ValueError(f"{part!r}: the response target is later than the resolution target")
        targets[int(name.strip()[1])] = target
    return targets


def parse_matrix(text: str) -> dict[tuple[Level, Level], int]:
    matrix = dict(DEFAULT_MATRIX)
    for part in filter(None, (p.strip() for p in text.split(","))):
        pair, _, value = part.partition("=")
        impact, _, urgency = pair.partition("/")
        try:
            key = (Level(impact.strip().lower()), Level(urgency.strip().lower()))
            priority = int(value)
        except ValueError:
            raise ValueError(f"{part!r} is not like high/medium=2") from None
        if not 1 <= priority <= 5:
            raise ValueError(f"{part!r}: priority must be 1 to 5")
        matrix[key] = priority
    return matrix
