"""Importing and exporting the knowledge base, all or nothing.

An import first validates every record with the same rules the services apply
and reports every problem; only a batch without problems is written, in one
transaction. Records are matched by slug (articles) and key (known errors):
importing again updates what changed, with a new revision, and skips the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge.accounts.principal import SYSTEM
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleKind, ArticleStatus
from knowledge.catalog.models import Service
from knowledge.db import utcnow
from knowledge.errors import DomainError
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError, KnownErrorStatus
from knowledge.outbox.service import record as record_outbox
from knowledge.transfer.formats import Problem, Record, read_path, write_jsonl, write_markdown
from knowledge.validation import clean_line, clean_slug, clean_text

KNOWN_ERRORS_FILE = "known-errors.jsonl"
Progress = Callable[[int, int], None]


@dataclasses.dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    checked: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _kind(value: Any) -> ArticleKind:
    return ArticleKind(str(value).strip().lower().replace("-", "_"))


def _strings(record: Record, field: str) -> list[str]:
    value = record.fields.get(field) or []  # an empty YAML key is an empty list
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DomainError("expected a list of strings", field=field)
    return value


def _text(record: Record, field: str, *, required: bool = False) -> str:
    value = record.fields.get(field)
    if value is None:
        if required:
            raise DomainError("is required", field=field)
        return ""
    if not isinstance(value, str):
        raise DomainError("expected a string", field=field)
    return value


def _check(record: Record, field: str, check: Callable[[], object]) -> Problem | None:
    try:
        check()
    except (DomainError, ValueError) as error:
        reason = error.message if isinstance(error, DomainError) else str(error)
        return record.problem(getattr(error, "field", None) or field, reason)
    return None


def _validate_article(record: Record, services: set[str], keys: set[str]) -> list[Problem]:
    f = record.fields
    checks: list[tuple[str, Callable[[], object]]] = [
        ("title", lambda: clean_line(_text(record, "title", required=True), field="title")),
        ("body", lambda: clean_text(_text(record, "body"), field="body",
                                    max_length=articles.MAX_BODY, required=False)),
        ("summary", lambda: clean_text(_text(record, "summary"), field="summary",
                                       max_length=articles.MAX_SUMMARY, required=False)),
        ("kind", lambda: _kind(f.get("kind", "troubleshooting"))),
        ("status", lambda: ArticleStatus(str(f.get("status", "published")))),
        ("category", lambda: articles.clean_category(_text(record, "category"))),
        ("tags", lambda: articles.clean_tags(_strings(record, "tags"))),
        ("error_signatures", lambda: articles.clean_list(
            _strings(record, "error_signatures"), field="error_signatures", max_length=500)),
        ("sources", lambda: articles.clean_sources(_strings(record, "sources"))),
    ]  # fmt: skip
    if f.get("slug") is not None:
        checks.append(("slug", lambda: clean_slug(_text(record, "slug"))))
    problems = [p for field, check in checks if (p := _check(record, field, check))]
    problems += _service_problems(record, services)
    known_error = f.get("known_error")
    if known_error is not None and (not isinstance(known_error, str) or known_error not in keys):
        problems.append(record.problem("known_error", f"no known error {known_error!r}"))
    return problems


def _service_problems(record: Record, services: set[str]) -> list[Problem]:
    try:
        slugs = _strings(record, "services")
    except DomainError as error:
        return [record.problem("services", error.message)]
    return [record.problem("services", f"no service {s!r}") for s in slugs if s not in services]


def _check_key(key: str) -> None:
    if not known_errors.KEY.fullmatch(key):
        raise ValueError("expected KE- and at least four digits")


def _validate_known_error(record: Record, services: set[str]) -> list[Problem]:
    f = record.fields
    checks: list[tuple[str, Callable[[], object]]] = [
        ("key", lambda: _check_key(_text(record, "key", required=True))),
        ("title", lambda: clean_line(_text(record, "title", required=True), field="title")),
        ("status", lambda: KnownErrorStatus(str(f.get("status", "open")))),
        ("category", lambda: articles.clean_category(_text(record, "category"))),
        ("error_signatures", lambda: articles.clean_list(
            _strings(record, "error_signatures"), field="error_signatures", max_length=500)),
    ]  # fmt: skip
    for field in ("symptoms", "root_cause", "workaround", "permanent_fix"):
        checks.append(
            (
                field,
                lambda field=field: clean_text(  # type: ignore[misc]
                    _text(record, field),
                    field=field,
                    max_length=known_errors.MAX_TEXT,
                    required=False,
                ),
            )
        )
    problems = [p for field, check in checks if (p := _check(record, field, check))]
    return problems + _service_problems(record, services)


async def validate(session: AsyncSession, records: Sequence[Record]) -> list[Problem]:
    services = set(await session.scalars(sa.select(Service.slug)))
    keys = set(await session.scalars(sa.select(KnownError.key)))
    keys |= {str(r.fields.get("key")) for r in records if r.kind == "known_error"}
    problems: list[Problem] = []
    seen: dict[tuple[str, str], Record] = {}
    for record in records:
        if record.kind == "known_error":
            problems += _validate_known_error(record, services)
            identity = ("known_error", str(record.fields.get("key")))
        else:
            problems += _validate_article(record, services, keys)
            # Without a slug the import derives one from the title: same title, same article.
            title = record.fields.get("title")
            derived = articles.slugify(title) if isinstance(title, str) and title.strip() else ""
            identity = ("article", str(record.fields.get("slug") or derived))
        if identity[1] and identity in seen:
            first = seen[identity]
            problems.append(record.problem(
                "slug" if record.kind == "article" else "key",
                f"{identity[1]!r} also appears at {first.file}:{first.line}",
            ))  # fmt: skip
        seen.setdefault(identity, record)
    return problems


async def _service_ids(session: AsyncSession, slugs: Sequence[str]) -> list[int]:
    rows = dict((await session.execute(sa.select(Service.slug, Service.id))).all())
    return [rows[s] for s in slugs]


async def _import_known_error(session: AsyncSession, record: Record) -> str:
    f = record.fields
    draft = known_errors.KnownErrorDraft(
        title=f["title"],
        symptoms=f.get("symptoms") or "",
        root_cause=f.get("root_cause") or "",
        workaround=f.get("workaround") or "",
        permanent_fix=f.get("permanent_fix") or "",
        category=f.get("category") or "",
        error_signatures=f.get("error_signatures") or [],
        service_ids=await _service_ids(session, f.get("services") or []),
    )
    status = KnownErrorStatus(f.get("status", "open"))
    existing = await session.scalar(sa.select(KnownError).where(KnownError.key == f["key"]))
    if existing is not None:
        before = known_error_fields(existing, await _slugs_of_known_error(session, existing.id))
        if before == _normalised_known_error(f):
            return "unchanged"
        row = await known_errors.update(
            session=session, principal=SYSTEM, known_error_id=existing.id,
            expected_version=existing.version, draft=draft,
        )  # fmt: skip
        row.status = status  # an import states the truth; it need not walk the status graph
        await session.flush()
        return "updated"
    row = await known_errors.create(session=session, principal=SYSTEM, draft=draft, key=f["key"])
    row.status = status
    await session.flush()
    return "created"


def _draft(f: dict[str, Any], service_ids: list[int], known_error_id: int | None) -> Any:
    return articles.ArticleDraft(
        title=f["title"],
        body=f.get("body") or "",
        summary=f.get("summary") or "",
        kind=_kind(f.get("kind", "troubleshooting")),
        category=f.get("category") or "",
        tags=f.get("tags") or [],
        service_ids=service_ids,
        known_error_id=known_error_id,
        clear_known_error=known_error_id is None,
        error_signatures=f.get("error_signatures") or [],
        sources=f.get("sources") or [],
    )


async def _set_status(session: AsyncSession, article: Article, status: ArticleStatus) -> None:
    """Put an imported article in the status its file says, stamping the times."""
    if article.status is status:
        return
    now = utcnow()
    article.status = status
    if status is ArticleStatus.PUBLISHED:
        article.published_at = article.published_at or now
    elif status is ArticleStatus.RETIRED:
        article.retired_at = article.retired_at or now
    elif status is ArticleStatus.IN_REVIEW:
        article.submitted_at = article.submitted_at or now
    await session.flush()
    await record_outbox(session=session, entity_type="article", entity_id=article.id)


async def _import_article(session: AsyncSession, record: Record, source: str) -> str:
    f = record.fields
    key = f.get("known_error")
    known_error_id = (
        await session.scalar(sa.select(KnownError.id).where(KnownError.key == key)) if key else None
    )
    draft = _draft(f, await _service_ids(session, f.get("services") or []), known_error_id)
    status = ArticleStatus(f.get("status", "published"))
    slug = f.get("slug") or articles.slugify(f["title"])
    existing = await session.scalar(sa.select(Article).where(Article.slug == slug))
    note = f"Imported from {source}"
    if existing is None:
        article = await articles.create(
            session=session, principal=SYSTEM, draft=draft, slug=slug, change_note=note
        )
        outcome = "created"
    else:
        if (await export_article(session, existing)) == _normalised_article(f, slug):
            return "unchanged"
        if existing.status is ArticleStatus.RETIRED:
            await _set_status(session, existing, ArticleStatus.DRAFT)
        article = await articles.update(
            session=session, principal=SYSTEM, article_id=existing.id,
            expected_version=existing.version, draft=draft, change_note=note,
        )  # fmt: skip
        outcome = "updated"
    await _set_status(session, article, status)
    return outcome


async def import_records(
    session: AsyncSession,
    records: Sequence[Record],
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Validate everything, then (unless ``dry_run``) write everything; the caller
    owns the transaction, so a failure part-way leaves nothing behind."""
    report = ImportReport(problems=await validate(session, records), checked=len(records))
    if report.problems or dry_run:
        return report
    ordered = sorted(records, key=lambda r: r.kind != "known_error")  # keys before references
    for done, record in enumerate(ordered, start=1):
        if record.kind == "known_error":
            outcome = await _import_known_error(session, record)
        else:
            outcome = await _import_article(session, record, Path(record.file).name)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if progress is not None:
            progress(done, len(ordered))
    return report


async def import_path(
    session: AsyncSession, path: Path, *, dry_run: bool = False, progress: Progress | None = None
) -> ImportReport:
    records, problems = read_path(path)
    if problems:  # report what is wrong with the readable records too, not just the rest
        found = await validate(session, records)
        return ImportReport(
            problems=sorted(problems + found, key=lambda p: (p.file, p.line)), checked=len(records)
        )
    return await import_records(session, records, dry_run=dry_run, progress=progress)


# --- export --------------------------------------------------------------------------


def _normalised_article(f: dict[str, Any], slug: str) -> dict[str, Any]:
    """A record's fields as export would write them, to tell changed from unchanged."""
    return {
        "slug": slug,
        "title": str(f["title"]).strip(),
        "summary": str(f.get("summary") or "").strip(),
        "kind": _kind(f.get("kind", "troubleshooting")).value,
        "status": str(f.get("status", "published")),
        "category": articles.clean_category(str(f.get("category") or "")),
        "tags": sorted(articles.clean_tags(f.get("tags") or [])),
        "services": sorted(set(f.get("services") or [])),
        "known_error": f.get("known_error"),
        "error_signatures": list(dict.fromkeys(s.strip() for s in f.get("error_signatures") or [])),
        "sources": list(dict.fromkeys(s.strip() for s in f.get("sources") or [])),
        "body": str(f.get("body") or "").rstrip().lstrip("\r\n"),
    }


async def export_article(session: AsyncSession, article: Article) -> dict[str, Any]:
    tags = (await articles.tags_of(session=session, article_ids=[article.id]))[article.id]
    services = (await articles.services_of(session=session, article_ids=[article.id]))[article.id]
    key = (
        await session.scalar(
            sa.select(KnownError.key).where(KnownError.id == article.known_error_id)
        )
        if article.known_error_id
        else None
    )
    return {
        "slug": article.slug,
        "title": article.title,
        "summary": article.summary,
        "kind": article.kind.value,
        "status": article.status.value,
        "category": article.category,
        "tags": sorted(tags),
        "services": sorted(s.slug for s in services),
        "known_error": key,
        "error_signatures": list(article.error_signatures),
        "sources": list(article.sources),
        "body": article.body.rstrip().lstrip("\r\n"),  # as clean_text(keep_indent) stores it
    }


async def _slugs_of_known_error(session: AsyncSession, known_error_id: int) -> list[str]:
    rows = await known_errors.services_of(session=session, known_error_ids=[known_error_id])
    return sorted(s.slug for s in rows[known_error_id])


def known_error_fields(known_error: KnownError, services: list[str]) -> dict[str, Any]:
    return {
        "type": "known_error",
        "key": known_error.key,
        "title": known_error.title,
        "status": known_error.status.value,
        "category": known_error.category,
        "symptoms": known_error.symptoms,
        "root_cause": known_error.root_cause,
        "workaround": known_error.workaround,
        "permanent_fix": known_error.permanent_fix,
        "error_signatures": list(known_error.error_signatures),
        "services": services,
    }


def _normalised_known_error(f: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "known_error",
        "key": f["key"],
        "title": str(f["title"]).strip(),
        "status": str(f.get("status", "open")),
        "category": (str(f.get("category") or "").strip().lower() or None),
        **{k: str(f.get(k) or "").strip() for k in ("symptoms", "root_cause", "workaround",
                                                    "permanent_fix")},
        "error_signatures": list(dict.fromkeys(s.strip() for s in f.get("error_signatures") or [])),
        "services": sorted(set(f.get("services") or [])),
    }  # fmt: skip


async def export_files(session: AsyncSession) -> dict[str, str]:
    """Every article as ``<slug>.md`` and the known errors as JSON Lines, by file name."""
    files: dict[str, str] = {}
    for article in await session.scalars(sa.select(Article).order_by(Article.slug)):
        fields = await export_article(session, article)
        body = fields.pop("body")
        files[f"{article.slug}.md"] = write_markdown(fields, body + "\n")
    rows = []
    for known_error in await session.scalars(sa.select(KnownError).order_by(KnownError.key)):
        rows.append(
            known_error_fields(known_error, await _slugs_of_known_error(session, known_error.id))
        )
    if rows:
        files[KNOWN_ERRORS_FILE] = write_jsonl(rows)
    return files
