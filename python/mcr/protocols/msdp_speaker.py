"""The MSDP speaker (RFC 3618), router-wide and sans-IO: what this RP
announces, what it accepts from its peers, and what it passes on.

- Origination (section 5): this router's own sources (`set_local_sources`,
  from PIM: registered here or directly connected) go to every established
  peer at once when new, and all of them again every advertisement period,
  with the configured originator as the SA's RP address.
- Acceptance: an SA whose RP is our own originator is dropped (our own,
  come back); otherwise the peer-RPF check of section 10.1.3, without BGP,
  first rule that holds: the peer is the originating RP; the peer is in a
  mesh group of ours; it is our only peer; it is the unicast next hop toward
  the originating RP (`rpf_neighbor`). Then per entry: a multicast group
  and a unicast source, the peer's inbound filter, and room in the cache.
- Forwarding (section 10.2): accepted entries go at once to every other
  established peer (never back to the sender, not to members of the mesh
  group it came from), through each peer's outbound filter, with the data
  the SA carried if its (S,G) is among them.
- A new peer gets our own sources at once and the cached ones it would
  have been forwarded (as FRR sends its cache), so it need not wait a period.
- Entries learned from a peer that went down stay until they time out
  (the RFC does not withdraw them).

Counters (`counters`): sa_own, sa_rpf_failed, sa_bad_entry, sa_filtered_in,
sa_filtered_out, sa_cache_full, sa_from_unknown_peer, no_originator.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from collections.abc import Iterable
from typing import Callable

from .msdp_config import MsdpConfig
from .msdp_sa import SaCache, SaEntry
from .msdp_wire import SourceActive, encode_source_actives

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _valid_entry(source: str, group: str) -> bool:
    s, g = ipaddress.IPv4Address(source), ipaddress.IPv4Address(group)
    return g.is_multicast and not (s.is_multicast or s.is_unspecified or s in LOOPBACK or s == BROADCAST)


def _data_key(data: bytes) -> tuple[str, str] | None:
    """The (source, destination) of the IPv4 packet an SA carries."""
    return (socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])) if len(data) >= 20 else None


class MsdpSpeaker:
    def __init__(self, config: MsdpConfig, rpf_neighbor: Callable[[str], str | None],
                 send: Callable[[str, bytes], None], on_sa: Callable[[float, str, str, str, bytes], None],
                 on_change: Callable[[], None], publish: Callable[..., None]) -> None:
        self.config = config
        self._rpf_neighbor = rpf_neighbor
        self._send = send
        self._on_sa = on_sa
        self._on_change = on_change
        self._publish = publish
        self._peers = {p.address: p for p in config.peers}
        self.cache = SaCache(config.max_sa)
        self._local: dict[tuple[str, str], SaEntry] = {}
        self._up: set[str] = set()
        self._advertise_at: float | None = None
        self.counters: Counter[str] = Counter()

    # --- peers ---------------------------------------------------------------

    def established(self) -> set[str]:
        return set(self._up)

    def peer_up(self, now: float, peer: str) -> None:
        if peer not in self._peers:
            return
        self._up.add(peer)
        self._originate(now, sorted(self._local), [peer])
        by_rp: dict[str, list[tuple[str, str]]] = {}
        for key, entry in sorted(self.cache.entries().items()):
            if self._forwards(entry.peer, peer):
                by_rp.setdefault(entry.rp, []).append(key)
        for rp, entries in by_rp.items():
            self._send_filtered(peer, rp, entries, b"")

    def peer_down(self, now: float, peer: str) -> None:
        self._up.discard(peer)

    def _forwards(self, sender: str | None, to: str) -> bool:
        """Whether an SA from `sender` (None: ours) goes on to peer `to` (section 10.2)."""
        if sender == to:
            return False
        mesh = self._peers[sender].mesh_group if sender in self._peers else None
        return mesh is None or self._peers[to].mesh_group != mesh

    # --- what arrives --------------------------------------------------------

    def sa_received(self, now: float, peer: str, message: SourceActive) -> None:
        if peer not in self._peers:
            self.counters["sa_from_unknown_peer"] += 1
            return
        if message.rp == self.config.originator:
            self.counters["sa_own"] += 1
            return
        if not self._peer_rpf(peer, message.rp):
            self.counters["sa_rpf_failed"] += 1
            return
        accepted, added = self._accept(now, peer, message)
        if accepted:
            data = message.data if _data_key(message.data) in accepted else b""
            for to in sorted(self._up):
                if self._forwards(peer, to):
                    self._send_filtered(to, message.rp, accepted, data)
        if added:
            self._on_change()

    def _peer_rpf(self, peer: str, rp: str) -> bool:
        """RFC 3618 10.1.3 without BGP: the first rule that holds accepts."""
        return (peer == rp or self._peers[peer].mesh_group is not None or len(self._peers) == 1
                or self._rpf_neighbor(rp) == peer)

    def _accept(self, now: float, peer: str, message: SourceActive) -> tuple[list[tuple[str, str]], bool]:
        """The entries taken into the cache (each told to `on_sa`), and whether one was new."""
        accepted, added = [], False
        inbound = self._peers[peer].sa_filter_in
        data_key = _data_key(message.data)
        for source, group in message.entries:
            if not _valid_entry(source, group):
                self.counters["sa_bad_entry"] += 1
            elif not inbound.permits(source, group):
                self.counters["sa_filtered_in"] += 1
            elif (source, group) in self._local:
                self.counters["sa_own_source"] += 1  # another RP announces what we do (anycast): ours stands
            else:
                change = self.cache.learn(now, source, group, message.rp, peer, self.config.sa_hold)
                if change is None:
                    self.counters["sa_cache_full"] += 1
                    continue
                if change == "added":
                    added = True
                    self._publish("msdp-sa", source=source, group=group, rp=message.rp, peer=peer, change="added")
                accepted.append((source, group))
                self._on_sa(now, source, group, message.rp, message.data if (source, group) == data_key else b"")
        return accepted, added

    # --- what we announce ----------------------------------------------------

    def set_local_sources(self, now: float, sources: Iterable[tuple[str, str]]) -> None:
        wanted = set(sources)
        if self.config.originator is None:
            if wanted:
                self.counters["no_originator"] += 1
            wanted = set()
        new, gone = sorted(wanted - set(self._local)), sorted(set(self._local) - wanted)
        for key in gone:
            del self._local[key]
            self._publish("msdp-sa", source=key[0], group=key[1], rp=self.config.originator, peer=None,
                          change="withdrawn")
        for source, group in new:
            self._local[(source, group)] = SaEntry(source, group, self.config.originator, None, now, None)
            self._publish("msdp-sa", source=source, group=group, rp=self.config.originator, peer=None,
                          change="added")
        if new:
            self._originate(now, new, sorted(self._up))
        if self._local and self._advertise_at is None:
            self._advertise_at = now + self.config.advertisement_period
        if new or gone:
            self._on_change()

    def _originate(self, now: float, entries: list[tuple[str, str]], peers: list[str]) -> None:
        if entries and self.config.originator is not None:
            for peer in peers:
                self._send_filtered(peer, self.config.originator, entries, b"")

    def _send_filtered(self, peer: str, rp: str, entries: list[tuple[str, str]], data: bytes) -> None:
        outbound = self._peers[peer].sa_filter_out
        allowed = [e for e in entries if outbound.permits(*e)]
        self.counters["sa_filtered_out"] += len(entries) - len(allowed)
        if allowed:
            for tlv in encode_source_actives(rp, allowed, data if _data_key(data) in allowed else b""):
                self._send(peer, tlv)

    # --- time ----------------------------------------------------------------

    def expire(self, now: float) -> None:
        gone = self.cache.expire(now)
        for entry in gone:
            self._publish("msdp-sa", source=entry.source, group=entry.group, rp=entry.rp, peer=entry.peer,
                          change="expired")
        if self._advertise_at is not None and now >= self._advertise_at:
            self._originate(now, sorted(self._local), sorted(self._up))
            self._advertise_at = now + self.config.advertisement_period if self._local else None
        if gone:
            self._on_change()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.cache.next_deadline(), self._advertise_at) if d is not None]
        return min(deadlines, default=None)

    # --- what the CLI shows --------------------------------------------------

    def learned(self) -> dict[tuple[str, str], SaEntry]:
        return self.cache.entries()

    def describe_sa(self, now: float) -> list[dict]:
        rows = [e.describe(now) for e in (*self._local.values(), *self.cache.entries().values())]
        return sorted(rows, key=lambda r: (r["group"], r["source"]))
