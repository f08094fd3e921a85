"""BM25F's average field length is rounded so that a write seldom changes it: close to
the exact average, the same for Whoosh's searches and the array scorer, and the BM25
parts kept for it survive a write that leaves it as it was."""

from __future__ import annotations

import math
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from knowledge.search import arrays
from knowledge.search.query import parse
from knowledge.search.weighting import AVERAGE_BITS, BM25F, average_length
from tests.knowledge.search.test_arrays import TEXTS, _terms, _whoosh_scores, _with_segments
from tests.knowledge.search.test_match import document


class _Averaging:
    """A searcher that knows only its average field length."""

    def __init__(self, average: float) -> None:
        self.average = average

    def get_parent(self) -> _Averaging:
        return self

    def avg_field_length(self, field: str) -> float:
        return self.average


@given(st.floats(min_value=1e-3, max_value=1e6))
def test_the_rounded_average_is_within_its_bits_of_the_exact_one(exact: float) -> None:
    rounded = average_length(_Averaging(exact), "body")
    assert abs(rounded - exact) <= exact * 2.0**-AVERAGE_BITS
    # Representable in AVERAGE_BITS bits: rounding it again changes nothing.
    assert average_length(_Averaging(rounded), "body") == rounded


def test_a_field_no_document_has_averages_one_as_in_whoosh() -> None:
    assert average_length(_Averaging(0.0), "signatures") == 1.0


def test_the_index_searches_with_the_rounded_average(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    try:
        with index.reading():
            searcher = index.searcher()
            assert isinstance(searcher.weighting, BM25F)
            exact = searcher.avg_field_length("body")
            parsed, _ = parse(index.schema, TEXTS[0])
            term = next(t for t in _terms(parsed) if t.field == "body")
            scorer = searcher.weighting.scorer(searcher, "body", term.text)
            assert scorer.avgfl == average_length(searcher, "body") != exact
    finally:
        index.close()


def test_a_write_that_keeps_the_rounded_average_keeps_the_bm25_parts(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    cache = arrays.PostingsCache(max_bytes=10**8)
    rng = random.Random(8)  # noqa: S311 (test text, not security)
    parsed, _ = parse(index.schema, TEXTS[0])
    terms = _terms(parsed)

    def kept_parts() -> dict[object, int]:
        return {k: id(v[0]) for k, (v, _) in cache._entries.items() if k[1] == "normalised"}

    try:
        with index.reading():
            searcher = index.searcher()
            before = (searcher.avg_field_length("body"), average_length(searcher, "body"))
            arrays.scores(searcher, cache, terms, index.doc_frequency)
        kept = kept_parts()
        assert kept
        index.apply([document(1000, rng)], [], seq=4)
        with index.reading():
            searcher = index.searcher()
            after = (searcher.avg_field_length("body"), average_length(searcher, "body"))
            assert after[0] != before[0]
            assert after[1] == before[1]
            total = arrays.scores(searcher, cache, terms, index.doc_frequency)
            live = set(searcher.reader().all_doc_ids())
            assert {d: float(total[d]) for d in live if total[d] > 0} == _whoosh_scores(
                index, parsed
            )
        # The same arrays, not computed again (the new segment adds its own).
        assert {k: kept_parts()[k] for k in kept} == kept
    finally:
        index.close()


def test_the_rounding_moves_a_score_by_less_than_the_average_does() -> None:
    # BM25's length part for a document of the average length, exact against rounded.
    k1, b, exact = 1.2, 0.75, 137.3
    rounded = average_length(_Averaging(exact), "body")

    def part(average: float) -> float:
        return (2.0 * (k1 + 1)) / (2.0 + k1 * ((1 - b) + b * exact / average))

    assert math.isclose(part(rounded), part(exact), rel_tol=2.0**-AVERAGE_BITS)
