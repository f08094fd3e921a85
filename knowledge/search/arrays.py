"""BM25F over postings held in memory as arrays: the suggestion searches' scorer.

Whoosh reads a term's postings block by block and scores each posting in Python
(a matcher step, a field-length lookup and a function call each): a suggestion's
query of a few hundred (field, word) terms reads tens of thousands of postings,
about 10 microseconds each, and at 100,000 documents that alone is most of a
second. Here each term's postings are read once into arrays (document numbers
and weights, per segment, which never changes once written) and kept in a cache
bounded in bytes; a search is then a handful of array operations per term,
whatever the number of documents it matches.

The scores are Whoosh's own, to the last bit: the same statistics (IDF and
average field length of the whole index, the latter rounded as ``weighting.py``
has Whoosh round it, and the byte-rounded field length of each document) in the
same formula, summed in the same order as Whoosh's term-at-a-time union (tests
compare the two). What the cache holds is what is on disk, or computed from it for
one average field length (kept with it, and computed again when the rounded
average changes), so it never needs invalidating: a new segment has a new id,
a deleted document is left out by the caller's allowed set
(``Searcher.docs_for_query`` skips deletions).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from whoosh import query as q
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher
from whoosh.util.numeric import byte_to_length

from knowledge.search.weighting import BM25F, average_length

# Kept as Whoosh stores them (weights are 32-bit floats there): 8 bytes a posting,
# and 8 more for a scored term's BM25 part.
Ids = npt.NDArray[np.int32]
Weights = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float64]
Documents = npt.NDArray[np.int64]  # document numbers of the whole index (all segments)

# A length byte to the length Whoosh scores with (lengths are kept rounded to a byte).
_LENGTHS = np.array([byte_to_length(b) for b in range(256)], dtype=np.float64)
MAX_FREQUENCIES = 200_000  # per segment
MAX_SEGMENTS = 256
ENTRY_OVERHEAD = 200  # bytes: the key, the tuple and two array headers
_EMPTY_IDS: Ids = np.zeros(0, dtype=np.int32)
_EMPTY_WEIGHTS: Weights = np.zeros(0, dtype=np.float32)
_EMPTY_FLOATS: Floats = np.zeros(0, dtype=np.float64)


Source = Callable[[Any, str, bytes], "tuple[Ids, Weights] | None"]
Key = tuple[object, ...]  # (segment id, what, ...)


class Frequencies(dict[tuple[str, str], int]):
    """A segment's document frequencies by (field, text), filled in as asked for;
    ``complete``: the fields whose terms are all there (a term missing has none)."""

    complete: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True)
class Term:
    field: str
    text: str
    boost: float = 1.0


class PostingsCache:
    """Postings and field lengths per segment, least recently used dropped first
    once the arrays exceed ``max_bytes``; and document frequencies per segment,
    bounded in number (``MAX_SEGMENTS`` of ``MAX_FREQUENCIES``). What was read from
    segments a merge or rebuild removed goes when the index says so (``keep``)."""

    def __init__(self, max_bytes: int, source: Source | None = None) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        # Postings that ``source`` holds elsewhere (mapped files: ``segment_arrays``)
        # are kept as views, costing only their bookkeeping.
        self._source = source
        self._entries: collections.OrderedDict[Key, tuple[tuple[Any, ...], int]] = (
            collections.OrderedDict()
        )
        self._by_segment: dict[str, set[Key]] = {}
        # Document frequencies per segment term: they survive a new searcher, which
        # comes with every write, where a searcher's own would be asked again.
        self._frequencies: collections.OrderedDict[str, Frequencies] = collections.OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_segment.clear()
            self._frequencies.clear()
            self.size = 0

    def keep(self, segment_ids: set[str]) -> None:
        """Forget every segment but these (the index's live ones): a merged-away
        segment's entries would only wait for eviction, and a mapped view keeps its
        deleted file on disk."""
        with self._lock:
            for gone in set(self._by_segment) - segment_ids:
                for key in self._by_segment.pop(gone):
                    self.size -= self._entries.pop(key)[1]
            for gone in set(self._frequencies) - segment_ids:
                del self._frequencies[gone]

    def _get(self, key: Key) -> tuple[Any, ...] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def _put(self, key: Key, value: tuple[Any, ...], cost: int | None = None) -> None:
        """Keep ``value`` (in place of what ``key`` held)."""
        cost = _cost(value) if cost is None else cost
        with self._lock:
            self._drop(key)
            if cost > self.max_bytes:
                return  # bigger than the whole cache: read again next time
            self._entries[key] = (value, cost)
            self._by_segment.setdefault(str(key[0]), set()).add(key)
            self.size += cost
            while self.size > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Key) -> None:
        if (found := self._entries.pop(key, None)) is not None:
            self.size -= found[1]
            self._by_segment[str(key[0])].discard(key)

    def postings(self, segment: Any, field: str, text: bytes) -> tuple[Ids, Weights]:
        """Local document numbers and weights of a term in one segment."""
        key = (segment.segment().segment_id(), "postings", field, text)
        if (found := self._get(key)) is None:
            if self._source and (mapped := self._source(segment, field, text)) is not None:
                found = mapped
                self._put(key, found, ENTRY_OVERHEAD)
            else:
                found = read_postings(segment, field, text)
                self._put(key, found)
        return found[0], found[1]

    def normalised(
        self, segment: Any, field: str, text: bytes, k1: float, b: float, average: float
    ) -> tuple[Ids, Floats]:
        """A term's postings in one segment with BM25's term-frequency part of each
        (all of the formula but the IDF): kept for the field's average length, which
        only a write changes, so a read-mostly index computes it once a term (and a
        write's new average replaces it)."""
        ids, weights = self.postings(segment, field, text)
        if not len(ids):
            return ids, _EMPTY_FLOATS  # most terms, in a write's small new segment
        key = (segment.segment().segment_id(), "normalised", field, text)
        found = self._get(key)
        if found is None or found[1] != (k1, b, average):
            tf = weights.astype(np.float64)  # Whoosh computes in doubles
            lengths = self.lengths(segment, field)[ids]
            # Whoosh's bm25(), operation for operation, without the IDF factor.
            found = ((tf * (k1 + 1)) / (tf + k1 * ((1 - b) + b * lengths / average)),
                     (k1, b, average))  # fmt: skip
            self._put(key, found)
        return ids, found[0]

    def frequencies(self, segment: Any) -> Frequencies:
        """Kept document frequencies of one segment's terms, to fill in (deleted
        documents count, as Whoosh counts them)."""
        key = segment.segment().segment_id()
        with self._lock:
            found = self._frequencies.get(key)
            if found is None or len(found) > MAX_FREQUENCIES:
                found = self._frequencies[key] = Frequencies()
            self._frequencies.move_to_end(key)
            while len(self._frequencies) > MAX_SEGMENTS:
                self._frequencies.popitem(last=False)
        return found

    def lengths(self, segment: Any, field: str) -> Floats:
        """Each document's length of a field in one segment, as Whoosh scores it."""
        key = (segment.segment().segment_id(), "lengths", field)
        if (found := self._get(key)) is None:
            found = (_read_lengths(segment, field),)
            self._put(key, found)
        return found[0]  # type: ignore[no-any-return]


def _cost(value: tuple[Any, ...]) -> int:
    """An entry's bytes, with its bookkeeping: an empty entry (a term a segment lacks)
    still takes room, so that it is dropped in turn too."""
    return ENTRY_OVERHEAD + sum(int(a.nbytes) for a in value if isinstance(a, np.ndarray))


def read_postings(segment: Any, field: str, text: bytes) -> tuple[Ids, Weights]:
    """A term's postings in one segment, read from Whoosh's blocks."""
    if (field, text) not in segment:
        return _EMPTY_IDS, _EMPTY_WEIGHTS
    # The codec's matcher, not ``segment.postings``: that one hides deleted documents
    # one posting at a time, and the caller's allowed set already leaves them out.
    matcher = segment._terms.matcher(field, text, segment.schema[field].format)
    if not isinstance(matcher, W3LeafMatcher):  # postings inlined in the term info
        ids, weights = [], []
        while matcher.is_active():
            ids.append(matcher.id())
            weights.append(matcher.weight())
            matcher.next()
        return np.array(ids, dtype=np.int32), np.array(weights, dtype=np.float32)
    id_blocks: list[Ids] = []
    weight_blocks: list[Weights] = []
    while matcher.is_active():
        # A block at a time: ids are stored as deltas, weights as an array of floats
        # (or one float for the whole block, or none when all are 1).
        matcher._read_data()
        deltas, weights = matcher._data[0], matcher._data[1]
        count = matcher._blocklength
        id_blocks.append(np.cumsum(np.asarray(deltas), dtype=np.int32))
        if weights is None:
            weight_blocks.append(np.ones(count, dtype=np.float32))
        elif isinstance(weights, float):
            weight_blocks.append(np.full(count, weights, dtype=np.float32))
        else:
            weight_blocks.append(np.asarray(weights, dtype=np.float32))
        matcher._next_block()
    return np.concatenate(id_blocks), np.concatenate(weight_blocks)


def _read_lengths(segment: Any, field: str) -> Floats:
    count = segment.doc_count_all()
    lengths = np.zeros(count, dtype=np.uint8)
    column = segment._perdoc._cached_reader(f"_{field}_len", LENGTHS_COLUMN)
    if column is not None:
        # One byte per document up to the last one with a length (the rest are 0).
        stored = column._dbfile.get(column._basepos, min(column._count, count))
        lengths[: len(stored)] = np.frombuffer(stored, dtype=np.uint8)
    return _LENGTHS[lengths]


def scores(
    searcher: Any,
    cache: PostingsCache,
    terms: Sequence[Term],
    doc_frequency: Callable[[str, str], int],
) -> Floats:
    """The BM25F score of every document of the index (0 where none of the terms
    is), indexed by document number; ``doc_frequency`` counts as Whoosh does."""
    weighting = searcher.weighting
    if not isinstance(weighting, BM25F):
        raise TypeError(f"array scoring is our BM25F's, not {type(weighting).__name__}'s")
    schema = searcher.schema
    documents = searcher.doc_count_all()
    total: Floats = np.zeros(documents, dtype=np.float64)
    leaves = [(s, offset, cache.frequencies(s)) for s, offset in searcher.reader().leaf_readers()]
    k1 = weighting.K1
    for term in terms:
        field = schema[term.field]
        if not field.scorable:
            continue
        text = field.to_bytes(term.text)
        # Whoosh's idf(), from the same count.
        idf = math.log(documents / (doc_frequency(term.field, term.text) + 1)) + 1
        average = average_length(searcher, term.field)
        b = weighting._field_B.get(term.field, weighting.B)
        for segment, offset, known in leaves:
            if term.field in known.complete and (term.field, term.text) not in known:
                continue  # a small segment whose terms are all known lacks this one
            ids, normalised = cache.normalised(segment, term.field, text, k1, b, average)
            if len(ids):
                # Whoosh's bm25() (the IDF times the rest), times the term's boost.
                total[ids + offset] += (idf * normalised) * term.boost
    return total


def documents(searcher: Any, cache: PostingsCache, query: q.Query) -> Documents:
    """The live documents a query of terms, ``And`` and ``Or`` matches, sorted (the
    visibility filters: kind, status, category, service and tag terms). Combined as
    one flag per document of the index, not as sorted sets: every new searcher (every
    write) asks again, and set operations on 200,000 ids took tens of milliseconds."""
    found = _flags(searcher, cache, query)
    for segment, offset in searcher.reader().leaf_readers():
        if deleted := segment.deleted_docs_set:
            found[np.fromiter(deleted, dtype=np.int64) + offset] = False
    return np.flatnonzero(found)


def _flags(searcher: Any, cache: PostingsCache, query: q.Query) -> npt.NDArray[np.bool_]:
    if isinstance(query, q.Term):
        found = np.zeros(searcher.doc_count_all(), dtype=np.bool_)
        text = searcher.schema[query.fieldname].to_bytes(query.text)
        for segment, offset in searcher.reader().leaf_readers():
            ids, _ = cache.postings(segment, query.fieldname, text)
            found[ids + offset] = True
        return found
    if isinstance(query, q.And | q.Or):
        parts = [_flags(searcher, cache, sub) for sub in query.subqueries]
        if not parts:
            return np.zeros(searcher.doc_count_all(), dtype=np.bool_)
        combine = np.logical_and if isinstance(query, q.And) else np.logical_or
        return functools.reduce(combine, parts)
    raise TypeError(f"not a filter of terms: {query!r}")


def best(total: Floats, allowed: Documents, limit: int) -> list[tuple[int, float]]:
    """The ``limit`` best allowed documents with a score, as Whoosh ranks them:
    highest score first, then lowest document number."""
    if limit <= 0 or not len(allowed):
        return []
    candidates = allowed[total[allowed] > 0]
    found = total[candidates]
    if len(candidates) > limit:
        # Everything scoring at least the limit-th best score, ties included, so the
        # ordering below decides between equal scores the way Whoosh does.
        threshold = np.partition(found, len(found) - limit)[len(found) - limit]
        keep = found >= threshold
        candidates, found = candidates[keep], found[keep]
    order = np.lexsort((candidates, -found))[:limit]
    return [(int(candidates[i]), float(found[i])) for i in order]
