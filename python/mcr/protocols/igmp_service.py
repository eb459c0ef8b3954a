"""The IGMP router side on the supervisor's asyncio loop: one `Querier`
(mcr.protocols.igmp, sans-IO) per enabled interface, and the sockets.

Per interface:
- a packet socket that reads every IGMP message on the link (a kernel
  filter keeps everything else out) in all-multicast mode, since reports go
  to the groups they report and a NIC would otherwise drop them; our own
  transmissions are not read back;
- a raw IGMP socket that sends queries with the kernel-built IP header:
  TTL 1, TOS 0xC0 (internetwork control) and Router Alert (RFC 3376 4),
  from the interface's primary address, which is also the querier's.

One timer for the earliest querier deadline. What a querier learns reaches
the supervisor as `on_change(interface, group)`; the MRIB then asks
`listeners()`. An interface without an IPv4 address has no querier (it
could not take part in the election); it gets one when it has an address.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from typing import Callable

from .. import mrib
from ..membership import ROUTER_ALERT
from ..sockets import ETH_P_ALL, PACKET_IGNORE_OUTGOING, SOL_PACKET, attach_filter, bpf
from .igmp import FilterMode, MembershipChanged, Querier, SendQuery, Settings
from .links import Link, LinkService

PACKET_ADD_MEMBERSHIP, PACKET_MR_ALLMULTI = 1, 2
ETH_P_IP = 0x0800
TOS_INTERNETWORK_CONTROL = 0xC0
# IPv4 (ethertype at 12) carrying IGMP (protocol at 23), else nothing.
_IGMP_ONLY = [bpf(0x28, 0, 0, 12), bpf(0x15, 0, 3, ETH_P_IP), bpf(0x30, 0, 0, 23),
              bpf(0x15, 0, 1, socket.IPPROTO_IGMP), bpf(0x06, 0, 0, 0xFFFF), bpf(0x06, 0, 0, 0)]
_NOTHING = [bpf(0x06, 0, 0, 0)]

log = logging.getLogger("mcr.igmp")


class _Link(Link):
    """One interface's querier and sockets."""

    def __init__(self, name: str, settings: Settings, address: str) -> None:
        self.name = name
        self.core = Querier(settings, address)
        ifindex = socket.if_nametoindex(name)
        self.send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
        self.read = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.send.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode())
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", b"", b"", ifindex))
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_INTERNETWORK_CONTROL)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, ROUTER_ALERT)
            attach_filter(self.send, _NOTHING)  # it only sends: messages are read on the packet socket
            attach_filter(self.read, _IGMP_ONLY)
            self.read.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            self.read.bind((name, ETH_P_ALL))  # protocol 0 until here: no other interface's frames
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_ALLMULTI, 0, b"")
            self.read.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            self.read.setblocking(False)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        self.send.close()
        self.read.close()


class IgmpService(LinkService):
    """Queriers on the interfaces asked for, on the running loop."""

    log = log

    def __init__(self, on_change: Callable[[str, str], None], publish: Callable[..., None]) -> None:
        super().__init__()
        self._on_change = on_change
        self._publish = publish

    def _new_link(self, name: str, settings: Settings, address: str) -> _Link:
        return _Link(name, settings, address)

    # What the MRIB and the CLI read -----------------------------------------------

    def listeners(self) -> mrib.Listeners:
        """Per interface and group: INCLUDE or EXCLUDE, with the sources (RFC 3376 6.3)."""
        out: dict[str, dict[str, mrib.Listening]] = {}
        for name, link in self._links.items():
            for group, state in link.core.groups().items():
                mode, sources = state.forwarding()
                out.setdefault(name, {})[group] = mrib.Listening(
                    mrib.INCLUDE if mode is FilterMode.INCLUDE else mrib.EXCLUDE, sources)
        return out

    # The loop's side ----------------------------------------------------------------

    def _read(self, link: _Link) -> None:
        for _ in range(64):  # a burst of reports, boundedly per wakeup
            try:
                frame = link.read.recv(2048)
            except BlockingIOError:
                break
            except OSError as error:
                log.warning("reading IGMP on %s: %s", link.name, error)
                break
            ip = frame[14:]
            if len(ip) < 20:
                continue
            header = (ip[0] & 0x0F) * 4
            total = min(struct.unpack("!H", ip[2:4])[0], len(ip))
            source, destination = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            self._apply(link, link.core.receive(time.monotonic(), source, destination, ip[header:total]))

    def _act(self, link: _Link, outputs: list, sending: bool) -> None:
        for output in outputs:
            if isinstance(output, SendQuery):
                if sending:
                    self._send(link, output)
            elif isinstance(output, MembershipChanged):
                state = link.core.groups().get(output.group)
                self._publish("membership", interface=link.name, group=output.group,
                              mode=state.mode.value.lower() if state else None,
                              sources=sorted(state.sources) if state else [])
                self._on_change(link.name, output.group)

    def _send(self, link: _Link, query: SendQuery) -> None:
        self._sendto(link, link.send, query.payload, query.destination, "query")
