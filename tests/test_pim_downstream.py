"""PIM-SM downstream Join/Prune state (RFC 7761 4.5.2-4.5.4): the machines'
tables one transition at a time, then through PimTree with a fake clock:
Expiry and Prune-Pending timers with the LAN's override interval,
PruneEcho, (S,G,rpt) prunes riding a Join(*,G), and input that is dropped."""

from __future__ import annotations

import pytest

from mcr.protocols.pim_downstream import (JOIN_TABLE, RPT_TABLE, Act, Downstream, Event, JoinState, RptState,
                                          step)
from mcr.protocols.pim_tree_types import Forwarding, Kind
from mcr.protocols.pim_wire import GroupSet, JoinPrune, LanPruneDelay, Source
from pim_tree_fakes import (DOWN, DOWN_NBR, DOWN_NBR2, G, RP, S, UP0_NBR, changed, entries, message, router,
                            star_join)

J, NI, PP = JoinState.JOIN, JoinState.NO_INFO, JoinState.PRUNE_PENDING
P, RPP, PT, PPT, RNI = (RptState.PRUNE, RptState.PRUNE_PENDING, RptState.PRUNE_TMP, RptState.PRUNE_PENDING_TMP,
                        RptState.NO_INFO)


def machine(kind: Kind, state, expires_at=None, prune_pending_at=None) -> Downstream:
    return Downstream(kind, state, expires_at, prune_pending_at)


# --- the tables, one transition each (now=100, holdtime 210, PPT 3 s) ---

JOIN_CASES = [  # (state, ET, PPT, event) -> (state, ET, PPT, PruneEcho)
    ((NI, None, None, Event.JOIN), (J, 310, None, False)),
    ((J, 400, None, Event.JOIN), (J, 400, None, False)),  # ET = max(ET, holdtime)
    ((J, 150, None, Event.JOIN), (J, 310, None, False)),
    ((PP, 150, 102, Event.JOIN), (J, 310, None, False)),  # a Join overrides the pending prune
    ((J, 150, None, Event.PRUNE), (PP, 150, 103, False)),
    ((PP, 150, 102, Event.PRUNE), (PP, 150, 102, False)),  # already pending: unchanged
    ((NI, None, None, Event.PRUNE), (NI, None, None, False)),
    ((PP, 150, 100, Event.PRUNE_PENDING_EXPIRED), (NI, None, None, True)),
    ((J, 100, None, Event.EXPIRED), (NI, None, None, False)),
    ((PP, 100, 102, Event.EXPIRED), (NI, None, None, False)),
]


@pytest.mark.parametrize(("before", "after"), JOIN_CASES)
@pytest.mark.parametrize("kind", [Kind.STAR_G, Kind.SG])
def test_join_machine_transitions(kind, before, after):
    state, et, ppt, event = before
    m = machine(kind, state, et, ppt)
    act = step(m, event, 100.0, holdtime=210, prune_pending_delay=3.0)
    assert (m.state, m.expires_at, m.prune_pending_at, Act.PRUNE_ECHO in act) == after


RPT_CASES = [  # (state, ET, PPT, event) -> (state, ET, PPT)
    ((RNI, None, None, Event.PRUNE_RPT), (RPP, 310, 103)),
    ((RPP, 310, 103, Event.PRUNE_PENDING_EXPIRED), (P, 310, None)),
    ((P, 150, None, Event.PRUNE_RPT), (P, 310, None)),
    ((P, 400, None, Event.PRUNE_RPT), (P, 400, None)),
    ((RPP, 150, 102, Event.PRUNE_RPT), (RPP, 310, 102)),
    ((P, 150, None, Event.JOIN_STAR), (PT, 150, None)),
    ((RPP, 150, 102, Event.JOIN_STAR), (PPT, 150, 102)),
    ((PT, 400, None, Event.PRUNE_RPT), (P, 310, None)),  # restarted, not max()
    ((PPT, 400, 102, Event.PRUNE_RPT), (RPP, 310, 102)),
    ((PT, 150, None, Event.END_OF_MESSAGE), (RNI, None, None)),
    ((PPT, 150, 102, Event.END_OF_MESSAGE), (RNI, None, None)),
    ((P, 150, None, Event.END_OF_MESSAGE), (P, 150, None)),
    ((P, 150, None, Event.JOIN_RPT), (RNI, None, None)),
    ((RPP, 150, 102, Event.JOIN_RPT), (RNI, None, None)),
    ((RNI, None, None, Event.JOIN_RPT), (RNI, None, None)),
    ((PT, 150, None, Event.JOIN_RPT), (RNI, None, None)),
    ((PPT, 150, 102, Event.JOIN_RPT), (RNI, None, None)),
    ((RNI, None, None, Event.JOIN_STAR), (RNI, None, None)),
    ((P, 100, None, Event.EXPIRED), (RNI, None, None)),
    ((RPP, 100, 102, Event.EXPIRED), (RNI, None, None)),
]


@pytest.mark.parametrize(("before", "after"), RPT_CASES)
def test_rpt_machine_transitions(before, after):
    state, et, ppt, event = before
    m = machine(Kind.SG_RPT, state, et, ppt)
    act = step(m, event, 100.0, holdtime=210, prune_pending_delay=3.0)
    assert (m.state, m.expires_at, m.prune_pending_at) == after
    assert Act.PRUNE_ECHO not in act  # 4.5.4 has no PruneEcho


def test_every_table_row_is_exercised():
    assert {(s, e) for (s, _, _, e), _ in JOIN_CASES if (s, e) in JOIN_TABLE} == set(JOIN_TABLE)
    assert {(s, e) for (s, _, _, e), _ in RPT_CASES if (s, e) in RPT_TABLE} == set(RPT_TABLE)


# --- through the tree ---

def test_join_star_creates_state_and_forwarding_until_expiry():
    tree, _ = router()
    out = tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN, holdtime=100))
    [row] = tree.downstream(0.0)
    assert (row["interface"], row["kind"], row["state"], row["expiry_left"]) == ("down", "(*,G)", "Join", 100)
    assert Forwarding("up0", None, G, frozenset({"down"})) in tree.forwarding()
    assert changed(out) == {(None, G)}
    assert entries(out) == {(UP0_NBR, G, RP, "*", True)}  # joined toward the RP at once
    out = tree.receive_join_prune(50.0, "down", DOWN_NBR, star_join(DOWN, holdtime=100))
    assert tree.downstream(50.0)[0]["expiry_left"] == 100  # refreshed to max(ET, holdtime)
    tree.expire(149.9)
    assert tree.downstream(149.9)[0]["state"] == "Join"
    out = tree.expire(150.0)
    assert tree.downstream(150.0) == [] and tree.forwarding() == []
    assert entries(out) == {(UP0_NBR, G, RP, "*", False)}  # nobody left downstream: prune upstream
    assert changed(out) == {(None, G)}


def test_prune_with_one_neighbor_takes_effect_at_once_without_echo():
    tree, _ = router()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    out = tree.receive_join_prune(10.0, "down", DOWN_NBR, message(DOWN, prunes=[(RP, "*")]))
    # PPT = 0 on a link with a single neighbor: the prune is done on return, without PruneEcho
    assert tree.downstream(10.0) == []
    assert not [e for e in entries(out) if e[0] == DOWN]
    assert entries(out) == {(UP0_NBR, G, RP, "*", False)}


def _lan_router(delays=((500, 2500), (500, 2500))):
    tree, view = router()
    pim = view.add("down", DOWN)
    for neighbor, (propagation, override) in zip((DOWN_NBR, DOWN_NBR2), delays):
        from mcr.protocols.pim_wire import Hello
        pim.receive_hello(0.0, neighbor, Hello(105, 1, 7, LanPruneDelay(False, propagation, override)))
    return tree, view


def test_prune_pending_on_a_lan_waits_the_override_interval_then_echoes():
    tree, _ = _lan_router(((400, 2000), (900, 3100)))  # effective: 900 ms + 3100 ms
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    tree.receive_join_prune(10.0, "down", DOWN_NBR, message(DOWN, prunes=[(RP, "*")]))
    [row] = tree.downstream(10.0)
    assert (row["state"], row["prune_pending_left"]) == ("Prune-Pending", pytest.approx(4.0))
    assert tree.expire(13.9) == [] and tree.downstream(13.9)[0]["state"] == "Prune-Pending"
    out = tree.expire(14.0)
    assert tree.downstream(14.0) == []
    # the PruneEcho: a Prune(*,G) addressed to ourselves, on the LAN
    assert (DOWN, G, RP, "*", False) in entries(out, "down")


def test_join_during_prune_pending_overrides_it():
    tree, _ = _lan_router()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    tree.receive_join_prune(10.0, "down", DOWN_NBR, message(DOWN, prunes=[(RP, "*")]))
    out = tree.receive_join_prune(11.0, "down", DOWN_NBR2, star_join(DOWN))  # the other router overrides
    assert tree.downstream(11.0)[0]["state"] == "Join" and tree.downstream(11.0)[0]["prune_pending_left"] is None
    out += tree.expire(20.0)
    assert entries(out) == set()  # no PruneEcho, no upstream prune
    assert Forwarding("up0", None, G, frozenset({"down"})) in tree.forwarding()


def test_sg_join_and_prune_pending():
    tree, _ = _lan_router()
    out = tree.receive_join_prune(0.0, "down", DOWN_NBR, message(DOWN, joins=[(S, "sg")]))
    assert entries(out) == {("10.0.2.2", G, S, "sg", True)}
    assert tree.downstream(0.0)[0]["kind"] == "(S,G)"
    tree.receive_join_prune(5.0, "down", DOWN_NBR, message(DOWN, prunes=[(S, "sg")]))
    out = tree.expire(8.0)  # 0.5 + 2.5 s
    assert tree.downstream(8.0) == []
    assert (DOWN, G, S, "sg", False) in entries(out, "down")  # PruneEcho(S,G)
    assert ("10.0.2.2", G, S, "sg", False) in entries(out, "up1")


def test_rpt_prunes_ride_the_star_join_and_end_of_message_clears_the_rest():
    tree, _ = router()
    other = "192.0.2.20"
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN, prunes=[S, other]))
    tree.expire(0.0)  # PPT 0 with one neighbor: Prune at once
    assert {(r["source"], r["kind"], r["state"]) for r in tree.downstream(0.0)} == {
        (None, "(*,G)", "Join"), (S, "(S,G,rpt)", "Prune"), (other, "(S,G,rpt)", "Prune")}
    # S's packets on the RP tree no longer go down
    assert Forwarding("up0", S, G, frozenset()) in tree.forwarding()
    # the periodic refresh keeps S pruned, but no longer `other`: End of Message
    tree.receive_join_prune(60.0, "down", DOWN_NBR, star_join(DOWN, prunes=[S]))
    assert {(r["source"], r["state"]) for r in tree.downstream(60.0)} == {(None, "Join"), (S, "Prune")}
    assert Forwarding("up0", other, G, frozenset()) not in tree.forwarding()
    # Join(S,G,rpt) undoes the prune
    tree.receive_join_prune(70.0, "down", DOWN_NBR, message(DOWN, joins=[(RP, "*"), (S, "rpt")]))
    assert {r["source"] for r in tree.downstream(70.0)} == {None}


def test_message_to_another_router_makes_no_downstream_state():
    tree, _ = _lan_router()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN_NBR2))
    assert tree.downstream(0.0) == [] and tree.forwarding() == []


@pytest.mark.parametrize(("arguments", "reason"), [
    (("nowhere", DOWN_NBR, star_join(DOWN)), "unknown_interface"),
    (("down", "10.0.3.99", star_join(DOWN)), "not_neighbor"),
    (("down", DOWN, star_join(DOWN)), "own_message"),
    (("down", DOWN_NBR, star_join(DOWN, rp="10.9.9.9")), "wrong_rp"),
    (("down", DOWN_NBR, JoinPrune(DOWN, 210, (GroupSet(G, joins=(Source(RP, wildcard=True),)),))),
     "bad_source_flags"),
    (("down", DOWN_NBR, JoinPrune(DOWN, 210, (GroupSet("10.1.1.1", joins=(Source(S),)),))), "group_range"),
    (("down", DOWN_NBR, JoinPrune(DOWN, 210, (GroupSet("239.0.0.0", (Source(S),), mask_len=8),))),
     "group_range"),
    (("down", DOWN_NBR, JoinPrune(DOWN, 210, (GroupSet(G, joins=(Source(S, mask_len=24),)),))), "bad_source"),
    (("down", DOWN_NBR, JoinPrune(DOWN, 210, (GroupSet(G, joins=(Source("0.0.0.0"),)),))), "bad_source"),
])
def test_bad_input_is_counted_and_changes_nothing(arguments, reason):
    tree, _ = router()
    assert tree.receive_join_prune(0.0, *arguments) == []
    assert tree.counters == {reason: 1}
    assert tree.downstream(0.0) == [] and tree.forwarding() == [] and tree.next_deadline() is None


def test_removed_interface_loses_its_downstream_state():
    tree, view = router()
    tree.receive_join_prune(0.0, "down", DOWN_NBR, star_join(DOWN))
    del view.pims["down"]
    out = tree.interface_changed(1.0, "down")
    assert tree.downstream(1.0) == [] and tree.forwarding() == []
    assert entries(out) == {(UP0_NBR, G, RP, "*", False)}
