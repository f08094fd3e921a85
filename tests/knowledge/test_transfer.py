"""Importing and exporting the knowledge base: Markdown articles, JSON Lines known errors.

An import is all or nothing: a batch is validated first, every problem is reported with
its file, line and field, and only a batch without problems is written. Records are
matched by slug and key, so importing again changes only what changed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from api.cli import main
from knowledge import migrate
from knowledge.accounts.principal import SYSTEM
from knowledge.articles import service as articles
from knowledge.articles.models import Article, ArticleKind, ArticleRevision, ArticleStatus
from knowledge.catalog import service as catalog
from knowledge.catalog.models import Service
from knowledge.db import Database
from knowledge.demo import loader
from knowledge.known_errors import service as known_errors
from knowledge.known_errors.models import KnownError, KnownErrorStatus
from knowledge.transfer import service as transfer
from knowledge.transfer.service import ImportReport
from tests.conftest import DatabaseFactory

EVALUATION_SET = Path("/work/shared/data/incident-eval-dev/articles.jsonl")

# --- our own fixture data ------------------------------------------------------------

REPLICA_LAG_BODY = """\
## Symptoms

Balance pages show totals from hours ago while the ledger primary is current.

## Resolution

Throttle the backfill job to 500 rows per batch and wait for the replicas to catch up.
"""

REPLICA_LAG_MD = f"""\
---
slug: ledger-replica-lag
title: Ledger replicas fall behind during a bulk backfill
summary: Read replicas of the ledger lag minutes behind the primary while a backfill runs.
kind: known_error
status: published
category: Database
tags: [Replication, postgres, lag]
services: [ledger, payments]
known_error: KE-0042
error_signatures:
  - replica lag exceeds 300 seconds
sources:
  - https://tickets.example.org/OPS-1187
---
{REPLICA_LAG_BODY}"""

ROTATE_BODY = "Rotate the ledger service account password, then restart the workers one by one.\n"

ROTATE_MD = f"""\
---
slug: rotate-ledger-credentials
title: Rotate the ledger database credentials
kind: how-to
status: draft
tags: [credentials]
services: [ledger]
---
{ROTATE_BODY}"""

BACKFILL_KNOWN_ERROR = {
    "type": "known_error",
    "key": "KE-0042",
    "title": "Bulk backfills saturate ledger replication",
    "status": "fix_in_progress",
    "category": "database",
    "symptoms": "Replica lag climbs past five minutes during backfills.",
    "root_cause": "The backfill writes in one transaction per 50 000 rows.",
    "workaround": "Pause the backfill until the replicas catch up.",
    "permanent_fix": "Batch backfill writes and rate-limit them.",
    "error_signatures": ["replica lag exceeds 300 seconds"],
    "services": ["ledger"],
}

GOOD_FILES = {
    "ledger-replica-lag.md": REPLICA_LAG_MD,
    "rotate-ledger-credentials.md": ROTATE_MD,
    "known-errors.jsonl": json.dumps(BACKFILL_KNOWN_ERROR) + "\n",
}


def _article_line(slug: str, **fields: object) -> str:
    record = {"type": "article", "slug": slug, "title": f"About {slug}", "body": "Some text."}
    return json.dumps({**record, **fields})


BAD_FILES = {
    "broken.jsonl": "\n".join(
        [
            json.dumps({**BACKFILL_KNOWN_ERROR, "key": "KE-0101"}),  # valid, yet not imported
            '{"type": "known_error", "key": "KE-0102", "title": ',
            _article_line("tags-as-text", tags="network, dns"),
            _article_line("ftp-source", sources=["ftp://files.example.org/runbook.txt"]),
            _article_line("ghost-service", services=["no-such-service"]),
            _article_line("ghost-known-error", known_error="KE-9999"),
        ]
    )
    + "\n",
    "extra-field.md": "---\nowner: sre-team\ntitle: Who owns the pager\n---\nAsk in #sre.\n",
    "untitled.md": "---\nslug: untitled\nsummary: A note without a title.\n---\nText.\n",
    "copy-a.md": "---\nslug: same-slug\ntitle: The first copy\n---\nFirst.\n",
    "copy-b.md": "---\nslug: same-slug\ntitle: The second copy\n---\nSecond.\n",
    "notes.md": "Just some notes, no front matter at all.\n",
    "valid.md": "---\nslug: a-valid-one\ntitle: A valid article\nservices: [payments]\n---\nOK.\n",
}

# (file name, line, field) of every problem in BAD_FILES
BAD_FILE_PROBLEMS = {
    ("broken.jsonl", 2, None),
    ("broken.jsonl", 3, "tags"),
    ("broken.jsonl", 4, "sources"),
    ("broken.jsonl", 5, "services"),
    ("broken.jsonl", 6, "known_error"),
    ("extra-field.md", 2, "owner"),
    ("untitled.md", 1, "title"),
    ("copy-b.md", 1, "slug"),
    ("notes.md", 1, None),
}

EVAL_RECORDS: list[dict[str, Any]] = [
    {
        "id": "eval-mq-001",
        "title": "Queue consumers stop acknowledging after a broker failover",
        "symptoms": "Messages pile up in the orders queue; consumers show as connected.",
        "cause": "Consumers keep a channel to the old broker node and never see the failover.",
        "resolution": "Enable automatic connection recovery and restart the consumers.",
        "workaround": None,
        "category": "messaging",
        "tags": ["rabbitmq", "consumers"],
        "sources": ["https://forum.example.org/t/8812"],
    },
    {
        "id": "eval-dns-002",
        "title": "Pods resolve an internal name to a retired address",
        "symptoms": "Calls to the billing API time out from some pods only.",
        "cause": "A node-local DNS cache holds a record beyond its TTL.",
        "resolution": "Flush the node-local cache and lower its maximum TTL.",
        "workaround": "Point the affected pods at the cluster DNS service directly.",
        "category": "networking",
        "tags": ["dns", "kubernetes"],
        "sources": ["https://wiki.example.org/dns-cache", "https://tickets.example.org/NET-42"],
    },
]


# --- helpers -------------------------------------------------------------------------


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


async def given_services(db: Database, *slugs: str) -> None:
    async with db.transaction() as session:
        for slug in slugs:
            await catalog.create(session=session, principal=SYSTEM, slug=slug, name=slug.title())


async def import_path(db: Database, path: Path, *, dry_run: bool = False) -> ImportReport:
    async with db.transaction() as session:
        return await transfer.import_path(session, path, dry_run=dry_run)


async def count(db: Database, model: type[object]) -> int:
    async with db.read() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def article(db: Database, slug: str) -> Article:
    async with db.read() as session:
        found = await session.scalar(sa.select(Article).where(Article.slug == slug))
    assert found is not None, f"no article {slug!r}"
    return found


async def known_error(db: Database, key: str) -> KnownError:
    async with db.read() as session:
        found = await session.scalar(sa.select(KnownError).where(KnownError.key == key))
    assert found is not None, f"no known error {key!r}"
    return found


async def revisions(db: Database, slug: str) -> list[ArticleRevision]:
    async with db.read() as session:
        rows = await session.scalars(
            sa.select(ArticleRevision)
            .join(Article, Article.id == ArticleRevision.article_id)
            .where(Article.slug == slug)
            .order_by(ArticleRevision.number)
        )
        return list(rows)


def problems_at(report: ImportReport) -> set[tuple[str, int, str | None]]:
    return {(Path(p.file).name, p.line, p.field) for p in report.problems}


def outcome(report: ImportReport) -> tuple[int, int, int]:
    return report.created, report.updated, report.unchanged


async def knownfix(*argv: str) -> int:
    """Run the CLI in a thread: it starts its own event loop, as it does in a shell."""
    return await asyncio.to_thread(main, list(argv))


# --- importing a good folder ---------------------------------------------------------


async def test_a_folder_of_markdown_and_known_errors_imports_every_field(
    db: Database, tmp_path: Path
) -> None:
    # given
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "kb", GOOD_FILES)

    # when
    report = await import_path(db, folder)

    # then
    assert report.ok, report.problems
    assert outcome(report) == (3, 0, 0)
    async with db.read() as session:
        known_error = await session.scalar(sa.select(KnownError).where(KnownError.key == "KE-0042"))
        assert known_error is not None
        ke_services = await known_errors.services_of(
            session=session, known_error_ids=[known_error.id]
        )
        lag = await session.scalar(sa.select(Article).where(Article.slug == "ledger-replica-lag"))
        rotate = await session.scalar(
            sa.select(Article).where(Article.slug == "rotate-ledger-credentials")
        )
        assert lag is not None
        assert rotate is not None
        tags = await articles.tags_of(session=session, article_ids=[lag.id, rotate.id])
        services = await articles.services_of(session=session, article_ids=[lag.id, rotate.id])

    assert known_error.title == "Bulk backfills saturate ledger replication"
    assert known_error.status is KnownErrorStatus.FIX_IN_PROGRESS
    assert known_error.category == "database"
    assert known_error.symptoms == BACKFILL_KNOWN_ERROR["symptoms"]
    assert known_error.root_cause == BACKFILL_KNOWN_ERROR["root_cause"]
    assert known_error.workaround == BACKFILL_KNOWN_ERROR["workaround"]
    assert known_error.permanent_fix == BACKFILL_KNOWN_ERROR["permanent_fix"]
    assert known_error.error_signatures == ["replica lag exceeds 300 seconds"]
    assert [s.slug for s in ke_services[known_error.id]] == ["ledger"]

    assert lag.title == "Ledger replicas fall behind during a bulk backfill"
    assert lag.summary.startswith("Read replicas of the ledger lag")
    assert lag.kind is ArticleKind.KNOWN_ERROR
    assert lag.status is ArticleStatus.PUBLISHED
    assert lag.published_at is not None, "importing as published stamps published_at"
    assert lag.category == "database", "categories are stored in lower case"
    assert sorted(tags[lag.id]) == ["lag", "postgres", "replication"]
    assert sorted(s.slug for s in services[lag.id]) == ["ledger", "payments"]
    assert lag.known_error_id == known_error.id, "linked by the key in the front matter"
    assert lag.error_signatures == ["replica lag exceeds 300 seconds"]
    assert lag.sources == ["https://tickets.example.org/OPS-1187"]
    assert lag.body == REPLICA_LAG_BODY.strip()

    assert rotate.kind is ArticleKind.HOW_TO, "'how-to' is read as how_to"
    assert rotate.status is ArticleStatus.DRAFT
    assert rotate.published_at is None, "a draft was never published"
    assert rotate.known_error_id is None
    assert tags[rotate.id] == ["credentials"]
    assert [s.slug for s in services[rotate.id]] == ["ledger"]
    assert rotate.body == ROTATE_BODY.strip()


async def test_an_imported_known_error_keeps_its_key_and_new_keys_follow_it(
    db: Database, tmp_path: Path
) -> None:
    # given a known error imported with its own key
    await given_services(db, "ledger")
    line = json.dumps(BACKFILL_KNOWN_ERROR) + "\n"
    assert (await import_path(db, write_folder(tmp_path, {"ke.jsonl": line}))).ok

    # when one is recorded without a key
    async with db.transaction() as session:
        recorded = await known_errors.create(
            session=session,
            principal=SYSTEM,
            draft=known_errors.KnownErrorDraft(title="Nightly export misses late rows"),
        )

    # then the numbering continues after the imported key
    assert recorded.key == "KE-0043"
    async with db.read() as session:
        keys = list(await session.scalars(sa.select(KnownError.key).order_by(KnownError.key)))
    assert keys == ["KE-0042", "KE-0043"]


# --- idempotency ---------------------------------------------------------------------


async def test_importing_the_same_folder_again_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    # given
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "kb", GOOD_FILES)
    first = await import_path(db, folder)
    before = {
        slug: await article(db, slug)
        for slug in ("ledger-replica-lag", "rotate-ledger-credentials")
    }
    known_error_before = await known_error(db, "KE-0042")
    revisions_before = await count(db, ArticleRevision)

    # when
    second = await import_path(db, folder)

    # then
    assert outcome(first) == (3, 0, 0)
    assert outcome(second) == (0, 0, 3)
    assert await count(db, ArticleRevision) == revisions_before == 2
    for slug, old in before.items():
        new = await article(db, slug)
        assert new.current_revision == old.current_revision == 1
        assert new.version == old.version, f"{slug} was written although nothing changed"
    assert (await known_error(db, "KE-0042")).version == known_error_before.version, (
        "an unchanged known error is not rewritten"
    )


async def test_changing_one_body_updates_that_article_with_a_revision_naming_the_file(
    db: Database, tmp_path: Path
) -> None:
    # given an imported folder
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "kb", GOOD_FILES)
    assert (await import_path(db, folder)).ok
    new_body = "Rotate the password with the vault CLI; the workers reload it on their own.\n"
    (folder / "rotate-ledger-credentials.md").write_text(
        ROTATE_MD.replace(ROTATE_BODY, new_body), encoding="utf-8"
    )

    # when it is imported again
    report = await import_path(db, folder)

    # then only that article changed, with a second revision that says where it came from
    assert outcome(report) == (0, 1, 2)
    rotated = await article(db, "rotate-ledger-credentials")
    assert rotated.body == new_body.strip()
    assert rotated.current_revision == 2
    history = await revisions(db, "rotate-ledger-credentials")
    assert [r.number for r in history] == [1, 2]
    assert history[0].body == ROTATE_BODY.strip(), "the first revision keeps the old body"
    assert history[1].body == new_body.strip()
    assert "rotate-ledger-credentials.md" in history[1].change_note
    assert [r.number for r in await revisions(db, "ledger-replica-lag")] == [1]


# --- bad batches ---------------------------------------------------------------------


async def test_a_batch_with_bad_records_imports_nothing_and_reports_every_problem(
    db: Database, tmp_path: Path
) -> None:
    # given a folder whose valid records sit next to bad ones
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "bad", BAD_FILES)

    # when
    report = await import_path(db, folder)

    # then every problem is named by file, line and field, once
    assert problems_at(report) == BAD_FILE_PROBLEMS
    assert len(report.problems) == len(BAD_FILE_PROBLEMS)
    assert outcome(report) == (0, 0, 0)
    duplicate = next(p for p in report.problems if Path(p.file).name == "copy-b.md")
    assert "copy-a.md" in duplicate.reason, "the duplicate points at the first copy"
    # and not even the valid records were written
    assert await count(db, Article) == 0
    assert await count(db, KnownError) == 0
    assert await count(db, ArticleRevision) == 0


async def test_the_cli_refuses_a_bad_batch_with_exit_1_and_every_problem_on_stderr(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "bad", BAD_FILES)

    # when
    status = await knownfix("import", str(folder), "--database-url", db.url)

    # then
    assert status == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    for name, line, field in BAD_FILE_PROBLEMS:
        where = f"{folder / name}:{line}: " + (f"{field}: " if field else "")
        assert any(printed.startswith(where) for printed in lines), f"{where!r} not reported"
    assert lines[-1] == f"knownfix: {len(BAD_FILE_PROBLEMS)} problem(s); nothing was imported"
    assert len(lines) == len(BAD_FILE_PROBLEMS) + 1
    assert "imported:" not in captured.out
    assert await count(db, Article) == 0
    assert await count(db, KnownError) == 0


# --- dry runs ------------------------------------------------------------------------


async def test_a_dry_run_validates_everything_and_writes_nothing(
    db: Database, tmp_path: Path
) -> None:
    # given
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "kb", GOOD_FILES)

    # when
    report = await import_path(db, folder, dry_run=True)
    bad = await import_path(db, write_folder(tmp_path / "bad", BAD_FILES), dry_run=True)

    # then
    assert report.ok
    assert report.checked == 3
    assert outcome(report) == (0, 0, 0)
    assert problems_at(bad) == BAD_FILE_PROBLEMS, "a dry run finds the same problems"
    assert await count(db, Article) == 0
    assert await count(db, KnownError) == 0


async def test_a_dry_run_from_the_cli_leaves_an_existing_article_as_it_was(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an imported folder whose file then changes
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "kb", GOOD_FILES)
    assert (await import_path(db, folder)).ok
    (folder / "rotate-ledger-credentials.md").write_text(
        ROTATE_MD.replace(ROTATE_BODY, "A body that must not be stored.\n"), encoding="utf-8"
    )

    # when
    status = await knownfix("import", str(folder), "--dry-run", "--database-url", db.url)

    # then
    assert status == 0
    assert capsys.readouterr().out.strip() == ("3 records are valid; nothing was written (dry run)")
    rotated = await article(db, "rotate-ledger-credentials")
    assert rotated.body == ROTATE_BODY.strip()
    assert rotated.current_revision == 1
    assert await count(db, ArticleRevision) == 2


async def test_the_cli_import_reports_created_then_unchanged(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await given_services(db, "ledger", "payments")
    folder = write_folder(tmp_path / "kb", GOOD_FILES)

    assert await knownfix("import", str(folder), "--database-url", db.url) == 0
    assert capsys.readouterr().out.strip() == "imported: 3 created, 0 updated, 0 unchanged"
    assert await knownfix("import", str(folder), "--database-url", db.url) == 0
    assert capsys.readouterr().out.strip() == "imported: 0 created, 0 updated, 3 unchanged"
    assert await count(db, Article) == 2


# --- export --------------------------------------------------------------------------


async def test_the_cli_export_writes_one_file_per_article_and_the_known_errors(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    await given_services(db, "ledger", "payments")
    assert (await import_path(db, write_folder(tmp_path / "kb", GOOD_FILES))).ok
    out = tmp_path / "out"

    # when
    status = await knownfix("export", str(out), "--database-url", db.url)

    # then
    assert status == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 files to {out}"
    written = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    async with db.read() as session:
        assert written == await transfer.export_files(session)
    assert set(written) == set(GOOD_FILES)
    assert written["ledger-replica-lag.md"].startswith("---\nslug: ledger-replica-lag\n")
    assert json.loads(written["known-errors.jsonl"])["key"] == "KE-0042"


async def test_export_then_import_into_a_fresh_database_is_lossless(
    db: Database, database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    # given the demo knowledge base, exported to a folder
    async with db.transaction() as session:
        demo = await loader.load(session)
    async with db.read() as session:
        services = [(s.slug, s.name) for s in await session.scalars(sa.select(Service))]
        first = await transfer.export_files(session)
    write_folder(tmp_path / "export", first)
    assert len(first) == demo.articles + 1, "one file per article, plus the known errors"
    assert any("\nknown_error: KE-" in text for text in first.values()), "links are exported"

    fresh = Database(await database_factory.create())
    try:
        # when it is imported into a fresh database with the same services
        await migrate.upgrade(fresh.engine)
        async with fresh.transaction() as session:
            for slug, name in services:
                await catalog.create(session=session, principal=SYSTEM, slug=slug, name=name)
        report = await import_path(fresh, tmp_path / "export")
        async with fresh.read() as session:
            second = await transfer.export_files(session)
    finally:
        await fresh.dispose()

    # then exporting again gives the same files, byte for byte
    assert report.ok, report.problems
    assert outcome(report) == (demo.articles + demo.known_errors, 0, 0)
    assert sorted(second) == sorted(first)
    for name, text in first.items():
        assert second[name] == text, f"{name} changed on the round trip"


# --- the evaluation-set shape --------------------------------------------------------


async def test_evaluation_set_records_become_known_error_articles_with_sections(
    db: Database, tmp_path: Path
) -> None:
    # given
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EVAL_RECORDS), encoding="utf-8")

    # when
    report = await import_path(db, path)

    # then
    assert report.ok, report.problems
    assert outcome(report) == (2, 0, 0)
    for record in EVAL_RECORDS:
        imported = await article(db, str(record["id"]))
        assert imported.title == record["title"]
        assert imported.kind is ArticleKind.KNOWN_ERROR
        assert imported.status is ArticleStatus.PUBLISHED
        assert imported.category == record["category"]
        assert imported.sources == record["sources"]
        assert f"## Symptoms\n\n{record['symptoms']}" in imported.body
        assert f"## Cause\n\n{record['cause']}" in imported.body
        assert f"## Resolution\n\n{record['resolution']}" in imported.body
        sections = [line for line in imported.body.splitlines() if line.startswith("## ")]
        expected = ["## Symptoms", "## Cause", "## Resolution"]
        assert sections == expected + (["## Workaround"] if record["workaround"] else [])
        async with db.read() as session:
            tags = await articles.tags_of(session=session, article_ids=[imported.id])
        assert sorted(tags[imported.id]) == sorted(record["tags"])
    assert (await import_path(db, path)).unchanged == 2


@pytest.mark.skipif(not EVALUATION_SET.is_file(), reason=f"{EVALUATION_SET} is not here")
async def test_the_shared_evaluation_set_imports_once_then_is_unchanged(db: Database) -> None:
    first = await import_path(db, EVALUATION_SET)
    second = await import_path(db, EVALUATION_SET)

    assert first.ok, first.problems[:5]
    assert outcome(first) == (114, 0, 0)
    assert outcome(second) == (0, 0, 114)
    assert await count(db, Article) == 114
    assert await count(db, ArticleRevision) == 114


# --- known bugs (see the reasons) ----------------------------------------------------


async def test_a_service_that_is_not_a_slug_string_is_reported_not_raised(
    db: Database, tmp_path: Path
) -> None:
    await given_services(db, "ledger")
    folder = write_folder(
        tmp_path,
        {
            "numbered.md": "---\ntitle: Numbered service\nservices: [42]\n---\nText.\n",
            "ke.jsonl": json.dumps({**BACKFILL_KNOWN_ERROR, "services": [7]}) + "\n",
        },
    )

    report = await import_path(db, folder)

    assert problems_at(report) == {("numbered.md", 1, "services"), ("ke.jsonl", 1, "services")}
    assert await count(db, Article) == 0


async def test_known_error_fields_are_checked_before_anything_is_written(
    db: Database, tmp_path: Path
) -> None:
    # given known errors that the known-error service would refuse
    await given_services(db, "ledger")
    refused: list[dict[str, Any]] = [
        {"key": "KE-0201", "category": "c" * 81},
        {"key": "KE-0202", "category": 5},
        {"key": "KE-0203", "error_signatures": [""]},
        {"key": "KE-0204", "services": "ledger"},
    ]
    lines = "".join(json.dumps({**BACKFILL_KNOWN_ERROR, **r}) + "\n" for r in refused)

    # when
    report = await import_path(db, write_folder(tmp_path, {"ke.jsonl": lines}))

    # then each is reported, instead of the first one stopping the import with an exception
    assert problems_at(report) == {
        ("ke.jsonl", 1, "category"),
        ("ke.jsonl", 2, "category"),
        ("ke.jsonl", 3, "error_signatures"),
        ("ke.jsonl", 4, "services"),
    }
    assert await count(db, KnownError) == 0


async def test_listing_a_service_twice_does_not_make_every_import_an_update(
    db: Database, tmp_path: Path
) -> None:
    await given_services(db, "ledger")
    folder = write_folder(
        tmp_path,
        {
            "twice.md": "---\ntitle: Twice listed\nservices: [ledger, ledger]\n---\nText.\n",
            "ke.jsonl": json.dumps({**BACKFILL_KNOWN_ERROR, "services": ["ledger", "ledger"]})
            + "\n",
        },
    )
    assert outcome(await import_path(db, folder)) == (2, 0, 0)

    again = await import_path(db, folder)

    assert outcome(again) == (0, 0, 2)
    assert await count(db, ArticleRevision) == 1


async def test_two_files_without_slugs_but_the_same_title_are_duplicates(
    db: Database, tmp_path: Path
) -> None:
    folder = write_folder(
        tmp_path,
        {
            "a.md": "---\ntitle: Disk full on the build agents\n---\nClean the cache.\n",
            "b.md": "---\ntitle: Disk full on the build agents\n---\nGrow the volume.\n",
        },
    )

    report = await import_path(db, folder)

    assert problems_at(report) == {("b.md", 1, "slug")}
    assert await count(db, Article) == 0


async def test_an_unknown_field_in_a_json_lines_article_is_reported(
    db: Database, tmp_path: Path
) -> None:
    line = _article_line("misspelt", tag=["dns"]) + "\n"

    report = await import_path(db, write_folder(tmp_path, {"articles.jsonl": line}))

    assert problems_at(report) == {("articles.jsonl", 1, "tag")}
    assert await count(db, Article) == 0


async def test_a_known_error_reference_that_is_not_a_key_is_reported(
    db: Database, tmp_path: Path
) -> None:
    text = "---\ntitle: Listed key\nknown_error: [KE-0042]\n---\nText.\n"

    report = await import_path(db, write_folder(tmp_path, {"listed.md": text}))

    assert problems_at(report) == {("listed.md", 1, "known_error")}


async def test_a_markdown_file_saved_with_a_byte_order_mark_imports(
    db: Database, tmp_path: Path
) -> None:
    text = "\ufeff---\nslug: with-bom\ntitle: Saved by a Windows editor\n---\nText.\n"

    report = await import_path(db, write_folder(tmp_path, {"bom.md": text}))

    assert report.ok, report.problems
    assert (await article(db, "with-bom")).title == "Saved by a Windows editor"
