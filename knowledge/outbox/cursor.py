"""Reading the outbox in order when ids may commit out of order.

On PostgreSQL, ids come from a sequence: id 7 may become visible before id 6,
whose transaction is still committing. A consumer's position therefore only
moves past a gap once the gap is older than ``gap_timeout`` (a rolled-back
transaction leaves a gap for ever). SQLite serialises writers and assigns
AUTOINCREMENT ids inside the transaction, so there a gap is never worth waiting
for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

logger = logging.getLogger("knownfix.outbox")

DEFAULT_GAP_TIMEOUT = 30.0


def default_gap_timeout(is_sqlite: bool) -> float:
    return 0.0 if is_sqlite else DEFAULT_GAP_TIMEOUT


class GapTracker:
    def __init__(self, gap_timeout: float) -> None:
        self.gap_timeout = gap_timeout
        self._gaps: dict[int, float] = {}

    def advance(self, last: int, ids: Sequence[int]) -> int:
        """The highest id up to which every id is present or a gap old enough to skip."""
        now = time.monotonic()
        expected = last + 1
        for entry_id in ids:
            if entry_id != expected:
                first_seen = self._gaps.setdefault(expected, now)
                if now - first_seen < self.gap_timeout:
                    break
                if self.gap_timeout:  # without a timeout a gap is only pruned rows: not news
                    logger.warning(
                        "outbox ids %d..%d never appeared; skipping", expected, entry_id - 1
                    )
            self._gaps.pop(expected, None)  # filled or skipped: forget it
            last, expected = entry_id, entry_id + 1
        return last
