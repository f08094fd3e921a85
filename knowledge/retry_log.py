"""What a background loop that retries every second says about failing.

The indexer and the event dispatcher retry on every poll. With the database down that
was a full traceback per loop per second: an outage of an hour buried everything else
in the log, and an outage is not a bug. An unreachable database (``is_unreachable``)
is one warning line when it starts, one at most every ``repeat_every`` seconds while it
lasts, and an info line when the database answers again. Any other error may be a
bug: it keeps its traceback, every time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from knowledge.db import is_unreachable

REPEAT_EVERY = 60.0


class RetryLog:
    def __init__(
        self,
        logger: logging.Logger,
        doing: str,
        *,
        repeat_every: float = REPEAT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.doing = doing
        self.repeat_every = repeat_every
        self.clock = clock
        self.failures = 0  # in a row; for readiness and tests
        self._outage_since: float | None = None
        self._last_said = 0.0

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if not is_unreachable(error):
            self.logger.error("%s failed; will retry", self.doing, exc_info=error)
            return
        now = self.clock()
        cause = f"{type(error).__name__}: {str(error)[:200]}"
        if self._outage_since is None:
            self._outage_since = self._last_said = now
            self.logger.warning(
                "%s: the database is unreachable (%s); retrying until it answers",
                self.doing,
                cause,
            )
        elif now - self._last_said >= self.repeat_every:
            self._last_said = now
            self.logger.warning(
                "%s: the database is still unreachable after %.0f s (%s)",
                self.doing,
                now - self._outage_since,
                cause,
            )

    def succeeded(self) -> None:
        if self._outage_since is not None:
            self.logger.info(
                "%s: the database answers again after %.0f s; resumed",
                self.doing,
                self.clock() - self._outage_since,
            )
            self._outage_since = None
        self.failures = 0
