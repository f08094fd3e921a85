"""Whoosh's files inside a compound segment, opened without a copy of their contents.

A segment Whoosh assembles into one compound file is mapped into memory, and each
file in it is opened as a ``BufferFile`` over a slice of the map. Its constructor
also wraps the slice in a ``BytesIO``, which copies it whole. At 200,000 documents the
postings file is hundreds of megabytes and the terms file tens: every new searcher
(one per write) copied the terms file, and the writer of every write copied both (it
reads the postings of the key it replaces), about half a second a write, holding the
interpreter lock, so that the searches running meanwhile waited too.

``install()`` gives ``BufferFile`` a stream over the same slice instead: reads are
slices of the map, copied a read at a time, as ``BufferFile.get`` already does.
Checked against whoosh-reloaded 2.7 (pinned ``<2.8`` in pyproject.toml), whose
buffer files are only read.
"""

from __future__ import annotations

import io
from typing import Any

from whoosh.filedb.structfile import BufferFile

LINE_CHUNK = 4096


def install() -> None:
    BufferFile.__init__ = _init


def _init(self: Any, buf: Any, name: str | None = None, onclose: Any = None) -> None:
    self._buf = buf
    self._name = name
    self.file = View(buf)
    self.onclose = onclose
    self.is_real = False
    self.is_closed = False


class View(io.RawIOBase):
    """A read-only, seekable stream over a buffer that it does not copy."""

    def __init__(self, buffer: Any) -> None:
        super().__init__()
        self._view = memoryview(buffer).cast("B")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        start = min(self._position, len(self._view))
        count = min(len(target), len(self._view) - start)
        memoryview(target).cast("B")[:count] = self._view[start : start + count]
        if count:  # as BytesIO: a read at or past the end leaves the position be
            self._position = start + count
        return count

    def readline(self, size: int | None = -1) -> bytes:
        start = min(self._position, len(self._view))
        limit = len(self._view) if size is None or size < 0 else min(start + size, len(self._view))
        end = start
        while end < limit:  # a chunk at a time: never the rest of a large file at once
            chunk = bytes(self._view[end : min(end + LINE_CHUNK, limit)])
            if (found := chunk.find(b"\n")) >= 0:
                end += found + 1
                break
            end += len(chunk)
        if end > start:
            self._position = end
        return bytes(self._view[start:end])

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._view.release()
        super().close()
