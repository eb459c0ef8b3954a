"""The relay judged by senders and receivers we did not write.

Every other relay test injects frames we built, with a full UDP checksum.
An application on the same machine sends through the kernel's UDP socket
instead, and on a veth its frames leave CHECKSUM_PARTIAL: the relay's
packet socket sees TP_STATUS_CSUMNOTREADY, and the UDP checksum field holds
only the pseudo-header sum, to be completed by a "device" that never does.
Relayed as they are, such datagrams reach the receivers with a wrong
checksum; the receiving kernel drops them silently and counts them only in
`Udp: InCsumErrors` of its namespace's /proc/net/snmp.

So each test here sends from a kernel UDP socket (mcr.lab.UdpSender),
socat or iperf2, receives with ordinary sockets (UdpSink) or socat, and
checks: the exact datagrams (each sequence number once, payload intact),
`InDatagrams` of each receiving namespace up by exactly that many, and
`InCsumErrors` not up at all. test_kernel_sender_frames_are_checksum_partial
checks the premise itself, so these tests cannot silently turn into
full-checksum tests if veth's offloads ever change.

socat is used both ways. As a sender it reads our numbered payloads from a
pipe with `-b SIZE`: each read(2) of a pipe holding whole SIZE-byte writes
(atomic below PIPE_BUF) returns exactly one payload, and socat sends each
read as one datagram, so datagram boundaries survive; we pace the writes.
As a receiver (UDP4-RECV with ip-add-membership) it writes the datagrams'
bytes back to back into a file, which is split at the fixed payload size.

iperf2 in multicast client mode (2.1.8) sends its data datagrams with ids
1..W (W is the Write count of its `-e` report), then exactly one FIN with
id -(W+1) and does not wait for a server report (multicast). Its final
`Sent N datagrams` line says W+2, one more than it put on the wire, so the
test counts what iperf wrote and what its ids say, not that line.
"""
from __future__ import annotations

import socket
import struct

import pytest
from app_support import (
    COUNT,
    GROUP,
    IDLE,
    OUT_GROUP,
    OUT_PORT,
    PACKET_AUXDATA,
    PORT,
    SIZE,
    SOL_PACKET,
    TIMEOUT,
    TP_STATUS_CSUMNOTREADY,
    MarkingReceiver,
    UdpCounters,
    expect_delivered,
    run,
    send,
)
from mcr.lab import (
    numbered_payloads,
    open_socket,
    udp_packets,
)
from mcr.rules import Output, Rule


def test_kernel_sender_frames_are_checksum_partial(relay_lab) -> None:
    """What the relay's input sees from a kernel socket: TP_STATUS_CSUMNOTREADY and a
    UDP checksum field that is not the full checksum (were it ever full, the
    tests below would stop testing what they are for)."""
    lab = relay_lab()
    c = lab.c
    probe = open_socket(c.relay_ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    try:
        probe.bind((c.relay_in, 0x0800))
        probe.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        probe.settimeout(3)
        send(lab, numbered_payloads(3, SIZE), rate=100)
        statuses, full = [], []
        for _ in range(100):  # bounded: anything else on the link is skipped
            if len(statuses) == 3:
                break
            frame, ancillary, _, _ = probe.recvmsg(65535, 64)
            packets = udp_packets([frame], dst=GROUP)
            if not packets:
                continue
            aux = [v for level, kind, v in ancillary if (level, kind) == (SOL_PACKET, PACKET_AUXDATA)]
            statuses.append(struct.unpack_from("I", aux[0])[0] if aux else None)
            (ip,) = packets
            wire = ip.payload.chksum
            ip.payload.chksum = None  # let scapy compute the real one
            full.append(wire == type(ip)(bytes(ip)).payload.chksum)
    finally:
        probe.close()
    assert all(s is not None and s & TP_STATUS_CSUMNOTREADY for s in statuses), f"tp_status {statuses}"
    assert not any(full), "the kernel socket's frames already carried a full UDP checksum"


# Kernel UDP socket senders --------------------------------------------------


@pytest.mark.parametrize("size", [64, 777, 1472])
def test_kernel_sender_group_rewritten(relay_lab, size: int) -> None:
    """(*,G) rule, relayed to another group and port; 1472 is the largest
    payload a 1500-byte link carries in one frame."""
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), COUNT + 1, timeout=TIMEOUT, idle=IDLE)

    send(lab, numbered_payloads(COUNT, size))

    received = collector.result()
    expect_delivered(lab, counters, c.sink_ns[0], received, COUNT, size, what=f"{out}")
    assert {r.src[0] for r in received} == {c.relay_out_addr[0]}
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
        "packets": COUNT, "bytes": COUNT * size, "errors": 0}, lab.describe(stats)


def test_kernel_sender_source_specific_rule(relay_lab) -> None:
    """An (S,G) rule for the sender's address relays everything; one for
    another source on the same group and port relays nothing."""
    lab = relay_lab()
    c = lab.c
    ours = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    other = Output("239.3.3.3", OUT_PORT, c.relay_out[0])
    ours_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (ours,), source=c.source_addr))
    other_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (other,), source="10.200.0.99"))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), COUNT + 1, timeout=TIMEOUT, idle=IDLE)
    other_sink = lab.sink(0, "239.3.3.3", OUT_PORT)

    send(lab, numbered_payloads(COUNT, SIZE))

    received = collector.result()
    stray = other_sink.receive(1, timeout=0.2)  # the idle wait above already let anything arrive
    expect_delivered(lab, counters, c.sink_ns[0], received, COUNT, SIZE, what="(S,G) for the sender")
    assert stray == [], "the rule for source 10.200.0.99 relayed the sender's datagrams" + lab.describe()
    stats = lab.wait_relayed({ours_id: COUNT})
    assert stats["rules"][str(ours_id)]["packets"] == COUNT, lab.describe(stats)
    assert stats["rules"][str(other_id)]["packets"] == 0, lab.describe(stats)


def test_kernel_sender_fanout_to_three_links(relay_lab) -> None:
    lab = relay_lab(n_sinks=3)
    c = lab.c
    outputs = tuple(Output(f"239.2.2.{i + 1}", OUT_PORT + i, c.relay_out[i]) for i in range(3))
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, outputs))
    counters = UdpCounters(*c.sink_ns)
    collectors = [lab.collect(lab.sink(i, o.destination, o.port), COUNT + 1, timeout=TIMEOUT, idle=IDLE)
                  for i, o in enumerate(outputs)]

    send(lab, numbered_payloads(COUNT, SIZE))

    for i, (o, collector) in enumerate(zip(outputs, collectors)):
        received = collector.result()
        expect_delivered(lab, counters, c.sink_ns[i], received, COUNT, SIZE, what=f"sink {i} ({o})")
        assert {r.src[0] for r in received} == {c.relay_out_addr[i]}
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == COUNT, lab.describe(stats)


def test_kernel_sender_multicast_to_unicast(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    out = Output(c.sink_addr[0], OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    sink = lab.udp_sink(c.sink_ns[0], c.sink_addr[0], OUT_PORT)
    collector = lab.collect(sink, COUNT + 1, timeout=TIMEOUT, idle=IDLE)

    send(lab, numbered_payloads(COUNT, SIZE))

    received = collector.result()
    expect_delivered(lab, counters, c.sink_ns[0], received, COUNT, SIZE, what=f"unicast {out}")
    assert {r.src[0] for r in received} == {c.relay_out_addr[0]}
    lab.wait_relayed({rule_id: COUNT})


def test_kernel_sender_keep_source(relay_lab) -> None:
    """keep_source: the receiver sees the sender's own address and port."""
    sport = 4321
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0], keep_source=True)
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), COUNT + 1, timeout=TIMEOUT, idle=IDLE)

    send(lab, numbered_payloads(COUNT, SIZE), source_port=sport)

    received = collector.result()
    expect_delivered(lab, counters, c.sink_ns[0], received, COUNT, SIZE, what=f"keep-source {out}")
    assert {r.src for r in received} == {(c.source_addr, sport)}
    stats = lab.wait_relayed({rule_id: COUNT})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)]["errors"] == 0, lab.describe(stats)


@pytest.mark.parametrize(
    "sender_ttl, sender_tos, ttl, dscp, want_ttl, want_tos",
    [
        (64, 0x00, None, None, 63, 0x00),  # defaults: TTL decremented, TOS kept
        (9, 0x88, None, None, 8, 0x88),
        (64, 0x00, 5, 46, 5, 0xB8),  # TTL and DSCP (EF) set by the output
        (2, 0x89, 200, 46, 200, 0xB9),  # DSCP replaced, the ECN bits carried over
    ],
)
def test_kernel_sender_ttl_and_dscp(relay_lab, sender_ttl, sender_tos, ttl, dscp, want_ttl, want_tos) -> None:
    count = 300
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0], ttl=ttl, dscp=dscp)
    lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    receiver = MarkingReceiver(lab.sink(0, OUT_GROUP, OUT_PORT))
    collector = lab.collect(receiver, count + 1, timeout=TIMEOUT, idle=IDLE)

    send(lab, numbered_payloads(count, SIZE), ttl=sender_ttl, tos=sender_tos)

    received = collector.result()
    expect_delivered(lab, counters, c.sink_ns[0], received, count, SIZE, what=f"{out}")
    marks = {(r.ttl, r.tos) for r in received}
    assert marks == {(want_ttl, want_tos)}, f"(ttl, tos) seen by the receiver: {marks}"


@pytest.mark.parametrize("size", [8000, 8972])
def test_kernel_sender_jumbo(relay_lab, size: int) -> None:
    """9000-byte links end to end; 8972 fills the MTU exactly."""
    count = 200
    lab = relay_lab(mtu=9000)
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), count + 1, timeout=TIMEOUT, idle=IDLE)

    send(lab, numbered_payloads(count, size), rate=2000)

    expect_delivered(lab, counters, c.sink_ns[0], collector.result(), count, size, what=f"jumbo {out}")
    stats = lab.wait_relayed({rule_id: count})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
        "packets": count, "bytes": count * size, "errors": 0}, lab.describe(stats)


def test_kernel_sender_jumbo_to_1500_byte_output(relay_lab) -> None:
    """A jumbo datagram relayed onto a 1500-byte link arrives whole (as IP
    fragments, reassembled by the receiving kernel)."""
    count, size = 200, 8000
    lab = relay_lab(mtu=9000)
    c = lab.c
    for ns, ifname in ((c.relay_ns, c.relay_out[0]), (c.sink_ns[0], c.sink_if[0])):
        result = run(["ip", "-n", ns, "link", "set", ifname, "mtu", "1500"])
        assert result.returncode == 0, result.stderr
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    counters = UdpCounters(c.sink_ns[0])
    collector = lab.collect(lab.sink(0, OUT_GROUP, OUT_PORT), count + 1, timeout=TIMEOUT, idle=IDLE)
    capture = lab.capture(0, max_seconds=TIMEOUT + 5, max_frames=20 * count)

    send(lab, numbered_payloads(count, size), rate=2000)

    expect_delivered(lab, counters, c.sink_ns[0], collector.result(), count, size, what=f"{out} at MTU 1500")
    frames = capture.stop()
    assert frames and max(len(f) for f in frames) <= 14 + 1500, "a frame above the sink link's MTU"
    stats = lab.wait_relayed({rule_id: count})
    assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
        "packets": count, "bytes": count * size, "errors": 0}, lab.describe(stats)


# socat ----------------------------------------------------------------------
