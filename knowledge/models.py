"""Imports every concept's models so that one metadata registry knows them all."""

from knowledge.accounts.models import ApiToken, Team, TeamMembership, User
from knowledge.alerts.models import AlertSource
from knowledge.articles.models import (
    Article,
    ArticleFeedback,
    ArticleRevision,
    ArticleService,
    ArticleTag,
)
from knowledge.catalog.models import Service
from knowledge.db import Base
from knowledge.incidents.models import Incident, IncidentEvent, IncidentLink, PostIncidentReview
from knowledge.known_errors.models import KnownError, KnownErrorService
from knowledge.numbering import Counter
from knowledge.outbox.models import OutboxEntry

metadata = Base.metadata

__all__ = [
    "AlertSource",
    "ApiToken",
    "Article",
    "ArticleFeedback",
    "ArticleRevision",
    "ArticleService",
    "ArticleTag",
    "Base",
    "Counter",
    "Incident",
    "IncidentEvent",
    "IncidentLink",
    "KnownError",
    "KnownErrorService",
    "OutboxEntry",
    "PostIncidentReview",
    "Service",
    "Team",
    "TeamMembership",
    "User",
    "metadata",
]
