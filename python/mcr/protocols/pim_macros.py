"""The tree's state per group and source, and the RFC 7761 4.1.6 state
summarization macros over it (with 4.1.5's RPF' and 4.5.6-4.5.8's
JoinDesired, RPTJoinDesired and PruneDesired).

Downstream machines are kept only while not NoInfo, so joins(*,G) is the
set of interfaces with a machine in Join or Prune-Pending. Local
membership counts only where we are DR (or won an Assert), as
pim_include/pim_exclude say. There is no (*,*,RP) state in RFC 7761.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mcr.mrib import Listening

from .pim_downstream import JOINED, PRUNED, Downstream
from .pim_rpf import REGISTER_VIF
from .pim_tree_types import TreeView
from .pim_upstream import Hop, RptUpstream, Upstream

EXCLUDE = "exclude"


@dataclass
class SourceState:
    """(S,G) and (S,G,rpt) state for one source of a group."""

    source: str
    sg: dict[str, Downstream] = field(default_factory=dict)  # interface -> (S,G) machine
    rpt: dict[str, Downstream] = field(default_factory=dict)  # interface -> (S,G,rpt) machine
    up: Upstream = field(default_factory=Upstream)
    rpt_up: RptUpstream = field(default_factory=RptUpstream)
    spt_bit: bool = False
    keepalive_at: float | None = None  # KeepaliveTimer(S,G); None: not running
    connected_data_at: float | None = None  # when data of a directly connected S last arrived on its interface


@dataclass
class GroupState:
    group: str
    star: dict[str, Downstream] = field(default_factory=dict)  # interface -> (*,G) machine
    up: Upstream = field(default_factory=Upstream)
    sources: dict[str, SourceState] = field(default_factory=dict)
    rp: str | None = None  # the RP our (*,G) Joins named: a Prune after an RP change names the old one


Members = Mapping[tuple[str, str], Listening]  # (interface, group) -> what IGMP's listeners want


class Macros:
    """The 4.1.6 macros, read from the tree's state and the router's view."""

    def __init__(self, view: TreeView, members: Members) -> None:
        self.view = view
        self.members = members

    # --- the router around us ---

    def me(self, interface: str) -> str | None:
        pim = self.view.interfaces().get(interface)
        return None if pim is None else pim.address

    def i_am_dr(self, interface: str) -> bool:
        pim = self.view.interfaces().get(interface)
        return pim is not None and pim.dr() == pim.address

    def rpf_interface(self, address: str | None) -> str | None:
        rpf = None if address is None else self.view.rpf(address)
        return None if rpf is None else rpf.interface

    def rp_interface(self, group: str) -> str | None:
        """RPF_interface(RP(G)); REGISTER_VIF when we are the RP."""
        return self.rpf_interface(self.view.rp_of(group))

    def i_am_rp(self, group: str) -> bool:
        return self.rp_interface(group) == REGISTER_VIF

    def directly_connected(self, source: str) -> bool:
        rpf = self.view.rpf(source)
        return rpf is not None and rpf.neighbor is None and rpf.interface != REGISTER_VIF

    def suppression_enabled(self, interface: str) -> bool:
        """4.3.3 Suppression_Enabled(I): Join suppression is off only when
        every neighbor on the LAN sent LAN Prune Delay with the T bit (the
        upstream router can then track each downstream join itself)."""
        pim = self.view.interfaces().get(interface)
        if pim is None:
            return True
        neighbors = list(pim.neighbors().values())
        return not (neighbors and all(n.lan_prune_delay is not None and n.lan_prune_delay.tracking
                                      for n in neighbors))

    def _wins(self, source: str | None, group: str, interface: str) -> bool:
        """(I_am_DR(I) AND NOT lost_assert(I)) OR AssertWinner(I) == me."""
        if self.i_am_dr(interface) and not self.view.lost_assert(source, group, interface):
            return True
        winner = self.view.assert_winner(source, group, interface)
        return winner is not None and winner == self.me(interface)

    # --- local membership (4.1.6 pim_include / pim_exclude) ---

    def _listening(self, group: str) -> list[tuple[str, Listening]]:
        return [(i, listening) for (i, g), listening in self.members.items()
                if g == group and i in self.view.interfaces()]

    def pim_include_star(self, group: str) -> frozenset[str]:
        # local_receiver_include(*,G,I): EXCLUDE mode, whatever it excludes
        return frozenset(i for i, listening in self._listening(group)
                         if listening.mode == EXCLUDE and self._wins(None, group, i))

    def pim_include_sg(self, source: str, group: str) -> frozenset[str]:
        # local_receiver_include(S,G,I): INCLUDE mode naming S
        return frozenset(i for i, listening in self._listening(group)
                         if listening.mode != EXCLUDE and source in listening.sources
                         and self._wins(source, group, i))

    def pim_exclude_sg(self, source: str, group: str) -> frozenset[str]:
        # local_receiver_exclude(S,G,I): EXCLUDE mode naming S; the (*,G) Assert counts
        return frozenset(i for i, listening in self._listening(group)
                         if listening.mode == EXCLUDE and source in listening.sources
                         and self._wins(None, group, i))

    def named_sources(self, group: str) -> set[str]:
        """Sources some listener names, or an (S,G) Assert machine holds: they
        need (S,G) state of their own (an Assert lost for S on the RP tree
        takes the interface out of S's entry only, 4.6.5 lost_assert(S,G,rpt))."""
        return ({s for _, listening in self._listening(group) for s in listening.sources}
                | self.view.assert_sources(group))

    # --- Join/Prune state ---

    @staticmethod
    def joins_star(g: GroupState) -> frozenset[str]:
        return frozenset(i for i, m in g.star.items() if m.state in JOINED)

    @staticmethod
    def joins_sg(s: SourceState) -> frozenset[str]:
        return frozenset(i for i, m in s.sg.items() if m.state in JOINED)

    @staticmethod
    def prunes_rpt(s: SourceState) -> frozenset[str]:
        return frozenset(i for i, m in s.rpt.items() if m.state in PRUNED)

    def lost_assert(self, source: str | None, group: str) -> frozenset[str]:
        return frozenset(i for i in self.view.interfaces() if self.view.lost_assert(source, group, i))

    def lost_assert_rpt(self, g: GroupState, s: SourceState) -> frozenset[str]:
        """4.6.5 lost_assert(S,G,rpt,I): never on RPF_interface(RP(G)), nor on
        RPF_interface(S) once on the SPT."""
        rp_if, s_if = self.rp_interface(g.group), self.rpf_interface(s.source)
        lost = set()
        for i in self.view.interfaces():
            if i == rp_if or (i == s_if and s.spt_bit):
                continue
            winner = self.view.assert_winner(s.source, g.group, i)
            if winner is not None and winner != self.me(i):
                lost.add(i)
        return frozenset(lost)

    # --- olists ---

    def immediate_star(self, g: GroupState) -> frozenset[str]:
        return (self.joins_star(g) | self.pim_include_star(g.group)) - self.lost_assert(None, g.group)

    def immediate_sg(self, g: GroupState, s: SourceState) -> frozenset[str]:
        return (self.joins_sg(s) | self.pim_include_sg(s.source, g.group)) - self.lost_assert(s.source, g.group)

    def inherited_rpt(self, g: GroupState, s: SourceState | None, source: str) -> frozenset[str]:
        """inherited_olist(S,G,rpt); `s` None: a source without state."""
        prunes = frozenset() if s is None else self.prunes_rpt(s)
        lost_rpt = frozenset() if s is None else self.lost_assert_rpt(g, s)
        return (((self.joins_star(g) - prunes)
                 | (self.pim_include_star(g.group) - self.pim_exclude_sg(source, g.group)))
                - (self.lost_assert(None, g.group) | lost_rpt))

    def inherited_sg(self, g: GroupState, s: SourceState) -> frozenset[str]:
        return self.inherited_rpt(g, s, s.source) | self.immediate_sg(g, s)

    # --- desires (4.5.6, 4.5.7, 4.5.8) ---

    def join_desired_star(self, g: GroupState) -> bool:
        return bool(self.immediate_star(g))

    def join_desired_sg(self, g: GroupState, s: SourceState) -> bool:
        return bool(self.immediate_sg(g, s)) or (s.keepalive_at is not None and bool(self.inherited_sg(g, s)))

    def prune_desired_rpt(self, g: GroupState, s: SourceState) -> bool:
        """PruneDesired(S,G,rpt); RPTJoinDesired(G) is JoinDesired(*,G)."""
        if not self.join_desired_star(g):
            return False
        if not self.inherited_rpt(g, s, s.source):
            return True
        return s.spt_bit and self.rpf_star(g) != self.rpf_sg(g.group, s.source)

    def receivers_want(self, group: str, source: str) -> bool:
        """CheckSwitchToSpt's olist test (4.2.1): local receivers want S."""
        return bool((self.pim_include_star(group) - self.pim_exclude_sg(source, group))
                    | self.pim_include_sg(source, group))

    def could_assert(self, g: GroupState, source: str | None, interface: str) -> bool:
        """4.6.1 CouldAssert(S,G,I), or 4.6.2 CouldAssert(*,G,I) for source None."""
        group = g.group
        if source is None:
            return interface != self.rp_interface(group) and interface in (self.joins_star(g)
                                                                            | self.pim_include_star(group))
        s = g.sources.get(source)
        if s is None or not s.spt_bit or interface == self.rpf_interface(source):
            return False
        return interface in self._assert_olist(g, s)

    def assert_tracking_desired(self, g: GroupState, source: str | None, interface: str) -> bool:
        """4.6.1 AssertTrackingDesired(S,G,I), or 4.6.2's (*,G,I) for source
        None: we forward onto I, or have receivers there we speak for, or I
        is where our Joins go (so we track the winner upstream)."""
        if source is None:
            return (self.could_assert(g, None, interface)
                    or (self._local_include(None, g.group, interface) and self._dr_or_winner(None, g.group, interface))
                    or (interface == self.rp_interface(g.group) and self.join_desired_star(g)))
        s = g.sources.get(source) or SourceState(source)  # the olist holds for a source without state too
        return (interface in self._assert_olist(g, s)
                or (self._local_include(source, g.group, interface)
                    and self._dr_or_winner(source, g.group, interface))
                or (interface == self.rpf_interface(source) and self.join_desired_sg(g, s))
                or (interface == self.rp_interface(g.group) and self.join_desired_star(g) and not s.spt_bit))

    def _assert_olist(self, g: GroupState, s: SourceState) -> frozenset[str]:
        """The olist CouldAssert(S,G,I) and AssertTrackingDesired(S,G,I) share (4.6.1)."""
        group, source = g.group, s.source
        return ((((self.joins_star(g) - self.prunes_rpt(s))
                  | (self.pim_include_star(group) - self.pim_exclude_sg(source, group)))
                 - self.lost_assert(None, group)) | self.joins_sg(s) | self.pim_include_sg(source, group))

    def _local_include(self, source: str | None, group: str, interface: str) -> bool:
        """local_receiver_include(S,G,I) (INCLUDE naming S) or (*,G,I) (EXCLUDE), whoever is DR."""
        listening = self.members.get((interface, group))
        if listening is None:
            return False
        if source is None:
            return listening.mode == EXCLUDE
        return listening.mode != EXCLUDE and source in listening.sources

    def _dr_or_winner(self, source: str | None, group: str, interface: str) -> bool:
        """I_am_DR(I) OR AssertWinner(I) == me: unlike _wins, a lost Assert does not count."""
        winner = self.view.assert_winner(source, group, interface)
        return self.i_am_dr(interface) or (winner is not None and winner == self.me(interface))

    # --- RPF' (4.1.5 with 4.5.6-4.5.8) ---

    def mrib_hop(self, address: str | None) -> Hop | None:
        """The MRIB's next hop toward `address` as 4.1.5's NBR() reads it:
        the PIM neighbor by its primary address (a Hello's Address List maps
        a secondary one, 4.3.4); None when the next hop is no PIM neighbor."""
        rpf = None if address is None else self.view.rpf(address)
        if rpf is None or rpf.neighbor is None:
            return None if rpf is None else Hop(rpf.interface, None)
        pim = self.view.interfaces().get(rpf.interface)
        if pim is None:
            return None
        for neighbor in pim.neighbors().values():
            if rpf.neighbor == neighbor.address or rpf.neighbor in neighbor.secondary:
                return Hop(rpf.interface, neighbor.address)
        return None

    def _via_assert(self, hop: Hop | None, source: str | None, group: str) -> Hop | None:
        """The Assert winner on the RPF interface replaces the MRIB neighbor
        when we lost there."""
        if hop is None:
            return None
        winner = self.view.assert_winner(source, group, hop.interface)
        if winner is not None and winner != self.me(hop.interface):
            return Hop(hop.interface, winner)
        return hop

    def rpf_star(self, g: GroupState) -> Hop | None:
        return self._via_assert(self.mrib_hop(self.view.rp_of(g.group)), None, g.group)

    def rpf_sg(self, group: str, source: str) -> Hop | None:
        return self._via_assert(self.mrib_hop(source), source, group)

    def rpf_rpt(self, g: GroupState, source: str) -> Hop | None:
        """RPF'(S,G,rpt): the (S,G) Assert winner on RPF_interface(RP(G)),
        else RPF'(*,G)."""
        star = self.rpf_star(g)
        if star is None:
            return None
        winner = self.view.assert_winner(source, g.group, star.interface)
        if winner is not None and winner != self.me(star.interface):
            return Hop(star.interface, winner)
        return star
