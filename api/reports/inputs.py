from __future__ import annotations

import enum

import strawberry


@strawberry.enum(description="How top articles are ranked; the other figure breaks ties.")
class TopArticleOrder(enum.Enum):
    INCIDENTS_RESOLVED = "incidents_resolved"
    DOWNTIME_SAVED = "downtime_saved"
