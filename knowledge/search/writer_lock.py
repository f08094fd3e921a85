"""Which process writes an index directory when several serve from it.

``uvicorn --workers N`` (or several processes on one host) share one index
directory. Each could follow the outbox, but Whoosh allows one writer at a time
and the others would queue on its lock or fail. So one process is chosen by an
OS file lock (``flock``) on ``writer.lock`` in the directory: the holder runs
the indexer, the others only search and refresh their searchers when the index
changed. The kernel releases the lock when its holder exits, however it dies, so
another process can take over without any stale-lock cleanup.

``flock`` belongs to an open file, not to a process: two ``WriterLock`` objects
in one process exclude each other just as two processes do.

``knownfix serve`` runs a process of its own to write the index (``knownfix
indexer``), so that its workers only search. It names itself in
``writer.preferred``; a worker (a stand-in) takes the lock only while that process
is not running, and hands it back once it runs again.

A process that wants the index rebuilt while another holds the lock (``knownfix
reindex`` beside a running server) must not write it: it asks the holder
instead, with a request file in the directory, and waits for the file to go.
The writer looks for requests on every round, rebuilds, and then deletes the
requests it saw before it began. A request outlives a writer that dies: whoever
takes the lock next honours it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import uuid
from pathlib import Path

LOCK_FILE = "writer.lock"
PREFERRED_FILE = "writer.preferred"
REBUILD_REQUEST = "rebuild-request-"


def prefer(directory: Path) -> None:
    """Name this process the one meant to write ``directory`` (``knownfix indexer``)."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{PREFERRED_FILE}.{os.getpid()}"
    temporary.write_text(f"{os.getpid()}\n", encoding="ascii")
    temporary.replace(directory / PREFERRED_FILE)


def unprefer(directory: Path) -> None:
    """Take this process's name back, if the file still names it."""
    if _named(directory) == os.getpid():
        (directory / PREFERRED_FILE).unlink(missing_ok=True)


def preferred_writer(directory: Path) -> int | None:
    """The process meant to write ``directory``, if it runs."""
    pid = _named(directory)
    return pid if pid is not None and _is_index_writer(pid) else None


def _named(directory: Path) -> int | None:
    try:
        text = (directory / PREFERRED_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _is_index_writer(pid: int) -> bool:
    """Whether ``pid`` runs ``knownfix indexer``, and not a process that has reused its
    id since (Linux tells by the command line; elsewhere, by the owner)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
    except OSError:
        pass
    else:
        return any(
            word == b"indexer" and (program == b"api.cli" or program.endswith(b"knownfix"))
            for program, word in itertools.pairwise(argv)
        )
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def request_rebuild(directory: Path) -> Path:
    """Ask the writer of ``directory`` to rebuild it; the file goes once it has."""
    directory.mkdir(parents=True, exist_ok=True)
    request = directory / f"{REBUILD_REQUEST}{uuid.uuid4().hex}"
    request.write_text(f"{os.getpid()}\n", encoding="ascii")
    return request


def rebuild_requests(directory: Path) -> list[Path]:
    """The rebuild requests waiting in ``directory``."""
    return sorted(directory.glob(f"{REBUILD_REQUEST}*"))


class WriterLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits. True when we hold it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        # For people looking at the directory: who writes it (the lock, not this, decides).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def is_current(self) -> bool:
        """Whether the file we lock is still the one at ``path``: a directory deleted and
        made again has a new, unlocked file that another process could take."""
        if self._fd is None:
            return False
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        ours = os.fstat(self._fd)
        return (ours.st_dev, ours.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the file drops the flock

    def holder(self) -> int | None:
        """The process id the current holder wrote, if any (for diagnostics)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None
