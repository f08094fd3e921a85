"""The analyses kept per text give what analysing the text again gives: Whoosh's own
highlights, matched terms and term counts."""

from __future__ import annotations

import collections
import random

from hypothesis import given, settings
from hypothesis import strategies as st
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


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aAbBzZ09_.*-' /\\:éÉİß设置로\n", max_size=120) | st.just(BODY))
def test_a_texts_vocabulary_is_its_words_terms(text: str) -> None:
    # Matched terms come from the kept terms of the text's distinct words: the same
    # indexed terms as analysing the whole text, stop words left out.
    assert search._vocabulary(text) == {t.text for t in analyzer()(text)}


def test_a_plain_texts_term_counts_are_its_analysis() -> None:
    # Plain words are counted word by word from kept analyses: the counts must be
    # those of analysing the whole text, in the same order.
    words = [
        "Booting",
        "worker",
        "PublicKeyRetrieval",
        "the",
        "ER_AUTH_MODE",
        "2024",
        "of",
        "utf8mb4",
        "über",
        "pid",
    ]
    rng = random.Random(4)  # noqa: S311 (test text, not security)
    for _ in range(200):
        text = " ".join(rng.choices(words, k=rng.randint(1, 30)))
        whole = collections.Counter(t.text for t in analyzer()(text))
        assert search._term_counts(text) == tuple(whole.items())
    assert search._term_counts("pg_hba.conf, line 3") == tuple(
        collections.Counter(t.text for t in analyzer()("pg_hba.conf, line 3")).items()
    )


def test_a_stop_word_in_a_document_is_no_match() -> None:
    # "using" stems to "us", a stop word the index never holds: "contact us" does not
    # match a query that said "using".
    document = {"title": "Contact us", "body": "Write to us about the outage."}
    assert search._matched(document, frozenset({"us", "outag"})) == {"body": {"outag"}}
