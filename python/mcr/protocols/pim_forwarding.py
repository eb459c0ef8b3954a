"""RFC 7761 4.2 data packet forwarding rules, turned into data-plane
entries: per group, what a packet of (S,G) or (*,G) arriving on an
interface should do, read from the tree's state through the macros.

Per source with state:
  - on RPF_interface(S), once SPTbit(S,G) is set (or the first packet
    would set it, 4.2 Update_SPTbit): inherited_olist(S,G);
  - on RPF_interface(RP(G)) while SPTbit(S,G) is clear: inherited_olist(S,G,rpt);
    once it is set, an entry with no outputs, so the (*,G) entry does not
    forward S's packets from the RP tree (the last hop after its switch, and
    the RP dropping Registers of a source it receives natively).
And per group, (*,G) on RPF_interface(RP(G)): inherited_olist(S,G,rpt) of a
source without state, which is immediate_olist(*,G) (REGISTER_VIF at the RP).
"""

from __future__ import annotations

from .pim_macros import GroupState, Macros, SourceState
from .pim_tree_types import Forwarding


def spt_bit_would_set(m: Macros, g: GroupState, s: SourceState, iif: str) -> bool:
    """4.2 Update_SPTbit(S,G,iif)'s condition."""
    s_if = m.rpf_interface(s.source)
    if iif != s_if or not m.join_desired_sg(g, s):
        return False
    rpf_sg = m.rpf_sg(g.group, s.source)
    return (m.directly_connected(s.source)
            or s_if != m.rp_interface(g.group)
            or not m.inherited_rpt(g, s, s.source)
            or (rpf_sg is not None and rpf_sg == m.rpf_star(g))
            or m.view.lost_assert(s.source, g.group, iif))


def switch_desired(m: Macros, g: GroupState, source: str, spt_switchover: str) -> bool:
    """CheckSwitchToSpt would restart the KAT (4.2.1)."""
    return spt_switchover == "immediate" and m.receivers_want(g.group, source)


def source_entries(m: Macros, g: GroupState, s: SourceState, spt_switchover: str) -> frozenset[Forwarding]:
    entries = set()
    s_if, rp_if = m.rpf_interface(s.source), m.rp_interface(g.group)
    on_spt = s_if is not None and (s.spt_bit or spt_bit_would_set(m, g, s, s_if))
    if on_spt:
        # notify until the SPT bit is set: the first packet sets it (4.2)
        entries.add(Forwarding(s_if, s.source, g.group, m.inherited_sg(g, s) - {s_if}, notify=not s.spt_bit))
    if rp_if is not None and not (on_spt and rp_if == s_if):
        outputs = frozenset() if s.spt_bit else m.inherited_rpt(g, s, s.source) - {rp_if}
        notify = (not s.spt_bit and s.keepalive_at is None
                  and switch_desired(m, g, s.source, spt_switchover))
        entries.add(Forwarding(rp_if, s.source, g.group, outputs, notify))
    return frozenset(entries)


def star_entries(m: Macros, g: GroupState, spt_switchover: str) -> frozenset[Forwarding]:
    rp_if = m.rp_interface(g.group)
    if rp_if is None:
        return frozenset()
    outputs = m.immediate_star(g) - {rp_if}
    # new sources are reported where local receivers would switch to the SPT
    notify = spt_switchover == "immediate" and bool(m.pim_include_star(g.group))
    if not outputs and not notify:
        return frozenset()
    return frozenset({Forwarding(rp_if, None, g.group, outputs, notify)})


def group_entries(m: Macros, g: GroupState, spt_switchover: str) -> dict[str | None, frozenset[Forwarding]]:
    """Every entry of group `g`, by source (None: the (*,G) entry)."""
    out: dict[str | None, frozenset[Forwarding]] = {}
    star = star_entries(m, g, spt_switchover)
    if star:
        out[None] = star
    for source, s in g.sources.items():
        entries = source_entries(m, g, s, spt_switchover)
        if entries:
            out[source] = entries
    return out
