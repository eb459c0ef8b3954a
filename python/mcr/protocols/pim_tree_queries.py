"""What the router and the CLI read of the PIM-SM tree: forwarding, the
Register and Assert machines' questions (RFC 7761 4.4, 4.6), and the rows
of `mcr pim join` / `mcr pim upstream`. Reads only: nothing here changes
the state.

`TreeQueries` is a base of `PimTree` (mcr.protocols.pim_tree), which owns
the state read here.
"""

from __future__ import annotations

from .pim_macros import GroupState, Macros, SourceState
from .pim_tree_types import Forwarding, Kind, TreeSettings
from .pim_upstream import RptUpState, UpState


class TreeQueries:
    """Read-only views of PimTree's state."""

    settings: TreeSettings
    _groups: dict[str, GroupState]
    _macros: Macros
    _exported: dict[str, dict[str | None, frozenset[Forwarding]]]

    def forwarding(self) -> list[Forwarding]:
        """What the data plane should do now."""
        return sorted((f for entries in self._exported.values() for fs in entries.values() for f in fs),
                      key=lambda f: (f.group, f.source or "", f.interface))

    def register_stop_wanted(self, source: str, group: str) -> bool:
        """4.4.2 at the RP: SPTbit(S,G) OR (SwitchToSptDesired(S,G) AND
        inherited_olist(S,G) == NULL): answer Registers with Register-Stop."""
        g = self._groups.get(group) or GroupState(group)
        s = g.sources.get(source) or SourceState(source)
        return s.spt_bit or (self.settings.spt_switchover == "immediate"
                             and not self._macros.inherited_sg(g, s))

    def could_register(self, now: float) -> set[tuple[str, str]]:
        """4.4.1 CouldRegister(S,G): the (S,G)s whose source is directly
        connected on an interface where we are DR, with the KAT running,
        for a group whose RP is another router."""
        m = self._macros
        return {(s.source, group) for group, g in self._groups.items() for s in g.sources.values()
                if s.keepalive_at is not None and s.keepalive_at > now and m.directly_connected(s.source)
                and m.i_am_dr(m.rpf_interface(s.source)) and not m.i_am_rp(group)}

    def connected_rp_sources(self, now: float) -> set[tuple[str, str]]:
        """The (S,G)s whose source is directly connected here and sends (its
        data arrived within a Keepalive_Period), for a group this router is
        RP of: its own domain's sources that never register (RFC 3618
        section 3 has MSDP advertise them). An SA naming such a source starts
        its KAT too, but brings no data: that one is not ours."""
        m, period = self._macros, self.settings.keepalive_period
        return {(s.source, group) for group, g in self._groups.items() for s in g.sources.values()
                if s.connected_data_at is not None and now - s.connected_data_at < period
                and m.directly_connected(s.source) and m.i_am_rp(group)}

    def switch_to_spt_desired(self, source: str, group: str) -> bool:
        return self.settings.spt_switchover == "immediate"

    def has_receivers(self, source: str, group: str) -> bool:
        """inherited_olist(S,G) is not empty."""
        g = self._groups.get(group) or GroupState(group)
        return bool(self._macros.inherited_sg(g, g.sources.get(source) or SourceState(source)))

    def spt_bit(self, source: str, group: str) -> bool:
        g = self._groups.get(group)
        s = None if g is None else g.sources.get(source)
        return s is not None and s.spt_bit

    def could_assert(self, source: str | None, group: str, interface: str) -> bool:
        """RFC 7761 4.6.1 CouldAssert(S,G,I), or 4.6.2 CouldAssert(*,G,I) for source None."""
        g = self._groups.get(group)
        return g is not None and self._macros.could_assert(g, source, interface)

    def assert_tracking_desired(self, source: str | None, group: str, interface: str) -> bool:
        """RFC 7761 4.6.1 AssertTrackingDesired(S,G,I), or 4.6.2's (*,G,I) for source None."""
        g = self._groups.get(group)
        return g is not None and self._macros.assert_tracking_desired(g, source, interface)

    def downstream(self, now: float) -> list[dict]:
        """Every downstream machine not in NoInfo, for `mcr pim join`."""
        rows = []
        for group, g in sorted(self._groups.items()):
            machines = [(None, i, d) for i, d in g.star.items()]
            for source, s in sorted(g.sources.items()):
                machines += [(source, i, d) for i, d in [*s.sg.items(), *s.rpt.items()]]
            rows += [{"interface": i, "source": source, "group": group, **d.describe(now)}
                     for source, i, d in machines]
        return rows

    def upstream(self, now: float) -> list[dict]:
        """Upstream state of every entry, for `mcr pim upstream`."""
        rows = []
        for group, g in sorted(self._groups.items()):
            if g.up.state is UpState.JOINED:
                rows.append({"source": None, "group": group, "kind": Kind.STAR_G.value, **g.up.describe(now)})
            for source, s in sorted(g.sources.items()):
                rows.append({"source": source, "group": group, "kind": Kind.SG.value, **s.up.describe(now),
                             "spt_bit": s.spt_bit,
                             "keepalive_left": None if s.keepalive_at is None else max(0.0, s.keepalive_at - now)})
                if s.rpt_up.state is not RptUpState.RPT_NOT_JOINED:
                    rows.append({"source": source, "group": group, "kind": Kind.SG_RPT.value,
                                 **s.rpt_up.describe(now)})
        return rows
