"""The supervisor's MSDP side: the speaker configured, fed with this
router's own sources (the PIM RP's registered and directly connected
ones), and what it learns handed to PIM: with receivers on the shared
tree, the RP joins toward each source another domain announced, and the
data an SA carries goes down that shared tree until native data flows.

A part of Supervisor (a mixin, for a file per concern), on its loop.
"""

from __future__ import annotations

import logging
import socket
import struct
import time

from ..protocols.msdp_service import MsdpService
from ..protocols.pim_rpf import REGISTER_VIF

log = logging.getLogger("mcr.msdp")


class MsdpRouting:
    """MSDP for the Supervisor."""

    def _start_msdp(self) -> None:
        self.msdp = MsdpService(self.events.publish, self._msdp_sa, self._msdp_changed, self._msdp_rpf_neighbor)
        self._sa_data_socket: socket.socket | None = None  # opened when an SA first carries data
        self.sa_data_forwarded = 0
        self.sa_data_errors = 0

    def sync_msdp(self) -> None:
        self.msdp.configure(self.config.msdp)

    def _msdp_rpf_neighbor(self, address: str) -> str | None:
        """Peer-RPF's question (RFC 3618 10.1.3): the next hop toward `address`
        (the address itself when it is directly connected)."""
        way = self._rpf.rpf(address)
        if way is None or way.interface == REGISTER_VIF:
            return None
        return way.neighbor or address

    def _msdp_changed(self) -> None:
        """The SA cache's (S,G)s changed: `mcr mroute` shows them; PIM is told per SA (`_msdp_sa`)."""

    def _msdp_local_sources(self) -> None:
        """Tell the speaker which sources are ours to advertise (called with the PIM notification poll)."""
        router = self.pim.router if self.pim else None
        if self.msdp.speaker is not None:
            self.msdp.set_local_sources(router.local_sources(time.monotonic()) if router else set())

    def _msdp_sa(self, now: float, source: str, group: str, rp: str, data: bytes) -> None:
        """An SA entry was accepted: PIM joins toward the source if the shared tree has receivers."""
        router = self.pim.router if self.pim else None
        if router is None:
            return
        router.source_active(now, source, group)
        self.pim._arm()
        if data and not router.tree.spt_bit(source, group):
            self._forward_sa_data(router.shared_tree_outputs(group) - {REGISTER_VIF}, data)

    def _forward_sa_data(self, interfaces: frozenset[str], packet: bytes) -> None:
        """An SA's encapsulated packet down the shared tree (RFC 3618 section 8),
        its TTL less one as a router forwards it. Rare and small: a raw socket
        (IP_HDRINCL: sent as is, the kernel fills in the header checksum) in
        the supervisor, not the data plane."""
        if len(packet) < 20 or packet[8] <= 1:
            return
        forwarded = packet[:8] + bytes([packet[8] - 1]) + packet[9:]  # the kernel redoes the header checksum
        destination = socket.inet_ntoa(packet[16:20])
        try:
            if self._sa_data_socket is None:
                self._sa_data_socket = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                self._sa_data_socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        except OSError as error:
            self.sa_data_errors += 1
            log.warning("MSDP: cannot open the socket for data in SAs: %s", error)
            return
        for name in sorted(interfaces):
            try:
                index = socket.if_nametoindex(name)
                self._sa_data_socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                                struct.pack("4s4si", b"", b"", index))
                self._sa_data_socket.sendto(forwarded, (destination, 0))
                self.sa_data_forwarded += 1
            except OSError as error:
                self.sa_data_errors += 1
                log.debug("MSDP: data in an SA out of %s: %s", name, error)

    def _close_msdp(self) -> None:
        self.msdp.close()
        if self._sa_data_socket is not None:
            self._sa_data_socket.close()

