"""Compound identifiers are words too: ``ER_NOT_SUPPORTED_AUTH_MODE`` is found by "auth
mode", ``PublicKeyRetrieval`` by "public key retrieval", and the other way round."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh.filedb.filestore import RamStorage

from knowledge.search.analysis import analyzer, compound_parts, spans, terms
from knowledge.search.query import parse
from knowledge.search.schema import build_schema


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        ("ER_NOT_SUPPORTED_AUTH_MODE", ["ER", "NOT", "SUPPORTED", "AUTH", "MODE"]),
        ("max_connections", ["max", "connections"]),
        ("__init__", ["init"]),
        ("PublicKeyRetrieval", ["Public", "Key", "Retrieval"]),
        ("allowPublicKeyRetrieval", ["allow", "Public", "Key", "Retrieval"]),
        ("HTTPServer", ["HTTP", "Server"]),
        ("getHTTPResponse", ["get", "HTTP", "Response"]),
        ("psycopg2.OperationalError", ["psycopg2", "Operational", "Error"]),
        ("pg_hba.conf", ["pg", "hba", "conf"]),
        ("kube_pod.containerStatus", ["kube", "pod", "container", "Status"]),
    ],
)  # fmt: skip
def test_an_identifier_splits_into_its_words(word: str, parts: list[str]) -> None:
    assert compound_parts(word) == parts


@pytest.mark.parametrize("word", ["timeout", "Timeout", "TIMEOUT", "utf8mb4", "x509", "ipv6", ""])
def test_a_plain_word_has_no_parts(word: str) -> None:
    assert compound_parts(word) == []


def tokens(text: str) -> list[Any]:
    return [(t.text, t.startchar, t.endchar) for t in analyzer()(text, positions=True, chars=True)]


def test_the_analyzer_keeps_the_whole_identifier_and_adds_its_stemmed_parts() -> None:
    texts = [text for text, _, _ in tokens("ER_NOT_SUPPORTED_AUTH_MODE")]
    assert texts[0] == "er_not_supported_auth_mod"  # the whole token, lower case and stemmed
    assert texts[1:] == ["er", "support", "auth", "mode"]  # "not" is a stop word


def test_camel_case_and_dotted_names_are_split_the_same_way() -> None:
    assert [t for t, _, _ in tokens("PublicKeyRetrieval")] == [
        "publickeyretriev", "public", "kei", "retriev"]  # fmt: skip
    assert [t for t, _, _ in tokens("psycopg2.OperationalError")] == [
        "psycopg2.operationalerror", "psycopg2", "oper", "error"]  # fmt: skip


def test_each_part_points_at_its_own_characters_for_highlighting() -> None:
    text = "mysql says ER_NOT_SUPPORTED_AUTH_MODE; set allowPublicKeyRetrieval=true"
    found = {word: text[start:end] for word, start, end in tokens(text)}
    assert found["er_not_supported_auth_mod"] == "ER_NOT_SUPPORTED_AUTH_MODE"
    assert found["support"] == "SUPPORTED"
    assert found["auth"] == "AUTH"
    assert found["allowpublickeyretriev"] == "allowPublicKeyRetrieval"
    assert found["kei"] == "Key"
    assert found["retriev"] == "Retrieval"
    assert found["true"] == "true"


def test_plain_words_are_analysed_as_before() -> None:
    assert [t for t, _, _ in tokens("Connections are refused")] == ["connect", "refus"]


# --- through a query ----------------------------------------------------------------

DOCUMENTS = {
    "identifier": "mysql says ER_NOT_SUPPORTED_AUTH_MODE when the client connects",
    "camel": "set allowPublicKeyRetrieval=true in the JDBC url",
    "words": "the driver needs public key retrieval enabled",
    "other": "the disk quota is exceeded on the shared volume",
}


def search(text: str) -> list[str]:
    schema = build_schema()
    ix = RamStorage().create_index(schema)
    with ix.writer() as writer:
        for key, body in DOCUMENTS.items():
            writer.add_document(key=key, kind="article", body=body)
    query, _ = parse(schema, text)
    with ix.searcher() as searcher:
        return sorted(hit["key"] for hit in searcher.search(query, limit=None))


def test_words_typed_by_a_reporter_find_the_identifier_an_article_quotes() -> None:
    assert search("auth mode not supported") == ["identifier"]
    assert search("public key retrieval") == ["camel", "words"]


def test_an_identifier_typed_by_a_reporter_finds_an_article_written_in_words() -> None:
    assert search("PublicKeyRetrieval") == ["camel", "words"]


def test_a_phrase_across_an_identifier_and_its_neighbours_still_matches() -> None:
    assert search('"says ER_NOT_SUPPORTED_AUTH_MODE when"') == ["identifier"]
    assert search('"public key retrieval"') == ["camel", "words"]
    assert search('"quota ER_NOT_SUPPORTED_AUTH_MODE"') == []


ALPHABET = "aAbBzZ09_.*-' /\\:éÉİß设置로\n"
SAMPLES = [
    "mysql says ER_NOT_SUPPORTED_AUTH_MODE; set allowPublicKeyRetrieval=true",
    "psycopg2.OperationalError: FATAL: the role 'app' does not exist at pg_hba.conf:91",
    "İstanbul ß STRASSE 设置redis 72로 a I is of the *.log kube_pod.containerStatus",
]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=80) | st.sampled_from(SAMPLES))
def test_spans_are_the_analyzers_tokens(text: str) -> None:
    # The suggestions analyse without Whoosh's generator chain: same tokens, same
    # characters, same stop words, whatever the text.
    expected = [
        (t.text, t.startchar, t.endchar, t.stopped)
        for t in analyzer()(text, chars=True, mode="query", removestops=False)
    ]
    assert list(spans(text)) == expected
    assert list(terms(text)) == [t.text for t in analyzer()(text)]
