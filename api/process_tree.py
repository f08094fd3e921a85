"""Processes of ``knownfix serve`` that must not outlive the server that started them.

A worker or an index writer left behind by a server killed outright (SIGKILL, the
out-of-memory killer) keeps the index's writer lock and answers on the old port,
so the next server's writes would wait for it or never be indexed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def stop_with(parent: int) -> bool:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux; elsewhere
    the caller must look at ``os.getppid()`` itself). False if it is gone already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent
