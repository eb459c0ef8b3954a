"""Receipt of PIM-SM Join/Prune messages (RFC 7761 4.5.1-4.5.4), the part
of `PimTree` that reads them: a message addressed to us drives our
downstream machines on its interface; one addressed to another router
feeds our upstream machines joined toward that router (join suppression
and prune override on a LAN, 4.5.6-4.5.8).

`JoinPruneReceipt` is a base of `PimTree` (mcr.protocols.pim_tree), which
owns the state, the timers and the upstream machines this code calls.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from .pim_downstream import Act, Downstream, Event, step
from .pim_join_batch import JoinBatch, encoded_source
from .pim_macros import GroupState, SourceState
from .pim_tree_types import Kind, Output, Timer, TreeView, is_group, is_source
from .pim_upstream import Hop, RptEvent, UpEvent, UpState
from .pim_wire import GroupSet, JoinPrune

if TYPE_CHECKING:
    from .pim_tree import PimTree


class JoinPruneReceipt:
    """Join/Prune receipt; its state and helpers are PimTree's."""

    view: TreeView
    counters: Counter[str]
    _batch: JoinBatch

    def receive_join_prune(self: PimTree, now: float, interface: str, sender: str, message: JoinPrune) -> list[Output]:
        """A parsed Join/Prune from `sender` on `interface` (RFC 7761 4.5).
        Addressed to us, it drives our downstream machines there; addressed
        to another router, our upstream machines joined toward that router
        see it (join suppression and prune override on a LAN)."""
        self._due(now)
        pim = self.view.interfaces().get(interface)
        if pim is None:
            return self._drop("unknown_interface")
        if sender == pim.address:
            return self._drop("own_message")  # looped back
        if sender not in pim.neighbors():
            return self._drop("not_neighbor")  # a router we have no Hello from
        for group_set in message.groups:
            if not is_group(group_set.group) or group_set.mask_len != 32:
                self.counters["group_range"] += 1  # (*,*,RP) and group ranges are not in RFC 7761
                continue
            entries = self._classify(group_set)
            if message.upstream == pim.address:
                self._receive_group(now, interface, message.holdtime, group_set.group, entries)
            else:
                self._see_group(now, Hop(interface, message.upstream), message.holdtime, group_set.group, entries)
            self._settle(now, group_set.group)
        self._due(now)  # a Prune-Pending Timer of 0 (a single neighbor) expires at once
        return self._flush()

    # --- Join/Prune receipt (4.5.1-4.5.4) ---

    def _classify(self: PimTree, group_set: GroupSet) -> list[tuple[Kind, str, bool]]:
        """(kind, address, join) of each entry that can be read; the rest
        counted. A (*,G) entry must name the RP we know for G."""
        entries = []
        listed = [(s, True) for s in group_set.joins] + [(s, False) for s in group_set.prunes]
        for source, join in listed:
            if source.mask_len != 32 or not is_source(source.address):
                self.counters["bad_source"] += 1
            elif source.wildcard and not source.rpt:
                self.counters["bad_source_flags"] += 1  # 4.9.5.1: W without R is not defined
            elif source.wildcard and source.address != self.view.rp_of(group_set.group):
                self.counters["wrong_rp"] += 1
            else:
                kind = Kind.STAR_G if source.wildcard else Kind.SG_RPT if source.rpt else Kind.SG
                entries.append((kind, source.address, join))
        return entries

    def _receive_group(self: PimTree, now: float, interface: str, holdtime: float, group: str,
                       entries: list[tuple[Kind, str, bool]]) -> None:
        """One group of a message to us. Join(*,G) first, which puts (S,G,rpt)
        Prune state in its Tmp states; then the rest; then End of Message
        clears the Tmp states no Prune(S,G,rpt) of this message renewed (4.5.4)."""
        g = self._group(group)
        if any(kind is Kind.STAR_G and join for kind, _, join in entries):
            self._downstream_event(now, interface, g, None, Kind.STAR_G, Event.JOIN, holdtime)
            for s in list(g.sources.values()):
                self._downstream_event(now, interface, g, s, Kind.SG_RPT, Event.JOIN_STAR)
        for kind, address, join in entries:
            if kind is Kind.STAR_G:
                if not join:
                    self._downstream_event(now, interface, g, None, kind, Event.PRUNE, holdtime)
                continue
            creates = (kind is Kind.SG and join) or (kind is Kind.SG_RPT and not join)
            s = self._source(g, address) if creates else g.sources.get(address)
            if s is None:
                continue
            event = {(Kind.SG, True): Event.JOIN, (Kind.SG, False): Event.PRUNE,
                     (Kind.SG_RPT, True): Event.JOIN_RPT, (Kind.SG_RPT, False): Event.PRUNE_RPT}[(kind, join)]
            self._downstream_event(now, interface, g, s, kind, event, holdtime)
        for s in list(g.sources.values()):
            self._downstream_event(now, interface, g, s, Kind.SG_RPT, Event.END_OF_MESSAGE)

    def _see_group(self: PimTree, now: float, hop: Hop, holdtime: float, group: str,
                   entries: list[tuple[Kind, str, bool]]) -> None:
        """One group of a message to another router, `hop`: the upstream
        events of 4.5.6-4.5.8 for our entries joined toward it."""
        g = self._groups.get(group)
        if g is None:
            return
        for kind, address, join in entries:
            event = UpEvent.SEE_JOIN if join else UpEvent.SEE_PRUNE
            if kind is Kind.STAR_G:
                # 4.5.7: a Prune(*,G) to RPF'(S,G) overrides the (S,G) Join Timer too
                ups = [(None, g.up)] + ([] if join else [(s.source, s.up) for s in g.sources.values()])
                for source, up in ups:
                    if up.rpf == hop:
                        self._step_up(now, g, source, up, event, holdtime)
                continue
            s = g.sources.get(address)
            if s is not None and s.up.rpf == hop and (kind is Kind.SG or not join):
                self._step_up(now, g, address, s.up, event, holdtime)  # 4.5.7, Prune(S,G,rpt) included
            if kind is Kind.SG_RPT and not join and g.up.state is UpState.JOINED:
                # a source without state is implicitly NotPruned under a joined (*,G)
                s = self._source(g, address)
                self._settle_rpt(now, g, s)
            if s is not None and s.rpt_up.rpf == hop and (kind is Kind.SG_RPT or not join):
                self._step_rpt(now, g, s, RptEvent.SEE_JOIN if join else RptEvent.SEE_PRUNE, hop)

    def _downstream_event(self: PimTree, now: float, interface: str, g: GroupState, s: SourceState | None, kind: Kind,
                          event: Event, holdtime: float = 0.0) -> None:
        machines = self._machines(g, s, kind)
        machine = machines.get(interface) or Downstream.new(kind)
        before = (machine.expires_at, machine.prune_pending_at)
        act = step(machine, event, now, holdtime, self._prune_pending_delay(interface))
        if machine.no_info():
            machines.pop(interface, None)
        else:
            machines[interface] = machine
        key = (g.group, None if s is None else s.source, kind, interface)
        if machine.expires_at != before[0]:
            self._arm(Timer.EXPIRY, machine.expires_at, key)
        if machine.prune_pending_at != before[1]:
            self._arm(Timer.PRUNE_PENDING, machine.prune_pending_at, key)
        if Act.PRUNE_ECHO in act:
            self._prune_echo(interface, g, s)

    def _prune_echo(self: PimTree, interface: str, g: GroupState, s: SourceState | None) -> None:
        """4.5.2/4.5.3: a Prune to ourselves, so a router on the LAN that
        suppressed its Join hears the prune took effect and joins again. Not
        where we have a single neighbor."""
        pim = self.view.interfaces().get(interface)
        address = self.view.rp_of(g.group) if s is None else s.source
        if pim is None or address is None or len(pim.neighbors()) < 2:
            return
        kind = Kind.STAR_G if s is None else Kind.SG
        self._batch.add(interface, pim.address, g.group, encoded_source(kind, address), join=False)

    def _prune_pending_delay(self: PimTree, interface: str) -> float:
        """4.5.2: J/P_Override_Interval(I) with more than one neighbor on I,
        else 0 (the PPT expires at once)."""
        pim = self.view.interfaces().get(interface)
        if pim is None or len(pim.neighbors()) < 2:
            return 0.0
        return (pim.effective_propagation_delay_ms() + pim.effective_override_interval_ms()) / 1000
