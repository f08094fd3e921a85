"""What every section of the knowledge report shares: who may read it, over which
window, and the bounds on what one request may ask for."""

from __future__ import annotations

import dataclasses
import datetime as dt

from knowledge.accounts.principal import Principal
from knowledge.accounts.roles import Role
from knowledge.errors import ValidationError
from knowledge.validation import check_window

READER = Role.KNOWLEDGE_MANAGER
DEFAULT_STALE_DAYS = 90
MAX_STALE_DAYS = 3650
DEFAULT_ITEMS = 20
MAX_ITEMS = 100


@dataclasses.dataclass(frozen=True, slots=True)
class ReportScope:
    """A checked request: [start, end) in UTC, the reader, and "now" for staleness."""

    principal: Principal
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    stale_after_days: int = DEFAULT_STALE_DAYS

    @property
    def stale_before(self) -> dt.datetime:
        return self.now - dt.timedelta(days=self.stale_after_days)


def require_reader(principal: Principal) -> None:
    principal.require(READER, "Reading the knowledge report")


def open_scope(
    *,
    principal: Principal,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    stale_after_days: int = DEFAULT_STALE_DAYS,
) -> ReportScope:
    """Check the reader first (a refusal says nothing about the input), then the input."""
    require_reader(principal)
    start, end = check_window(start, end)
    if not 1 <= stale_after_days <= MAX_STALE_DAYS:
        raise ValidationError(f"staleAfterDays is 1 to {MAX_STALE_DAYS}", field="staleAfterDays")
    return ReportScope(principal, start, end, now, stale_after_days)


def check_items(first: int | None, *, field: str = "first") -> int:
    """How many entries a section lists: 20 unless asked, at most 100."""
    if first is None:
        return DEFAULT_ITEMS
    if not 0 <= first <= MAX_ITEMS:
        raise ValidationError(f"{field} is 0 to {MAX_ITEMS}", field=field)
    return first
