"""PIM-SM upstream Join/Prune state (RFC 7761 4.5.6-4.5.9) through PimTree
with a fake clock: the Join Timer's periodic refresh, join suppression and
prune override on a LAN, the (S,G,rpt) Override Timer, RPF' changes and a
neighbor's restart; the messages' assembly and their reading by scapy."""

from __future__ import annotations

import pytest
from scapy.compat import raw
from scapy.contrib.pim import PIMv2Hdr, PIMv2JoinPrune
from scapy.layers.inet import IP

from mcr.mrib import Listening
from mcr.protocols.pim_join_batch import JoinBatch, encoded_source
from mcr.protocols.pim_rpf import Rpf
from mcr.protocols.pim_tree_types import MAX_JOIN_PRUNE_BYTES, Kind, SendJoinPrune, TreeSettings
from mcr.protocols.pim_upstream import UP_TABLE, UpEvent, UpState, Upstream, step
from mcr.protocols.pim_wire import Hello, LanPruneDelay, parse_message
from pim_tree_fakes import (DOWN, DOWN_NBR, G, RP, S, UP0, UP0_NBR, UP1_NBR, entries, message, router, sent,
                            star_join)

OTHER = "10.0.1.3"  # another downstream router on up0, the LAN toward the RP


def joined_star(settings: TreeSettings | None = None, tracking: bool = False, seed: int = 1):
    """A router joined (*,G) toward UP0_NBR for a local receiver, with a
    second router (OTHER) on the upstream LAN."""
    tree, view = router(settings, seed)
    view.add("up0", UP0, UP0_NBR, OTHER, lan_prune_delay=LanPruneDelay(tracking, 500, 2500))
    out = tree.set_membership(0.0, "lan", G, Listening("exclude"))
    assert entries(out) == {(UP0_NBR, G, RP, "*", True)}
    return tree, view


def join_times(tree, until: float, step_s: float = 0.5) -> list[float]:
    """When a Join(*,G) went to UP0_NBR, polling expire every step_s."""
    times, now = [], 0.0
    while now <= until:
        if (UP0_NBR, G, RP, "*", True) in entries(tree.expire(now)):
            times.append(now)
        now = round(now + step_s, 3)
    return times


def test_upstream_table_step():
    up = Upstream()
    assert step(up, UpEvent.JOIN_DESIRED, 0.0, 60, 70, 2) and (up.state, up.join_at) == (UpState.JOINED, 60)
    step(up, UpEvent.SEE_JOIN, 10.0, 60, 70, 2)
    assert up.join_at == 80  # increased to t_joinsuppress
    step(up, UpEvent.SEE_JOIN, 10.0, 60, 5, 2)
    assert up.join_at == 80  # never decreased by a Join
    step(up, UpEvent.SEE_PRUNE, 20.0, 60, 70, 2)
    assert up.join_at == 22  # decreased to t_override
    step(up, UpEvent.JOIN_NOT_DESIRED, 21.0, 60, 70, 2)
    assert (up.state, up.join_at) == (UpState.NOT_JOINED, None)
    assert all(state in UpState for state, _ in UP_TABLE)


def test_join_timer_refreshes_every_period_with_its_holdtime():
    tree, _ = joined_star()
    assert join_times(tree, 130) == [60.0, 120.0]
    out = tree.set_membership(130.0, "lan", G, None)
    [(interface, msg)] = sent(out)
    assert interface == "up0" and msg.holdtime == 210
    assert entries(out) == {(UP0_NBR, G, RP, "*", False)}
    assert join_times(tree, 400) == []  # JT cancelled


def test_periodic_joins_to_one_neighbor_fall_into_step():
    tree, view = joined_star()
    g2 = "239.1.1.2"
    view.rps[g2] = RP
    tree.set_membership(20.0, "lan", g2, Listening("exclude"))  # its JT would fire at 80
    out = tree.expire(60.0)
    assert len(sent(out)) == 1  # both groups in one message, the second 20 s early
    assert entries(out) == {(UP0_NBR, G, RP, "*", True), (UP0_NBR, g2, RP, "*", True)}
    assert sent(tree.expire(119.9)) == []
    out = tree.expire(120.0)
    assert len(sent(out)) == 1 and len(entries(out)) == 2


def test_period_and_holdtime_are_settings():
    tree, _ = joined_star(TreeSettings(join_prune_period=10))
    assert join_times(tree, 25) == [10.0, 20.0]
    tree, _ = joined_star(TreeSettings(join_prune_period=10, join_prune_holdtime=100))
    [(_, msg)] = sent(tree.expire(10.0))
    assert msg.holdtime == 100


def test_another_routers_join_suppresses_ours():
    tree, _ = joined_star()
    tree.receive_join_prune(30.0, "up0", OTHER, star_join(UP0_NBR))
    [first] = join_times(tree, 130)
    # t_joinsuppress: random in [1.1, 1.4] x 60 s after the join we saw
    assert 30 + 66 <= first <= 30 + 84


def test_suppression_is_bounded_by_the_seen_holdtime():
    tree, _ = joined_star()
    tree.receive_join_prune(50.0, "up0", OTHER, star_join(UP0_NBR, holdtime=20))
    assert join_times(tree, 80) == [70.0]  # max(JT=60, 50 + min(t_suppressed, 20))


def test_no_suppression_when_every_neighbor_tracks():
    tree, _ = joined_star(tracking=True)
    tree.receive_join_prune(30.0, "up0", OTHER, star_join(UP0_NBR))
    assert join_times(tree, 61) == [60.0]


def test_another_routers_prune_is_overridden_within_t_override():
    tree, _ = joined_star()
    tree.receive_join_prune(30.0, "up0", OTHER, message(UP0_NBR, prunes=[(RP, "*")]))
    [first, *_] = join_times(tree, 61, step_s=0.1)
    assert 30.0 <= first <= 32.5  # Effective_Override_Interval 2.5 s


def test_prune_rpt_seen_on_the_lan_is_overridden_by_a_join_rpt():
    tree, _ = joined_star()
    out = tree.receive_join_prune(30.0, "up0", OTHER, message(UP0_NBR, prunes=[(S, "rpt")]))
    assert entries(out) == set()
    [row] = [r for r in tree.upstream(30.0) if r["kind"] == "(S,G,rpt)"]
    assert row["state"] == "NotPruned" and 0 <= row["override_timer_left"] <= 2.5
    out = tree.expire(32.5)
    assert (UP0_NBR, G, S, "rpt", True) in entries(out)
    assert [r for r in tree.upstream(33.0) if r["kind"] != "(*,G)"] == []  # nothing left to hold


def test_join_rpt_seen_cancels_our_override():
    tree, _ = joined_star()
    tree.receive_join_prune(30.0, "up0", OTHER, message(UP0_NBR, prunes=[(S, "rpt")]))
    tree.receive_join_prune(30.1, "up0", OTHER, message(UP0_NBR, joins=[(RP, "*"), (S, "rpt")]))
    assert not any(e[3] == "rpt" for e in entries(tree.expire(33.0)))


def test_restarted_neighbor_gets_a_join_within_t_override():
    tree, _ = joined_star()
    tree.neighbor_changed(10.0, "up0", OTHER, "restarted")  # not our RPF': nothing
    tree.neighbor_changed(20.0, "up0", UP0_NBR, "restarted")
    [first, *_] = join_times(tree, 61, step_s=0.1)
    assert 20.0 <= first <= 22.5


def test_unknown_neighbor_change_is_refused():
    tree, _ = joined_star()
    with pytest.raises(ValueError, match="up, down or restarted"):
        tree.neighbor_changed(1.0, "up0", UP0_NBR, "rebooted")


def test_rpf_change_prunes_the_old_neighbor_and_joins_the_new():
    tree, view = joined_star()
    view.routes[RP] = Rpf("down", DOWN_NBR)
    out = tree.routing_changed(5.0)
    assert entries(out) == {(UP0_NBR, G, RP, "*", False), (DOWN_NBR, G, RP, "*", True)}
    assert [r["rpf_interface"] for r in tree.upstream(5.0)] == ["down"]
    assert join_times(tree, 70) == []  # (toward UP0_NBR)


def test_rpf_change_by_assert_only_hastens_the_join():
    tree, view = joined_star()
    view.winners[(None, G, "up0")] = OTHER
    out = tree.routing_changed(5.0)
    assert entries(out) == set()
    out = tree.expire(7.5)
    assert entries(out) == {(OTHER, G, RP, "*", True)}  # RPF'(*,G) is the Assert winner


def test_new_rp_behind_the_same_neighbor_prunes_the_old_and_joins_the_new():
    tree, view = joined_star()
    view.rps[G] = "10.255.0.2"
    view.routes["10.255.0.2"] = Rpf("up0", UP0_NBR)
    out = tree.routing_changed(5.0)
    assert len(sent(out)) == 1  # prune and join in one message
    assert entries(out) == {(UP0_NBR, G, RP, "*", False), (UP0_NBR, G, "10.255.0.2", "*", True)}


def test_rpf_change_takes_the_rpt_prunes_to_the_new_neighbor():
    tree, view = joined_star()
    tree.data_arrived(1.0, S, G, "up0")
    tree.data_arrived(1.5, S, G, "up1")  # on the SPT, S pruned off the RP tree
    view.routes[RP] = Rpf("down", DOWN_NBR)
    out = tree.routing_changed(5.0)
    assert {(DOWN_NBR, G, RP, "*", True), (DOWN_NBR, G, S, "rpt", False)} <= entries(out)


def test_rpf_neighbor_gone_leaves_the_tree_and_back_rejoins():
    tree, view = joined_star()
    view.pims["up0"].receive_hello(5.0, UP0_NBR, Hello(holdtime=0))  # goodbye
    out = tree.neighbor_changed(5.0, "up0", UP0_NBR, "down")
    assert [r for r in tree.upstream(5.0) if r["kind"] == "(*,G)"] == []  # no PIM neighbor: NBR() is NULL
    assert entries(out) == {(UP0_NBR, G, RP, "*", False)}
    view.pims["up0"].receive_hello(9.0, UP0_NBR, Hello(105, 1, 8, LanPruneDelay(False, 500, 2500)))
    out = tree.neighbor_changed(9.0, "up0", UP0_NBR, "up")
    assert entries(out) == {(UP0_NBR, G, RP, "*", True)}


def test_next_hop_named_by_a_secondary_address_gets_joins_at_its_primary():
    tree, view = router()
    view.pims["up0"].receive_hello(0.0, UP0_NBR, Hello(105, 1, 7, addresses=("10.0.1.102",)))
    view.routes[RP] = Rpf("up0", "10.0.1.102")
    out = tree.set_membership(0.0, "lan", G, Listening("exclude"))
    assert entries(out) == {(UP0_NBR, G, RP, "*", True)}


def test_unreachable_rp_leaves_the_tree():
    tree, view = joined_star()
    del view.routes[RP]
    out = tree.routing_changed(5.0)
    assert entries(out) == {(UP0_NBR, G, RP, "*", False)}
    assert tree.forwarding() == []


def test_sg_join_goes_toward_the_source_and_refreshes():
    tree, _ = router()
    out = tree.receive_join_prune(0.0, "down", DOWN_NBR, message(DOWN, joins=[(S, "sg")]))
    assert entries(out) == {(UP1_NBR, G, S, "sg", True)}
    assert entries(tree.expire(60.0)) == {(UP1_NBR, G, S, "sg", True)}


def test_prune_star_seen_hastens_the_sg_join():
    tree, view = router()
    view.add("up1", "10.0.2.1", UP1_NBR, "10.0.2.3")
    tree.receive_join_prune(0.0, "down", DOWN_NBR, message(DOWN, joins=[(S, "sg")]))
    tree.receive_join_prune(30.0, "up1", "10.0.2.3", message(UP1_NBR, prunes=[(RP, "*")]))
    out = tree.expire(32.5)
    assert (UP1_NBR, G, S, "sg", True) in entries(out)


# --- message assembly ---

def test_many_entries_fill_as_few_messages_as_fit():
    batch = JoinBatch()
    groups = [f"239.2.{i // 250}.{i % 250}" for i in range(400)]
    for i, group in enumerate(groups):
        batch.add("up0", UP0_NBR, group, encoded_source(Kind.SG, f"192.0.2.{i % 200 + 1}"), join=True)
    out = batch.messages(210)
    assert all(isinstance(o, SendJoinPrune) and len(o.payload) <= MAX_JOIN_PRUNE_BYTES for o in out)
    # 14 bytes of header, then 20 per one-source group: 69 groups a message
    assert len(out) == 6 and not batch
    parsed = [parse_message(o.payload) for o in out]
    assert [g.group for m in parsed for g in m.groups] == groups


def test_one_huge_group_is_split_with_its_star_join_first():
    batch = JoinBatch()
    batch.add("up0", UP0_NBR, G, encoded_source(Kind.STAR_G, RP), join=True)
    for i in range(300):
        batch.add("up0", UP0_NBR, G, encoded_source(Kind.SG_RPT, f"192.0.{i // 200}.{i % 200 + 1}"), join=False)
    messages = [parse_message(o.payload) for o in batch.messages(210)]
    assert len(messages) == 2 and messages[0].groups[0].joins[0].wildcard
    assert sum(len(g.prunes) for m in messages for g in m.groups) == 300


def test_join_then_prune_of_one_source_keeps_the_later():
    batch = JoinBatch()
    batch.add("up0", UP0_NBR, G, encoded_source(Kind.SG, S), join=True)
    batch.add("up0", UP0_NBR, G, encoded_source(Kind.SG, S), join=False)
    [msg] = [parse_message(o.payload) for o in batch.messages(210)]
    assert msg.groups[0].joins == () and len(msg.groups[0].prunes) == 1


# --- scapy reads every message shape we send ---

def _scapy(out) -> list:
    return [PIMv2Hdr(o.payload) for o in out if isinstance(o, SendJoinPrune)]


def test_scapy_reads_our_star_join():
    tree, _ = router()
    [packet] = _scapy(tree.set_membership(0.0, "lan", G, Listening("exclude")))
    body = packet[PIMv2JoinPrune]
    assert (packet.type, body.up_neighbor_ip, body.holdtime, body.num_group) == (3, UP0_NBR, 210, 1)
    [group] = body.jp_ips
    [source] = group.join_ips
    assert (group.gaddr, group.num_joins, group.num_prunes) == (G, 1, 0)
    assert (source.src_ip, source.sparse, source.wildcard, source.rpt, source.mask_len) == (RP, 1, 1, 1, 32)


def test_scapy_reads_our_sg_join():
    tree, _ = router()
    [packet] = _scapy(tree.receive_join_prune(0.0, "down", DOWN_NBR, message(DOWN, joins=[(S, "sg")])))
    body = packet[PIMv2JoinPrune]
    assert body.up_neighbor_ip == UP1_NBR
    [source] = body.jp_ips[0].join_ips
    assert (source.src_ip, source.sparse, source.wildcard, source.rpt) == (S, 1, 0, 0)


def test_scapy_reads_our_rpt_prune():
    tree, _ = router()
    tree.set_membership(0.0, "lan", G, Listening("exclude"))
    tree.data_arrived(1.0, S, G, "up0")
    [payload] = [o.payload for o in tree.data_arrived(1.5, S, G, "up1") if isinstance(o, SendJoinPrune)]
    packet = PIMv2Hdr(payload)  # on the SPT: S pruned off the RP tree
    body = packet[PIMv2JoinPrune]
    assert body.up_neighbor_ip == UP0_NBR
    [group] = body.jp_ips
    [source] = group.prune_ips
    assert (group.num_joins, group.num_prunes) == (0, 1)
    assert (source.src_ip, source.sparse, source.wildcard, source.rpt) == (S, 1, 0, 1)
    del packet.chksum  # scapy recomputes it: ours must be the same
    assert raw(IP(src=UP0, dst="224.0.0.13") / packet)[20:] == payload


# --- settings ---

def test_settings_defaults():
    s = TreeSettings()
    assert (s.join_prune_period, s.join_prune_holdtime, s.keepalive_period, s.rp_keepalive_period,
            s.spt_switchover) == (60.0, 210, 210.0, 185.0, "immediate")
    assert TreeSettings(join_prune_period=30).join_prune_holdtime == 105


@pytest.mark.parametrize("bad", [{"join_prune_period": 0}, {"join_prune_period": 20000},
                                 {"join_prune_holdtime": 1.5}, {"join_prune_holdtime": 70000},
                                 {"keepalive_period": -1}, {"rp_keepalive_period": True},
                                 {"spt_switchover": "sometimes"}])
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TreeSettings(**bad)


def test_the_given_random_source_makes_runs_repeat():
    a, _ = joined_star(seed=5)
    b, _ = joined_star(seed=5)
    for tree in (a, b):
        tree.receive_join_prune(30.0, "up0", OTHER, star_join(UP0_NBR))
    assert join_times(a, 130) == join_times(b, 130)
