"""Readiness and state for a service manager: the sd_notify protocol.

systemd (Type=notify) passes the path of a datagram socket in
$NOTIFY_SOCKET; the service sends newline-separated KEY=VALUE lines to it:
READY=1 once it serves, RELOADING=1 while it re-reads its config (with
MONOTONIC_USEC, as systemd 253's Type=notify-reload asks), STOPPING=1 as
it shuts down, STATUS= free text for `systemctl status`. A name starting
with '@' is in the abstract namespace (a leading NUL byte on the wire).

Implemented here rather than through libsystemd: one sendto() on an
AF_UNIX datagram socket is all of it. Without $NOTIFY_SOCKET (started by
hand, or by a manager that does not ask) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

ENVIRONMENT = "NOTIFY_SOCKET"

log = logging.getLogger("mcr.supervisor")


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends state changes to the service manager, if there is one."""

    def __init__(self, address: str | None) -> None:
        self.address = address

    @classmethod
    def from_environment(cls) -> Notifier:
        """Take $NOTIFY_SOCKET out of the environment: the workers this
        daemon starts must not inherit it and speak for the service."""
        return cls(os.environ.pop(ENVIRONMENT, None) or None)

    def send(self, **fields: str | int) -> bool:
        """One notification; False (logged, never raised) if it could not
        be sent: a manager that went away must not stop the daemon."""
        if not self.address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, _address(self.address))
        except OSError as error:
            log.warning("could not notify the service manager at %s: %s", self.address, error)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def reloading(self) -> bool:
        return self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)
