"""Index writes survive a failed commit: the next write goes through, nothing half-written shows.

The failure is real: a file-size limit (RLIMIT_FSIZE) makes Whoosh's postings
file hit "File too large" half-way through the commit, as a full disk would.
The limit holds for a whole process, so the writes run in a child process of
their own: in pytest's, any other thread writing meanwhile would fail too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from whoosh import query as q

from knowledge.search.index import SearchIndex

PROCESS_TIMEOUT = 120

# Writes, fails one commit half-way, looks, writes again; prints what it saw as JSON.
WRITER = """
import gc, itertools, json, resource, signal, string, sys, traceback, warnings
from pathlib import Path
from whoosh import query as q
from knowledge.search.index import SearchIndex

FILE_SIZE_LIMIT = 64 * 1024

def keys(index):
    with index.reading():
        return sorted(h["key"] for h in index.run_query(q.Term("kind", "article"), limit=None))

index = SearchIndex(Path(sys.argv[1]), write_timeout=1.0)
index.open()
seen = {}
index.apply([{"key": "article:1", "kind": "article", "title": "kept"}], [], 1)
# Many distinct terms: the postings written at commit outgrow the limit.
words = itertools.product(string.ascii_lowercase, repeat=4)
huge = " ".join("q" + "".join(w) for w in itertools.islice(words, 20_000))

soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, hard))
failure = None
try:
    index.apply([{"key": "article:2", "kind": "article", "body": huge}], [], 2)
except OSError as error:
    failure = error
finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
seen["error"] = None if failure is None else str(failure)

# ``failure`` keeps the traceback, and with it the failed writer, alive: the
# lock must not depend on the garbage collector.
seen["after_failure"] = [index.last_seq(), keys(index)]
index.apply([{"key": "article:3", "kind": "article", "title": "after"}], [], 3)
seen["after_retry"] = [index.last_seq(), keys(index)]
index.close()
# Whoosh's failed commit left a reader of its own open in its frames.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ResourceWarning)
    if failure is not None:
        traceback.clear_frames(failure.__traceback__)
    gc.collect()
print(json.dumps(seen), flush=True)
"""


def keys(index: SearchIndex) -> set[str]:
    with index.reading():
        return {hit["key"] for hit in index.run_query(q.Term("kind", "article"), limit=None)}


def test_a_commit_that_fails_half_way_leaves_the_index_writable(tmp_path: Path) -> None:
    root = tmp_path / "index"
    child = subprocess.run(
        [sys.executable, "-W", "error", "-c", WRITER, str(root)],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)

    assert seen["error"] is not None, "the commit was expected to fail past the size limit"
    assert "too large" in seen["error"]
    assert seen["after_failure"] == [1, ["article:1"]], "nothing of the failed commit is visible"
    assert seen["after_retry"] == [3, ["article:1", "article:3"]]

    reopened = SearchIndex(root)
    assert reopened.open(), "the index on disk is whole"
    try:
        assert reopened.last_seq() == 3
        assert keys(reopened) == {"article:1", "article:3"}
    finally:
        reopened.close()


def test_a_write_makes_the_next_searcher_ready_unless_the_process_only_writes(
    tmp_path: Path,
) -> None:
    # A server's searches would pay for opening it; ``knownfix indexer`` searches nothing.
    for warm in (True, False):
        index = SearchIndex(tmp_path / str(warm), warm_after_write=warm)
        index.open()
        try:
            with index.reading():
                before = index.searcher()
            index.apply([{"key": "article:1", "kind": "article", "title": "kept"}], [], 1)
            opened = index._searcher is not before
            assert opened is warm
            with index.reading():  # either way, the next search sees the write
                assert index.run_query(q.Term("key", "article:1")).scored_length() == 1
        finally:
            index.close()


def test_a_key_written_twice_in_one_write_is_one_document_the_last(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "index")
    index.open()
    try:
        index.apply(
            [
                {"key": "article:1", "kind": "article", "title": "first draft"},
                {"key": "article:1", "kind": "article", "title": "final words"},
            ],
            [],
            1,
        )
        with index.reading():
            hits = index.run_query(q.Term("key", "article:1"))
            assert hits.scored_length() == 1
            assert index.run_query(q.Term("title", "final")).scored_length() == 1
            assert index.run_query(q.Term("title", "draft")).scored_length() == 0
    finally:
        index.close()
