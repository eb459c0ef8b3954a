"""PIM-SM Join/Prune and tree state (RFC 7761 4.1, 4.2, 4.5): one `PimTree`
per router, over every PIM interface.

Sans-IO like mcr.protocols.pim: the adapter hands in Join/Prune messages,
local membership, data-plane notifications and the time (`expire` whenever
`next_deadline` passes) and gets back Join/Prunes to send
(`SendJoinPrune`) and forwarding entries that changed (`TreeChanged`,
read them with `forwarding()`). What the tree needs of the router (RP,
RPF, interfaces, Assert) it asks through a `TreeView`.

After every input the affected groups are settled: the upstream machines
follow JoinDesired/PruneDesired and RPF', and the forwarding entries are
recomputed and compared. Joins and prunes of one input go out together,
per upstream neighbor (pim_join_batch).

Beside the calls the supervisor drives, the Register machine (4.4) asks
`register_stop_wanted` at the RP and the Assert machine (4.6) `spt_bit`
and `could_assert`.

The parts, by concern:
  pim_tree_types    the contract: TreeView, Rpf, TreeSettings, Forwarding, outputs
  pim_downstream    4.5.2-4.5.4 per-interface machines (what was asked of us)
  pim_join_receive  4.5.1 reading a Join/Prune into downstream and upstream events
  pim_upstream      4.5.6-4.5.8 machines (what we ask of RPF')
  pim_join_batch    Join/Prune messages per upstream neighbor, MTU-bounded
  pim_macros        the state per group and source, 4.1.6 macros and RPF'
  pim_forwarding    4.2 forwarding rules as data-plane entries
  pim_tree_queries  what the router and the CLI read of the tree
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter

from mcr.mrib import Listening

from .pim_downstream import Downstream, Event
from .pim_forwarding import group_entries, spt_bit_would_set, switch_desired
from .pim_join_batch import JoinBatch, encoded_source
from .pim_join_receive import JoinPruneReceipt
from .pim_macros import GroupState, Macros, SourceState
from .pim_tree_queries import TreeQueries
from .pim_tree_types import (Forwarding, Key, Kind, Output, Timer, TreeChanged, TreeSettings, TreeView, is_group,
                             is_source)
from .pim_upstream import (Hop, RptAct, RptEvent, RptUpState, UpAct, UpEvent, UpState, Upstream, step_rpt)
from .pim_upstream import step as step_up


class PimTree(JoinPruneReceipt, TreeQueries):
    """Join/Prune state, upstream and downstream, and the forwarding it implies."""

    def __init__(self, view: TreeView, settings: TreeSettings, rng: random.Random | None = None) -> None:
        self.view = view
        self.settings = settings
        self.counters: Counter[str] = Counter()  # ignored or dropped input, by reason
        self._rng = rng or random.Random()
        self._groups: dict[str, GroupState] = {}
        self._members: dict[tuple[str, str], Listening] = {}
        self._macros = Macros(view, self._members)
        # (deadline, order, kind, key); stale when the timer's deadline moved
        self._timers: list[tuple[float, int, Timer, Key]] = []
        self._order = itertools.count()
        self._batch = JoinBatch()
        self._exported: dict[str, dict[str | None, frozenset[Forwarding]]] = {}
        self._changed: dict[tuple[str | None, str], None] = {}  # in order, without repeats
        # upstream entries joined toward each RPF', so their periodic Joins go together
        self._joined: dict[Hop, dict[tuple[str, str | None], None]] = {}

    # --- inputs ---

    def set_membership(self, now: float, interface: str, group: str, listening: Listening | None) -> list[Output]:
        """Local IGMP state for `group` on `interface`; None: no members."""
        self._due(now)
        if not is_group(group):
            return self._drop("bad_group")
        if listening is None:
            self._members.pop((interface, group), None)
        else:
            self._members[(interface, group)] = listening
            self._group(group)
        self._settle(now, group)
        return self._flush()

    def data_arrived(self, now: float, source: str, group: str, interface: str) -> list[Output]:
        """A packet of (S,G) arrived on `interface` (RFC 7761 4.2)."""
        self._due(now)
        if not is_group(group) or not is_source(source):
            return self._drop("bad_data_address")
        m, g = self._macros, self._group(group)
        s = g.sources.get(source)
        s_if, rp_if = m.rpf_interface(source), m.rp_interface(group)
        if interface == s_if and m.directly_connected(source):
            s = self._source(g, source)
            s.connected_data_at = now
            self._restart_keepalive(now, g, s, self.settings.keepalive_period)
        if s is not None and interface == s_if and s.up.state is UpState.JOINED and m.inherited_sg(g, s):
            self._restart_keepalive(now, g, s, self.settings.keepalive_period)
        if s is not None and spt_bit_would_set(m, g, s, interface):  # Update_SPTbit(S,G,iif)
            s.spt_bit = True
        spt = s is not None and s.spt_bit
        if interface == rp_if and not spt:  # down the RP tree
            if switch_desired(m, g, source, self.settings.spt_switchover):  # CheckSwitchToSpt(S,G)
                self._restart_keepalive(now, g, self._source(g, source), self.settings.keepalive_period)
        elif not (interface == s_if and spt):  # neither tree: the RPF check failed, Assert's business (4.6)
            self.counters["data_wrong_interface"] += 1
        self._settle(now, group)
        return self._flush()

    def keepalive(self, now: float, source: str, group: str) -> list[Output]:
        """The data plane saw (S,G) packets since the last check (4.2: the
        KAT restarts while the source sends and someone wants it)."""
        self._due(now)
        g = self._groups.get(group)
        s = None if g is None else g.sources.get(source)
        if g is None or s is None:
            return self._drop("keepalive_unknown")
        m = self._macros
        if m.directly_connected(source):
            s.connected_data_at = now  # still sending here (connected_rp_sources)
        if (s.keepalive_at is not None or m.directly_connected(source)
                or (s.up.state is UpState.JOINED and m.inherited_sg(g, s))):
            self._restart_keepalive(now, g, s, self.settings.keepalive_period)
        self._settle(now, group)
        return self._flush()

    def register_received(self, now: float, source: str, group: str) -> list[Output]:
        """At the RP: a Register for (S,G) arrived (RFC 7761 4.4.2): the KAT
        runs for RP_Keepalive_Period once a Register-Stop goes back."""
        self._due(now)
        if not self._macros.i_am_rp(group):
            return self._drop("register_not_rp")
        g = self._group(group)
        s = self._source(g, source)
        if s.spt_bit or self.settings.spt_switchover == "immediate":
            period = self.settings.rp_keepalive_period if self.register_stop_wanted(source, group) \
                else self.settings.keepalive_period
            self._restart_keepalive(now, g, s, period)
        self._settle(now, group)
        return self._flush()

    def source_active(self, now: float, source: str, group: str) -> list[Output]:
        """At the RP: an MSDP Source-Active named (S,G), a source in another
        domain (RFC 3618 section 7). With receivers on the shared tree the
        RP joins toward S: its KAT(S,G) runs, so JoinDesired(S,G) holds; each
        SA refresh, and then the data, keep it running."""
        self._due(now)
        g = self._groups.get(group)
        if g is None or not self._macros.i_am_rp(group) or not self.has_receivers(source, group):
            return self._flush()
        self._restart_keepalive(now, g, self._source(g, source), self.settings.keepalive_period)
        self._settle(now, group)
        return self._flush()

    def neighbor_changed(self, now: float, interface: str, neighbor: str, change: str) -> list[Output]:
        """A PIM neighbor came up, went down or restarted (new GenID: every
        entry joined through it sends its Join within t_override, 4.5.6)."""
        if change not in ("up", "down", "restarted"):
            raise ValueError(f"a neighbor change is up, down or restarted, not {change!r}")
        self._due(now)
        if change == "restarted":
            hop = Hop(interface, neighbor)
            for g in self._groups.values():
                for source, up in [(None, g.up), *((s.source, s.up) for s in g.sources.values())]:
                    if up.rpf == hop:
                        self._step_up(now, g, source, up, UpEvent.GENID_CHANGED)
        return self._settle_all(now)

    def interface_changed(self, now: float, interface: str) -> list[Output]:
        """The interface's DR changed, or it was added or removed."""
        self._due(now)
        if interface not in self.view.interfaces():
            for g in self._groups.values():
                g.star.pop(interface, None)
                for s in g.sources.values():
                    s.sg.pop(interface, None)
                    s.rpt.pop(interface, None)
        return self._settle_all(now)

    def routing_changed(self, now: float) -> list[Output]:
        """Unicast routes or the RP set changed: every RPF and RP again."""
        self._due(now)
        return self._settle_all(now)

    def expire(self, now: float) -> list[Output]:
        """Run every timer due by `now`, in deadline order."""
        self._due(now)
        return self._flush()

    def next_deadline(self) -> float | None:
        while self._timers and self._armed(self._timers[0][2], self._timers[0][3]) != self._timers[0][0]:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # --- settling: upstream machines and forwarding follow the state ---

    def _settle_all(self, now: float) -> list[Output]:
        for group in list(self._groups):
            self._settle(now, group)
        return self._flush()

    def _settle(self, now: float, group: str) -> None:
        g = self._groups.get(group)
        if g is not None:
            for source in self._macros.named_sources(group):
                self._source(g, source)
            self._settle_star(now, g)
            for s in list(g.sources.values()):
                self._settle_sg(now, g, s)
            for s in list(g.sources.values()):
                self._settle_rpt(now, g, s)
            self._collect(g)
        self._export(group)

    def _settle_star(self, now: float, g: GroupState) -> None:
        m = self._macros
        rp, rpf = self.view.rp_of(g.group), m.rpf_star(g)
        # a new RP is a new RPF'(*,G), even behind the same neighbor
        renamed = g.up.state is UpState.JOINED and rp != g.rp
        self._follow(now, g, None, g.up, m.join_desired_star(g) and rpf is not None, m.mrib_hop(rp), rpf,
                     renamed)

    def _settle_sg(self, now: float, g: GroupState, s: SourceState) -> None:
        m = self._macros
        rpf = m.rpf_sg(g.group, s.source)
        self._follow(now, g, s, s.up, m.join_desired_sg(g, s) and rpf is not None, m.mrib_hop(s.source), rpf)

    def _follow(self, now: float, g: GroupState, s: SourceState | None, up: Upstream, desired: bool,
                mrib: Hop | None, rpf: Hop | None, renamed: bool = False) -> None:
        """4.5.6/4.5.7: JoinDesired and RPF' changes of one upstream machine."""
        old = up.rpf
        if up.state is UpState.JOINED and not desired:
            event = UpEvent.JOIN_NOT_DESIRED
        elif up.state is UpState.JOINED and (rpf != old or renamed):
            event = UpEvent.RPF_CHANGED if mrib != up.mrib or renamed else UpEvent.RPF_CHANGED_BY_ASSERT
        elif up.state is UpState.NOT_JOINED and desired:
            event = UpEvent.JOIN_DESIRED
        else:
            up.mrib = mrib
            return
        up.mrib, up.rpf = mrib, (rpf if desired else old)
        source = None if s is None else s.source
        act = self._step_up(now, g, source, up, event, prune_to=old)
        if UpAct.CLEAR_SPT in act and s is not None:
            s.spt_bit = False
        if not desired:
            up.rpf = None
        if old is not None:
            self._joined.get(old, {}).pop((g.group, source), None)
            if not self._joined.get(old, True):
                del self._joined[old]
        if up.rpf is not None:
            self._joined.setdefault(up.rpf, {})[(g.group, source)] = None

    def _step_up(self, now: float, g: GroupState, source: str | None, up: Upstream, event: UpEvent,
                 holdtime: float = 0.0, prune_to: Hop | None = None) -> UpAct:
        interface = up.rpf.interface if up.rpf is not None else ""
        before = up.join_at
        act = step_up(up, event, now, self.settings.join_prune_period,
                      self._t_joinsuppress(interface, holdtime), self._t_override(interface))
        if UpAct.SEND_PRUNE in act:
            self._send(prune_to, g, source, join=False)
        if UpAct.SEND_JOIN in act:
            self._send(up.rpf, g, source, join=True)
        if up.join_at != before:
            self._arm(Timer.JOIN, up.join_at, (g.group, source, Kind.STAR_G if source is None else Kind.SG, ""))
        return act

    def _settle_rpt(self, now: float, g: GroupState, s: SourceState) -> None:
        """4.5.8: the (S,G,rpt) upstream machine follows RPTJoinDesired(G)
        and PruneDesired(S,G,rpt)."""
        m, up = self._macros, s.rpt_up
        rpf = m.rpf_rpt(g, s.source)
        if rpf != up.rpf and up.rpf is not None and rpf is not None and rpf == m.rpf_star(g):
            self._step_rpt(now, g, s, RptEvent.SEE_PRUNE, rpf)  # RPF'(S,G,rpt) -> RPF'(*,G)
        up.rpf = rpf
        if not (g.up.state is UpState.JOINED and m.join_desired_star(g)):
            event = RptEvent.RPT_NOT_DESIRED
        else:
            event = RptEvent.TO_PRUNED if m.prune_desired_rpt(g, s) else RptEvent.TO_NOT_PRUNED
        self._step_rpt(now, g, s, event, rpf)

    def _step_rpt(self, now: float, g: GroupState, s: SourceState, event: RptEvent, rpf: Hop | None) -> None:
        before = s.rpt_up.override_at
        act = step_rpt(s.rpt_up, event, now, self._t_override(rpf.interface if rpf else ""))
        if RptAct.SEND_JOIN in act:
            self._send_rpt(rpf, g, s.source, join=True)
        if RptAct.SEND_PRUNE in act:
            self._send_rpt(rpf, g, s.source, join=False)
        if s.rpt_up.override_at != before:
            self._arm(Timer.OVERRIDE, s.rpt_up.override_at, (g.group, s.source, Kind.SG_RPT, ""))

    def _collect(self, g: GroupState) -> None:
        """Forget sources, then the group, that hold nothing any more."""
        named = self._macros.named_sources(g.group)
        for source, s in list(g.sources.items()):
            if not (s.sg or s.rpt or s.up.state is UpState.JOINED or s.rpt_up.state is RptUpState.PRUNED
                    or s.rpt_up.override_at is not None or s.keepalive_at is not None or s.spt_bit
                    or source in named):
                del g.sources[source]
        listened = any(group == g.group for _, group in self._members)
        if not (g.star or g.sources or g.up.state is UpState.JOINED or listened):
            del self._groups[g.group]

    def _export(self, group: str) -> None:
        g = self._groups.get(group)
        new = {} if g is None else group_entries(self._macros, g, self.settings.spt_switchover)
        old = self._exported.get(group, {})
        for source in [*old, *(s for s in new if s not in old)]:
            if old.get(source) != new.get(source):
                self._changed[(source, group)] = None
        if new:
            self._exported[group] = new
        else:
            self._exported.pop(group, None)

    def _flush(self) -> list[Output]:
        out: list[Output] = list(self._batch.messages(self.settings.join_prune_holdtime))
        out += [TreeChanged(source, group) for source, group in self._changed]
        self._changed.clear()
        return out

    # --- sending ---

    def _send(self, hop: Hop | None, g: GroupState, source: str | None, join: bool) -> None:
        """A (*,G) or (S,G) Join or Prune to `hop`. A Join(*,G) carries the
        Prune(S,G,rpt) of every source pruned toward the same neighbor (4.5.9)."""
        if source is not None:
            self._add(hop, g.group, encoded_source(Kind.SG, source), join)
            return
        if not join:
            if g.rp is not None:
                self._add(hop, g.group, encoded_source(Kind.STAR_G, g.rp), False)
            return
        g.rp = self.view.rp_of(g.group)
        if g.rp is None:
            return
        self._add(hop, g.group, encoded_source(Kind.STAR_G, g.rp), True)
        for s in g.sources.values():
            if s.rpt_up.state is RptUpState.PRUNED and self._macros.rpf_rpt(g, s.source) == hop:
                self._add(hop, g.group, encoded_source(Kind.SG_RPT, s.source), False)

    def _send_rpt(self, hop: Hop | None, g: GroupState, source: str, join: bool) -> None:
        self._add(hop, g.group, encoded_source(Kind.SG_RPT, source), join)

    def _add(self, hop: Hop | None, group: str, source, join: bool) -> None:
        # nothing to send toward a directly connected source or as the RP
        if hop is not None and hop.neighbor is not None and hop.interface in self.view.interfaces():
            self._batch.add(hop.interface, hop.neighbor, group, source, join)

    # --- timers ---

    def _due(self, now: float) -> None:
        """Fire every timer due by `now`; their messages wait in the batch."""
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, key = heapq.heappop(self._timers)
            if self._armed(kind, key) == deadline:
                self._fire(deadline, kind, key)
                self._settle(deadline, key[0])

    def _arm(self, kind: Timer, deadline: float | None, key: Key) -> None:
        if deadline is not None:
            heapq.heappush(self._timers, (deadline, next(self._order), kind, key))

    def _armed(self, kind: Timer, key: Key) -> float | None:
        group, source, entry, interface = key
        g = self._groups.get(group)
        s = None if g is None or source is None else g.sources.get(source)
        if g is None or (source is not None and s is None):
            return None
        match kind:
            case Timer.EXPIRY | Timer.PRUNE_PENDING:
                machine = self._machines(g, s, entry).get(interface)
                if machine is None:
                    return None
                return machine.expires_at if kind is Timer.EXPIRY else machine.prune_pending_at
            case Timer.JOIN:
                return g.up.join_at if s is None else s.up.join_at
            case Timer.OVERRIDE:
                return None if s is None else s.rpt_up.override_at
            case Timer.KEEPALIVE:
                return None if s is None else s.keepalive_at

    def _fire(self, now: float, kind: Timer, key: Key) -> None:
        group, source, entry, interface = key
        g = self._groups[group]
        s = None if source is None else g.sources[source]
        match kind:
            case Timer.EXPIRY:
                self._downstream_event(now, interface, g, s, entry, Event.EXPIRED)
            case Timer.PRUNE_PENDING:
                self._downstream_event(now, interface, g, s, entry, Event.PRUNE_PENDING_EXPIRED)
            case Timer.JOIN:
                up = g.up if s is None else s.up
                self._step_up(now, g, source, up, UpEvent.TIMER)
                if up.rpf is not None:
                    self._refresh_with(now, up.rpf)
            case Timer.OVERRIDE:
                assert s is not None
                self._step_rpt(now, g, s, RptEvent.OVERRIDE_TIMER, s.rpt_up.rpf)
            case Timer.KEEPALIVE:
                assert s is not None
                s.keepalive_at = None  # 4.1.3: (S,G) state lives on only if something else holds it

    def _refresh_with(self, now: float, hop: Hop) -> None:
        """A periodic Join goes to `hop`: the other entries joined toward it
        that are due within half a period come along (a Join early is only a
        refresh), so after one period each neighbor gets one periodic message,
        as FRR sends them, not one per entry."""
        horizon = now + self.settings.join_prune_period / 2
        for group, source in list(self._joined.get(hop, {})):
            g = self._groups[group]
            up = g.up if source is None else g.sources[source].up
            if up.join_at is not None and now < up.join_at <= horizon:
                self._step_up(now, g, source, up, UpEvent.TIMER)

    def _restart_keepalive(self, now: float, g: GroupState, s: SourceState, period: float) -> None:
        s.keepalive_at = now + period
        self._arm(Timer.KEEPALIVE, s.keepalive_at, (g.group, s.source, Kind.SG, ""))

    def _t_override(self, interface: str) -> float:
        """4.11 t_override: random in [0, Effective_Override_Interval(I)]."""
        pim = self.view.interfaces().get(interface)
        return 0.0 if pim is None else self._rng.uniform(0, pim.effective_override_interval_ms() / 1000)

    def _t_joinsuppress(self, interface: str, holdtime: float) -> float:
        """4.5.6 t_joinsuppress = min(t_suppressed, the seen message's
        Holdtime); t_suppressed is 0 where suppression is disabled."""
        pim = self.view.interfaces().get(interface)
        if pim is None or not self._macros.suppression_enabled(interface):
            return 0.0
        period = self.settings.join_prune_period
        return min(self._rng.uniform(1.1 * period, 1.4 * period), holdtime)

    # --- state ---

    def _group(self, group: str) -> GroupState:
        return self._groups.setdefault(group, GroupState(group))

    @staticmethod
    def _source(g: GroupState, source: str) -> SourceState:
        return g.sources.setdefault(source, SourceState(source))

    @staticmethod
    def _machines(g: GroupState, s: SourceState | None, kind: Kind) -> dict[str, Downstream]:
        if kind is Kind.STAR_G or s is None:
            return g.star
        return s.sg if kind is Kind.SG else s.rpt

    def _drop(self, reason: str) -> list[Output]:
        self.counters[reason] += 1
        return self._flush()
