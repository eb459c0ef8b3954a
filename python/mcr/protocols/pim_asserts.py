"""Assert in the router (RFC 7761 4.6): the (S,G,I) and (*,G,I) machines
(mcr.protocols.pim_assert.AssertMachines) over the tree's macros and the
unicast routes, their Asserts sent on the interface, and their verdicts
handed back to the tree, which reads them through lost_assert and
assert_winner when it computes olists and RPF'.

What it decides for the data plane is `watched()`: the interfaces, per
(S,G) and (*,G), where we could assert, so a packet of the flow arriving
there (another forwarder on the LAN, 4.6.1) is reported to us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from .pim import PimInterface
from .pim_assert import AssertChanged, AssertMachines, AssertState, SendAssert
from .pim_rpf import Rpf
from .pim_tree import PimTree
from .pim_wire import JoinPrune
from .pim_wire_more import Assert


class Asserts:
    """Every Assert machine of one router, and what carries out their outputs."""

    def __init__(self, tree: PimTree, rp_of: Callable[[str], str | None], rpf: Callable[[str], Rpf | None],
                 interfaces: Callable[[], Mapping[str, PimInterface]], send: Callable[[str, bytes], None],
                 changed: Callable[[float], None]) -> None:
        self._tree = tree
        self._rp_of = rp_of
        self._rpf = rpf
        self._interfaces = interfaces
        self._send = send  # (interface, PIM bytes) to ALL-PIM-ROUTERS there
        self._changed = changed  # an assert state changed: the tree looks again
        self.machines = AssertMachines(self)

    # --- AssertView (what the machines read) ---

    def could_assert(self, source: str | None, group: str, interface: str) -> bool:
        return self._tree.could_assert(source, group, interface)

    def assert_tracking_desired(self, source: str | None, group: str, interface: str) -> bool:
        return self._tree.assert_tracking_desired(source, group, interface)

    def rp(self, group: str) -> str | None:
        return self._rp_of(group)

    def rpf(self, address: str) -> Rpf | None:
        return self._rpf(address)

    def interface_address(self, interface: str) -> str:
        pim = self._interfaces().get(interface)
        return "0.0.0.0" if pim is None else pim.address  # a gone interface: never the winner

    # --- inputs ---

    def receive(self, now: float, interface: str, sender: str, message: Assert) -> None:
        pim = self._interfaces().get(interface)
        if pim is None or sender not in pim.neighbors():
            self.machines.counters["assert_not_from_neighbor"] += 1  # as for Join/Prune: Hello first
            return
        self._apply(now, self.machines.receive(now, interface, sender, message))

    def data_arrived(self, now: float, source: str, group: str, interface: str) -> None:
        self._apply(now, self.machines.data_arrived(now, source, group, interface))

    def join_prune_received(self, now: float, interface: str, message: JoinPrune) -> None:
        """4.6.1/4.6.2: a Join for us on I sends a loser there back to NoInfo."""
        pim = self._interfaces().get(interface)
        if pim is None or message.upstream != pim.address:
            return
        for group_set in message.groups:
            for source in group_set.joins:
                if source.rpt and not source.wildcard:
                    continue  # a Join(S,G,rpt) is neither (4.6.1 names Join(S,G), 4.6.2 Join(*,G))
                key = None if source.wildcard else source.address
                self._apply(now, self.machines.join_received(key, group_set.group, interface))

    def neighbor_gone(self, now: float, interface: str, neighbor: str) -> None:
        self._apply(now, self.machines.neighbor_gone(interface, neighbor))

    def reevaluate(self, now: float) -> None:
        """The tree's state moved: each machine checks CouldAssert,
        AssertTrackingDesired, its RPF interface and its metric again."""
        for key in self.machines.keys():
            if self.machines.state(*key) is not AssertState.NO_INFO:  # an earlier one's outputs may have ended it
                self._apply(now, self.machines.reevaluate(now, *key))

    def expire(self, now: float) -> None:
        self._apply(now, self.machines.expire(now))

    def next_deadline(self) -> float | None:
        return self.machines.next_deadline()

    # --- what the router reads ---

    def watched(self) -> set[tuple[str, str | None, str]]:
        """(interface, source or None, group) of every olist interface where
        CouldAssert holds: data arriving there comes from another forwarder."""
        watched = set()
        for f in self._tree.forwarding():
            for interface in f.outputs:
                if interface in self._interfaces() and self._tree.could_assert(f.source, f.group, interface):
                    watched.add((interface, f.source, f.group))
        return watched

    def describe(self, now: float) -> list[dict]:
        """`mcr pim assert`: each machine not in NoInfo, with our own metric beside the winner's."""
        rows = self.machines.describe(now)
        for row in rows:
            mine = self.machines.my_assert_metric(row["source"], row["group"], row["interface"])
            row["my_metric"] = {"rpt": mine.rpt, "preference": mine.preference, "metric": mine.metric}
        return rows

    def _apply(self, now: float, outputs: list) -> None:
        changed = False
        for output in outputs:
            if isinstance(output, SendAssert):
                self._send(output.interface, output.payload)
            elif isinstance(output, AssertChanged):
                changed = True
        if changed:
            self._changed(now)
