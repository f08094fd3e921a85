"""The Whoosh index on disk: generations, one writer, refreshed searchers.

Layout under the index root::

    current -> gen-1732890000000000000     (symlink, swapped atomically)
    gen-1732890000000000000/               (a complete Whoosh index)

A rebuild writes a new generation beside the current one and swaps the link,
so searches never see a half-built index. The last outbox id applied is kept
in a meta document inside the index, committed with the documents it covers.

Whoosh is synchronous and CPU-bound: callers run these methods in a thread.
Searches share one searcher under a lock and refresh it, at the start of a
read section, when the index changed; writes hold Whoosh's own lock with a
timeout (it fails at once by default, see DESIGN.md) plus a process lock. Which
process may write a directory shared by several is ``writer_lock``'s business.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import index as whoosh_index
from whoosh.fields import Schema
from whoosh.query import Query
from whoosh.searching import Searcher

from knowledge import semantic
from knowledge.config import POSTINGS_CACHE_BYTES
from knowledge.search import buffer_files
from knowledge.search.arrays import Frequencies, PostingsCache, read_postings
from knowledge.search.documents import Document
from knowledge.search.schema import (
    FILTER_FIELDS,
    META_KEY,
    SCHEMA_VERSION,
    TEXT_FIELDS,
    build_schema,
    meta_document,
)
from knowledge.search.segment_arrays import SegmentArrays
from knowledge.search.weighting import BM25F
from knowledge.semantic.encoder import Encoder, Vectors

logger = logging.getLogger("knownfix.search")
buffer_files.install()

CURRENT = "current"
WRITE_TIMEOUT_SECONDS = 10.0
MEMO_ENTRIES = 500_000
SMALL_SEGMENT = 256  # documents: its document frequencies are all read at once
# The text fields a word is written in (tags are chosen from a list).
WRITTEN_FIELDS = tuple(f for f in TEXT_FIELDS if f != "tags")
MAX_NEW_SEGMENTS = 16  # segments written since the carried counts' (Whoosh merges them)


Segments = list[tuple[Any, Frequencies]]  # segment readers with their kept frequencies


@dataclasses.dataclass(slots=True)
class Carried:
    """What holds for a set of segments in every later searcher that still has them
    all: a write only adds a segment, so its searcher keeps these; a merge replaces
    segments, and then they start over (as they do past ``MAX_NEW_SEGMENTS`` added).
    Deleted documents do not matter: Whoosh counts them in document frequencies, and
    a segment's words stay in its word graph."""

    segment_ids: frozenset[str]
    frequencies: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    text_frequencies: dict[str, int] = dataclasses.field(default_factory=dict)
    words: set[str] = dataclasses.field(default_factory=set)  # spelled in them (lower case)


@dataclasses.dataclass(frozen=True, slots=True)
class SearcherSegments:
    """A searcher's segments: those ``carried`` covers (``old``) and those written
    since (``new``), whose text fields' frequencies are summed in ``new_counts`` where
    they are all known (small segments) and looked up in the ``unread`` others."""

    carried: Carried
    old: Segments
    new: Segments
    new_counts: Mapping[tuple[str, str], int]
    new_text_counts: Mapping[str, int]  # summed over ``WRITTEN_FIELDS``
    unread: Segments


def _count(segments: Segments, term: tuple[str, str]) -> int:
    found = 0
    for segment, known in segments:
        if (count := known.get(term)) is None:
            if term[0] in known.complete:
                continue  # all of the segment's are there: it lacks this one
            count = known[term] = segment.doc_frequency(*term)
        found += count
    return found


class IndexUnavailableError(RuntimeError):
    """The index could not be opened or written (it will be rebuilt from the database)."""


class SearchIndex:
    def __init__(
        self,
        root: Path,
        *,
        write_timeout: float = WRITE_TIMEOUT_SECONDS,
        postings_cache_bytes: int = POSTINGS_CACHE_BYTES,
        warm_after_write: bool = True,
        sentence_model: Path | None = None,
    ) -> None:
        self.root = root
        # The title vectors' model (``knowledge/semantic``); None: the installed one.
        self.sentence_model = sentence_model
        # Off in a process that writes and does not search (``knownfix indexer``).
        self.warm_after_write = warm_after_write
        # Postings read into arrays for the suggestion searches (``arrays``), kept
        # across searchers: they are per segment, and segments never change. Large
        # segments' postings come from files written beside them (``segment_arrays``):
        # the text fields' for scoring, the filter fields' for the allowed documents.
        self.segment_arrays = SegmentArrays(TEXT_FIELDS + FILTER_FIELDS, read_postings)
        self.postings = PostingsCache(postings_cache_bytes, source=self.segment_arrays.postings)
        self.write_timeout = write_timeout
        self._ix: Any = None
        self._generation: str | None = None
        self._searcher: Searcher | None = None
        self._memo: tuple[Searcher | None, dict[Any, Any]] = (None, {})
        self._carried: Carried | None = None
        self._read_lock = threading.RLock()
        self._sections = 0  # nested read sections of the thread holding _read_lock
        self._schema = build_schema()
        self._write_lock = threading.Lock()

    # --- opening ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._ix is not None

    def _link_target(self) -> str | None:
        try:
            return os.readlink(self.root / CURRENT)
        except OSError:
            return None

    def open(self) -> bool:
        """Open the current generation; ``False`` when it had to be created empty
        because it was missing or unreadable (the caller then rebuilds it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self._link_target()
        if target is not None:
            try:
                self._open_generation(target)
                return True
            except Exception as error:
                logger.warning("search index %s is unreadable (%s); rebuilding", target, error)
                self.close()
        self._swap_in(self._create_generation())
        return False

    def open_existing(self) -> bool:
        """Open the current generation to search it, creating nothing: for a process that
        does not write this directory. ``False`` when there is no readable one yet (its
        writer is building it)."""
        target = self._link_target()
        if target is None:
            return False
        try:
            self._open_generation(target)
        except Exception as error:
            logger.info("search index %s is not readable yet (%s)", target, error)
            self.close()
            return False
        return True

    def _open_generation(self, name: str) -> None:
        ix = whoosh_index.open_dir(str(self.root / name))
        searcher = ix.searcher(weighting=BM25F())
        try:
            # Touch the parts a broken index fails on: the TOC, a segment, the meta doc.
            searcher.doc_count_all()
            meta = searcher.document(key=META_KEY)
            if meta is None:
                raise IndexUnavailableError(f"{name} has no record of what it applied")
            if meta.get("status") != SCHEMA_VERSION:
                raise IndexUnavailableError(f"{name} was built for another schema version")
        except Exception:
            searcher.close()
            raise
        with self._read_lock:
            old = self._searcher
            self._ix, self._generation, self._searcher = ix, name, searcher
            self._follow(searcher)
        if old is not None:
            old.close()

    def _create_generation(self) -> str:
        name = f"gen-{time.time_ns()}"
        path = self.root / name
        path.mkdir()
        ix = whoosh_index.create_in(str(path), build_schema())
        with ix.writer() as writer:
            writer.update_document(**meta_document(0))
        return name

    def _swap_in(self, name: str) -> None:
        link = self.root / CURRENT
        temporary = self.root / f".{CURRENT}-{time.time_ns()}"
        temporary.symlink_to(name)
        os.replace(temporary, link)
        self._open_generation(name)
        self._remove_old_generations(keep=name)

    def _remove_old_generations(self, keep: str) -> None:
        for path in self.root.glob("gen-*"):
            if path.name != keep:
                shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        with self._read_lock:
            if self._searcher is not None:
                self._searcher.close()
            self._ix = self._generation = self._searcher = None
            self._memo = (None, {})
            self._carried = None
            self.postings.clear()
        self.segment_arrays.close()

    # --- reading ----------------------------------------------------------------------

    def _follow_swaps(self) -> None:
        """Switch to the generation ``current`` names, if another process rebuilt it."""
        if self._ix is None or self._searcher is None:
            raise IndexUnavailableError("the search index is not open")
        target = self._link_target()
        if target is not None and target != self._generation:
            self._open_generation(target)

    @property
    def schema(self) -> Schema:
        return self._schema

    def searcher(self) -> Searcher:
        """The shared searcher (call under ``reading``): one for a whole read section,
        so results taken from it stay readable while the index changes."""
        if self._ix is None or self._searcher is None:
            raise IndexUnavailableError("the search index is not open")
        return self._searcher

    def memo(self) -> dict[Any, Any]:
        """A dict for what is computed from the current searcher (call under
        ``reading``): a new searcher comes with a new dict, so nothing computed from
        an older state of the index is read; it starts over past ``MEMO_ENTRIES``."""
        searcher = self.searcher()
        owner, memo = self._memo
        if owner is not searcher or len(memo) >= MEMO_ENTRIES:
            memo = {}
            self._memo = (searcher, memo)
        return memo

    @property
    def sentences(self) -> Encoder:
        """The sentence encoder of titles (loaded on first use, once per process)."""
        return semantic.encoder_for(self.sentence_model)

    def meanings(self, keys: Iterable[str]) -> dict[str, Vectors]:
        """The stored title vectors of these documents (call under ``reading``); a
        document indexed without one, or not indexed, is left out."""
        memo = self.memo()
        searcher = self.searcher()
        found = {}
        for key in keys:
            if (vector := memo.get(("meaning", key))) is None:
                docnum = searcher.document_number(key=key)
                stored = b"" if docnum is None else searcher.stored_fields(docnum).get("meaning")
                vector = memo["meaning", key] = np.frombuffer(stored or b"", np.float16)
            if vector.size:
                found[key] = vector.astype(np.float32)
        return found

    def doc_frequency(self, field: str, text: str) -> int:
        """Documents with ``text`` in ``field`` (call under ``reading``), as Whoosh
        counts them. Remembered per searcher, and per segment: a suggestion asks for
        thousands, most of them asked before, and each costs Whoosh a hash-table
        lookup in Python. The sums over the segments a searcher shares with earlier
        ones are kept too (``Carried``): after a write only its new segment is
        looked up. A small segment's are all read at once: every write brings one,
        and the next suggestion would look up each of its terms there, mostly to
        find them missing."""
        memo = self.memo()
        key = ("df", field, text)
        found = memo.get(key)
        if found is None:
            view = self._segments(memo)
            term = (field, text)
            found = self._carried_frequency(view, term)
            if field in TEXT_FIELDS:
                found += view.new_counts.get(term, 0) + _count(view.unread, term)
            else:
                found += _count(view.new, term)
            memo[key] = found
        return int(found)

    def text_frequency(self, text: str) -> int:
        """``doc_frequency`` summed over the written text fields (all but tags), as a
        word's rarity is measured (``service.informative_words``): a pasted log has
        hundreds of words. Carried across searchers as the frequencies are."""
        memo = self.memo()
        key = ("text", text)
        found = memo.get(key)
        if found is None:
            view = self._segments(memo)
            if (found := view.carried.text_frequencies.get(text)) is None:
                found = sum(self._carried_frequency(view, (f, text)) for f in WRITTEN_FIELDS)
                view.carried.text_frequencies[text] = found
            found += view.new_text_counts.get(text, 0)
            if view.unread:
                found += sum(_count(view.unread, (f, text)) for f in WRITTEN_FIELDS)
            memo[key] = found
        return int(found)

    def key(self, docnum: int) -> str:
        """A document's key (call under ``reading``): from its segment's postings
        arrays when it has them (``segment_arrays``), else Whoosh's stored fields."""
        memo = self.memo()
        if (leaves := memo.get("leaves")) is None:
            ordered = sorted(self.searcher().reader().leaf_readers(), key=lambda leaf: leaf[1])
            leaves = memo["leaves"] = ([o for _, o in ordered], [s for s, _ in ordered])
        offsets, segments = leaves
        n = bisect.bisect_right(offsets, docnum) - 1
        found = self.segment_arrays.key(segments[n], docnum - offsets[n])
        return found if found is not None else str(self.searcher().stored_fields(docnum)["key"])

    @staticmethod
    def _carried_frequency(view: SearcherSegments, term: tuple[str, str]) -> int:
        if (found := view.carried.frequencies.get(term)) is None:
            found = view.carried.frequencies[term] = _count(view.old, term)
        return found

    def segments(self) -> SearcherSegments:
        """The current searcher's segments (call under ``reading``), with their kept
        frequencies and what is carried over for those it shares with earlier ones."""
        return self._segments(self.memo())

    def _segments(self, memo: dict[Any, Any]) -> SearcherSegments:
        found: SearcherSegments | None = memo.get("segments")
        if found is not None:
            return found
        leaves = [
            (segment, self._frequencies(segment))
            for segment, _ in self.searcher().reader().leaf_readers()
        ]
        ids = frozenset(segment.segment().segment_id() for segment, _ in leaves)
        carried = self._carried
        if (
            carried is None
            or not carried.segment_ids <= ids
            or len(ids) - len(carried.segment_ids) > MAX_NEW_SEGMENTS
            or len(carried.frequencies) + len(carried.text_frequencies) + len(carried.words)
            > MEMO_ENTRIES
        ):
            carried = self._carried = Carried(ids)
        old = [(s, f) for s, f in leaves if s.segment().segment_id() in carried.segment_ids]
        new = [(s, f) for s, f in leaves if s.segment().segment_id() not in carried.segment_ids]
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for _, known in new:
            if known.complete:
                counts.update(known)
        texts: collections.Counter[str] = collections.Counter()
        for (field, text), count in counts.items():
            if field in WRITTEN_FIELDS:
                texts[text] += count
        unread = [(s, f) for s, f in new if not f.complete]
        found = memo["segments"] = SearcherSegments(carried, old, new, counts, texts, unread)
        return found

    def warm(self) -> None:
        """Bring the shared searcher up to date with what was committed, here or by
        another process, and read what a new one needs (the new segments'
        frequencies): off the path of the next search, which would pay for it."""
        with self.reading():
            self.segments()

    def _frequencies(self, segment: Any) -> Frequencies:
        known = self.postings.frequencies(segment)
        if not known.complete and segment.doc_count_all() <= SMALL_SEGMENT:
            for (field, text), info in segment._terms.items():
                if field in TEXT_FIELDS:
                    known[field, text.decode("utf-8")] = info.doc_frequency()
            known.complete = frozenset(TEXT_FIELDS)
        return known

    def _refresh(self) -> None:
        """Replace the searcher if the index changed, here or in another process.

        Not ``Searcher.refresh()``: it keeps segment readers whose deletions are out of
        date, so replaced and deleted documents would stay visible until a merge.
        """
        self._follow_swaps()
        assert self._searcher is not None
        if not self._searcher.up_to_date():
            old, self._searcher = self._searcher, self._ix.searcher(weighting=BM25F())
            old.close()
            self._follow(self._searcher)

    def _follow(self, searcher: Searcher) -> None:
        """A new searcher: let go of segments it no longer has (the old searcher's
        memo too: it holds that searcher, whose merged-away files would stay mapped,
        their disk space taken, until a search next asked for the memo), map or write
        the postings arrays of its large ones."""
        self._memo = (None, {})
        live = {s.segment().segment_id() for s, _ in searcher.reader().leaf_readers()}
        self.postings.keep(live)
        self.segment_arrays.follow(self.root / str(self._generation), searcher)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """A read section: its searches share one searcher, brought up to date when the
        outermost section starts. Refreshing in the middle would close the searcher
        that earlier results of the section still read from (``ReaderClosed``)."""
        with self._read_lock:
            self._sections += 1
            try:
                if self._sections == 1:
                    self._refresh()
                yield
            finally:
                self._sections -= 1

    def last_seq(self) -> int:
        with self.reading():
            meta = self.searcher().document(key=META_KEY)
        return int(meta["seq"]) if meta else 0

    def doc_count(self) -> int:
        with self.reading():
            return int(self.searcher().doc_count()) - 1  # without the meta document

    # --- writing ----------------------------------------------------------------------

    def apply(self, upserts: Iterable[Document], deletes: Iterable[str], seq: int) -> None:
        """Write documents and the new last-applied sequence in one commit. A key given
        twice keeps its last document (Whoosh's update does not see what the same
        writer added, and would index both)."""
        upserts = list({document["key"]: document for document in upserts}.values())
        with self._write_lock:
            with self._read_lock:
                self._follow_swaps()
            writer = self._ix.writer(timeout=self.write_timeout, delay=0.05)
            try:
                for key in deletes:
                    writer.delete_by_term("key", key)
                for document in upserts:
                    writer.update_document(**document)
                writer.update_document(**meta_document(seq))
                writer.commit()
            except BaseException:
                abandon(writer)
                raise
        if self.warm_after_write:
            self.warm()  # searches from now on see the commit, its segment already read

    def begin_rebuild(self) -> Rebuild:
        """Start a new generation; add documents in batches, then ``finish`` swaps it in."""
        name = self._create_generation()
        ix = whoosh_index.open_dir(str(self.root / name))
        return Rebuild(self, name, ix.writer(timeout=self.write_timeout, limitmb=128))

    def run_query(self, query: Query, *, collector: Any = None, **kwargs: Any) -> Any:
        """Search with the shared searcher; the caller extracts what it needs under
        ``reading()`` because results are tied to the searcher that made them. With a
        ``collector`` of the caller's, the search runs through it (its results)."""
        if collector is not None:
            self.searcher().search_with_collector(query, collector)
            return collector.results()
        return self.searcher().search(query, **kwargs)


class Rebuild:
    """A generation being built; nothing is visible until ``finish``."""

    def __init__(self, index: SearchIndex, name: str, writer: Any) -> None:
        self.index, self.name, self.writer = index, name, writer
        self.count = 0
        self.finished = False

    def add(self, documents: Iterable[Document]) -> None:
        for document in documents:
            self.writer.add_document(**document)
            self.count += 1

    def finish(self, seq: int) -> None:
        self.writer.update_document(**meta_document(seq))
        self.writer.commit(optimize=True)
        with self.index._write_lock:
            self.index._swap_in(self.name)
        self.finished = True

    def abort(self) -> None:
        """Give up a generation not swapped in yet (once it is, it is the index)."""
        if self.finished:
            return
        abandon(self.writer)
        shutil.rmtree(self.index.root / self.name, ignore_errors=True)


def abandon(writer: Any) -> None:
    """Give up a writer after a failure, always releasing Whoosh's write lock.

    A commit that fails half-way (a full disk) leaves the writer open and its lock
    held; ``cancel`` may then fail on the half-closed segment files too. Left to the
    garbage collector, the lock lives as long as anything keeps the exception (its
    traceback holds the writer), and every later write fails with ``LockError``.
    Whatever the failed writer left on disk is not in the index's table of
    contents, and the next commit deletes it.
    """
    try:
        if not writer.is_closed:
            writer.cancel()
    except Exception:
        logger.warning("cancelling a failed index writer failed too", exc_info=True)
    finally:
        if not writer.is_closed:
            with contextlib.suppress(Exception):
                writer._tempstorage.destroy()
            lock = getattr(writer, "writelock", None)
            if lock is not None and lock.fd is not None:
                lock.release()
            writer.is_closed = True
