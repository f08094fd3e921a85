"""Pure functions from database rows to index documents."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from knowledge.articles.models import Article
from knowledge.articles.rendering import sections
from knowledge.incidents.models import Incident
from knowledge.known_errors.models import KnownError

Document = dict[str, Any]

SYMPTOM_HEADINGS = ("symptoms", "symptom", "what you see", "problem", "error")
CAUSE_HEADINGS = ("cause", "causes", "root cause", "why")
RESOLUTION_HEADINGS = ("resolution", "fix", "solution", "workaround", "steps", "remedy")


def key_of(kind: str, entity_id: int) -> str:
    return f"{kind}:{entity_id}"


def parse_key(key: str) -> tuple[str, int]:
    kind, _, entity_id = key.partition(":")
    return kind, int(entity_id)


def _pick(parts: dict[str, str], headings: Sequence[str]) -> tuple[str, set[str]]:
    used = {h for h in parts if any(h.startswith(word) for word in headings)}
    return "\n".join(parts[h] for h in sorted(used)), used


def article_sections(body: str) -> dict[str, str]:
    """An article body split into symptoms, cause, resolution and everything else."""
    return dict(_sections(body))


@functools.lru_cache(maxsize=256)
def _sections(body: str) -> tuple[tuple[str, str], ...]:
    """Kept for the bodies seen last: suggestions show the same articles again and
    again, and each time would parse their Markdown."""
    parts = sections(body)
    symptoms, s = _pick(parts, SYMPTOM_HEADINGS)
    cause, c = _pick(parts, CAUSE_HEADINGS)
    resolution, r = _pick(parts, RESOLUTION_HEADINGS)
    rest = "\n".join(text for heading, text in parts.items() if heading not in s | c | r)
    return (("symptoms", symptoms), ("cause", cause), ("resolution", resolution), ("body", rest))


def meaning_title(entity: Article | KnownError) -> str:
    """The title whose meaning is stored (``meaning``): a known error's without its key,
    which says nothing about the trouble."""
    return entity.title


def document_meaning_title(document: Document) -> str:
    """``meaning_title`` of the entity a document was made from (a known error's
    document title is its key, then its title: keys match ``known_errors.service.KEY``,
    ``KE-`` and digits, so the first space ends the key)."""
    title = str(document["title"])
    return title.partition(" ")[2] if document["kind"] == "known_error" else title


def article_document(
    article: Article,
    tags: Sequence[str],
    services: Sequence[str],
    reported: Sequence[str] = (),
    meaning: bytes = b"",
) -> Document:
    return {
        "key": key_of("article", article.id),
        "kind": "article",
        "status": article.status.value,
        "category": article.category or "",
        "services": ",".join(services),
        "tags": ",".join(tags),
        "title": article.title,
        "summary": article.summary,
        "signatures": "\n".join(article.error_signatures),
        "reported": "\n".join(reported),
        "meaning": meaning,
        **article_sections(article.body),
    }


def known_error_document(
    known_error: KnownError, services: Sequence[str], meaning: bytes = b""
) -> Document:
    return {
        "key": key_of("known_error", known_error.id),
        "kind": "known_error",
        "status": known_error.status.value,
        "category": known_error.category or "",
        "services": ",".join(services),
        "tags": "",
        "title": f"{known_error.key} {known_error.title}",
        "summary": "",
        "symptoms": known_error.symptoms,
        "cause": known_error.root_cause,
        "resolution": f"{known_error.workaround}\n{known_error.permanent_fix}",
        "body": "",
        "signatures": "\n".join(known_error.error_signatures),
        "meaning": meaning,
    }


def incident_document(incident: Incident, services: Sequence[str]) -> Document:
    return {
        "key": key_of("incident", incident.id),
        "kind": "incident",
        "status": incident.status.value,
        "category": incident.category or "",
        "services": ",".join(services),
        "tags": "",
        "title": f"{incident.reference} {incident.title}",
        "summary": "",
        "symptoms": incident.description,
        "cause": "",
        "resolution": incident.resolution_notes,
        "body": "",
        "signatures": incident.error_text,
    }
