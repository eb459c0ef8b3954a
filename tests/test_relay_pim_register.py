"""PIM Registers through the engine (RFC 7761 4.4), across namespaces.

Encapsulation (the engine as a source's DR): a kernel UDP sender's
datagrams match a rule whose output is a register output; the "RP" is a
plain raw IPPROTO_PIM socket in the sink namespace, which must see one
Register per datagram, to the RP's address from the configured source,
with a valid header checksum, carrying the datagram as sent (TTL, source,
group, payload, and a UDP checksum the RP's receivers will accept: the
sender's is only partial over veth). A Register beyond the link MTU leaves
fragmented (outer DF clear) and arrives whole. A rule update then moves
the flow to an ordinary output, as a DR does on Register-Stop.

Decapsulation (the engine as the RP): Registers built with scapy arrive
on the engine's register input; their packets match rules on the virtual
REGISTER input and reach kernel UDP receivers on the output link. Corrupt,
short, null and non-UDP Registers deliver nothing and are counted by reason.
"""

from __future__ import annotations

import socket
import time

import pytest
from pim_support import PIMRegister, PimSocket
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import checksum

from mcr import _engine
from mcr.lab import UdpSender, numbered_payloads
from mcr.rules import REGISTER_INTERFACE, Output, Rule

COUNT, SIZE = 60, 200
GROUP, PORT = "239.1.2.3", 5000
RATE = 2000


@pytest.fixture
def pim_sockets():
    """PimSockets opened by the test, closed after it."""
    opened: list[PimSocket] = []

    def make(ns: str) -> PimSocket:
        opened.append(PimSocket(ns))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


def udp_checksum_ok(ip: IP) -> bool:
    """Whether the datagram's UDP checksum is right (RFC 768 pseudo-header included)."""
    udp = bytes(ip[UDP])
    pseudo = socket.inet_aton(ip.src) + socket.inet_aton(ip.dst) + bytes([0, 17]) + len(udp).to_bytes(2, "big")
    return checksum(pseudo + udp) == 0


def engine_counters(lab) -> dict:
    return lab.engine._call(_engine.encode_get_stats)["stats"]


def wait_output(lab, rule_id: int, packets: int, timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = engine_counters(lab)
        rule = next((r for r in stats["rules"] if r["id"] == rule_id), None)
        done = rule is not None and rule["outputs"] and rule["outputs"][0]["packets"] >= packets
        if done or time.monotonic() >= deadline:
            return stats
        time.sleep(0.02)


def registers_of(packets: list[IP], rp: str) -> list[IP]:
    """The Registers among what the RP's raw socket read (it sees every PIM message to it)."""
    return [p for p in packets if p.dst == rp and bytes(p.payload)[:1] == b"\x21"]


def test_register_output_encapsulates_each_datagram_for_the_rp(relay_lab, pim_sockets) -> None:
    lab = relay_lab()
    c = lab.c
    # The relay's address on the source's link, not the one the kernel would pick towards the RP.
    rp, dr = c.sink_addr[0], c.relay_in_addr
    lab.engine.enable_register_output()
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output.to_rp(rp, source=dr),)))
    rp_socket = pim_sockets(c.sink_ns[0])
    payloads = numbered_payloads(COUNT, SIZE, stream=3)

    with UdpSender(c.source_ns, c.source_if, ttl=9, source_port=4321) as sender:
        assert sender.send(payloads, GROUP, PORT, rate_pps=RATE) == COUNT
    received = registers_of(rp_socket.receive(COUNT + 1, timeout=10, idle=1.0), rp)

    assert len(received) == COUNT, f"the RP got {len(received)} Registers, expected {COUNT}"
    inner_payloads = []
    for outer in received:
        assert (outer.src, outer.dst, outer.proto) == (dr, rp, 103)
        assert not outer.flags.DF, "a Register must be fragmentable (outer DF clear)"
        reg = PIMRegister(bytes(outer.payload))
        assert (reg.version, reg.type, int(reg.flags)) == (2, 1, 0)
        assert reg.header_checksum_ok(), "Register checksum over its 8-byte header is wrong"
        inner = reg[IP]
        assert (inner.src, inner.dst, inner.ttl) == (c.source_addr, GROUP, 9), "inner header not as sent"
        assert (inner[UDP].sport, inner[UDP].dport) == (4321, PORT)
        assert udp_checksum_ok(inner), "the inner UDP checksum would be refused at the RP's receivers"
        inner_payloads.append(bytes(inner[UDP].payload))
    assert inner_payloads == payloads, "inner payloads differ from what was sent (or arrived out of order)"
    stats = wait_output(lab, rule_id, COUNT)
    rule = next(r for r in stats["rules"] if r["id"] == rule_id)
    assert rule["outputs"][0] == {"packets": COUNT, "bytes": COUNT * SIZE, "errors": 0}, stats


def test_register_beyond_the_mtu_is_fragmented_and_arrives_whole(relay_lab, pim_sockets) -> None:
    """A 1500-byte datagram (the link MTU) makes a 1528-byte Register: the
    kernel fragments it and the RP's kernel reassembles it."""
    lab = relay_lab()
    c = lab.c
    rp = c.sink_addr[0]
    lab.engine.enable_register_output()
    lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output.to_rp(rp),)))
    rp_socket = pim_sockets(c.sink_ns[0])
    payloads = numbered_payloads(10, 1472, stream=4)

    with UdpSender(c.source_ns, c.source_if) as sender:
        assert sender.send(payloads, GROUP, PORT, rate_pps=500) == 10
    received = registers_of(rp_socket.receive(11, timeout=10, idle=1.0), rp)

    assert len(received) == 10
    assert {p.src for p in received} == {c.relay_out_addr[0]}, "without a source set, the kernel's choice"
    assert [len(p) for p in received] == [20 + 8 + 1500] * 10
    assert [bytes(PIMRegister(bytes(p.payload))[UDP].payload) for p in received] == payloads


def test_a_rule_update_moves_the_flow_from_register_to_native(relay_lab, pim_sockets) -> None:
    """What a DR does on Register-Stop: the same rule id, now with an ordinary output."""
    lab = relay_lab()
    c = lab.c
    rp = c.sink_addr[0]
    lab.engine.enable_register_output()
    ingress = lab.engine._ensure_input(c.relay_in)
    egress = lab.engine._ensure_egress(c.relay_out[0])
    registering = Output.to_rp(rp).engine_tuple(0)
    native = Output(GROUP, PORT, c.relay_out[0]).engine_tuple(egress)
    rule = (77, ingress, GROUP, PORT, "", [registering], 0, 32, False)
    assert lab.engine._call(_engine.encode_sync_rules, [rule])["ok"]
    rp_socket = pim_sockets(c.sink_ns[0])
    sink = lab.sink(0, GROUP, PORT)

    with UdpSender(c.source_ns, c.source_if) as sender:
        assert sender.send(numbered_payloads(COUNT, SIZE, stream=1), GROUP, PORT, rate_pps=RATE) == COUNT
        assert len(registers_of(rp_socket.receive(COUNT + 1, timeout=10, idle=0.5), rp)) == COUNT
        assert lab.engine._call(_engine.encode_sync_rules, [rule[:5] + ([native],) + rule[6:]])["ok"]
        collector = lab.collect(sink, COUNT + 1, timeout=10, idle=1.0)
        assert sender.send(numbered_payloads(COUNT, SIZE, stream=2), GROUP, PORT, rate_pps=RATE) == COUNT

    lab.expect_stream(collector.result(), COUNT, SIZE, stream=2, what="native output after the update")
    assert registers_of(rp_socket.receive(1, timeout=0.3), rp) == [], "Registers after the switch to native"


def register(inner: bytes, **fields) -> bytes:
    return bytes(PIMRegister(**fields) / inner)


def inner_udp(src: str, payload: bytes, ttl: int = 20) -> bytes:
    return bytes(IP(src=src, dst="239.5.5.5", ttl=ttl) / UDP(sport=4000, dport=6000) / payload)


def test_registers_are_decapsulated_to_the_rules_of_the_register_input(relay_lab, pim_sockets) -> None:
    lab = relay_lab()
    c = lab.c
    lab.engine.enable_register_input()
    out = Output("239.5.5.5", 6000, c.relay_out[0], keep_source=True)
    rule_id = lab.engine.add_rule(Rule(REGISTER_INTERFACE, "239.5.5.5", 6000, (out,), notify=True))
    sink = lab.sink(0, "239.5.5.5", 6000)
    collector = lab.collect(sink, COUNT + 1, timeout=15, idle=1.5)
    dr = pim_sockets(c.source_ns)
    payloads = numbered_payloads(COUNT, SIZE, stream=5)
    good = [register(inner_udp(c.source_addr, p)) for p in payloads]
    sample = inner_udp(c.source_addr, payloads[0])
    bad = {
        "register_bad_checksum": [register(sample, chksum=0x1234)] * 3,
        "register_short": [register(b"")[:6]] * 3,
        "register_null": [register(bytes(IP(src=c.source_addr, dst="239.5.5.5")), flags="N")] * 3,
        "register_bad_inner": [register(bytes(IP(src=c.source_addr, dst="239.5.5.5") / TCP()))] * 2
                              + [register(sample[:-10])],  # the inner IP length runs past the message
    }
    # A Register whose checksum covers the whole message (some implementations) is accepted too.
    whole = bytearray(register(inner_udp(c.source_addr, payloads[0]), chksum=0))
    whole[2:4] = checksum(bytes(whole)).to_bytes(2, "big")

    # Other PIM messages (a Register-Stop here) never reach the engine: its socket's filter keeps them out.
    other = [b"\x22\x00" + bytes(16)] * 2

    for message in good[:COUNT // 2] + [m for ms in bad.values() for m in ms] + other + good[COUNT // 2:]:
        dr.send(message, c.relay_in_addr)
        time.sleep(0.001)
    received = collector.result()

    lab.expect_stream(received, COUNT, SIZE, stream=5, what="decapsulated Registers")
    assert {r.src[0] for r in received} == {c.source_addr}, "the inner source was not kept"
    stats = wait_output(lab, rule_id, COUNT)
    for reason, messages in bad.items():
        assert stats["drops"][reason] == len(messages), (reason, stats["drops"])
    assert stats["drops"]["register_not_register"] == 0, stats["drops"]
    registers = next(i for i in stats["inputs"] if i["ifindex"] == _engine.REGISTER_IFINDEX)
    assert registers["frames"] == COUNT + sum(len(m) for m in bad.values())
    notes = lab.engine.take_notifications()
    assert notes == [{"rule_id": rule_id, "source": c.source_addr, "group": "239.5.5.5", "dr": c.source_addr,
                      "input": REGISTER_INTERFACE}]

    collector = lab.collect(sink, 2, timeout=5, idle=1.0)
    dr.send(bytes(whole), c.relay_in_addr)
    assert len(collector.result()) == 1, "a Register checksummed over the whole message was not relayed"
