"""A large segment's postings, written beside it as flat arrays, are the postings
Whoosh reads: same documents, same weights, same scores; they go with their segment,
and a process that another is writing them for waits for that one's files."""

from __future__ import annotations

import fcntl
import gc
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from whoosh import query as q

from knowledge.search import arrays
from knowledge.search.index import SearchIndex
from knowledge.search.query import parse
from knowledge.search.segment_arrays import SegmentArrays
from tests.knowledge.search.test_arrays import TEXTS, _terms, _whoosh_scores
from tests.knowledge.search.test_match import document

LARGE = 50  # documents: the segments below are "large" at this threshold
RARE = 2  # documents with the word "quasar": too few to be held


def _index(root: Path) -> SearchIndex:
    index = SearchIndex(root)
    index.segment_arrays.min_documents = LARGE
    index.segment_arrays.min_frequency = RARE + 1
    index.open()
    return index


def _fill(index: SearchIndex, seed: int = 3) -> None:
    rng = random.Random(seed)  # noqa: S311 (test text, not security)
    rebuild = index.begin_rebuild()
    rebuild.add(document(n, rng) for n in range(200))
    rebuild.add(document(n, rng) | {"title": "quasar"} for n in range(200, 200 + RARE))
    rebuild.finish(1)
    # Later writes: a small segment (left to Whoosh) and deletions in the large one.
    index.apply([document(n, rng) for n in range(300, 320)], ["article:3", "incident:5"], seq=2)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SearchIndex]:
    """A large segment with its files written, a small one, and deletions."""
    index = _index(tmp_path / "index")
    try:
        _fill(index)
        assert index.segment_arrays.wait(timeout=60)
        yield index
    finally:
        index.close()


def _files(index: SearchIndex) -> list[str]:
    folder = index.root / str(index._generation)
    return sorted(p.name.split(".", 1)[1] for p in folder.glob("*.postings_*.npy"))


def _held_terms(segment: object, arrays_of: SegmentArrays) -> list[tuple[str, bytes]]:
    return [
        (field, text)
        for (field, text), info in segment._terms.items()  # type: ignore[attr-defined]
        if field in arrays_of.fields
        and not info.is_inlined()
        and info.doc_frequency() >= arrays_of.min_frequency
    ]


def test_the_files_hold_every_frequent_terms_postings_as_whoosh_reads_them(
    index: SearchIndex,
) -> None:
    assert _files(index) == [
        "postings_ids.npy", "postings_keys.npy", "postings_terms.npy", "postings_weights.npy"
    ]  # fmt: skip
    with index.reading():
        leaves = [s for s, _ in index.searcher().reader().leaf_readers()]
        large = [s for s in leaves if s.doc_count_all() >= LARGE]
        assert len(large) == 1
        assert len(leaves) > 1
        terms = _held_terms(large[0], index.segment_arrays)
        assert len(terms) > 50
        for field, text in terms:
            mapped = index.segment_arrays.postings(large[0], field, text)
            assert mapped is not None, (field, text)
            whoosh = arrays.read_postings(large[0], field, text)
            assert np.array_equal(mapped[0], whoosh[0]), (field, text)
            assert np.array_equal(mapped[1], whoosh[1]), (field, text)
            # The scorer's cache hands out the mapped slices, not a copy of its own.
            assert isinstance(index.postings.postings(large[0], field, text)[0], np.memmap)
        # Not held: a rare term (read from Whoosh); one the segment lacks has none.
        assert index.segment_arrays.postings(large[0], "title", b"quasar") is None
        assert len(arrays.read_postings(large[0], "title", b"quasar")[0]) == RARE
        ids, _ = index.segment_arrays.postings(large[0], "body", b"nowhere")  # type: ignore[misc]
        assert len(ids) == 0


def test_every_documents_key_is_its_stored_key_deleted_ones_too(index: SearchIndex) -> None:
    with index.reading():
        searcher = index.searcher()
        (large,) = [s for s, _ in searcher.reader().leaf_readers() if s.doc_count_all() >= LARGE]
        assert large.has_deletions()  # the fixture replaced and deleted some
        for n in range(large.doc_count_all()):
            assert index.segment_arrays.key(large, n) == large.stored_fields(n)["key"]
        assert index.segment_arrays.key(large, large.doc_count_all()) is None
        # Over the whole index (small segments read from Whoosh), the same keys.
        live = list(searcher.reader().all_doc_ids())
        assert [index.key(n) for n in live] == [searcher.stored_fields(n)["key"] for n in live]


def test_scores_from_the_files_are_whooshs_bit_for_bit(index: SearchIndex) -> None:
    with index.reading():
        searcher = index.searcher()
        live = set(searcher.reader().all_doc_ids())
        for text in TEXTS:
            parsed, _ = parse(index.schema, text)
            assert isinstance(parsed, q.Or)
            total = arrays.scores(searcher, index.postings, _terms(parsed), index.doc_frequency)
            ours = {d: float(total[d]) for d in live if total[d] > 0}
            assert ours
            assert ours == _whoosh_scores(index, parsed)


def test_the_files_go_with_their_segment_when_whoosh_merges_it(index: SearchIndex) -> None:
    with index.reading():
        before = {s.segment().segment_id() for s, _ in index.searcher().reader().leaf_readers()}
    writer = index._ix.writer()
    writer.commit(optimize=True)  # one new segment: Whoosh deletes the old ones' files
    with index.reading():
        after = {s.segment().segment_id() for s, _ in index.searcher().reader().leaf_readers()}
    assert after.isdisjoint(before)
    assert index.segment_arrays.wait(timeout=60)
    folder = index.root / str(index._generation)
    owners = {p.name.split(".", 1)[0] for p in folder.glob("*.postings_*.npy")}
    assert owners == after


def test_a_process_another_writes_them_for_waits_and_maps_them(tmp_path: Path) -> None:
    index = _index(tmp_path / "index")
    try:
        rng = random.Random(9)  # noqa: S311 (test text, not security)
        rebuild = index.begin_rebuild()
        rebuild.add(document(n, rng) for n in range(120))
        folder = index.root / rebuild.name
        # Another process holds the lock for the segment the rebuild is about to make.
        held = []
        original_follow = index.segment_arrays.follow

        def follow_while_locked(where: Path, searcher: object) -> None:
            for segment, _ in searcher.reader().leaf_readers():  # type: ignore[attr-defined]
                lock = (where / f".{segment.segment().segment_id()}.postings.lock").open("a")
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(lock)
            original_follow(where, searcher)

        index.segment_arrays.follow = follow_while_locked  # type: ignore[method-assign]
        rebuild.finish(1)
        index.segment_arrays.follow = original_follow  # type: ignore[method-assign]
        assert held
        assert not index.segment_arrays.wait(timeout=1), "it waits for the other process"
        assert not list(folder.glob("*.postings_*.npy"))
        with index.reading():
            segment = next(s for s, _ in index.searcher().reader().leaf_readers())
            field, text = _held_terms(segment, index.segment_arrays)[0]
            assert index.segment_arrays.postings(segment, field, text) is None
            # The other process writes them and lets go; this one maps them, without a
            # new searcher (a read-only process may not get one for hours).
            other = SegmentArrays(index.segment_arrays.fields, arrays.read_postings,
                                  min_documents=LARGE, min_frequency=RARE + 1)  # fmt: skip
            other._write_files(folder, segment.segment().segment_id())
            for lock in held:
                lock.close()
            assert index.segment_arrays.wait(timeout=60)
            found = index.segment_arrays.postings(segment, field, text)
            assert found is not None
            assert np.array_equal(found[0], arrays.read_postings(segment, field, text)[0])
    finally:
        index.close()


@pytest.mark.parametrize("damage", [b"", b"not an array"], ids=["emptied", "garbled"])
def test_unreadable_files_are_written_again_and_the_index_opens_as_it_is(
    tmp_path: Path, damage: bytes
) -> None:
    # A crash can leave a file empty: the index still opens as it is (no rebuild),
    # and the files are written again.
    index = _index(tmp_path / "index")
    try:
        _fill(index)
        assert index.segment_arrays.wait(timeout=60)
        generation = index._generation
        folder = index.root / str(generation)
        for path in folder.glob("*.postings_terms.npy"):
            path.write_bytes(damage)
        fresh = SearchIndex(index.root)
        fresh.segment_arrays.min_documents = LARGE
        assert fresh.open()
        try:
            assert fresh._generation == generation
            assert fresh.segment_arrays.wait(timeout=60)
            with fresh.reading():
                searcher = fresh.searcher()
                large = next(
                    s for s, _ in searcher.reader().leaf_readers() if s.doc_count_all() >= LARGE
                )
                field, text = _held_terms(large, fresh.segment_arrays)[0]
                found = fresh.segment_arrays.postings(large, field, text)
                assert found is not None
                assert np.array_equal(found[0], arrays.read_postings(large, field, text)[0])
                parsed, _ = parse(fresh.schema, TEXTS[0])
                assert isinstance(parsed, q.Or)
                total = arrays.scores(searcher, fresh.postings, _terms(parsed), fresh.doc_frequency)
                live = set(searcher.reader().all_doc_ids())
                assert {d: float(total[d]) for d in live if total[d] > 0} == _whoosh_scores(
                    fresh, parsed
                )
        finally:
            fresh.close()
    finally:
        index.close()


def test_a_writer_killed_mid_write_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    index = _index(tmp_path / "index")
    try:
        _fill(index)
        assert index.segment_arrays.wait(timeout=60)
        folder = index.root / str(index._generation)
        (done,) = folder.glob("*.postings_terms.npy")
        segment_id = done.name.split(".")[0]
        # Killed before its last rename: no "terms", and a part written under a
        # temporary name (a pid that is gone, which no later writer will reuse).
        done.unlink()
        stale = folder / f".{segment_id}.postings_terms.npy.999999.1"
        stale.write_bytes(b"cut short")
    finally:
        index.close()
    fresh = _index(index.root)
    try:
        assert fresh.segment_arrays.wait(timeout=60)
        assert not stale.exists()
        assert list(folder.glob(".*.npy.*")) == []
        assert segment_id in fresh.segment_arrays._held
    finally:
        fresh.close()


def test_closing_the_index_stops_the_writing_and_unmaps_the_files(tmp_path: Path) -> None:
    index = _index(tmp_path / "index")
    _fill(index)
    rng = random.Random(4)  # noqa: S311 (test text, not security)
    index.apply([document(n, rng) for n in range(600, 600 + LARGE)], [], seq=3)
    with index.reading():
        large = {
            s.segment().segment_id()
            for s, _ in index.searcher().reader().leaf_readers()
            if s.doc_count_all() >= LARGE
        }
    index.close()  # perhaps while the files are being written, others still waiting
    assert index.segment_arrays._thread is None
    assert index.segment_arrays._held == {}
    # Reopened, the index maps what was written and writes what was not.
    index.open()
    try:
        assert index.segment_arrays.wait(timeout=60)
        assert set(index.segment_arrays._held) == large
    finally:
        index.close()


def test_the_cache_lets_go_of_segments_a_merge_removed(index: SearchIndex) -> None:
    # Mapped views keep their files open: once a merge deletes a segment, nothing of
    # it may stay in the cache, or its deleted files would stay on disk.
    parsed, _ = parse(index.schema, TEXTS[0])
    assert isinstance(parsed, q.Or)

    def score() -> set[str]:
        with index.reading():
            searcher = index.searcher()
            arrays.scores(searcher, index.postings, _terms(parsed), index.doc_frequency)
            return {s.segment().segment_id() for s, _ in searcher.reader().leaf_readers()}

    before = score()
    assert set(index.postings._by_segment) == before
    index._ix.writer().commit(optimize=True)
    after = score()
    assert set(index.postings._by_segment) == after
    assert set(index.postings._frequencies) <= after
    maps = Path("/proc/self/maps").read_text()
    assert not [line for line in maps.splitlines() if ".postings_" in line and "(deleted)" in line]


def test_a_new_searcher_lets_go_of_the_files_of_segments_a_merge_removed(
    index: SearchIndex,
) -> None:
    # What was computed from the old searcher held it, and its segment files stayed
    # mapped (their disk space taken) until the next search that used the memo.
    with index.reading():
        index.doc_frequency("title", "redis")
    index._ix.writer().commit(optimize=True)
    with index.reading():
        pass  # the index writer's refresh after a commit: no search needed the memo
    gc.collect()
    maps = Path("/proc/self/maps").read_text().splitlines()
    assert not [line for line in maps if str(index.root) in line and "(deleted)" in line]
