"""PIM-SM router-wide: the tree state (mcr.protocols.pim_tree) with what
it asks of the router around it (RP, RPF, interfaces), fed by the
adapter's sockets, IGMP's listeners and the data plane's notifications,
and turned into forwarding entries for the MRIB.

Sans-IO like the cores it joins: `PimService` hands in messages and the
time and carries out what comes back (`apply`); the supervisor hands in
listeners, arrivals and keepalives and reads `forwarding()` when told
(`on_change`).

The RP of a group comes from mcr.protocols.pim_rp (static ranges, longest
match; a BSR's RP-set, learned by mcr.protocols.pim_bootstraps).
Assert winners and losers come from mcr.protocols.pim_asserts; a change
there has the tree look again, like a routing change.
RPF answers come from mcr.protocols.pim_rpf's cache; when one comes in or
moves, `routing_changed` has the tree look again.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from ..mrib import Listening
from .pim import PimInterface
from .pim_asserts import Asserts
from .pim_bootstraps import Bootstraps
from .pim_config import PimConfig
from .pim_registers import Registers
from .pim_rp import RpMapping
from .pim_rpf import RpfTable
from .pim_tree import PimTree
from .pim_tree_types import Rpf, SendJoinPrune, TreeChanged
from .pim_wire import JoinPrune

log = logging.getLogger("mcr.pim")

LINK_LOCAL = ipaddress.IPv4Network("224.0.0.0/24")  # never routed (RFC 5771), never PIM state
ALL_GROUPS = "224.0.0.0/4"


@dataclass(frozen=True)
class Entry:
    """A forwarding entry for the MRIB (mcr.mrib.protocol_routes): the
    tree's, with a register output to `register_to` where this router
    registers the flow; or one that only notifies: a catch-all (`group` a
    range), or a flow's outgoing interface where it could assert."""

    interface: str
    source: str | None
    group: str
    outputs: frozenset[str]
    notify: bool = False
    register_to: str | None = None


class PimRouter:
    """One router's PIM tree over the interfaces `interfaces()` returns (name -> PimInterface)."""

    def __init__(self, config: PimConfig, rpf: RpfTable, interfaces: Callable[[], Mapping[str, PimInterface]],
                 send: Callable[[str, bytes], None], send_unicast: Callable[[str, bytes], None],
                 on_change: Callable[[], None], publish: Callable[..., None]) -> None:
        self.config = config
        self._rpf = rpf
        self._interfaces = interfaces
        self._send = send  # (interface, PIM bytes) to ALL-PIM-ROUTERS there
        self._on_change = on_change
        self._publish = publish
        self.rps = RpMapping()
        for static in config.rp:
            self.rps.set_static(static.groups, static.address)
        self._listening: dict[tuple[str, str], Listening] = {}
        self.tree = PimTree(self, config.tree)
        self.registers = Registers(self.tree, self.rp_of, send_unicast, self.apply, on_change)
        self.asserts = Asserts(self.tree, self.rp_of, self.rpf, interfaces, send, self.routing_changed)
        self.bootstraps = Bootstraps(self.rps, self.rpf, interfaces, send, send_unicast, self.routing_changed)

    # --- TreeView: what the tree asks -----------------------------------------

    def rp_of(self, group: str) -> str | None:
        return self.rps.rp_for(group)

    def rpf(self, address: str) -> Rpf | None:
        return self._rpf.rpf(address)  # the tree maps a gateway to its PIM neighbor (secondary addresses too)

    def interfaces(self) -> Mapping[str, PimInterface]:
        return self._interfaces()

    def lost_assert(self, source: str | None, group: str, interface: str) -> bool:
        return self.asserts.machines.lost_assert(source, group, interface)

    def assert_winner(self, source: str | None, group: str, interface: str) -> str | None:
        return self.asserts.machines.assert_winner(source, group, interface)

    def assert_sources(self, group: str) -> set[str]:
        return {s for s, g, _ in self.asserts.machines.keys() if g == group and s is not None}

    # --- what the adapter and the supervisor hand in --------------------------

    def apply(self, outputs: list) -> None:
        """Carry out the tree's outputs."""
        changed = False
        for output in outputs:
            if isinstance(output, SendJoinPrune):
                self._send(output.interface, output.payload)
            elif isinstance(output, TreeChanged):
                changed = True
                self._publish("pim-route", source=output.source, group=output.group)
        if changed:
            now = time.monotonic()
            self.registers.follow_tree(now)
            self.asserts.reevaluate(now)  # CouldAssert and AssertTrackingDesired follow the tree
            self._on_change()

    def set_listeners(self, now: float, listeners: Mapping[str, Mapping[str, Listening]]) -> None:
        """IGMP's listeners now (interface -> group -> Listening): the tree
        hears of each (interface, group) whose listening changed."""
        current = {(name, group): listening for name, groups in listeners.items() if name in self._interfaces()
                   for group, listening in groups.items() if ipaddress.IPv4Address(group) not in LINK_LOCAL}
        for key in sorted(set(current) | set(self._listening)):
            if current.get(key) != self._listening.get(key):
                self.apply(self.tree.set_membership(now, key[0], key[1], current.get(key)))
        self._listening = current

    def routing_changed(self, now: float) -> None:
        """Unicast routes (RPF answers), the RP set or an Assert changed: the tree looks again."""
        self.apply(self.tree.routing_changed(now))
        self.registers.follow_tree(now)  # RP(G) may have moved
        self._on_change()  # the watched interfaces follow assert state, with or without a tree change

    def receive_join_prune(self, now: float, interface: str, sender: str, message: JoinPrune) -> None:
        self.apply(self.tree.receive_join_prune(now, interface, sender, message))
        self.asserts.join_prune_received(now, interface, message)

    def neighbor_changed(self, now: float, interface: str, neighbor: str, change: str) -> None:
        """A PIM neighbor came up, went down or restarted (a new GenID)."""
        self.apply(self.tree.neighbor_changed(now, interface, neighbor, change))
        if change in ("down", "restarted"):
            self.asserts.neighbor_gone(now, interface, neighbor)  # 4.6.1: the winner's NLT or GenID
        if change in ("up", "restarted"):
            self.bootstraps.neighbor_up(now, interface, neighbor)

    def data_arrived(self, now: float, source: str, group: str, interface: str) -> None:
        """A packet of (S,G) arrived on `interface`: the tree's forwarding
        rules, and, on an outgoing interface, the Assert machines."""
        if ipaddress.IPv4Address(group) not in LINK_LOCAL:
            self.apply(self.tree.data_arrived(now, source, group, interface))
            self.asserts.data_arrived(now, source, group, interface)

    def keepalive(self, now: float, source: str, group: str) -> None:
        self.apply(self.tree.keepalive(now, source, group))

    def local_sources(self, now: float) -> set[tuple[str, str]]:
        """The sources of this router's own domain it is RP for, which MSDP
        advertises (RFC 3618 section 3): registered here, or directly connected."""
        return self.registers.registered(now) | self.tree.connected_rp_sources(now)

    def source_active(self, now: float, source: str, group: str) -> None:
        """MSDP learned (S,G) from another domain's RP."""
        self.apply(self.tree.source_active(now, source, group))

    def shared_tree_outputs(self, group: str) -> frozenset[str]:
        """The interfaces the (*,G) entry forwards to (none without one)."""
        return frozenset().union(*(f.outputs for f in self.tree.forwarding() if f.source is None and f.group == group))

    def describe_rps(self) -> list[dict]:
        """`mcr pim rp`: each group range's RP, where it came from and the way to it."""
        rows = self.rps.describe()
        for row in rows:
            way = self.rpf(row["rp"]) if "rp" in row else None
            row["rpf_interface"], row["rpf_neighbor"] = (way.interface, way.neighbor) if way else (None, None)
        return rows

    def expire(self, now: float) -> None:
        self.apply(self.tree.expire(now))
        self.registers.expire(now)
        self.registers.follow_tree(now)  # a KAT that ran out ends CouldRegister
        self.asserts.expire(now)
        self.bootstraps.expire(now)

    def next_deadline(self) -> float | None:
        parts = (self.tree, self.registers, self.asserts, self.bootstraps)
        return min((d for d in (part.next_deadline() for part in parts) if d is not None), default=None)

    def forwarding(self) -> list[Entry]:
        """The tree's entries, a register output on each flow this router
        registers (RFC 7761 4.4.1: at the DR, on the source's interface), and
        on each interface where we are DR a catch-all that tells us of
        traffic no entry has, so a directly connected source is noticed; on
        each outgoing interface where we could assert, an entry that only
        notifies, so the flow arriving there from another forwarder is
        noticed (RFC 7761 4.6.1)."""
        entries = {(f.interface, f.source, f.group): Entry(f.interface, f.source, f.group, f.outputs, f.notify)
                   for f in self.tree.forwarding()}
        for (source, group), rp in self.registers.encapsulating().items():
            way = self.rpf(source)
            if way is None:
                continue
            key = (way.interface, source, group)
            base = entries.get(key) or Entry(way.interface, source, group, frozenset())
            entries[key] = Entry(base.interface, source, group, base.outputs, base.notify, register_to=rp)
        for key in self.asserts.watched():
            entries.setdefault(key, Entry(*key, frozenset(), notify=True))
        for name, core in sorted(self._interfaces().items()):
            if core.dr() == core.address:
                entries[(name, None, ALL_GROUPS)] = Entry(name, None, ALL_GROUPS, frozenset(), notify=True)
        return [entries[k] for k in sorted(entries, key=lambda k: (k[2], k[1] or "", k[0]))]
