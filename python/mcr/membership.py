"""Group membership on input interfaces, without the kernel's IP-level join.

The relay must be a member of each rule's group on the input interface, so
that NICs (link-layer filter) and IGMP-snooping switches (IGMP reports)
deliver it. Joining at the IP level (IP_ADD_MEMBERSHIP) does both, but also
makes the kernel push every relayed packet through its own IP and UDP input,
with a route allocated per packet: in one paired probe that cost the relay
about 11 % of its no-drop rate on a one-core box, more under overload.

So MCR joins below the IP layer instead:
- the link-layer filter through PACKET_ADD_MEMBERSHIP on a packet socket;
- IGMP as a host (RFC 3376 section 5, RFC 2236 section 3): unsolicited
  reports on join (repeated once, robustness 2), a leave on the last rule's
  removal, and current-state reports answering queries, IGMPv3 unless an
  IGMPv2 querier was heard on the interface.

`Membership` is the sans-IO core (inputs: join/leave/query and the time;
outputs: reports to send, possibly after a delay); `MembershipService` runs
it on a thread with one raw IGMP socket per interface.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from .sockets import ETH_P_ALL, PACKET_IGNORE_OUTGOING, SOL_PACKET, PortClaims, attach_filter, bpf, has_ethernet_header

log = logging.getLogger("mcr.igmp")

IGMP_QUERY, V2_REPORT, V2_LEAVE, V3_REPORT = 0x11, 0x16, 0x17, 0x22
MODE_IS_INCLUDE, MODE_IS_EXCLUDE, TO_INCLUDE, TO_EXCLUDE, ALLOW_NEW, BLOCK_OLD = 1, 2, 3, 4, 5, 6
ALL_ROUTERS, V3_ROUTERS = "224.0.0.2", "224.0.0.22"
ROUTER_ALERT = b"\x94\x04\x00\x00"  # RFC 2113; IGMPv3 receivers may drop reports without it
UNSOLICITED_INTERVAL = 1.0  # RFC 3376 8.11
V2_QUERIER_TIMEOUT = 400.0  # RFC 3376 8.12, with the default robustness and intervals
PACKET_ADD_MEMBERSHIP, PACKET_DROP_MEMBERSHIP, PACKET_MR_MULTICAST = 1, 2, 0
ETH_P_IP = 0x0800

# Queries are read at the link layer: a group-specific query goes to the group
# itself, which the IP layer (not being a member) would drop.
# IPv4 (ethertype at 12) carrying IGMP (protocol at 23), else nothing.
_IGMP_ONLY = [bpf(0x28, 0, 0, 12), bpf(0x15, 0, 3, ETH_P_IP), bpf(0x30, 0, 0, 23),
              bpf(0x15, 0, 1, socket.IPPROTO_IGMP), bpf(0x06, 0, 0, 0xFFFF), bpf(0x06, 0, 0, 0)]
_NOTHING = [bpf(0x06, 0, 0, 0)]

Key = tuple[str, str | None]  # (group, source or None for any source)


@dataclass(frozen=True)
class Send:
    """An IGMP message to send out of `interface` to `destination`, `delay` seconds from now."""

    interface: str
    destination: str
    payload: bytes
    delay: float = 0.0
    # The group a state-change report is about: a later change for it makes
    # this one's retransmission stale (a join repeated after a leave would
    # undo the leave). None: a current-state answer to a query.
    group: str | None = None


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _with_checksum(message: bytes) -> bytes:
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


def v2_message(kind: int, group: str) -> bytes:
    return _with_checksum(struct.pack("!BBH4s", kind, 0, 0, socket.inet_aton(group)))


def v3_report(records: list[tuple[int, str, list[str]]]) -> bytes:
    """An IGMPv3 membership report: (record type, group, sources) per record."""
    body = b"".join(struct.pack("!BBH4s", kind, 0, len(sources), socket.inet_aton(group))
                    + b"".join(socket.inet_aton(s) for s in sources) for kind, group, sources in records)
    return _with_checksum(struct.pack("!BBHHH", V3_REPORT, 0, 0, 0, len(records)) + body)


@dataclass(frozen=True)
class Query:
    version: int  # 2 or 3
    group: str  # "0.0.0.0" for a general query
    max_response: float  # seconds


def parse_query(message: bytes) -> Query | None:
    """The IGMP query in `message` (the IGMP part, after the IP header), or None."""
    if len(message) < 8 or message[0] != IGMP_QUERY or inet_checksum(message) != 0:
        return None
    group = socket.inet_ntoa(message[4:8])
    if len(message) >= 12:  # RFC 3376 4.1.1: the Max Resp Code is a float above 127
        code = message[1]
        tenths = code if code < 128 else ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)
        return Query(3, group, tenths / 10)
    return Query(2, group, (message[1] or 100) / 10)


@dataclass
class Membership:
    """What this host is a member of, per interface, and the IGMP that follows from it."""

    users: dict[str, dict[Key, int]] = field(default_factory=dict)
    v2_querier_until: dict[str, float] = field(default_factory=dict)
    # Per interface, how many of its keys are for each group: has_group in
    # O(1), so that joining thousands of groups is not quadratic.
    groups: dict[str, dict[str, int]] = field(default_factory=dict)

    def _v2(self, interface: str, now: float) -> bool:
        return self.v2_querier_until.get(interface, 0.0) > now

    def has_group(self, interface: str, group: str) -> bool:
        """Whether any membership (from any source) holds `group` on `interface`."""
        return self.groups.get(interface, {}).get(group, 0) > 0

    def join(self, interface: str, group: str, source: str | None, now: float) -> list[Send]:
        keys = self.users.setdefault(interface, {})
        keys[(group, source)] = keys.get((group, source), 0) + 1
        if keys[(group, source)] > 1:
            return []
        held = self.groups.setdefault(interface, {})
        held[group] = held.get(group, 0) + 1
        if self._v2(interface, now):
            message, destination = v2_message(V2_REPORT, group), group
        else:
            record = (TO_EXCLUDE, group, []) if source is None else (ALLOW_NEW, group, [source])
            message, destination = v3_report([record]), V3_ROUTERS
        return [Send(interface, destination, message, 0.0, group),
                Send(interface, destination, message, UNSOLICITED_INTERVAL, group)]

    def leave(self, interface: str, group: str, source: str | None, now: float) -> list[Send]:
        keys = self.users.get(interface, {})
        if keys.get((group, source), 0) == 0:
            return []
        keys[(group, source)] -= 1
        if keys[(group, source)] > 0:
            return []
        del keys[(group, source)]
        held = self.groups[interface]
        held[group] -= 1
        if held[group] == 0:
            del held[group]
        if self._v2(interface, now):
            return [] if self.has_group(interface, group) else [
                Send(interface, ALL_ROUTERS, v2_message(V2_LEAVE, group), 0.0, group)]
        record = (TO_INCLUDE, group, []) if source is None else (BLOCK_OLD, group, [source])
        message = v3_report([record])
        # RFC 3376 5.1: a state-change report goes out [Robustness] times, so
        # one lost leave does not keep the group coming for a membership interval.
        return [Send(interface, V3_ROUTERS, message, 0.0, group),
                Send(interface, V3_ROUTERS, message, UNSOLICITED_INTERVAL, group)]

    def leave_all(self, now: float) -> list[Send]:
        """Leaves for every membership (the relay is stopping): routers stop sending at once."""
        sends = []
        for interface, keys in self.users.items():
            for group, source in list(keys):
                keys[(group, source)] = 1
                # Stopping: no later retransmission will be sent, so none is asked for.
                sends += [send for send in self.leave(interface, group, source, now) if send.delay == 0]
        return sends

    def on_query(self, interface: str, query: Query, now: float) -> list[Send]:
        """Current-state reports, each after a random delay within the query's Max Resp Time."""
        if query.version == 2:
            self.v2_querier_until[interface] = now + V2_QUERIER_TIMEOUT
        groups = sorted({g for g, _ in self.users.get(interface, {})
                         if query.group in ("0.0.0.0", g)})
        delay = random.uniform(0, max(0.0, query.max_response))
        if self._v2(interface, now):
            return [Send(interface, g, v2_message(V2_REPORT, g), delay) for g in groups]
        records = [self._current_state(interface, g) for g in groups]
        return [Send(interface, V3_ROUTERS, v3_report(records), delay)] if records else []

    def _current_state(self, interface: str, group: str) -> tuple[int, str, list[str]]:
        sources = [s for g, s in self.users[interface] if g == group]
        if None in sources:  # any-source wins: EXCLUDE nothing
            return (MODE_IS_EXCLUDE, group, [])
        return (MODE_IS_INCLUDE, group, sorted(s for s in sources if s is not None))


class _MembershipSockets:
    """`Membership` and its sockets, without a driver. Per interface: a raw
    IGMP socket that sends (kernel-built IP header with Router Alert) and a
    packet socket that holds the link-layer filter and reads queries. A
    driver reads the query sockets and sends what comes due: a thread
    (MembershipService) or an asyncio loop (AsyncMembershipService)."""

    def __init__(self) -> None:
        self.state = Membership()
        self._lock = threading.Lock()
        self._igmp: dict[str, socket.socket] = {}
        self._links: dict[str, socket.socket] = {}
        self._timers: list[tuple[float, int, Send]] = []
        self._order = 0
        self._changed: dict[tuple[str, str], int] = {}  # (interface, group) -> first order of its latest change

    def _opened(self, interface: str, link: socket.socket) -> None:
        """A query socket to read from now on (the driver's business)."""

    def _closing(self, link: socket.socket) -> None:
        """A query socket about to be closed."""

    def join(self, interface: str, group: str, source: str | None) -> None:
        """Call inside the interface's network namespace (it may open sockets there)."""
        with self._lock:
            self._open(interface)
            if not self.state.has_group(interface, group):
                self._link_filter(interface, group, PACKET_ADD_MEMBERSHIP)
            self._schedule_change(interface, group, self.state.join(interface, group, source, time.monotonic()))

    def leave(self, interface: str, group: str, source: str | None) -> None:
        with self._lock:
            self._schedule_change(interface, group, self.state.leave(interface, group, source, time.monotonic()))
            if interface in self._links and not self.state.has_group(interface, group):
                self._link_filter(interface, group, PACKET_DROP_MEMBERSHIP)

    def forget(self, interface: str) -> None:
        """The interface is gone: close its sockets (bound to an index that no
        longer exists); a later join on a new interface of that name opens new ones."""
        with self._lock:
            link = self._links.pop(interface, None)
            if link is not None:
                self._closing(link)
                link.close()
            igmp = self._igmp.pop(interface, None)
            if igmp is not None:
                igmp.close()

    def close(self) -> None:
        """Leave every group, then release the sockets."""
        with self._lock:
            self._timers.clear()
            self._schedule(self.state.leave_all(time.monotonic()))
            self._send_due(time.monotonic())
            for link in self._links.values():
                self._closing(link)
            for sock in [*self._igmp.values(), *self._links.values()]:
                sock.close()
            self._igmp.clear()
            self._links.clear()

    def _open(self, interface: str) -> None:
        if interface in self._igmp:
            return
        ifindex = socket.if_nametoindex(interface)
        igmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
        igmp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        igmp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"", b"", ifindex))
        igmp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        igmp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        igmp.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, ROUTER_ALERT)
        attach_filter(igmp, _NOTHING)  # sends only; queries come through the packet socket
        self._igmp[interface] = igmp
        # A tap (ETH_P_ALL) sees each frame and lets go of it before the IP
        # layer does. Bound to ETH_P_IP it would be handed frames alongside
        # ip_rcv, which then finds the buffer shared and copies it: one skb
        # clone per relayed packet. Protocol 0 until bind(): no other interface.
        link = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        attach_filter(link, _IGMP_ONLY)
        link.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        link.bind((interface, ETH_P_ALL))
        link.setblocking(False)
        self._links[interface] = link
        self._opened(interface, link)

    def _link_filter(self, interface: str, group: str, action: int) -> None:
        try:
            if not has_ethernet_header(interface):
                return  # tun, WireGuard, GRE: no link-layer address filter to program
        except OSError:
            if action == PACKET_DROP_MEMBERSHIP:
                return  # the interface is gone, and its filter with it
            raise
        g = socket.inet_aton(group)
        mac = bytes([0x01, 0x00, 0x5E, g[1] & 0x7F, g[2], g[3]])  # RFC 1112 6.4
        mreq = struct.pack("iHH8s", socket.if_nametoindex(interface), PACKET_MR_MULTICAST, 6, mac)
        self._links[interface].setsockopt(SOL_PACKET, action, mreq)

    def _schedule_change(self, interface: str, group: str, sends: list[Send]) -> None:
        """A state change for `group`: its reports replace any still pending for
        it (those, scheduled before this change, are skipped when they come due:
        filtering the heap here made joining thousands of groups quadratic)."""
        if sends:
            self._changed[(interface, group)] = self._order + 1
        self._schedule(sends)

    def _schedule(self, sends: list[Send]) -> None:
        now = time.monotonic()
        for send in sends:
            self._order += 1
            heapq.heappush(self._timers, (now + send.delay, self._order, send))

    def _superseded(self, order: int, send: Send) -> bool:
        """Whether a later change for its group replaced this report."""
        return send.group is not None and order < self._changed.get((send.interface, send.group), 0)

    def pending(self) -> list[Send]:
        """The reports still to go, soonest first."""
        return [send for _, order, send in sorted(self._timers) if not self._superseded(order, send)]

    def _send_due(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, order, send = heapq.heappop(self._timers)
            if self._superseded(order, send):
                continue
            sock = self._igmp.get(send.interface)
            if sock is not None:
                try:
                    sock.sendto(send.payload, (send.destination, 0))
                except OSError:
                    pass  # interface down: the next query or join reports again

    def _receive(self, interface: str, sock: socket.socket) -> None:
        try:
            packet = sock.recv(2048)
        except OSError:
            return
        ip = packet[14:]
        header = (ip[0] & 0x0F) * 4 if ip else 0
        query = parse_query(ip[header:])
        if query is not None:
            with self._lock:
                self._schedule(self.state.on_query(interface, query, time.monotonic()))


class MembershipService(_MembershipSockets):
    """Membership on a thread of its own, for callers without an event loop
    (the in-process Engine behind `mcr relay` and notebooks)."""

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcr-igmp", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        super().close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._send_due(time.monotonic())
                sockets = dict(self._links)
                wait = min(0.2, max(0.0, self._timers[0][0] - time.monotonic())) if self._timers else 0.2
            readable = select.select(list(sockets.values()), [], [], wait)[0] if sockets else time.sleep(wait)
            for interface, sock in sockets.items():
                if readable and sock in readable:
                    self._receive(interface, sock)


class AsyncMembershipService(_MembershipSockets):
    """Membership on the caller's asyncio loop (the daemon's one loop): a
    reader per query socket, one timer for the next report due."""

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.faults = 0  # errors in a reader or the timer: logged, counted, survived

    def _opened(self, interface: str, link: socket.socket) -> None:
        self._loop.add_reader(link.fileno(), self._guarded, self._receive, interface, link)

    def _guarded(self, callback, *args) -> None:
        try:
            callback(*args)
        except Exception:  # a loop callback must not die: the next query or timer runs as usual
            self.faults += 1
            log.exception("IGMP membership: %s failed", callback.__name__)

    def _closing(self, link: socket.socket) -> None:
        self._loop.remove_reader(link.fileno())

    def _schedule(self, sends: list[Send]) -> None:
        super()._schedule(sends)
        if self._timer is not None:
            self._timer.cancel()
        # The loop's clock is time.monotonic(), the timers' too.
        self._timer = self._loop.call_at(self._timers[0][0], self._guarded, self._fire) if self._timers else None

    def _fire(self) -> None:
        with self._lock:
            try:
                self._send_due(time.monotonic())
            finally:  # the timer is armed again whatever happened to this send
                self._schedule([])

    def close(self) -> None:
        super().close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class InputHolds:
    """What a rule's input needs besides its packet socket, taken and given
    back per rule: membership of its group (multicast input) or a claim on
    its port (unicast input, see sockets.PortClaims). Shared by the
    in-process Engine and the supervisor, each with its membership service."""

    def __init__(self, membership: _MembershipSockets) -> None:
        self.membership = membership
        self.claims = PortClaims()

    def take(self, rule, source: str | None, group: str | None = None) -> None:
        """For `rule`'s packets from `source` (None: any source) to `group`
        (default: the rule's own; one group of a range rule's)."""
        if rule.is_unicast_input:
            self.claims.claim(rule.group, rule.port)
        else:
            self.membership.join(rule.input_interface, group or rule.group, source)

    def give_back(self, rule, source: str | None, group: str | None = None) -> None:
        if rule.is_unicast_input:
            self.claims.release(rule.group, rule.port)
        else:
            self.membership.leave(rule.input_interface, group or rule.group, source)

    def close(self) -> None:
        self.membership.close()
        self.claims.close()
