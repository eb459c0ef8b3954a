"""PIM-SM on the supervisor's asyncio loop: one `PimInterface`
(mcr.protocols.pim, sans-IO) per PIM interface, and its socket.

Per interface, one raw IPPROTO_PIM socket bound to the interface, a member
of ALL-PIM-ROUTERS (224.0.0.13) there: it reads the PIM messages the
kernel delivers on that link and sends Hellos with TTL 1 and TOS 0xC0
(RFC 7761 4.9: link-local messages). The kernel adds the IP header, from
the interface's primary address. What the cores learn (neighbors up, down
or restarted, a new DR) goes to `mcr events`.

Hellos go to each interface's core; Join/Prunes, Registers, Register-Stops,
Asserts and Bootstraps (multicast or unicast: this socket reads both) to
the router-wide state (mcr.protocols.pim_router), which this adapter also
tells of neighbor and DR changes, runs the timers of, and sends for.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import time
from typing import Callable

from .. import sockets
from .links import Link, LinkService
from .pim import DrChanged, NeighborChanged, PimInterface, SendHello, Settings
from .pim_config import PimConfig
from .pim_router import PimRouter
from .pim_rpf import RpfTable
from .pim_wire import ALL_PIM_ROUTERS, JoinPrune, Malformed, parse_message
from .pim_wire_more import Assert, Bootstrap, Register, RegisterStop

IPPROTO_PIM = 103
PIM_HELLO = 0
TOS_INTERNETWORK_CONTROL = 0xC0

log = logging.getLogger("mcr.pim")


class _Link(Link):
    """One interface's PIM core and socket."""

    def __init__(self, name: str, settings: Settings, address: str) -> None:
        self.name = name
        self.core = PimInterface(settings, address, random.getrandbits(32))
        ifindex = socket.if_nametoindex(name)
        self.read = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_PIM)
        try:
            self.read.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode())
            mreqn = struct.pack("4s4si", socket.inet_aton(ALL_PIM_ROUTERS), b"\0" * 4, ifindex)
            self.read.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            self.read.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"", b"", ifindex))
            self.read.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            self.read.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self.read.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_INTERNETWORK_CONTROL)
            self.read.setblocking(False)
        except OSError:
            self.read.close()
            raise

    def close(self) -> None:
        self.read.close()


class PimService(LinkService):
    """PIM on the interfaces asked for, on the running loop."""

    log = log
    _sends_when_stopping = True  # a Hello with holdtime 0: neighbors drop us at once (RFC 7761 4.3.1)

    def __init__(self, publish: Callable[..., None]) -> None:
        super().__init__()
        self._publish = publish
        self.unicast_send_errors = 0  # Register-Stops and Null-Registers the kernel refused
        self.router: PimRouter | None = None
        self._unicast: socket.socket | None = None  # Register-Stops and Null-Registers, opened on first use

    def configure(self, config: PimConfig, rpf: RpfTable, on_change: Callable[[], None]) -> None:
        """The router-wide state for `config` (a new one when the settings changed)."""
        if self.router is not None and self.router.config == config:
            return
        self.router = PimRouter(config, rpf, self.cores, self._send_on, self._send_unicast, on_change,
                                self._publish)
        on_change()

    def cores(self) -> dict[str, PimInterface]:
        return {name: link.core for name, link in self._links.items()}

    def _add(self, link) -> None:
        super()._add(link)
        self._tell_tree(lambda tree, now: tree.interface_changed(now, link.name))

    def disable(self, name: str) -> None:
        had = name in self._links
        super().disable(name)
        if had:
            self._tell_tree(lambda tree, now: tree.interface_changed(now, name))

    def _tell_tree(self, call) -> None:
        if self.router is not None:
            self.router.apply(call(self.router.tree, time.monotonic()))
            self._arm()

    def _deadlines(self) -> list[float]:
        deadlines = super()._deadlines()
        if self.router is not None and (due := self.router.next_deadline()) is not None:
            deadlines.append(due)
        return deadlines

    def _expire_shared(self, now: float) -> None:
        if self.router is not None:
            self.router.expire(now)

    def close(self) -> None:
        super().close()
        if self._unicast is not None:
            self._unicast.close()

    def _new_link(self, name: str, settings: Settings, address: str) -> _Link:
        return _Link(name, settings, address)

    def _read(self, link: _Link) -> None:
        for _ in range(64):  # boundedly per wakeup
            try:
                packet = link.read.recv(65535)
            except BlockingIOError:
                break
            except OSError as error:
                log.warning("reading PIM on %s: %s", link.name, error)
                break
            if len(packet) < 20:
                continue
            header = (packet[0] & 0x0F) * 4
            source = socket.inet_ntoa(packet[12:16])
            payload = packet[header:]
            if payload[:1] and payload[0] & 0x0F != PIM_HELLO and self.router is not None:
                self._to_router(link, source, socket.inet_ntoa(packet[16:20]), payload)
            else:
                self._apply(link, link.core.receive(time.monotonic(), source, payload))

    def _to_router(self, link: _Link, source: str, destination: str, payload: bytes) -> None:
        """A message for the router-wide state (Join/Prune, Register, Register-Stop, Assert, Bootstrap);
        others (Graft, Candidate-RP-Advertisement: not for a listener that is no BSR) are counted and
        dropped."""
        core = link.core
        if source == core.address:
            core.counters["own_message"] += 1
            return
        try:
            message = parse_message(payload)
        except Malformed as error:
            core.counters[error.reason] += 1
            return
        now, router = time.monotonic(), self.router
        if isinstance(message, JoinPrune):
            router.receive_join_prune(now, link.name, source, message)
        elif isinstance(message, Register):
            router.registers.register_arrived(now, source, destination, message)
        elif isinstance(message, RegisterStop):
            router.registers.register_stop_arrived(now, message)
        elif isinstance(message, Assert):
            router.asserts.receive(now, link.name, source, message)
        elif isinstance(message, Bootstrap):
            router.bootstraps.receive(now, link.name, source, destination, message, payload)
        else:
            core.counters["unhandled_type"] += 1
            return
        self._arm()

    def _act(self, link: _Link, outputs: list, sending: bool) -> None:
        for output in outputs:
            if isinstance(output, SendHello):
                if sending:
                    self._send(link, output)
            elif isinstance(output, NeighborChanged):
                log.info("PIM neighbor %s on %s: %s", output.address, link.name, output.change)
                self._publish("pim-neighbor", interface=link.name, address=output.address, change=output.change)
                if self.router is not None:
                    self.router.neighbor_changed(time.monotonic(), link.name, output.address, output.change)
                    self._arm()
            elif isinstance(output, DrChanged):
                self._publish("pim-dr", interface=link.name, dr=output.dr)
                self._tell_tree(lambda tree, now: tree.interface_changed(now, link.name))

    def _send_on(self, name: str, payload: bytes) -> None:
        """The router's message to ALL-PIM-ROUTERS on interface `name`."""
        link = self._links.get(name)
        if link is None:  # the router's view is behind: netlink has just taken the interface away
            return
        if link.core.hello_triggered:  # a neighbor that just came up learns us first (RFC 7761 4.3.1)
            self._act(link, link.core.send_hello(time.monotonic()), True)
        self._sendto(link, link.read, payload, ALL_PIM_ROUTERS, "PIM")

    def _send_unicast(self, destination: str, payload: bytes) -> None:
        """A Register-Stop or Null-Register, routed by the kernel (which picks the source address)."""
        try:
            if self._unicast is None:
                self._unicast = sockets.open_register_socket()  # sends only: it reads nothing
            self._unicast.sendto(payload, (destination, 0))
        except OSError as error:
            self.unicast_send_errors += 1
            log.debug("PIM to %s: %s", destination, error)

    def _send(self, link: _Link, hello: SendHello) -> None:
        # A goodbye after re-addressing names its old source (RFC 7761 4.3.1);
        # the kernel sends from the interface's address, which is what we have.
        self._sendto(link, link.read, hello.payload, ALL_PIM_ROUTERS, "Hello")
