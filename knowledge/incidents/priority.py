"""The default priority matrix (ITIL 3x3): P1 is the most pressing.

Deployments can replace entries (``knowledge.incidents.policy``).
"""

from __future__ import annotations

from collections.abc import Mapping

from knowledge.incidents.models import Level

Matrix = Mapping[tuple[Level, Level], int]

DEFAULT_MATRIX: Matrix = {
    (Level.HIGH, Level.HIGH): 1,
    (Level.HIGH, Level.MEDIUM): 2,
    (Level.MEDIUM, Level.HIGH): 2,
    (Level.HIGH, Level.LOW): 3,
    (Level.MEDIUM, Level.MEDIUM): 3,
    (Level.LOW, Level.HIGH): 3,
    (Level.MEDIUM, Level.LOW): 4,
    (Level.LOW, Level.MEDIUM): 4,
    (Level.LOW, Level.LOW): 5,
}
