"""Shared helpers for the PIM-SM tree tests: a fake TreeView over real
PimInterface objects (neighbors learned from real Hellos), and readers for
the messages the tree emits."""

from __future__ import annotations

import random

from mcr.protocols.pim import PimInterface, Settings
from mcr.protocols.pim_tree import PimTree
from mcr.protocols.pim_rpf import REGISTER_VIF, Rpf
from mcr.protocols.pim_tree_types import SendJoinPrune, TreeChanged, TreeSettings
from mcr.protocols.pim_wire import Hello, JoinPrune, LanPruneDelay, parse_message

G = "239.1.1.1"
S = "192.0.2.10"
RP = "10.255.0.1"
# a router with an RP side (up0), a source side (up1) and two downstream LANs
UP0, UP0_NBR = "10.0.1.1", "10.0.1.2"
UP1, UP1_NBR = "10.0.2.1", "10.0.2.2"
DOWN, DOWN_NBR, DOWN_NBR2 = "10.0.3.1", "10.0.3.2", "10.0.3.3"
LAN = "10.0.9.1"


class FakeView:
    """What the tree asks of the router: RPs, routes and interfaces set by the test."""

    def __init__(self) -> None:
        self.rps: dict[str, str] = {G: RP}
        self.routes: dict[str, Rpf] = {RP: Rpf("up0", UP0_NBR), S: Rpf("up1", UP1_NBR)}
        self.pims: dict[str, PimInterface] = {}
        self.lost: set[tuple[str | None, str, str]] = set()
        self.winners: dict[tuple[str | None, str, str], str] = {}

    def rp_of(self, group: str) -> str | None:
        return self.rps.get(group)

    def rpf(self, address: str) -> Rpf | None:
        return self.routes.get(address)

    def interfaces(self) -> dict[str, PimInterface]:
        return self.pims

    def lost_assert(self, source: str | None, group: str, interface: str) -> bool:
        return (source, group, interface) in self.lost

    def assert_winner(self, source: str | None, group: str, interface: str) -> str | None:
        return self.winners.get((source, group, interface))

    def assert_sources(self, group: str) -> set[str]:
        return {s for s, g, _ in self.winners if g == group and s is not None}

    def add(self, name: str, address: str, *neighbors: str, dr_priority: int = 1,
            lan_prune_delay: LanPruneDelay | None = LanPruneDelay(False, 500, 2500),
            neighbor_priority: int = 1) -> PimInterface:
        """An interface whose neighbors sent Hellos (lower DR priority than
        ours unless told, so we are DR)."""
        pim = PimInterface(Settings(dr_priority=dr_priority), address, 1, random.Random(1))
        for neighbor in neighbors:
            pim.receive_hello(0.0, neighbor, Hello(105, neighbor_priority, 7, lan_prune_delay))
        self.pims[name] = pim
        return pim


def router(settings: TreeSettings | None = None, seed: int = 1) -> tuple[PimTree, FakeView]:
    """The usual router: up0 toward the RP, up1 toward S, down (one neighbor), lan (receivers, no neighbor)."""
    view = FakeView()
    view.add("up0", UP0, UP0_NBR)
    view.add("up1", UP1, UP1_NBR)
    view.add("down", DOWN, DOWN_NBR)
    view.add("lan", LAN)
    return PimTree(view, settings or TreeSettings(), random.Random(seed)), view


def at_rp(view: FakeView) -> None:
    """Make this router the RP."""
    view.routes[RP] = Rpf(REGISTER_VIF, None)


def sent(outputs: list) -> list[tuple[str, JoinPrune]]:
    """(interface, parsed message) of every Join/Prune in `outputs`."""
    return [(o.interface, parse_message(o.payload)) for o in outputs if isinstance(o, SendJoinPrune)]


def entries(outputs: list, interface: str | None = None) -> set[tuple[str, str, str | None, str, bool]]:
    """Every (upstream neighbor, group, source, kind, join) sent, kind one of
    "*" (W and R), "sg", "rpt"."""
    out = set()
    for sent_on, message in sent(outputs):
        if interface is not None and sent_on != interface:
            continue
        for group_set in message.groups:
            for listed, join in ((group_set.joins, True), (group_set.prunes, False)):
                for s in listed:
                    kind = "*" if s.wildcard else "rpt" if s.rpt else "sg"
                    out.add((message.upstream, group_set.group, s.address, kind, join))
    return out


def changed(outputs: list) -> set[tuple[str | None, str]]:
    return {(o.source, o.group) for o in outputs if isinstance(o, TreeChanged)}


def star_join(upstream: str, group: str = G, rp: str = RP, holdtime: int = 210, prunes=()) -> JoinPrune:
    from mcr.protocols.pim_wire import GroupSet, Source
    return JoinPrune(upstream, holdtime, (GroupSet(group, joins=(Source(rp, wildcard=True, rpt=True),),
                                                   prunes=tuple(Source(p, rpt=True) for p in prunes)),))


def message(upstream: str, joins=(), prunes=(), group: str = G, holdtime: int = 210) -> JoinPrune:
    """A one-group Join/Prune; each entry is (address, kind) with kind "*", "sg" or "rpt"."""
    from mcr.protocols.pim_wire import GroupSet, Source

    def source(address: str, kind: str) -> Source:
        return Source(address, wildcard=kind == "*", rpt=kind != "sg")

    return JoinPrune(upstream, holdtime, (GroupSet(group, tuple(source(*j) for j in joins),
                                                   tuple(source(*p) for p in prunes)),))
