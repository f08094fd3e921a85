"""The array scorer gives Whoosh's own BM25F scores, bit for bit, over an index of
several segments with replaced and deleted documents, and ranks as Whoosh ranks."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from whoosh import collectors
from whoosh import query as q

from knowledge.search import arrays
from knowledge.search import service as search
from knowledge.search.index import WRITTEN_FIELDS, SearchIndex
from knowledge.search.query import parse
from tests.knowledge.search.test_match import built, document

TEXTS = ("redis replica timeout", "tls certificate expired dns", "vacuum deadlock postgres")


def _terms(query: q.Query) -> list[arrays.Term]:
    assert isinstance(query, q.Or)
    return [arrays.Term(t.fieldname, t.text, t.boost) for t in query.subqueries]


def _whoosh_scores(index: SearchIndex, query: q.Query) -> dict[int, float]:
    """Every matching document's score, from Whoosh's term-at-a-time union."""
    union = q.Or(query.subqueries)
    union.matcher_type = q.Or.ARRAY_MATCHER
    found = index.searcher().search(union, limit=None, scored=True)
    return {hit.docnum: hit.score for hit in found}


def _with_segments(tmp_path: Path) -> SearchIndex:
    rng = random.Random(11)  # noqa: S311 (test text, not security)
    index = SearchIndex(tmp_path / "index")
    index.open()
    rebuild = index.begin_rebuild()
    rebuild.add(document(n, rng) for n in range(300))
    rebuild.finish(1)
    # Later writes land in new segments: new documents, replaced ones, deleted ones.
    index.apply([document(n, rng) for n in range(300, 360)], [], seq=2)
    index.apply([document(n, rng) for n in range(0, 40, 2)], ["article:3", "incident:5"], seq=3)
    return index


def test_scores_are_whooshs_bit_for_bit_across_segments(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    cache = arrays.PostingsCache(max_bytes=10**8)
    try:
        with index.reading():
            searcher = index.searcher()
            assert len(list(searcher.reader().leaf_readers())) > 1
            live = set(searcher.reader().all_doc_ids())
            for text in TEXTS:
                parsed, _ = parse(index.schema, text)
                # A repeated word's boost, as _boost_repeated sets it.
                boosted = q.Or([
                    q.Term(t.fieldname, t.text, boost=1.7 if t.fieldname == "title" else 1.0)
                    for t in parsed.subqueries
                ])  # fmt: skip
                for query in (parsed, boosted):
                    expected = _whoosh_scores(index, query)
                    total = arrays.scores(searcher, cache, _terms(query), index.doc_frequency)
                    ours = {d: float(total[d]) for d in live if total[d] > 0}
                    assert ours == expected
    finally:
        index.close()


def test_scores_kept_for_one_average_length_are_not_used_after_a_write(tmp_path: Path) -> None:
    # The cache keeps each term's BM25 part for the field's average length; a write
    # changes that average, and the next searcher's scores must be Whoosh's again.
    index = _with_segments(tmp_path)
    cache = arrays.PostingsCache(max_bytes=10**8)
    rng = random.Random(5)  # noqa: S311 (test text, not security)
    try:
        for seq, added in ((4, range(400, 420)), (5, range(420, 425))):
            with index.reading():
                searcher = index.searcher()
                live = set(searcher.reader().all_doc_ids())
                for text in TEXTS:
                    parsed, _ = parse(index.schema, text)
                    total = arrays.scores(searcher, cache, _terms(parsed), index.doc_frequency)
                    ours = {d: float(total[d]) for d in live if total[d] > 0}
                    assert ours == _whoosh_scores(index, parsed)
            longer = [document(n, rng) | {"body": "filler " * 200} for n in added]
            index.apply(longer, [], seq=seq)
    finally:
        index.close()


def test_best_ranks_as_whooshs_collector_with_ties(tmp_path: Path) -> None:
    # Identical documents score the same: the lower document number comes first.
    same = {"title": "kafka broker offset", "symptoms": "", "body": "kafka lag"}
    rng = random.Random(2)  # noqa: S311 (test text, not security)
    documents = [document(n, rng) | same for n in range(0, 90, 3)]
    documents += [document(n, rng) for n in range(1, 90, 3)]
    cache = arrays.PostingsCache(max_bytes=10**8)
    with built(tmp_path / "index", documents) as index, index.reading():
        searcher = index.searcher()
        parsed, _ = parse(index.schema, "kafka broker")
        union = q.Or(parsed.subqueries)
        union.matcher_type = q.Or.ARRAY_MATCHER
        allowed = {d for d in searcher.reader().all_doc_ids() if d % 2 == 0}
        total = arrays.scores(searcher, cache, _terms(parsed), index.doc_frequency)
        for limit in (1, 5, 12, 100):
            top = collectors.TopCollector(limit=limit, replace=0)
            searcher.search_with_collector(union, collectors.FilterCollector(top, allowed))
            expected = [(hit.docnum, hit.score) for hit in top.results()]
            candidates = np.array(sorted(allowed), dtype=np.int64)
            assert arrays.best(total, candidates, limit) == expected


def test_the_cache_stays_within_its_bytes_and_gives_the_same_postings(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    small = arrays.PostingsCache(max_bytes=4000)
    large = arrays.PostingsCache(max_bytes=10**8)
    try:
        with index.reading():
            searcher = index.searcher()
            for text in TEXTS * 2:
                terms = _terms(parse(index.schema, text)[0])
                assert np.array_equal(
                    arrays.scores(searcher, small, terms, index.doc_frequency),
                    arrays.scores(searcher, large, terms, index.doc_frequency),
                )
                assert small.size <= 4000
            assert large.size > 4000
    finally:
        index.close()


def test_allowed_documents_are_whooshs_across_segments_and_deletions(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    published = q.Or([q.Term("status", "published"), q.Term("status", "resolved")])
    queries = [
        q.Term("kind", "article"),
        q.Term("kind", "nothing"),
        q.And([q.Term("kind", "article"), published]),
        q.Or([q.And([q.Term("kind", k), published]) for k in ("article", "incident")]),
        q.And([q.Term("kind", "incident"), q.Term("kind", "article")]),
    ]
    cache = arrays.PostingsCache(max_bytes=10**8)
    try:
        with index.reading():
            searcher = index.searcher()
            assert any(s.deleted_docs_set for s, _ in searcher.reader().leaf_readers())
            for query in queries:
                expected = sorted(searcher.docs_for_query(query))
                assert list(arrays.documents(searcher, cache, query)) == expected, query
            assert len(arrays.documents(searcher, cache, q.Or([]))) == 0
    finally:
        index.close()


def test_remembered_frequencies_and_allowed_sets_follow_the_index(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    visible = q.Term("kind", "article")
    try:
        with index.reading():
            before = index.doc_frequency("title", "zookeep")
            memo = index.memo()
            memo["allowed"] = arrays.documents(index.searcher(), index.postings, visible)
        index.apply([{"key": "article:900", "kind": "article", "title": "zookeeper"}], [], 4)
        with index.reading():
            assert (before, index.doc_frequency("title", "zookeep")) == (0, 1)
            assert "allowed" not in index.memo()
            allowed = arrays.documents(index.searcher(), index.postings, visible)
            assert len(allowed) == len(memo["allowed"]) + 1
    finally:
        index.close()


def test_document_frequencies_are_whooshs_across_segments_writes_and_merges(
    tmp_path: Path,
) -> None:
    index = _with_segments(tmp_path)
    words = ["redi", "timeout", "replica", "tls", "zookeep", "nowher"]

    def carried_after(change: Callable[[], None]) -> object:
        change()
        with index.reading():
            reader = index.searcher().reader()
            for field in ("title", "symptoms", "body"):
                for word in words:
                    assert index.doc_frequency(field, word) == reader.doc_frequency(field, word)
            for word in words:
                in_text = sum(reader.doc_frequency(f, word) for f in WRITTEN_FIELDS)
                assert index.text_frequency(word) == in_text
            return index.segments().carried

    def write(seq: int) -> Callable[[], None]:
        new = {"key": f"article:{900 + seq}", "kind": "article", "title": "zookeeper redis"}
        return lambda: index.apply([new], ["incident:8"], seq)

    try:
        first = carried_after(lambda: None)
        # New segments: the counts kept for the old ones still add up, and are kept.
        assert carried_after(write(5)) is first
        assert carried_after(write(6)) is first
        # A merge replaces segments: counted again from them.
        merged = carried_after(lambda: index._ix.writer().commit(optimize=True))
        assert merged is not first
        assert carried_after(write(7)) is merged
    finally:
        index.close()


def test_a_cache_of_no_bytes_keeps_nothing_and_scores_the_same(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    none = arrays.PostingsCache(max_bytes=0)
    try:
        with index.reading():
            searcher = index.searcher()
            terms = _terms(parse(index.schema, TEXTS[0])[0])
            expected = arrays.scores(searcher, index.postings, terms, index.doc_frequency)
            found = arrays.scores(searcher, none, terms, index.doc_frequency)
            assert np.array_equal(found, expected)
            assert none.size == 0
    finally:
        index.close()


def test_terms_a_segment_lacks_take_room_too(tmp_path: Path) -> None:
    # Absent terms are kept as empty postings; they must count against the bytes, or a
    # stream of unknown words would grow the cache without end.
    cache = arrays.PostingsCache(max_bytes=50 * arrays.ENTRY_OVERHEAD)
    none = arrays.PostingsCache(max_bytes=0)
    rng = random.Random(1)  # noqa: S311 (test text, not security)
    with built(tmp_path / "index", [document(1, rng)]) as index, index.reading():
        searcher = index.searcher()
        for n in range(500):
            for kept in (cache, none):
                terms = [arrays.Term("body", f"absent{n}")]
                assert not arrays.scores(searcher, kept, terms, index.doc_frequency).any()
        assert 0 < cache.size <= cache.max_bytes
        assert len(cache._entries) <= 50
        assert (none.size, len(none._entries)) == (0, 0)


def test_spelling_corrections_over_segments_are_whooshs(tmp_path: Path) -> None:
    # Whoosh corrects against every word of a field once an index has several
    # segments; the corrector per segment must suggest the same words.
    index = _with_segments(tmp_path)
    typos = ["rediss", "timout", "replca", "certficate", "deadlok", "handshak", "zzzzzz", "redis"]
    try:
        with index.reading():
            reader = index.searcher().reader()
            assert len(list(reader.leaf_readers())) > 1
            for field in ("title", "body"):
                ours = search._SegmentsCorrector(reader, field)
                whooshs = index.searcher().corrector(field)
                for word in typos:
                    for distance in (0, 1, 2):
                        expected = whooshs.suggest(word, limit=3, maxdist=distance)
                        assert ours.suggest(word, limit=3, maxdist=distance) == expected
    finally:
        index.close()


def test_respelling_after_writes_is_respelling_from_scratch(tmp_path: Path) -> None:
    # Words known before a write stay known without looking again; a word only the
    # new segment has is known too, and typos are still corrected.
    index = _with_segments(tmp_path)
    title = "zookeepr timout replca handshak certficate redis replica"
    try:
        before = search.respelled(index, title)
        assert before == "zookeepr timeout replica handshake certificate redis replica"
        index.apply([{"key": "article:950", "kind": "article", "title": "zookeepr"}], [], 4)
        index.apply([{"key": "article:951", "kind": "article", "body": "handshak"}], [], 5)
        after = search.respelled(index, title)
        assert after == "zookeepr timeout replica handshak certificate redis replica"
        fresh = SearchIndex(index.root)
        fresh.open()
        try:
            assert search.respelled(fresh, title) == after
        finally:
            fresh.close()
    finally:
        index.close()
