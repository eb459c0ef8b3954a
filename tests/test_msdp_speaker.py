"""The MSDP speaker (RFC 3618) without sockets: peer-RPF (10.1.3), mesh
groups (10.2), filters, the cache's timeouts and bound, origination at
once and every period, a new peer's catch-up, data carried along, and two
anycast RPs wired back to back."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, strategies as st

from mcr.protocols.msdp_config import MsdpConfig, MsdpPeerConfig
from mcr.protocols.msdp_filter import SaFilter
from mcr.protocols.msdp_speaker import MsdpSpeaker
from mcr.protocols.msdp_wire import SourceActive, StreamDecoder

ME = "10.0.0.1"
P1, P2, P3 = "10.0.1.2", "10.0.2.2", "10.0.3.2"
FAR_RP = "10.9.9.9"
S, G = "192.0.2.10", "239.1.1.1"


class Harness:
    def __init__(self, peers, routes=None, **settings):
        self.sent: list[tuple[str, SourceActive]] = []
        self.sas: list[tuple] = []
        self.events: list[dict] = []
        self.changes = 0
        config = MsdpConfig(originator=ME, peers=tuple(peers), **settings)
        self.routes = routes or {}
        self.speaker = MsdpSpeaker(config, self.routes.get, self._send, lambda *a: self.sas.append(a),
                                   self._changed, lambda event, **f: self.events.append({"event": event, **f}))

    def _send(self, peer, data):
        for message in StreamDecoder().feed(data):
            self.sent.append((peer, message))

    def _changed(self):
        self.changes += 1

    def to(self, peer):
        return [m for p, m in self.sent if p == peer]


def peer(address, local=ME, **kwargs):
    return MsdpPeerConfig(address, local, **kwargs)


def up(h, *peers, now=0.0):
    for p in peers:
        h.speaker.peer_up(now, p)


def test_rule_1_the_originating_rp_itself_is_accepted():
    h = Harness([peer(P1), peer(P2)])
    up(h, P1, P2)
    h.speaker.sa_received(1.0, P1, SourceActive(P1, ((S, G),)))
    assert (S, G) in h.speaker.learned() and h.sas == [(1.0, S, G, P1, b"")]
    assert h.to(P2) == [SourceActive(P1, ((S, G),))]  # forwarded to the other peer
    assert h.to(P1) == []  # never back to the sender


def test_rule_4_the_next_hop_toward_the_rp_is_accepted_others_are_not():
    h = Harness([peer(P1), peer(P2)], routes={FAR_RP: P2})
    up(h, P1, P2)
    h.speaker.sa_received(1.0, P1, SourceActive(FAR_RP, ((S, G),)))
    assert h.speaker.learned() == {} and h.speaker.counters["sa_rpf_failed"] == 1
    h.speaker.sa_received(1.0, P2, SourceActive(FAR_RP, ((S, G),)))
    assert h.speaker.learned()[(S, G)].peer == P2


def test_rule_3_the_only_peer_is_accepted():
    h = Harness([peer(P1)])
    h.speaker.sa_received(1.0, P1, SourceActive(FAR_RP, ((S, G),)))
    assert h.speaker.learned()[(S, G)].rp == FAR_RP


def test_rule_2_mesh_group_members_are_accepted_and_not_flooded_back_into_the_mesh():
    h = Harness([peer(P1, mesh_group="m"), peer(P2, mesh_group="m"), peer(P3)])
    up(h, P1, P2, P3)
    h.speaker.sa_received(1.0, P1, SourceActive(FAR_RP, ((S, G),)))
    assert (S, G) in h.speaker.learned()
    assert h.to(P2) == [] and h.to(P3) == [SourceActive(FAR_RP, ((S, G),))]
    h.sent.clear()
    h.speaker.sa_received(2.0, P3, SourceActive(P3, (("192.0.2.11", G),)))  # from outside the mesh: to all
    assert len(h.to(P1)) == 1 and len(h.to(P2)) == 1


def test_our_own_sas_and_bad_entries_are_dropped_and_counted():
    h = Harness([peer(P1)])
    h.speaker.sa_received(1.0, P1, SourceActive(ME, ((S, G),)))
    h.speaker.sa_received(1.0, P1, SourceActive(P1, ((S, "10.1.1.1"), ("239.9.9.9", G), ("0.0.0.0", G))))
    assert h.speaker.learned() == {}
    assert (h.speaker.counters["sa_own"], h.speaker.counters["sa_bad_entry"]) == (1, 3)


def test_filters_in_and_out():
    h = Harness([peer(P1, sa_filter_in=SaFilter.parse(["deny 192.0.2.0/24 any", "permit any any"])),
                 peer(P2, sa_filter_out=SaFilter.parse(["permit any 239.1.0.0/16"]))])
    up(h, P1, P2)
    h.speaker.sa_received(1.0, P1, SourceActive(P1, ((S, G), ("198.51.100.1", G), ("198.51.100.1", "239.2.2.2"))))
    assert set(h.speaker.learned()) == {("198.51.100.1", G), ("198.51.100.1", "239.2.2.2")}
    assert h.to(P2) == [SourceActive(P1, (("198.51.100.1", G),))]  # the implicit deny holds 239.2.2.2 back
    assert h.speaker.counters["sa_filtered_in"] == 1 and h.speaker.counters["sa_filtered_out"] == 1


def test_local_sources_go_out_at_once_then_every_period_and_are_withdrawn_quietly():
    h = Harness([peer(P1), peer(P2)], advertisement_period=60)
    up(h, P1)
    h.speaker.set_local_sources(10.0, {(S, G)})
    assert h.to(P1) == [SourceActive(ME, ((S, G),))] and h.to(P2) == []  # P2 is not up
    assert h.speaker.next_deadline() == 70.0
    h.speaker.expire(70.0)
    assert len(h.to(P1)) == 2
    h.speaker.set_local_sources(80.0, set())
    h.speaker.expire(130.0)
    assert len(h.to(P1)) == 2 and h.speaker.next_deadline() is None
    assert [e["change"] for e in h.events] == ["added", "withdrawn"]


def test_a_new_peer_gets_our_sources_and_the_cache_it_would_have_been_sent():
    h = Harness([peer(P1), peer(P2), peer(P3)], routes={FAR_RP: P1})
    up(h, P1)
    h.speaker.set_local_sources(0.0, {(S, G)})
    h.speaker.sa_received(1.0, P1, SourceActive(FAR_RP, (("198.51.100.1", G),)))
    up(h, P2, now=2.0)
    assert h.to(P2) == [SourceActive(ME, ((S, G),)), SourceActive(FAR_RP, (("198.51.100.1", G),))]


def test_entries_time_out_without_refresh_and_refreshes_keep_them():
    h = Harness([peer(P1)], sa_hold=90)
    h.speaker.sa_received(0.0, P1, SourceActive(P1, ((S, G),)))
    h.speaker.sa_received(60.0, P1, SourceActive(P1, ((S, G),)))
    h.speaker.expire(100.0)
    assert (S, G) in h.speaker.learned()
    h.speaker.peer_down(120.0, P1)  # not withdrawn with the peer: they time out
    assert (S, G) in h.speaker.learned()
    h.speaker.expire(150.0)
    assert h.speaker.learned() == {} and h.events[-1]["change"] == "expired"


def test_the_cache_is_bounded():
    h = Harness([peer(P1)], max_sa=3)
    h.speaker.sa_received(0.0, P1, SourceActive(P1, tuple((f"192.0.2.{i}", G) for i in range(1, 6))))
    assert len(h.speaker.learned()) == 3 and h.speaker.counters["sa_cache_full"] == 2


def test_data_goes_to_pim_and_on_to_the_other_peers_with_its_own_entry():
    h = Harness([peer(P1), peer(P2)])
    up(h, P1, P2)
    packet = bytes.fromhex("4500001c00000000101100") + b"\0" + socket.inet_aton(S) + socket.inet_aton(G) + bytes(8)
    h.speaker.sa_received(1.0, P1, SourceActive(P1, (("192.0.2.99", G), (S, G)), packet))
    assert h.sas == [(1.0, "192.0.2.99", G, P1, b""), (1.0, S, G, P1, packet)]
    assert h.to(P2) == [SourceActive(P1, (("192.0.2.99", G), (S, G)), packet)]


def test_two_anycast_rps_learn_each_others_sources_and_never_echo_them():
    a_addr, b_addr = "10.0.9.1", "10.0.9.2"
    wires: dict[str, MsdpSpeaker] = {}
    learned = {a_addr: [], b_addr: []}

    def make(me, other):
        def send(to, data):
            for message in StreamDecoder().feed(data):
                wires[to].sa_received(5.0, me, message)
        return MsdpSpeaker(MsdpConfig(originator=me, peers=(MsdpPeerConfig(other, me),)), lambda rp: None, send,
                           lambda now, s, g, rp, data: learned[me].append((s, g, rp)), lambda: None,
                           lambda *a, **k: None)

    wires[a_addr], wires[b_addr] = make(a_addr, b_addr), make(b_addr, a_addr)
    wires[a_addr].peer_up(0.0, b_addr)
    wires[b_addr].peer_up(0.0, a_addr)
    wires[a_addr].set_local_sources(1.0, {(S, G)})
    wires[b_addr].set_local_sources(1.0, {("198.51.100.5", G)})
    assert learned[b_addr] == [(S, G, a_addr)] and learned[a_addr] == [("198.51.100.5", G, b_addr)]
    assert set(wires[a_addr].learned()) == {("198.51.100.5", G)}  # its own source did not come back
    wires[a_addr].expire(61.0)  # the periodic refresh: B keeps it, A still learns nothing of its own
    assert learned[b_addr][-1] == (S, G, a_addr) and set(wires[a_addr].learned()) == {("198.51.100.5", G)}


@given(st.lists(st.tuples(st.integers(1, 254), st.integers(0, 255)), max_size=60), st.integers(1, 20))
def test_the_cache_never_holds_more_than_max_sa(entries, bound):
    h = Harness([peer(P1)], max_sa=bound)
    for at, (a, b) in enumerate(entries):
        h.speaker.sa_received(float(at), P1, SourceActive(P1, ((f"192.0.{a}.{b}", G),)))
        h.speaker.expire(float(at))
        assert len(h.speaker.learned()) <= bound


@given(st.lists(st.tuples(st.sampled_from(["permit", "deny"]),
                          st.sampled_from(["any", "10.0.0.0/8", "192.0.2.7", "0.0.0.0/0"]),
                          st.sampled_from(["any", "239.0.0.0/8", "239.1.1.1/32"])), max_size=5))
def test_a_filter_reads_back_from_its_lines(lines):
    text = [" ".join(line) for line in lines]
    parsed = SaFilter.parse(text)
    assert SaFilter.parse(parsed.to_list()) == parsed


@pytest.mark.parametrize("line", ["allow any any", "permit any", "permit 10.1.1.1/8 any", "deny any 239.x"])
def test_bad_filter_lines_are_refused_with_the_line(line):
    with pytest.raises(ValueError, match="SA filter line"):
        SaFilter.parse([line])
