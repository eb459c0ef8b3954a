"""Entering network namespaces, one thread at a time.

setns(2) moves only the calling thread, so the rest of the process keeps
working where it is; sockets opened inside stay in that namespace.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from typing import Iterator

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the body with the current thread inside netns `name`.

    setns(2) only affects the calling thread, so other threads keep working
    in their own namespace. Sockets opened in the body stay bound to `name`
    after the block ends. `name=None` leaves the thread where it is.
    """
    if name is None:
        yield
        return
    # Open the way back first: once we have left, /proc/thread-self points
    # at the new namespace.
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)
