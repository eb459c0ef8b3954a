"""What every protocol adapter on the supervisor's loop shares: one sans-IO
core per interface (`link.core`, with start/stop/expire/next_deadline), one
reader per interface socket, and one timer for the earliest deadline of all
cores. A reader or timer callback that fails is logged, counted in `faults`
and survived: the loop never loses the adapter to one bad message. A send
the kernel refuses (link down, a firewall) is counted per interface in
`send_errors`, shown by `describe()`, and the protocol carries on: its next
timer sends again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Callable


class Link:
    """One interface: `core` is the protocol's state machine, `read` the socket to read."""

    name: str
    core: object
    read: object

    def close(self) -> None:
        raise NotImplementedError


class LinkService:
    """Per-interface cores on the running loop; subclasses read and act."""

    log = logging.getLogger("mcr.protocols")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._links: dict[str, Link] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.faults = 0  # errors in a reader or the timer: logged, counted, survived
        self.send_errors: dict[str, int] = {}  # interface -> sends the kernel refused

    def interfaces(self) -> list[str]:
        return sorted(self._links)

    def describe(self) -> list[dict]:
        """Per interface: its core's state and the sends refused there."""
        now = time.monotonic()
        return [{"interface": name, **link.core.describe(now), "send_errors": self.send_errors.get(name, 0)}
                for name, link in sorted(self._links.items())]

    def _sendto(self, link: Link, sock: socket.socket, payload: bytes, destination: str, what: str) -> None:
        """One protocol message out of `link`; a refusal is counted, and the
        next timer's send tries again (link down: when it is back)."""
        try:
            sock.sendto(payload, (destination, 0))
        except OSError as error:
            # Debug only: a link that is down refuses every timer's send, and
            # the counter already says so.
            self.send_errors[link.name] = self.send_errors.get(link.name, 0) + 1
            self.log.debug("%s on %s: %s", what, link.name, error)

    def follow(self, wanted: dict[str, object], address_of: Callable[[str], str | None]) -> None:
        """Run on each wanted interface (name -> settings) that has an IPv4
        address (`address_of`), with its settings; on no other."""
        for name in self.interfaces():
            if name not in wanted or address_of(name) is None:
                self.disable(name)
        for name, settings in wanted.items():
            address = address_of(name)
            if address is None:
                continue
            try:
                self.enable(name, settings, address)
            except OSError as error:  # e.g. gone again meanwhile: netlink will tell
                self.log.warning("%s on %s: %s", type(self).__name__, name, error)

    def enable(self, name: str, settings: object, address: str) -> None:
        """Run on `name` (again, if its settings changed; re-addressed in place)."""
        link = self._links.get(name)
        if link is not None and link.core.settings == settings:
            if link.core.address != address:
                self._apply(link, link.core.set_address(time.monotonic(), address))
            return
        self.disable(name)
        self.log.info("%s on %s (%s): %s", type(self).__name__, name, address, settings)
        self._add(self._new_link(name, settings, address))

    def _new_link(self, name: str, settings: object, address: str) -> Link:
        raise NotImplementedError

    def _add(self, link: Link) -> None:
        self._links[link.name] = link
        self._loop.add_reader(link.read.fileno(), self._guarded, link, self._read, link)
        self._apply(link, link.core.start(time.monotonic()))

    def disable(self, name: str) -> None:
        """Stop the protocol on `name` (gone, unaddressed or no longer wanted)."""
        link = self._links.pop(name, None)
        if link is None:
            return
        self._loop.remove_reader(link.read.fileno())
        outputs = link.core.stop(time.monotonic())
        self._apply(link, outputs, sending=self._sends_when_stopping)
        link.close()

    def close(self) -> None:
        for name in list(self._links):
            self.disable(name)
        if self._timer is not None:
            self._timer.cancel()

    _sends_when_stopping = False  # PIM says goodbye (Hello holdtime 0); IGMP just stops

    def _read(self, link: Link) -> None:
        raise NotImplementedError

    def _act(self, link: Link, outputs: list, sending: bool) -> None:
        """Carry out a core's outputs (send, tell the supervisor)."""
        raise NotImplementedError

    def _apply(self, link: Link, outputs: list, sending: bool = True) -> None:
        self._act(link, outputs, sending)
        self._arm()

    def _guarded(self, link: Link, callback, *args) -> None:
        try:
            callback(*args)
        except Exception:  # a loop callback must not die: the next message or timer runs as usual
            self.faults += 1
            self.log.exception("%s on %s failed", type(self).__name__, link.name)

    def _deadlines(self) -> list[float]:
        """Every core's next deadline (a subclass adds its router-wide state's)."""
        return [d for link in self._links.values() if (d := link.core.next_deadline()) is not None]

    def _expire_shared(self, now: float) -> None:
        """Run router-wide timers that are due (none here)."""

    def _arm(self) -> None:
        deadlines = self._deadlines()
        if self._timer is not None:
            self._timer.cancel()
        # The loop's clock is time.monotonic(), the cores' too.
        self._timer = self._loop.call_at(min(deadlines), self._expire) if deadlines else None

    def _expire(self) -> None:
        self._timer = None
        now = time.monotonic()
        for link in list(self._links.values()):
            self._guarded(link, lambda: self._act(link, link.core.expire(now), True))
        try:
            self._expire_shared(now)
        except Exception:  # as for a core: logged, counted, survived
            self.faults += 1
            self.log.exception("%s timers failed", type(self).__name__)
        self._arm()
