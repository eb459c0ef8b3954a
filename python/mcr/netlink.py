"""The daemon's view of the network: links and IPv4 addresses of one netns.

`NetworkMonitor` keeps an interface table (index -> `Interface`) in step
with the kernel and reports each change as a `Change`, so the data plane
can follow interfaces that appear late, go down and up, are deleted and
re-created, renamed or re-addressed.

It runs on the caller's asyncio loop through pyroute2's `AsyncIPRoute`
and starts no thread (pyroute2 0.9.7 reads its netlink socket with an
asyncio datagram transport). The socket is opened here, inside the
namespace (`mcr.netns.in_netns` around `socket()`), and handed to pyroute2
as `fileno=`: pyroute2's own `netns=` argument forks a child process to do
the same and blocks the loop while it waits for it.

pyroute2 calls used:

- `AsyncIPRoute(fileno=..., rcvbuf=...)`, then `await ipr.bind(groups=...)`
  to join the link and IPv4 address multicast groups (the events socket)
  or none (the queries socket);
- `events.get()`, an async generator of the messages of the next datagram
  the kernel broadcast;
- `await queries.link("dump")` and `await queries.addr("dump",
  family=AF_INET)`, each an async generator of messages, and
  `await queries.route("get", dst=...)`, a list of them.

Requests go on their own socket: pyroute2 files replies by sequence
number, and a broadcast carries the sequence number of whoever caused it,
so on a subscribed socket one could land in a dump. There a lookup also
never waits behind the event stream, nor is lost when it overflows.

Subscribing comes before dumping, so an event that races the dump is not
lost: it is queued and replayed on top of the dump. Every message states
where things are now (a whole link, one address added or gone), so the
replay converges on the kernel's table; an object that came and went
during the dump may show up briefly as added, then removed.

Overflow: when the kernel drops messages for lack of receive buffer,
recvmsg() fails with ENOBUFS. pyroute2 turns that into a queued netlink
error that `events.get()` raises as `OSError(errno.ENOBUFS)`; from then on it
refuses to send requests on that socket, and its documentation says to
open a new one. So the monitor closes it, subscribes on a new socket,
dumps again, and reports the difference between the old and the new table
as one batch. `overflows` counts these.

IPv4 routes come on a socket of their own (`route_changes()`), opened
on first use: a busy routing table must not overflow the links' socket and
force re-dumps of the links for nothing. The monitor keeps no route table;
`route_to()` asks the kernel when asked (an RPF lookup), and a route change
tells its reader to ask again. Routes of the local table (one per address)
are left out: addresses have their own events.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields, replace

from pyroute2 import AsyncIPRoute, NetlinkError
from pyroute2.arp import ARPHRD_ETHER
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_LINK
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_SECONDARY
from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOWER_UP, IFF_UP

from .netns import in_netns

log = logging.getLogger(__name__)

GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR
# What the kernel answers a route lookup with when there is no usable
# route: none at all, or an unreachable, prohibit or blackhole route.
NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EINVAL}
RT_TABLE_LOCAL = 255
RTM_F_FIB_MATCH = 0x2000  # route get: answer with the matching table entry, not a cloned path
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 5: "multicast", 6: "blackhole", 7: "unreachable",
               8: "prohibit"}


@dataclass(frozen=True)
class RouteChange:
    """An IPv4 route came ("added") or went ("removed"); "resync" means the
    socket overflowed, so any route may have changed."""

    kind: str
    destination: str | None = None  # "a.b.c.d/len"; "0.0.0.0/0" for a default route
    table: int | None = None
    type: str | None = None  # unicast, blackhole, unreachable, ...
    oif: int | None = None
    gateway: str | None = None


@dataclass(frozen=True)
class UnicastRoute:
    """What `route_to` found: where packets to an address go."""

    ifindex: int
    gateway: str | None  # None: the address is on a connected subnet
    metric: int  # the route's priority (RTA_PRIORITY); 0 when it has none
    protocol: int  # who installed it: 2 kernel, 3 boot, 4 static, 11 zebra (FRR), ...
    prefix_len: int  # of the matching entry


@dataclass(frozen=True)
class Interface:
    index: int
    name: str
    up: bool  # administratively up (IFF_UP)
    carrier: bool  # IFF_LOWER_UP
    mtu: int
    mac: str  # "aa:bb:..", "" when the link has none (tun)
    ethernet: bool  # ARPHRD_ETHER
    addresses: tuple[str, ...]  # IPv4 "a.b.c.d/len", kernel order


FIELDS = frozenset(f.name for f in fields(Interface))


@dataclass(frozen=True)
class Change:
    """One interface before and after a batch of netlink messages.

    `what` names the fields that differ; for "added" and "removed" it
    holds every field, so `"addresses" in change.what` covers all kinds.
    """

    kind: str  # "added" | "removed" | "changed"
    before: Interface | None
    after: Interface | None
    what: frozenset[str]

    @property
    def index(self) -> int:
        interface = self.after or self.before
        assert interface is not None
        return interface.index


def compare(before: Interface | None, after: Interface | None) -> Change | None:
    """The change from `before` to `after` (None: absent), or None if equal."""
    if before == after:
        return None
    if before is None:
        return Change("added", None, after, FIELDS)
    if after is None:
        return Change("removed", before, None, FIELDS)
    what = frozenset(name for name in FIELDS if getattr(before, name) != getattr(after, name))
    return Change("changed", before, after, what)


@dataclass(frozen=True)
class _Address:
    cidr: str
    scope: int
    secondary: bool


def _address(msg) -> _Address:
    # IFA_LOCAL is our end; on point-to-point links IFA_ADDRESS is the peer.
    local = msg.get("local") or msg.get("address")
    return _Address(f"{local}/{msg['prefixlen']}", msg["scope"], bool(msg["flags"] & IFA_F_SECONDARY))


def _insert(addresses: list[_Address], new: _Address) -> None:
    """Put `new` where the kernel does (net/ipv4/devinet.c, __inet_insert_ifa).

    A secondary goes last; a primary goes right after the last primary
    whose scope is the same or narrower, else first.
    """
    position = len(addresses)
    if not new.secondary:
        position = 0
        for i, old in enumerate(addresses):
            if not old.secondary and new.scope <= old.scope:
                position = i + 1
    addresses.insert(position, new)


def _interface(msg, addresses: tuple[str, ...]) -> Interface:
    flags = msg["flags"]
    return Interface(
        index=msg["index"],
        name=msg.get("ifname"),
        up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_LOWER_UP),
        mtu=msg.get("mtu"),
        mac=msg.get("address") or "",
        ethernet=msg["ifi_type"] == ARPHRD_ETHER,
        addresses=addresses,
    )


class NetworkMonitor:
    """Follows links and IPv4 addresses of one network namespace.

    `netns` is a name under /run/netns (as `ip netns` makes), or None for
    the namespace of the calling thread. One task iterates `changes()`,
    which keeps the table that `interfaces()` and `by_name()` read.
    `rcvbuf` is the events socket's SO_RCVBUF (the kernel caps it at
    net.core.rmem_max).
    """

    def __init__(self, netns: str | None = None, *, rcvbuf: int = 1 << 20) -> None:
        self.netns = netns
        self.rcvbuf = rcvbuf
        self.overflows = 0  # times the socket overflowed and was re-dumped
        self._events: AsyncIPRoute | None = None
        self._queries: AsyncIPRoute | None = None
        self._table: dict[int, Interface] = {}
        self._addresses: dict[int, list[_Address]] = {}
        self._routes: AsyncIPRoute | None = None
        self.route_overflows = 0

    async def start(self) -> None:
        """Subscribe, then dump links and addresses into the table."""
        self._queries = await self._open(groups=0)
        await self._load()

    def interfaces(self) -> dict[int, Interface]:
        """A copy of the table, by ifindex."""
        return dict(self._table)

    def by_name(self, name: str) -> Interface | None:
        return next((i for i in self._table.values() if i.name == name), None)

    def primary_address(self, name: str) -> str | None:
        """The IPv4 address an interface sends from (its first), None if it has none or does not exist."""
        iface = self.by_name(name)
        return iface.addresses[0].split("/")[0] if iface is not None and iface.addresses else None

    async def changes(self) -> AsyncIterator[list[Change]]:
        """Batches of changes, one per netlink datagram or re-dump.

        The table already holds a batch's result when it is yielded. Ends
        when the monitor is closed.
        """
        while self._events is not None:
            events = self._events
            try:
                messages = [msg async for msg in events.get()]
            except (OSError, NetlinkError) as exc:
                if self._events is not events:
                    return
                if not (isinstance(exc, OSError) and exc.errno == errno.ENOBUFS):
                    raise
                batch = await self._resync()
            else:
                if self._events is not events:
                    return
                batch = self._apply(messages)
            if batch:
                yield batch

    async def route_changes(self) -> AsyncIterator[list[RouteChange]]:
        """Batches of IPv4 route changes, one per netlink datagram (an
        overflow yields [RouteChange("resync")]). Ends when the monitor is closed."""
        self._routes = await self._open(RTMGRP_IPV4_ROUTE, self.rcvbuf)
        while (routes := self._routes) is not None:
            try:
                messages = [msg async for msg in routes.get()]
            except OSError as exc:
                if self._routes is not routes:
                    return  # closed meanwhile
                if exc.errno != errno.ENOBUFS:
                    raise
                self.route_overflows += 1
                log.warning("netlink route socket overflowed (ENOBUFS); routes may have changed")
                routes.close()  # pyroute2 takes no more requests on it: a new one
                self._routes = await self._open(RTMGRP_IPV4_ROUTE, self.rcvbuf)
                yield [RouteChange("resync")]
                continue
            if self._routes is not routes:
                return
            batch = [c for msg in messages if (c := _route_change(msg)) is not None]
            if batch:
                yield batch

    async def route_to(self, address: str) -> UnicastRoute | None:
        """The kernel's route to `address`: output ifindex, gateway (None on
        a connected route), and the matching table entry's metric and
        protocol, for PIM's RPF checks and Assert metrics.

        None when the kernel has no usable route (none, or an unreachable,
        prohibit or blackhole one).
        """
        if self._queries is None:
            raise RuntimeError("NetworkMonitor is not started")
        dst = str(ipaddress.IPv4Address(address))
        try:
            # The path the kernel would take (one of a multipath route's)...
            path = await self._queries.route("get", dst=dst)
            # ...and the table entry it came from: only this carries the metric and protocol.
            entry = await self._queries.route("get", dst=dst, flags=RTM_F_FIB_MATCH)
        except NetlinkError as exc:
            if exc.code in NO_ROUTE:
                return None
            raise
        chosen = next((r for r in path if r.get("oif")), None)
        if chosen is None:
            return None
        matched = entry[0] if entry else chosen
        return UnicastRoute(chosen.get("oif"), chosen.get("gateway"), matched.get("priority") or 0,
                            matched["proto"], matched["dst_len"])

    def close(self) -> None:
        """Close both sockets. Idempotent.

        A `changes()` waiting for events ends. pyroute2 does not wake a
        request in flight on a closed socket, so a task inside `route_to()`
        or a re-dump must be cancelled by its owner.
        """
        for ipr in (self._events, self._queries, self._routes):
            if ipr is not None:
                ipr.close()
        self._events = self._queries = self._routes = None

    # -- the table -------------------------------------------------------

    async def _open(self, groups: int, rcvbuf: int = 1 << 20) -> AsyncIPRoute:
        """A netlink socket in our namespace, joined to `groups`."""
        with in_netns(self.netns):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
        ipr = AsyncIPRoute(fileno=sock.detach(), rcvbuf=rcvbuf)
        await ipr.bind(groups=groups)
        return ipr

    async def _load(self) -> None:
        """Subscribe a new socket, then replace the table with a dump."""
        queries = self._queries
        assert queries is not None
        events = await self._open(GROUPS, self.rcvbuf)
        if self._queries is None:  # closed meanwhile: stay closed
            events.close()
            return
        self._events = events
        table: dict[int, Interface] = {}
        addresses: dict[int, list[_Address]] = {}
        async for msg in await queries.link("dump"):
            if msg["family"] == socket.AF_UNSPEC:
                table[msg["index"]] = _interface(msg, ())
                addresses[msg["index"]] = []
        # The dump lists each interface's addresses in the kernel's order.
        async for msg in await queries.addr("dump", family=socket.AF_INET):
            if msg["index"] in addresses:
                addresses[msg["index"]].append(_address(msg))
        self._table, self._addresses = table, addresses
        for index in table:
            self._sync_addresses(index)

    async def _resync(self) -> list[Change]:
        self.overflows += 1
        log.warning("netlink socket overflowed (ENOBUFS) in netns %s; re-dumping",
                    self.netns or "(current)")
        assert self._events is not None
        self._events.close()
        before = self._table
        await self._load()
        indexes = sorted(before.keys() | self._table.keys())
        return [c for i in indexes if (c := compare(before.get(i), self._table.get(i)))]

    def _apply(self, messages: list) -> list[Change]:
        relevant = [m for m in messages if m.get("event") in _HANDLERS]
        before = {m["index"]: self._table.get(m["index"]) for m in relevant}
        for msg in relevant:
            _HANDLERS[msg["event"]](self, msg)
        return [c for i, old in before.items() if (c := compare(old, self._table.get(i)))]

    def _new_link(self, msg) -> None:
        # A bridge also reports its ports with family AF_BRIDGE, even a
        # DELLINK when a port leaves it: those are not about the link itself.
        if msg["family"] != socket.AF_UNSPEC:
            return
        index = msg["index"]
        self._addresses.setdefault(index, [])
        self._table[index] = _interface(msg, ())
        self._sync_addresses(index)

    def _del_link(self, msg) -> None:
        if msg["family"] == socket.AF_UNSPEC:
            self._table.pop(msg["index"], None)
            self._addresses.pop(msg["index"], None)

    def _new_address(self, msg) -> None:
        addresses = self._addresses.get(msg["index"])
        if msg["family"] != socket.AF_INET or addresses is None:
            return
        new = _address(msg)
        old = next((a for a in addresses if a.cidr == new.cidr), None)
        if old == new:
            return  # refreshed in place (lifetimes, `ip addr replace`)
        if old is not None:
            addresses.remove(old)  # promoted to primary: it moves
        _insert(addresses, new)
        self._sync_addresses(msg["index"])

    def _del_address(self, msg) -> None:
        addresses = self._addresses.get(msg["index"])
        if msg["family"] != socket.AF_INET or addresses is None:
            return
        cidr = _address(msg).cidr
        addresses[:] = [a for a in addresses if a.cidr != cidr]
        self._sync_addresses(msg["index"])

    def _sync_addresses(self, index: int) -> None:
        cidrs = tuple(a.cidr for a in self._addresses[index])
        self._table[index] = replace(self._table[index], addresses=cidrs)


def _route_change(msg) -> RouteChange | None:
    if msg.get("event") not in ("RTM_NEWROUTE", "RTM_DELROUTE") or msg["family"] != socket.AF_INET:
        return None
    table = msg.get("table") or msg["table"]  # RTA_TABLE, else the header's 8-bit table
    if table == RT_TABLE_LOCAL:
        return None
    return RouteChange("added" if msg["event"] == "RTM_NEWROUTE" else "removed",
                       f"{msg.get('dst') or '0.0.0.0'}/{msg['dst_len']}", table,
                       ROUTE_TYPES.get(msg["type"], str(msg["type"])), msg.get("oif"), msg.get("gateway"))


_HANDLERS = {
    "RTM_NEWLINK": NetworkMonitor._new_link,
    "RTM_DELLINK": NetworkMonitor._del_link,
    "RTM_NEWADDR": NetworkMonitor._new_address,
    "RTM_DELADDR": NetworkMonitor._del_address,
}
