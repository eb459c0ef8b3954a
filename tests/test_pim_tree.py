"""PIM-SM forwarding (RFC 7761 4.1.6 macros, 4.2 forwarding rules, 4.2.1
SPT switchover, 4.4.2's KAT at the RP) through PimTree with a fake view:
the entries a last-hop router exports before and after the switch, at the
RP, at an intermediate router; local membership and the DR; the KAT."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from mcr.mrib import Listening
from mcr.protocols.pim_rpf import REGISTER_VIF, Rpf
from mcr.protocols.pim_tree_types import MAX_JOIN_PRUNE_BYTES, Forwarding, SendJoinPrune, TreeSettings
from mcr.protocols.pim_wire import JoinPrune, parse_message
from pim_tree_fakes import (DOWN, DOWN_NBR, G, LAN, RP, S, UP0_NBR, UP1_NBR, at_rp, changed, entries, message,
                            router, star_join)

ALL = Listening("exclude")


def fwd(interface, source, outputs, notify=False):
    return Forwarding(interface, source, G, frozenset(outputs), notify)


def last_hop(settings: TreeSettings | None = None):
    tree, view = router(settings)
    tree.set_membership(0.0, "lan", G, ALL)
    return tree, view


def test_last_hop_that_never_switches_forwards_the_rp_tree_only():
    tree, _ = last_hop(TreeSettings(spt_switchover="never"))
    assert tree.forwarding() == [fwd("up0", None, {"lan"})]
    out = tree.data_arrived(1.0, S, G, "up0")
    assert entries(out) == set() and tree.forwarding() == [fwd("up0", None, {"lan"})]


def test_last_hop_switches_to_the_spt_and_prunes_the_source_off_the_rp_tree():
    tree, _ = last_hop()
    # new sources are reported, for the switch (4.2.1)
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True)]
    out = tree.data_arrived(1.0, S, G, "up0")  # the first packet, down the RP tree
    assert entries(out) == {(UP1_NBR, G, S, "sg", True)}  # KAT on, JoinDesired(S,G): join the SPT
    assert changed(out) == {(S, G)}
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True), fwd("up0", S, {"lan"}),
                                 fwd("up1", S, {"lan"}, notify=True)]  # the first SPT packet sets the SPT bit
    assert not tree.spt_bit(S, G)
    out = tree.data_arrived(1.5, S, G, "up1")
    assert tree.spt_bit(S, G)
    # S's packets still coming down the RP tree are dropped by an (S,G) entry there
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True), fwd("up0", S, set()),
                                 fwd("up1", S, {"lan"})]
    assert entries(out) == {(UP0_NBR, G, S, "rpt", False)}
    # the periodic Join(*,G) carries the Prune(S,G,rpt) (4.5.9)
    assert entries(tree.expire(60.0)) == {(UP0_NBR, G, RP, "*", True), (UP0_NBR, G, S, "rpt", False)}


def test_source_going_quiet_returns_to_the_rp_tree():
    tree, _ = last_hop()
    tree.data_arrived(1.0, S, G, "up0")
    tree.data_arrived(1.5, S, G, "up1")
    tree.keepalive(100.0, S, G)
    assert [r["keepalive_left"] for r in tree.upstream(100.0) if r["kind"] == "(S,G)"] == [210.0]
    out = tree.expire(309.9)
    assert (UP1_NBR, G, S, "sg", False) not in entries(out)
    out = tree.expire(310.0)
    # KAT expired: leave the SPT, clear the SPT bit, undo the (S,G,rpt) prune
    assert {(UP1_NBR, G, S, "sg", False), (UP0_NBR, G, S, "rpt", True)} <= entries(out)
    assert not tree.spt_bit(S, G)
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True)]
    assert changed(out) == {(S, G)}


def test_same_interface_to_source_and_rp_switches_when_rpf_neighbors_agree():
    tree, view = last_hop()
    view.routes[S] = Rpf("up0", UP0_NBR)  # S behind the RP's neighbor too
    tree.data_arrived(1.0, S, G, "up0")
    # first packet started the KAT; the next one sets the SPT bit (RPF'(S,G) == RPF'(*,G))
    assert fwd("up0", S, {"lan"}, notify=True) in tree.forwarding()
    out = tree.data_arrived(1.1, S, G, "up0")
    assert tree.spt_bit(S, G)
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True), fwd("up0", S, {"lan"})]
    assert not any(e[3] == "rpt" for e in entries(out))  # nothing to prune: the trees are one


def test_rp_forwards_decapsulated_registers_then_the_native_spt():
    tree, view = router()
    at_rp(view)
    out = tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    assert entries(out) == set()  # the RP joins no one for (*,G)
    assert tree.forwarding() == [fwd(REGISTER_VIF, None, {"down"})]
    assert not tree.register_stop_wanted(S, G)
    out = tree.register_received(1.0, S, G)
    assert entries(out) == {(UP1_NBR, G, S, "sg", True)}  # the RP joins the SPT toward S
    [row] = [r for r in tree.upstream(1.0) if r["kind"] == "(S,G)"]
    assert row["keepalive_left"] == 210.0  # no Register-Stop yet: Keepalive_Period
    assert fwd(REGISTER_VIF, S, {"down"}) in tree.forwarding()
    tree.data_arrived(1.2, S, G, "up1")  # native packets arrive
    assert tree.spt_bit(S, G) and tree.register_stop_wanted(S, G)
    assert tree.forwarding() == [fwd(REGISTER_VIF, None, {"down"}), fwd(REGISTER_VIF, S, set()),
                                 fwd("up1", S, {"down"})]
    tree.register_received(2.0, S, G)
    [row] = [r for r in tree.upstream(2.0) if r["kind"] == "(S,G)"]
    assert row["keepalive_left"] == 185.0  # RP_Keepalive_Period once Register-Stop goes


def test_rp_without_receivers_wants_registers_stopped():
    tree, view = router()
    at_rp(view)
    tree.register_received(1.0, S, G)
    assert tree.register_stop_wanted(S, G)
    assert tree.forwarding() == [fwd(REGISTER_VIF, S, set())]
    assert tree.register_received(1.0, "192.0.2.99", "239.9.9.9") == []
    assert tree.counters == {"register_not_rp": 1}


def test_intermediate_router_on_an_sg_join():
    tree, _ = router()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, message(DOWN, joins=[(S, "sg")]))
    assert tree.forwarding() == [fwd("up0", S, set()), fwd("up1", S, {"down"}, notify=True)]
    tree.data_arrived(1.0, S, G, "up1")
    assert tree.spt_bit(S, G)
    assert tree.forwarding() == [fwd("up0", S, set()), fwd("up1", S, {"down"})]
    tree.data_arrived(2.0, S, G, "down")
    assert tree.counters == {"data_wrong_interface": 1}
    assert tree.could_assert(S, G, "down") and not tree.could_assert(S, G, "up1")


def test_intermediate_router_on_the_rp_tree_with_a_pruned_source():
    tree, _ = router()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    tree.set_membership(0.0, "lan", G, ALL)
    tree.receive_join_prune(1.0, "down", DOWN_NBR, star_join(DOWN, prunes=[S]))
    tree.expire(1.0)
    # S goes on to the local receivers but not down the pruned interface; its
    # packets are reported, for the local receivers' switch to the SPT
    assert fwd("up0", S, {"lan"}, notify=True) in tree.forwarding()
    assert fwd("up0", None, {"down", "lan"}, notify=True) in tree.forwarding()


def test_joins_on_the_incoming_interface_never_send_packets_back_out_of_it():
    tree, _ = last_hop()
    tree.receive_join_prune(0.0, "up0", UP0_NBR, star_join("10.0.1.1"))  # a Join(*,G) from upstream itself
    tree.receive_join_prune(0.0, "up1", UP1_NBR, message("10.0.2.1", joins=[(S, "sg")]))
    tree.data_arrived(1.0, S, G, "up0")
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True), fwd("up0", S, {"lan"}),
                                 fwd("up1", S, {"lan", "up0"}, notify=True)]


def test_membership_counts_only_where_we_are_dr():
    tree, view = router()
    view.add("lan", LAN, "10.0.9.9", neighbor_priority=5)  # a neighbor outranks us: it is DR
    out = tree.set_membership(0.0, "lan", G, ALL)
    assert entries(out) == set() and tree.forwarding() == []
    view.add("lan", LAN, "10.0.9.9", neighbor_priority=0)
    out = tree.interface_changed(1.0, "lan")
    assert entries(out) == {(UP0_NBR, G, RP, "*", True)}
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True)]


def test_include_mode_joins_the_sources_named():
    tree, _ = router()
    out = tree.set_membership(0.0, "lan", G, Listening("include", frozenset({S})))
    assert entries(out) == {(UP1_NBR, G, S, "sg", True)}
    assert fwd("up1", S, {"lan"}, notify=True) in tree.forwarding()
    assert not any(f.source is None for f in tree.forwarding())
    out = tree.set_membership(5.0, "lan", G, None)
    assert entries(out) == {(UP1_NBR, G, S, "sg", False)} and tree.forwarding() == []


def test_exclude_mode_keeps_excluded_sources_off_the_interface():
    tree, _ = router(TreeSettings(spt_switchover="never"))
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    tree.set_membership(0.0, "lan", G, Listening("exclude", frozenset({S})))
    assert fwd("up0", None, {"down", "lan"}) in tree.forwarding()
    assert fwd("up0", S, {"down"}) in tree.forwarding()


def test_lost_assert_removes_the_interface():
    tree, view = last_hop()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    view.lost.add((None, G, "down"))
    out = tree.routing_changed(1.0)
    assert changed(out) == {(None, G)}
    assert tree.forwarding() == [fwd("up0", None, {"lan"}, notify=True)]
    assert tree.could_assert(None, G, "lan") and tree.could_assert(None, G, "down")  # joins(*,G) still holds it
    assert not tree.could_assert(None, G, "up0")  # never on RPF_interface(RP(G))


def test_unknown_rp_makes_no_star_entry():
    tree, view = router()
    del view.rps[G]
    tree.set_membership(0.0, "lan", G, ALL)
    assert tree.forwarding() == [] and tree.upstream(0.0) == []
    view.rps[G] = RP
    out = tree.routing_changed(1.0)
    assert entries(out) == {(UP0_NBR, G, RP, "*", True)} and changed(out) == {(None, G)}


def test_directly_connected_source_starts_the_kat_at_its_first_hop():
    tree, view = router()
    view.routes[S] = Rpf("lan", None)
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    tree.data_arrived(1.0, S, G, "lan")
    assert tree.spt_bit(S, G)
    assert fwd("lan", S, {"down"}) in tree.forwarding()
    [row] = [r for r in tree.upstream(1.0) if r["kind"] == "(S,G)"]
    assert (row["state"], row["rpf_neighbor"], row["keepalive_left"]) == ("Joined", None, 210.0)


@pytest.mark.parametrize(("call", "reason"), [
    (lambda t: t.data_arrived(0.0, S, "10.1.1.1", "up0"), "bad_data_address"),
    (lambda t: t.data_arrived(0.0, "239.9.9.9", G, "up0"), "bad_data_address"),
    (lambda t: t.keepalive(0.0, S, G), "keepalive_unknown"),
    (lambda t: t.set_membership(0.0, "lan", "10.1.1.1", ALL), "bad_group"),
])
def test_bad_input_is_counted(call, reason):
    tree, _ = router()
    assert call(tree) == []
    assert tree.counters == {reason: 1} and tree.forwarding() == []


def test_rows_for_the_cli():
    tree, _ = last_hop()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, message(DOWN, joins=[(S, "sg")]))
    assert tree.downstream(10.0) == [{"interface": "down", "source": S, "group": G, "kind": "(S,G)",
                                      "state": "Join", "expiry_left": 200.0, "prune_pending_left": None}]
    assert tree.upstream(10.0) == [
        {"source": None, "group": G, "kind": "(*,G)", "state": "Joined", "rpf_interface": "up0",
         "rpf_neighbor": UP0_NBR, "join_timer_left": 50.0},
        {"source": S, "group": G, "kind": "(S,G)", "state": "Joined", "rpf_interface": "up1",
         "rpf_neighbor": UP1_NBR, "join_timer_left": 50.0, "spt_bit": False, "keepalive_left": None},
        {"source": S, "group": G, "kind": "(S,G,rpt)", "state": "NotPruned", "rpf_interface": "up0",
         "rpf_neighbor": UP0_NBR, "override_timer_left": None}]
    assert tree.next_deadline() == 60.0


# --- any sequence of inputs keeps the invariants, and state drains away ---

S2, G2 = "192.0.2.20", "239.1.1.2"
SENDERS = {"down": (DOWN, DOWN_NBR), "up0": ("10.0.1.1", UP0_NBR), "up1": ("10.0.2.1", UP1_NBR)}
_entry = st.tuples(st.sampled_from(["*", "sg", "rpt"]), st.sampled_from([S, S2]), st.booleans())
_input = st.one_of(
    st.tuples(st.just("jp"), st.sampled_from(sorted(SENDERS)), st.booleans(), st.sampled_from([G, G2]),
              st.lists(_entry, max_size=4), st.sampled_from([30, 210])),
    st.tuples(st.just("member"), st.sampled_from([G, G2]),
              st.sampled_from([None, ALL, Listening("include", frozenset({S})),
                               Listening("exclude", frozenset({S2}))])),
    st.tuples(st.just("data"), st.sampled_from([S, S2]), st.sampled_from([G, G2]),
              st.sampled_from(["up0", "up1", "down", "lan"])),
    st.tuples(st.just("keepalive"), st.sampled_from([S, S2]), st.sampled_from([G, G2])),
    st.tuples(st.just("reroute"), st.sampled_from(["up0", "down"])),
    st.tuples(st.just("restart"), st.sampled_from(sorted(SENDERS))),
    st.tuples(st.just("wait"), st.floats(0, 100)))


def _apply(tree, view, now, step):
    kind = step[0]
    if kind == "jp":
        _, interface, to_us, group, listed, holdtime = step
        ours, neighbor = SENDERS[interface]
        joins = [(RP if k == "*" else s, k) for k, s, j in listed if j]
        prunes = [(RP if k == "*" else s, k) for k, s, j in listed if not j]
        return tree.receive_join_prune(now, interface, neighbor,
                                       message(ours if to_us else "10.0.0.99", joins, prunes, group, holdtime))
    if kind == "member":
        return tree.set_membership(now, "lan", step[1], step[2])
    if kind == "data":
        return tree.data_arrived(now, step[1], step[2], step[3])
    if kind == "keepalive":
        return tree.keepalive(now, step[1], step[2])
    if kind == "reroute":
        view.routes[RP] = Rpf(step[1], UP0_NBR if step[1] == "up0" else DOWN_NBR)
        return tree.routing_changed(now)
    if kind == "restart":
        return tree.neighbor_changed(now, step[1], SENDERS[step[1]][1], "restarted")
    return tree.expire(now)


def _check(tree, view, out):
    for o in out:
        if isinstance(o, SendJoinPrune):
            assert len(o.payload) <= MAX_JOIN_PRUNE_BYTES
            assert isinstance(parse_message(o.payload), JoinPrune)
    for f in tree.forwarding():
        assert f.interface not in f.outputs and f.outputs <= set(view.pims)


@hypothesis_settings(max_examples=150, deadline=None)
@given(st.lists(_input, max_size=25))
def test_any_inputs_keep_the_invariants_and_drain_away(steps):
    tree, view = router()
    now = 0.0
    for step in steps:
        if step[0] == "wait":
            now += step[1]
        _check(tree, view, _apply(tree, view, now, step))
    for group in (G, G2):
        _check(tree, view, tree.set_membership(now, "lan", group, None))
    _check(tree, view, tree.expire(now + 1000))
    assert tree.forwarding() == [] and tree.downstream(now + 1000) == [] and tree.upstream(now + 1000) == []
    assert tree.next_deadline() is None
