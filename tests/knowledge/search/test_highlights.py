"""Highlights over the kept analysis of a text are Whoosh's own highlights."""

from __future__ import annotations

from whoosh import highlight

from knowledge.search import service as search
from knowledge.search.analysis import analyzer

BODY = (
    "## Symptoms\nThe client fails with ER_NOT_SUPPORTED_AUTH_MODE when it connects. "
    + "Unrelated filler about backups and cron jobs. " * 12
    + "Set allowPublicKeyRetrieval=true in the JDBC URL, then restart the client; "
    "the mysql server log shows the same auth mode error again and again."
)


def test_fragments_equal_whooshs_highlight() -> None:
    for words in ({"auth", "mode"}, {"retriev", "jdbc", "restart"}, {"cron"}, {"absent"}):
        expected = highlight.highlight(
            BODY, frozenset(words), analyzer(), search._FRAGMENTER, search._FORMATTER,
            top=search.FRAGMENTS_PER_FIELD,
        )  # fmt: skip
        assert search._fragments(BODY, words) == expected
        assert search._fragments(BODY, words) == expected  # again, from the kept analysis


def test_matched_terms_come_from_each_field() -> None:
    document = {"title": "MySQL auth mode", "body": BODY, "tags": "mysql, JDBC"}
    found = search._matched(document, frozenset({"auth", "jdbc", "mysql", "nowhere"}))
    assert found == {"title": {"auth", "mysql"}, "body": {"auth", "jdbc", "mysql"},
                     "tags": {"mysql", "jdbc"}}  # fmt: skip
