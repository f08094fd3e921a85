"""A large segment's postings as flat arrays on disk, for the array scorer's cold reads.

Whoosh keeps a term's postings as zlib-compressed pickles of 128 postings each
(with their positions); reading them costs about 500 nanoseconds a posting. The
suggestion searches read up to ``service.POSTINGS_BUDGET`` postings a query, so
a query whose terms were not read before spent most of its time unpickling (the
slowest tenth of queries at 100k documents, and every query after a restart).

A segment never changes once written, so its text and filter fields' postings are
written out once, beside it, as NumPy files: the document numbers and weights of
every term with at least ``MIN_FREQUENCY`` documents, end to end, and a table
from each term's place in Whoosh's postings file to its slice. Every process that
reads the index maps the files; a term's postings are then a slice of them. A
fourth file holds each document's key: Whoosh reads a stored field through a copy
of the segment's whole stored-fields column, made again by every new searcher
(every write), about 1.5 ms at 100,000 documents before the first key is read.

Only segments of ``MIN_DOCUMENTS`` or more get files (small ones are cheap to read
from Whoosh), written by a background thread once a searcher first sees the
segment; one process writes them (a lock file) while the others wait to map them.
The file names start with the segment's id, so Whoosh deletes them with the segment
when a merge replaces it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from whoosh.reading import TermNotFound

logger = logging.getLogger("knownfix.search")

MIN_DOCUMENTS = 5_000
MIN_FREQUENCY = 64
LOCK_POLL_SECONDS = 0.2

PARTS = ("ids", "weights", "keys")  # the files besides "terms", which is written last
Postings = tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]
Reader = Callable[[Any, str, bytes], Postings]


def _path(folder: Path, segment_id: str, part: str) -> Path:
    return folder / f"{segment_id}.postings_{part}.npy"


class Held:
    """One segment's files, mapped ("terms" is written last: its presence says done)."""

    def __init__(self, folder: Path, segment_id: str) -> None:
        terms = np.load(_path(folder, segment_id, "terms"))
        self.ids = np.load(_path(folder, segment_id, "ids"), mmap_mode="r")
        self.weights = np.load(_path(folder, segment_id, "weights"), mmap_mode="r")
        self.keys = np.load(_path(folder, segment_id, "keys"), mmap_mode="r")  # bytes
        if terms.ndim != 2 or len(terms) != 2 or not terms.shape[1]:
            raise ValueError(f"terms of shape {terms.shape}")
        if not len(self.ids) == len(self.weights) == terms[1][-1]:
            raise ValueError("postings and terms of different lengths")
        if self.keys.dtype.kind != "S":
            raise ValueError(f"keys of type {self.keys.dtype}")
        self.offsets: npt.NDArray[np.int64] = terms[0]  # sorted: each term's postings offset
        self.starts: npt.NDArray[np.int64] = terms[1]  # one more: the end of the last

    def postings(self, offset: int) -> Postings | None:
        n = int(np.searchsorted(self.offsets, offset))
        if n == len(self.offsets) or self.offsets[n] != offset:
            return None
        start, end = int(self.starts[n]), int(self.starts[n + 1])
        return self.ids[start:end], self.weights[start:end]


class SegmentArrays:
    """The files of one index directory's large segments: found, mapped, written."""

    def __init__(
        self,
        fields: tuple[str, ...],
        read: Reader,
        *,
        min_documents: int = MIN_DOCUMENTS,
        min_frequency: int = MIN_FREQUENCY,
    ) -> None:
        self.fields = fields
        self.min_documents = min_documents
        self.min_frequency = min_frequency
        self._read = read
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reset()

    def _reset(self) -> None:
        self._folder: Path | None = None
        self._live: set[str] = set()  # the large segments of the last searcher
        self._held: dict[str, Held] = {}
        self._waiting: list[str] = []  # segments of ``_folder`` to write
        self._pending: set[str] = set()  # waiting or being written

    def close(self) -> None:
        """Stop writing (a file being written is given up) and unmap everything."""
        with self._lock:
            self._waiting.clear()
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            self._stop.clear()
            self._reset()

    def postings(self, segment: Any, field: str, text: bytes) -> Postings | None:
        """A term's postings from the segment's files, ``None`` when they do not hold
        it (no files yet, a rare term, another field); a term the segment lacks has none."""
        held = self._held.get(segment.segment().segment_id())
        if held is None or field not in self.fields:
            return None
        try:
            info = segment._terms.term_info(field, text)
        except TermNotFound:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        if info.doc_frequency() < self.min_frequency or info.is_inlined():
            return None
        return held.postings(info._offset)

    def key(self, segment: Any, docnum: int) -> str | None:
        """The stored key of a document of the segment (its own number), ``None``
        when the segment has no files."""
        held = self._held.get(segment.segment().segment_id())
        if held is None or not 0 <= docnum < len(held.keys):
            return None
        return bytes(held.keys[docnum]).decode("utf-8")

    def follow(self, folder: Path, searcher: Any) -> None:
        """A new searcher over ``folder``: map the files its large segments have, and
        have the missing ones written in the background."""
        with self._lock:
            if folder != self._folder:  # a rebuild: what was asked for the old one goes
                self._reset()
                self._folder = folder
            self._live = {
                segment.segment().segment_id()
                for segment, _ in searcher.reader().leaf_readers()
                if segment.doc_count_all() >= self.min_documents
            }
            for gone in set(self._held) - self._live:
                del self._held[gone]
            for segment_id in sorted(self._live - set(self._held) - self._pending):
                if not self._map(folder, segment_id):
                    self._pending.add(segment_id)
                    self._waiting.append(segment_id)
            if self._waiting and self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="segment-arrays", daemon=True
                )
                self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the files asked for so far are written (for tests and benchmarks)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._thread is None, timeout)

    def _map(self, folder: Path, segment_id: str) -> bool:
        """Map a segment's files if they are there and whole (call with the lock)."""
        if not _path(folder, segment_id, "terms").exists():
            return False
        try:
            self._held[segment_id] = Held(folder, segment_id)
        except Exception:  # emptied by a crash, cut short, another format: written again
            logger.warning("the postings arrays of %s are unreadable; writing them again",
                           segment_id, exc_info=True)  # fmt: skip
            for part in ("terms", *PARTS):  # "terms" first: it says they are whole
                _path(folder, segment_id, part).unlink(missing_ok=True)
            return False
        return True

    def _abandoned(self, folder: Path) -> bool:
        return self._stop.is_set() or folder != self._folder

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or self._folder is None:
                    self._thread = None
                    self._idle.notify_all()
                    return
                folder, segment_id = self._folder, self._waiting.pop(0)
            try:
                self._write(folder, segment_id)
            except Exception:
                if not self._abandoned(folder):
                    logger.warning("writing the postings arrays of %s failed", segment_id,
                                   exc_info=True)  # fmt: skip
            with self._lock:
                self._pending.discard(segment_id)
                if folder == self._folder and segment_id in self._live:
                    self._map(folder, segment_id)

    def _write(self, folder: Path, segment_id: str) -> None:
        done = _path(folder, segment_id, "terms")
        lock = folder / f".{segment_id}.postings.lock"
        with _exclusive(lock, lambda: self._abandoned(folder) or done.exists()) as mine:
            if mine and not done.exists():  # not given up, nor written by another process
                # Only the lock's holder writes: temporary files are a killed writer's.
                for stale in folder.glob(f".{segment_id}.postings_*.npy.*"):
                    stale.unlink(missing_ok=True)
                self._write_files(folder, segment_id)

    def _write_files(self, folder: Path, segment_id: str) -> None:
        with _segment(folder, segment_id) as segment:
            if segment is None:
                return  # merged away meanwhile
            found: list[tuple[int, Postings]] = []
            for (field, text), info in segment._terms.items():
                if self._abandoned(folder):
                    return
                if field not in self.fields or info.is_inlined():
                    continue
                if info.doc_frequency() >= self.min_frequency:
                    found.append((info._offset, self._read(segment, field, text)))
            # Deleted documents too: a key is read by document number, and deletions
            # come and go while the segment stays.
            keys = np.array(
                [segment.stored_fields(n).get("key", "").encode("utf-8")
                 for n in range(segment.doc_count_all())],
                dtype=np.bytes_,
            )  # fmt: skip
        found.sort(key=lambda item: item[0])
        lengths = np.array([len(ids) for _, (ids, _) in found], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        # A last offset past every real one, so a term's end is the next start.
        offsets = np.array([o for o, _ in found] + [np.iinfo(np.int64).max], np.int64)
        _save(
            _path(folder, segment_id, "ids"),
            np.concatenate([ids for _, (ids, _) in found] or [np.zeros(0, np.int32)]),
        )
        _save(
            _path(folder, segment_id, "weights"),
            np.concatenate([w for _, (_, w) in found] or [np.zeros(0, np.float32)]),
        )
        _save(_path(folder, segment_id, "keys"), keys)
        _save(_path(folder, segment_id, "terms"), np.stack([offsets, starts]))


def _save(path: Path, values: npt.NDArray[Any]) -> None:
    """Written in full under a name Whoosh does not clean (a leading dot), then
    renamed: a crash leaves no file that looks whole and is not."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    with temporary.open("wb") as file:
        np.save(file, values)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def _exclusive(path: Path, give_up: Callable[[], bool]) -> Iterator[bool]:
    """The lock on ``path``, waited for until ``give_up()`` (then ``False``): while
    another process writes a segment's files, this one waits to map them. The lock
    file goes once its holder is done; a lock taken on a file already gone does not
    count (its holder may have given up without writing), so at most one writes."""
    while True:
        with path.open("a") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                if _same_file(file.fileno(), path):
                    try:
                        yield True
                    finally:
                        path.unlink(missing_ok=True)
                        fcntl.flock(file, fcntl.LOCK_UN)
                    return
        if give_up():
            yield False
            return
        time.sleep(LOCK_POLL_SECONDS)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _segment(folder: Path, segment_id: str) -> Iterator[Any]:
    """The segment's own reader: the shared searcher may be replaced meanwhile."""
    from whoosh import index as whoosh_index

    reader = whoosh_index.open_dir(str(folder)).reader()
    try:
        yield next(
            (s for s, _ in reader.leaf_readers() if s.segment().segment_id() == segment_id),
            None,
        )
    finally:
        reader.close()
