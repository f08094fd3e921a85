"""A compound segment's files are read through a stream over the mapped segment, which
reads as ``BytesIO`` would and copies nothing when opened."""

from __future__ import annotations

import gc
import io
import mmap
import pickle
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from whoosh.filedb.structfile import BufferFile

from knowledge.search import buffer_files
from knowledge.search.buffer_files import View
from knowledge.search.schema import META_KEY
from tests.knowledge.search.test_arrays import _with_segments

Operation = tuple[str, int]
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["read", "readline", "readinto", "seek", "seek_cur", "seek_end"]),
        st.integers(min_value=-3, max_value=40),
    ),
    max_size=30,
)


@given(st.binary(max_size=200), OPERATIONS)
def test_the_view_reads_as_bytesio(data: bytes, operations: list[Operation]) -> None:
    data = data.replace(b"x", b"\n")  # lines to read
    ours, theirs = View(memoryview(data)), io.BytesIO(data)
    for name, n in operations:
        for stream in (ours, theirs):
            if name == "seek":
                stream.seek(max(n, 0))
            elif name == "seek_cur":
                stream.seek(max(n, -stream.tell()), io.SEEK_CUR)
            elif name == "seek_end":
                stream.seek(min(n, 0), io.SEEK_END)
        if name == "read":
            assert ours.read(n) == theirs.read(n)
        elif name == "readline":
            assert ours.readline(n) == theirs.readline(n)
        elif name == "readinto":
            mine, expected = bytearray(max(n, 0)), bytearray(max(n, 0))
            assert ours.readinto(mine) == theirs.readinto(expected)
            assert mine == expected
        assert ours.tell() == theirs.tell()
    assert ours.read() == theirs.read()


def test_a_long_line_is_read_in_chunks_whole() -> None:
    data = b"a" * (3 * buffer_files.LINE_CHUNK + 5) + b"\nrest"
    view = View(data)
    assert view.readline() == data[: data.index(b"\n") + 1]
    assert view.read() == b"rest"


def test_pickles_load_from_the_view() -> None:
    value = {"segment": [1, 2.5, "three"], "nested": ("a", b"b" * 5000)}
    data = b"header" + pickle.dumps(value)
    view = View(memoryview(data))
    view.seek(len(b"header"))
    assert pickle.load(view) == value  # noqa: S301 (our own bytes)


def test_a_file_of_a_mapped_segment_shares_the_map(tmp_path: Path) -> None:
    buffer_files.install()  # as knowledge.search.index does on import
    path = tmp_path / "blob"
    content = bytes(random.Random(3).randrange(256) for _ in range(100_000))  # noqa: S311
    path.write_bytes(content)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        part = memoryview(m)[10:50_010]
        opened = BufferFile(part, name="part")
        assert isinstance(opened.file, View)
        assert opened.get(0, 5) == content[10:15]
        opened.seek(49_990)
        assert opened.read(100) == content[50_000:50_010]
        opened.close()
        del opened, part  # what holds the map open, before it closes


def test_an_index_with_a_compound_segment_reads_through_views(tmp_path: Path) -> None:
    index = _with_segments(tmp_path)
    try:
        with index.reading():
            searcher = index.searcher()
            assert any(s.segment().is_compound() for s, _ in searcher.reader().leaf_readers())
            assert searcher.document(key=META_KEY) is not None  # reads postings and terms
            opened = [o for o in gc.get_objects() if isinstance(o, BufferFile) and not o.is_closed]
            assert opened
            assert all(isinstance(f.file, View) for f in opened)
    finally:
        index.close()
