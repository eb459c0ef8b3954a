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


class NetnsError(RuntimeError):
    """A named network namespace that does not exist or cannot be entered."""


def netns_path(name: str) -> str:
    """/run/netns/NAME, for a name `ip netns` could have made."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise NetnsError(f"'{name}' is not a network namespace name (as `ip netns list` shows them)")
    return os.path.join(NETNS_DIR, name)


def _identity(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def enter_for_good(name: str) -> None:
    """Move this process into netns `name`, unless it is there already.

    Call it while the process has one thread: setns(2) moves only the
    caller. Already inside is the service case: systemd's
    NetworkNamespacePath= (or `ip netns exec`) put us there, as setns needs
    CAP_SYS_ADMIN, which an unprivileged daemon does not have; checking
    still catches a unit that names one namespace and runs in another.
    """
    path = netns_path(name)
    try:
        target = _identity(path)
    except FileNotFoundError:
        raise NetnsError(f"no network namespace '{name}' ({path} does not exist; see `ip netns list`)") from None
    if target == _identity("/proc/self/ns/net"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
    except PermissionError:
        raise NetnsError(f"entering network namespace '{name}' needs CAP_SYS_ADMIN: run the daemon as root, "
                         f"or start it inside the namespace (systemd NetworkNamespacePath={path}, "
                         f"or `ip netns exec {name} ...`)") from None
    except OSError as error:
        raise NetnsError(f"cannot enter network namespace '{name}': {error.strerror}") from None
    finally:
        os.close(fd)
