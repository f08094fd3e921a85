from __future__ import annotations

import strawberry

from api.context import Context
from api.incidents.inputs import TimeWindow
from api.reports.types import KnowledgeReportType
from knowledge.reports import service as reports


@strawberry.type
class ReportsQuery:
    @strawberry.field(
        description="Knowledge gaps, stale articles, poor performers, possible duplicates and "
        "top articles over the window [start, end) (at most 366 days). staleAfterDays (1 to "
        "3650) is how long an unused article takes to go stale. Knowledge managers and "
        "admins only."
    )
    def knowledge_report(
        self,
        info: strawberry.Info[Context],
        window: TimeWindow,
        stale_after_days: int = reports.DEFAULT_STALE_DAYS,
    ) -> KnowledgeReportType:
        return KnowledgeReportType(
            scope=reports.open_scope(
                principal=info.context.principal,
                start=window.start,
                end=window.end,
                now=info.context.now(),
                stale_after_days=stale_after_days,
            )
        )
