"""Index writes survive a failed commit: the next write goes through, nothing half-written shows.

The failure is real: the process's file-size limit (RLIMIT_FSIZE) makes Whoosh's
postings file hit "File too large" half-way through the commit, as a full disk
would.
"""

from __future__ import annotations

import gc
import itertools
import resource
import signal
import string
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from whoosh import query as q

from knowledge.search.index import SearchIndex

FILE_SIZE_LIMIT = 64 * 1024


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail with EFBIG (instead of killing us with SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def keys(index: SearchIndex) -> set[str]:
    with index.reading():
        return {hit["key"] for hit in index.run_query(q.Term("kind", "article"), limit=None)}


def test_a_commit_that_fails_half_way_leaves_the_index_writable(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index", write_timeout=1.0)
    index.open()
    try:
        index.apply([{"key": "article:1", "kind": "article", "title": "kept"}], [], 1)
        # Many distinct terms: the postings written at commit outgrow the limit.
        words = itertools.product(string.ascii_lowercase, repeat=4)
        huge = " ".join("q" + "".join(w) for w in itertools.islice(words, 20_000))

        with file_size_limit(FILE_SIZE_LIMIT), pytest.raises(OSError, match="too large") as failure:
            index.apply([{"key": "article:2", "kind": "article", "body": huge}], [], 2)

        # ``failure`` keeps the traceback, and with it the failed writer, alive: the
        # lock must not depend on the garbage collector.
        assert index.last_seq() == 1, "nothing of the failed commit is visible"
        assert keys(index) == {"article:1"}

        index.apply([{"key": "article:3", "kind": "article", "title": "after"}], [], 3)
        assert index.last_seq() == 3
        assert keys(index) == {"article:1", "article:3"}
    finally:
        index.close()
        # Whoosh's failed commit left a reader of its own open in its frames.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            traceback.clear_frames(failure.value.__traceback__)
            gc.collect()

    reopened = SearchIndex(tmp_path / "index")
    assert reopened.open(), "the index on disk is whole"
    try:
        assert reopened.last_seq() == 3
        assert keys(reopened) == {"article:1", "article:3"}
    finally:
        reopened.close()
