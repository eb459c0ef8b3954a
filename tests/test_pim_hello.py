"""PIM-SM Hello, neighbors and DR election (mcr.protocols.pim) driven by a
fake clock (plain floats), and the wire codec (mcr.protocols.pim_wire)
cross-checked both ways against scapy's PIM dissector.

scapy.contrib.pim reads the Address List option as IPv6 only and unknown
options with one-byte type and length; the two layers below are the IPv4
Address List and a generic option in scapy's own style, patched into its
option table where a test needs them.
"""

from __future__ import annotations

import json
import random
import struct

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from scapy.compat import raw
from scapy.contrib import pim as scapy_pim
from scapy.contrib.pim import (PIMv2GroupAddrs, PIMv2Hdr, PIMv2Hello, PIMv2HelloDRPriority, PIMv2HelloGenerationID,
                               PIMv2HelloHoldtime, PIMv2HelloLANPruneDelay, PIMv2HelloLANPruneDelayValue,
                               PIMv2JoinAddrs, PIMv2JoinPrune, PIMv2PruneAddrs)
from scapy.fields import ByteField, FieldLenField, IPField, PacketListField, ShortField, StrLenField
from scapy.layers.inet import IP
from scapy.packet import Packet

from mcr.membership import inet_checksum
from mcr.protocols.pim import (DrChanged, Neighbor, NeighborChanged, PimInterface, SendHello, Settings, elect_dr)
from mcr.protocols.pim_wire import (ALL_PIM_ROUTERS, DEFAULT_HOLDTIME, GroupSet, Hello, JoinPrune, LanPruneDelay,
                                    Malformed, Other, Source, encode_hello, encode_join_prune, parse_message)

ME, LOW, HIGH, HIGHER = "10.0.0.5", "10.0.0.2", "10.0.0.8", "10.0.0.9"
GENID = 0x1234ABCD


# --- scapy helpers ---

class EncodedUnicastV4(Packet):
    """RFC 7761 4.9.1 Encoded-Unicast address, IPv4."""

    name = "PIMv2 Encoded-Unicast IPv4"
    fields_desc = [ByteField("addr_family", 1), ByteField("encoding_type", 0), IPField("address", "0.0.0.0")]

    def extract_padding(self, s):
        return "", s


class PIMv2HelloAddrListV4(Packet):
    name = "PIMv2 Hello Options : Address List (IPv4)"
    fields_desc = [ShortField("type", 24), FieldLenField("length", None, length_of="value", fmt="!H"),
                   PacketListField("value", [], EncodedUnicastV4, length_from=lambda pkt: pkt.length)]

    def extract_padding(self, s):
        return "", s


class PIMv2HelloGenericOption(Packet):
    name = "PIMv2 Hello Options : unknown"
    fields_desc = [ShortField("type", 65000), FieldLenField("length", None, length_of="value", fmt="!H"),
                   StrLenField("value", b"", length_from=lambda pkt: pkt.length)]

    def extract_padding(self, s):
        return "", s


def scapy_bytes(pim: Packet) -> bytes:
    """The PIM bytes of `pim`; scapy fills the checksum only under an IP layer."""
    return raw(IP(src=LOW, dst=ALL_PIM_ROUTERS) / pim)[20:]


def scapy_hello(*options: Packet) -> bytes:
    return scapy_bytes(PIMv2Hdr() / PIMv2Hello(option=list(options)))


@pytest.fixture
def v4_address_list(monkeypatch):
    monkeypatch.setitem(scapy_pim.PIMv2_HELLO_CLASSES, 24, PIMv2HelloAddrListV4)


def pim(kind: int, body: bytes, version: int = 2) -> bytes:
    """A PIM message of `kind` around `body`, with a correct checksum."""
    message = struct.pack("!BBH", version << 4 | kind, 0, 0) + body
    return message[:2] + struct.pack("!H", inet_checksum(message)) + message[4:]


def option(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value


# --- the interface under a fake clock ---

def started(address: str = ME, seed: int = 1, **settings) -> tuple[PimInterface, list]:
    interface = PimInterface(Settings(**settings), address, GENID, random.Random(seed))
    return interface, interface.start(0.0)


def hello_from(holdtime: int = 105, priority: int | None = 1, genid: int | None = 7, **extra) -> bytes:
    return encode_hello(Hello(holdtime, priority, genid, **extra))


def changes(out: list) -> list:
    """What `out` reports, without the Hellos (whose timing has its own tests)."""
    return [o for o in out if not isinstance(o, SendHello)]


def sent(out: list) -> list[Hello]:
    return [parse_message(o.payload) for o in out if isinstance(o, SendHello)]


# --- wire: Hello ---

def test_hello_round_trip_every_option():
    hello = Hello(210, 42, GENID, LanPruneDelay(True, 750, 3000), ("192.0.2.1", "198.51.100.7"))
    assert parse_message(encode_hello(hello)) == hello


def test_hello_without_options_but_holdtime():
    assert parse_message(encode_hello(Hello(30))) == Hello(30)


def test_hello_missing_holdtime_takes_the_default():
    assert parse_message(pim(0, option(19, struct.pack("!I", 5)))) == Hello(DEFAULT_HOLDTIME, dr_priority=5)


def test_our_hello_read_by_scapy(v4_address_list):
    payload = encode_hello(Hello(105, 9, GENID, LanPruneDelay(True, 600, 2600), ("192.0.2.1",)))
    packet = PIMv2Hdr(payload)
    assert (packet.version, packet.type) == (2, 0)
    options = {type(o): o for o in packet[PIMv2Hello].option}
    assert options[PIMv2HelloHoldtime].holdtime == 105
    assert options[PIMv2HelloDRPriority].dr_priority == 9
    assert options[PIMv2HelloGenerationID].generation_id == GENID
    lpd = options[PIMv2HelloLANPruneDelay].value[0]
    assert (lpd.t, lpd.propagation_delay, lpd.override_interval) == (1, 600, 2600)
    assert [a.address for a in options[PIMv2HelloAddrListV4].value] == ["192.0.2.1"]
    del packet.chksum  # scapy recomputes it: ours must be the same
    assert scapy_bytes(packet) == payload


def test_scapy_hello_read_by_us(v4_address_list):
    payload = scapy_hello(PIMv2HelloHoldtime(holdtime=70), PIMv2HelloDRPriority(dr_priority=3),
                          PIMv2HelloGenerationID(generation_id=99),
                          PIMv2HelloLANPruneDelay(value=[PIMv2HelloLANPruneDelayValue(t=0, propagation_delay=1,
                                                                                      override_interval=2)]),
                          PIMv2HelloAddrListV4(value=[EncodedUnicastV4(address="192.0.2.9")]))
    assert parse_message(payload) == Hello(70, 3, 99, LanPruneDelay(False, 1, 2), ("192.0.2.9",))


def test_unknown_options_are_skipped():
    payload = scapy_hello(PIMv2HelloGenericOption(type=21, value=b"\x01\x02\x00\x00"),  # State Refresh
                          PIMv2HelloHoldtime(holdtime=50), PIMv2HelloGenericOption(type=65001, value=b"xyz"),
                          PIMv2HelloGenericOption(type=65002, value=b""), PIMv2HelloDRPriority(dr_priority=2))
    assert parse_message(payload) == Hello(50, dr_priority=2)


def test_other_types_are_placeholders():
    assert parse_message(pim(6, b"\0" * 20)) == Other(6)  # PIM-DM Graft: not read


def test_register_checksum_over_header_only_is_accepted():
    header = struct.pack("!BBHI", 0x21, 0, 0, 0)
    header = header[:2] + struct.pack("!H", inet_checksum(header)) + header[4:]
    inner = bytes(IP(src="10.1.0.2", dst="239.1.1.1") / b"inner packet")
    assert parse_message(header + inner).group == "239.1.1.1"  # a Register (pim_wire_more reads it)


# Crafted messages, each with the reason it must be dropped for.
MALFORMED = {
    "short": b"\x20\x00\x00",
    "bad_version": pim(0, option(1, b"\x00\x69"), version=1),
    "bad_checksum": pim(0, option(1, b"\x00\x69"))[:-1] + b"\x6a",
    "truncated_option": pim(0, option(1, b"\x00\x69") + b"\x00\x13\x00"),
    "truncated_option_value": pim(0, option(19, b"\x00\x00\x00\x01")[:-1]),
    "bad_option_length": pim(0, option(1, b"\x00\x00\x69")),
    "truncated": pim(3, b"\x01\x00\x0a\x00\x00\x01\x00\x01\x00\xd2"),  # one group announced, none there
    "bad_mask_length": pim(3, b"\x01\x00\x0a\x00\x00\x01\x00\x01\x00\xd2"
                              + b"\x01\x00\x00\x21\xef\x01\x01\x01\x00\x00\x00\x00"),
}
REASON = {"truncated_option_value": "truncated_option"}


IPV6_ENTRY = b"\x02\x00" + bytes(range(16))


@pytest.mark.parametrize("value, addresses", [
    (IPV6_ENTRY + b"\x01\x00\xc0\x00\x02\x01", ("192.0.2.1",)),  # IPv6 entries are skipped (FRR lists them)
    (b"\x01\x00\xc0\x00\x02\x01" + b"\x07\x00\x01\x02", ("192.0.2.1",)),  # an unknown family ends the list
    (b"\x01\x01\xc0\x00\x02\x01", ()),  # a non-native encoding cannot be sized
    (b"\x01\x00\xc0\x00\x02", ()),  # truncated
])
def test_an_address_list_is_read_as_far_as_it_can_be_and_the_hello_still_counts(value, addresses):
    hello = parse_message(pim(0, option(1, b"\x00\x69") + option(24, value)))
    assert hello.addresses == addresses and hello.holdtime == 105


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_messages_raise_by_name(name):
    with pytest.raises(Malformed) as caught:
        parse_message(MALFORMED[name])
    assert caught.value.reason == REASON.get(name, name)


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_messages_are_counted_never_raised(name):
    interface, _ = started()
    before = interface.next_deadline()
    assert interface.receive(1.0, LOW, MALFORMED[name]) == []
    assert interface.counters == {REASON.get(name, name): 1}
    assert interface.neighbors() == {} and interface.next_deadline() == before


# --- wire: Join/Prune ---

JOIN_PRUNE = JoinPrune("10.0.0.1", 210, (
    GroupSet("239.1.1.1", joins=(Source("192.0.2.1"), Source("10.9.9.9", wildcard=True, rpt=True))),
    GroupSet("239.2.0.0", mask_len=16, prunes=(Source("192.0.2.2", rpt=True),), admin_scope=True),
    GroupSet("239.3.3.3", joins=(Source("192.0.2.3", mask_len=24),), prunes=(Source("192.0.2.4"),)),
))


def test_join_prune_round_trip():
    assert parse_message(encode_join_prune(JOIN_PRUNE)) == JOIN_PRUNE
    empty = JoinPrune("10.0.0.1", 0)
    assert parse_message(encode_join_prune(empty)) == empty


def _scapy_source(source: Source, cls: type) -> Packet:
    return cls(sparse=int(source.sparse), wildcard=int(source.wildcard), rpt=int(source.rpt),
               mask_len=source.mask_len, src_ip=source.address)


def test_our_join_prune_read_by_scapy():
    payload = encode_join_prune(JOIN_PRUNE)
    packet = PIMv2Hdr(payload)
    body = packet[PIMv2JoinPrune]
    assert (packet.type, body.up_neighbor_ip, body.holdtime, body.num_group) == (3, "10.0.0.1", 210, 3)
    for group, scapy_group in zip(JOIN_PRUNE.groups, body.jp_ips, strict=True):
        assert (scapy_group.gaddr, scapy_group.mask_len) == (group.group, group.mask_len)
        assert (scapy_group.bidirection, scapy_group.admin_scope_zone) == (group.bidirectional, group.admin_scope)
        for ours, theirs in zip(group.joins + group.prunes, scapy_group.join_ips + scapy_group.prune_ips,
                                strict=True):
            assert (theirs.src_ip, theirs.mask_len) == (ours.address, ours.mask_len)
            assert (theirs.sparse, theirs.wildcard, theirs.rpt) == (ours.sparse, ours.wildcard, ours.rpt)
    del packet.chksum
    assert scapy_bytes(packet) == payload


def test_scapy_join_prune_read_by_us():
    groups = [PIMv2GroupAddrs(gaddr=g.group, mask_len=g.mask_len, admin_scope_zone=int(g.admin_scope),
                              join_ips=[_scapy_source(s, PIMv2JoinAddrs) for s in g.joins],
                              prune_ips=[_scapy_source(s, PIMv2PruneAddrs) for s in g.prunes])
              for g in JOIN_PRUNE.groups]
    payload = scapy_bytes(PIMv2Hdr() / PIMv2JoinPrune(up_neighbor_ip="10.0.0.1", holdtime=210, jp_ips=groups))
    assert parse_message(payload) == JOIN_PRUNE


# --- Settings ---

def test_settings_defaults_and_derived_holdtime():
    s = Settings()
    assert (s.hello_period, s.hello_holdtime, s.dr_priority, s.triggered_hello_delay) == (30.0, 105, 1, 5.0)
    assert (s.propagation_delay_ms, s.override_interval_ms) == (500, 2500)
    assert Settings(hello_period=10).hello_holdtime == 35
    assert Settings(hello_holdtime=60).hello_holdtime == 60


@pytest.mark.parametrize("bad", [{"hello_period": 0}, {"hello_holdtime": 70000}, {"hello_holdtime": 1.5},
                                 {"dr_priority": -1}, {"dr_priority": 2 ** 32}, {"propagation_delay_ms": 0x8000},
                                 {"override_interval_ms": 0x10000}, {"triggered_hello_delay": 40},
                                 {"dr_priority": True}])
def test_settings_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        Settings(**bad)


def test_bad_address_or_generation_id_rejected():
    with pytest.raises(ValueError):
        PimInterface(Settings(), "not an address", 1)
    with pytest.raises(ValueError, match="generation_id"):
        PimInterface(Settings(), ME, 2 ** 32)


# --- Hello timing ---

def test_first_hello_after_random_delay_then_periodic():
    interface, out = started(seed=3)
    assert out == [DrChanged(ME)]
    first = interface.next_deadline()
    assert first == random.Random(3).uniform(0, 5.0)
    assert interface.expire(first - 0.001) == []
    [hello] = sent(interface.expire(first))
    assert hello == Hello(105, 1, GENID, LanPruneDelay(False, 500, 2500))
    for n in range(1, 4):
        assert interface.next_deadline() == pytest.approx(first + 30 * n)
        assert len(sent(interface.expire(first + 30 * n))) == 1


def test_start_with_zero_delay_sends_at_once():
    interface, out = started(triggered_hello_delay=0)
    assert len(sent(out)) == 1 and interface.next_deadline() == 30.0
    assert interface.start(1.0) == []  # already running


def test_our_hello_carries_the_settings_read_by_scapy():
    _, out = started(triggered_hello_delay=0, hello_period=10, dr_priority=77,
                     propagation_delay_ms=100, override_interval_ms=900)
    options = {type(o): o for o in PIMv2Hdr(out[-1].payload)[PIMv2Hello].option}
    assert options[PIMv2HelloHoldtime].holdtime == 35
    assert options[PIMv2HelloDRPriority].dr_priority == 77
    assert options[PIMv2HelloGenerationID].generation_id == GENID
    assert options[PIMv2HelloLANPruneDelay].value[0].override_interval == 900


# --- neighbors ---

def test_neighbor_up_refresh_and_down_by_holdtime():
    interface, _ = started()
    out = changes(interface.receive(10.0, HIGH, hello_from(holdtime=60)))
    assert out == [NeighborChanged(HIGH, "up"), DrChanged(HIGH)]
    assert interface.neighbors()[HIGH].expires_at == 70.0
    assert changes(interface.receive(50.0, HIGH, hello_from(holdtime=60))) == []  # refreshed, not new
    assert interface.neighbors()[HIGH].up_since == 10.0
    assert changes(interface.expire(70.0)) == [] and HIGH in interface.neighbors()
    assert changes(interface.expire(110.0)) == [NeighborChanged(HIGH, "down"), DrChanged(ME)]
    assert interface.neighbors() == {}


def test_new_neighbor_triggers_a_hello_soon():
    interface, _ = started(seed=5)
    interface.expire(interface.next_deadline())  # the first Hello; the next is 30 s later
    now = interface.next_deadline() - 20
    interface.receive(now, LOW, hello_from())
    assert now <= interface.next_deadline() <= now + 5.0
    assert len(sent(interface.expire(interface.next_deadline()))) == 1


def test_holdtime_zero_removes_the_neighbor_at_once():
    interface, _ = started()
    interface.receive(1.0, HIGH, hello_from())
    out = changes(interface.receive(2.0, HIGH, hello_from(holdtime=0)))
    assert out == [NeighborChanged(HIGH, "down"), DrChanged(ME)]
    assert interface.neighbors() == {}
    assert changes(interface.receive(3.0, HIGH, hello_from(holdtime=0))) == []  # unknown: nothing to do


def test_holdtime_forever_never_expires():
    interface, _ = started()
    interface.receive(1.0, LOW, hello_from(holdtime=0xFFFF))
    interface.expire(1e9)
    assert LOW in interface.neighbors()
    assert interface.describe(1e9)["neighbors"][0]["holdtime_left"] is None


def test_generation_id_change_means_restarted_and_a_triggered_hello():
    interface, _ = started(seed=9)
    interface.expire(interface.next_deadline())
    interface.receive(100.0, LOW, hello_from(genid=1))
    interface.expire(interface.next_deadline())  # the triggered Hello for the new neighbor
    periodic = interface.next_deadline()
    assert changes(interface.receive(110.0, LOW, hello_from(genid=1))) == []
    assert interface.next_deadline() == periodic
    assert changes(interface.receive(115.0, LOW, hello_from(genid=2))) == [NeighborChanged(LOW, "restarted")]
    assert 115.0 <= interface.next_deadline() <= 120.0 < periodic
    assert len(sent(interface.expire(interface.next_deadline()))) == 1
    assert interface.neighbors()[LOW].generation_id == 2 and interface.neighbors()[LOW].up_since == 115.0


def test_ignored_input_is_counted():
    interface = PimInterface(Settings(), ME, GENID)
    interface.receive(0.0, LOW, hello_from())
    interface.start(0.0)
    interface.receive(1.0, ME, hello_from())
    interface.receive(1.0, "0.0.0.0", hello_from())
    interface.receive(1.0, "bogus", hello_from())
    interface.receive(1.0, LOW, encode_join_prune(JOIN_PRUNE))
    assert interface.counters == {"not_running": 1, "own_hello": 1, "bad_source": 2, "not_hello": 1}
    assert interface.neighbors() == {}


# --- DR election (RFC 7761 4.3.2) ---

def test_dr_by_priority_then_address():
    interface, _ = started(dr_priority=10)
    assert changes(interface.receive(1.0, HIGH, hello_from(priority=5))) == [NeighborChanged(HIGH, "up")]
    assert interface.dr() == ME  # our priority is higher, though HIGH's address is
    out = changes(interface.receive(1.0, LOW, hello_from(priority=20)))
    assert out == [NeighborChanged(LOW, "up"), DrChanged(LOW)]
    out = changes(interface.receive(2.0, HIGHER, hello_from(priority=20)))
    assert out == [NeighborChanged(HIGHER, "up"), DrChanged(HIGHER)]  # tie on priority: highest address


def test_dr_priority_change_in_a_later_hello():
    interface, _ = started()
    interface.receive(1.0, LOW, hello_from(priority=1))
    assert interface.dr() == ME
    assert changes(interface.receive(2.0, LOW, hello_from(priority=2))) == [DrChanged(LOW)]


def test_a_neighbor_without_dr_priority_means_addresses_only():
    interface, _ = started(dr_priority=100)
    interface.receive(1.0, LOW, hello_from(priority=1000))
    assert interface.dr() == LOW
    out = changes(interface.receive(2.0, HIGH, hello_from(priority=None)))
    assert out == [NeighborChanged(HIGH, "up"), DrChanged(HIGH)]
    out = changes(interface.receive(3.0, HIGH, hello_from(holdtime=0)))
    assert out == [NeighborChanged(HIGH, "down"), DrChanged(LOW)]


# --- LAN Prune Delay (RFC 7761 4.3.3) ---

def test_effective_lan_delay_values():
    interface, _ = started(propagation_delay_ms=300, override_interval_ms=2000)
    assert interface.effective_propagation_delay_ms() == 300  # no neighbors: ours
    interface.receive(1.0, LOW, hello_from(lan_prune_delay=LanPruneDelay(True, 800, 1000)))
    assert (interface.effective_propagation_delay_ms(), interface.effective_override_interval_ms()) == (800, 2000)
    interface.receive(1.0, HIGH, hello_from())  # no LAN Prune Delay: defaults
    assert not interface.lan_delay_enabled()
    assert (interface.effective_propagation_delay_ms(), interface.effective_override_interval_ms()) == (500, 2500)


# --- set_address, stop, describe ---

def test_set_address_says_goodbye_from_the_old_and_hello_from_the_new():
    interface, _ = started()
    interface.receive(1.0, "10.0.0.7", hello_from())
    assert interface.dr() == "10.0.0.7"
    out = interface.set_address(5.0, "10.0.0.200")
    goodbye, hello = [o for o in out if isinstance(o, SendHello)]
    assert goodbye.source == ME and parse_message(goodbye.payload).holdtime == 0
    assert hello.source is None and parse_message(hello.payload).holdtime == 105
    assert out[-1] == DrChanged("10.0.0.200") and interface.dr() == "10.0.0.200"
    assert interface.next_deadline() == 35.0
    assert interface.set_address(6.0, "10.0.0.200") == []


def test_set_address_while_stopped_sends_nothing():
    interface = PimInterface(Settings(), ME, GENID)
    assert interface.set_address(0.0, LOW) == [] and interface.dr() == LOW


def test_stop_sends_holdtime_zero_and_forgets_neighbors():
    interface, _ = started()
    interface.receive(1.0, LOW, hello_from())
    interface.receive(1.0, HIGH, hello_from())
    out = interface.stop(2.0)
    assert [h.holdtime for h in sent(out)] == [0]
    assert out[1:] == [NeighborChanged(LOW, "down"), NeighborChanged(HIGH, "down")]
    assert interface.neighbors() == {} and interface.next_deadline() is None and interface.dr() == ME
    assert interface.stop(3.0) == []


def test_describe_is_json():
    interface, _ = started(seed=2)
    interface.receive(4.0, HIGH, hello_from(priority=3, lan_prune_delay=LanPruneDelay(False, 500, 2500),
                                            addresses=("192.0.2.8",)))
    interface.receive(4.0, ME, hello_from())
    state = json.loads(json.dumps(interface.describe(10.0)))
    assert state["address"] == ME and state["dr"] == HIGH and state["generation_id"] == GENID
    assert 0 <= state["next_hello"] <= 30
    assert state["neighbors"] == [{"address": HIGH, "holdtime_left": 99.0, "dr_priority": 3, "generation_id": 7,
                                   "uptime": 6.0, "secondary_addresses": ["192.0.2.8"],
                                   "lan_prune_delay": {"tracking": False, "propagation_delay_ms": 500,
                                                       "override_interval_ms": 2500}}]
    assert state["counters"] == {"own_hello": 1}


# --- property: any sequence of input never raises, and dr() follows the rule ---

NEIGHBORS = [f"10.0.0.{i}" for i in (1, 4, 6, 9)]

events = st.one_of(
    st.tuples(st.just("hello"), st.sampled_from(NEIGHBORS), st.sampled_from([0, 1, 10, 105, 0xFFFF]),
              st.none() | st.integers(0, 3), st.none() | st.integers(0, 2)),
    st.tuples(st.just("junk"), st.sampled_from(NEIGHBORS), st.binary(max_size=40)),
    st.tuples(st.just("wait"), st.floats(0, 60)),
    st.tuples(st.just("readdress"), st.sampled_from(["10.0.0.5", "10.0.0.7"])),
)


def rule_dr(interface: PimInterface) -> str:
    """RFC 7761 4.3.2 as written: dr = me; for each neighbor, if dr_is_better(a, dr)."""
    table = interface.neighbors()
    addresses_only = any(n.dr_priority is None for n in table.values())

    def key(address: str) -> tuple[int, ...]:
        return tuple(int(x) for x in address.split("."))

    dr, priority = interface.address, interface.settings.dr_priority
    for n in table.values():
        better = (key(n.address) > key(dr) if addresses_only else
                  n.dr_priority > priority or (n.dr_priority == priority and key(n.address) > key(dr)))
        if better:
            dr, priority = n.address, n.dr_priority
    return dr


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=40), st.integers(0, 3))
def test_random_sequences_never_raise_and_dr_follows_the_rule(sequence, my_priority):
    interface, _ = started(dr_priority=my_priority)
    now = 0.0
    for event in sequence:
        match event:
            case ("hello", source, holdtime, priority, genid):
                interface.receive(now, source, hello_from(holdtime, priority, genid))
            case ("junk", source, data):
                interface.receive(now, source, data)
            case ("wait", seconds):
                now += seconds
                interface.expire(now)
            case ("readdress", address):
                interface.set_address(now, address)
        assert interface.dr() == rule_dr(interface) == elect_dr(interface.address, my_priority,
                                                                interface.neighbors())
        deadline = interface.next_deadline()
        assert deadline is not None and deadline > now
        assert all(n.expires_at is None or n.expires_at > now for n in interface.neighbors().values())
        json.dumps(interface.describe(now))


def test_elect_dr_alone_is_us():
    assert elect_dr(ME, 1, {}) == ME
    assert elect_dr(ME, 1, {LOW: Neighbor(LOW, 105, 105.0, 0.0, dr_priority=None)}) == ME


def test_a_new_or_restarted_neighbor_marks_our_hello_as_due_before_anything_else():
    """A router drops Join/Prunes from routers it has no Hello from (FRR
    does): after a new neighbor or a new GenID, the adapter sends our Hello
    before its next other message, which `hello_triggered` tells it."""
    core, _ = started()
    core.send_hello(0.0)
    assert not core.hello_triggered
    core.receive(1.0, HIGH, hello_from(genid=7))
    assert core.hello_triggered  # even when the periodic Hello was already due sooner
    core.send_hello(1.1)
    assert not core.hello_triggered
    core.receive(2.0, HIGH, hello_from(genid=7))
    assert not core.hello_triggered  # the same neighbor again: nothing new
    core.receive(3.0, HIGH, hello_from(genid=8))
    assert core.hello_triggered
