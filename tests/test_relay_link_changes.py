"""An output interface's MTU, address or MAC changes: Engine.refresh_link
rewrites the header templates in place (the UpdateLink command).

The packet path writes frames with a virtio header, and the kernel does not
check those against the MTU, so the engine itself must never build a frame
beyond the current MTU: payloads that no longer fit take the UDP socket,
which fragments. The sink's own interface keeps a 9000-byte MTU, so an
oversized frame would arrive there and be seen by the capture.
"""

from __future__ import annotations

import subprocess

from mcr.lab import UdpSender, numbered_payloads, udp_packets
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
COUNT = 20


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, timeout=30)


def relay_round(lab, sender, sink, size: int, stream: int) -> list:
    collector = lab.collect(sink, COUNT, timeout=5, idle=0.5)
    assert sender.send(numbered_payloads(COUNT, size, stream=stream), GROUP, PORT, rate_pps=500) == COUNT
    received = collector.result()
    lab.expect_stream(received, COUNT, size, stream=stream, what=f"round {stream}")
    return received


def setup(lab):
    c = lab.c
    lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output(OUT_GROUP, OUT_PORT, c.relay_out[0]),)))
    sender = UdpSender(c.source_ns, c.source_if, ttl=8)
    lab._own(sender.close)
    return sender, lab.sink(0, OUT_GROUP, OUT_PORT)


def test_lower_mtu_sends_no_frame_beyond_it(relay_lab) -> None:
    lab = relay_lab(mtu=9000)
    c = lab.c
    sender, sink = setup(lab)
    capture = lab.capture(0)
    relay_round(lab, sender, sink, 4000, stream=0)  # one 4042-byte packet each: fits 9000

    ip(c.relay_ns, "link", "set", c.relay_out[0], "mtu", "1500")
    lab.engine.refresh_link(c.relay_out[0])
    relay_round(lab, sender, sink, 4000, stream=1)  # now fragmented by the UDP socket

    frames = capture.stop()
    relayed = [f for f in frames if f[:3] == b"\x01\x00\x5e"]
    big = [len(f) for f in relayed if len(f) > 9000 + 14]
    assert not big, f"frames beyond the original MTU: {big}"
    # Round 0: 20 whole packets; round 1: every frame within 1500 (fragments).
    whole = [f for f in relayed if len(f) == 14 + 28 + 4000]
    assert len(whole) == COUNT, f"{len(whole)} unfragmented 4000-byte datagrams, expected {COUNT} (round 0 only)"
    after = relayed[relayed.index(whole[-1]) + 1:]
    assert after and max(len(f) for f in after) <= 1514, \
        f"after the MTU fell to 1500 a frame of {max(len(f) for f in after)} bytes left"


def test_new_address_and_mac_are_used(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    sender, sink = setup(lab)
    received = relay_round(lab, sender, sink, 100, stream=0)
    assert {r.src[0] for r in received} == {c.relay_out_addr[0]}

    new_addr, new_mac = "10.200.1.7", "02:00:00:00:aa:07"
    ip(c.relay_ns, "addr", "flush", "dev", c.relay_out[0])
    ip(c.relay_ns, "addr", "add", f"{new_addr}/24", "dev", c.relay_out[0])
    ip(c.relay_ns, "link", "set", c.relay_out[0], "address", new_mac)
    lab.engine.refresh_link(c.relay_out[0])
    capture = lab.capture(0)
    received = relay_round(lab, sender, sink, 100, stream=1)
    frames = capture.stop()

    assert {r.src[0] for r in received} == {new_addr}, "frames still leave with the old source address"
    relayed = [f for f in frames if f[:3] == b"\x01\x00\x5e"]
    assert {f[6:12].hex(":") for f in relayed} == {new_mac}, "frames still leave with the old MAC"
    assert len(udp_packets(relayed, dst=OUT_GROUP, dport=OUT_PORT)) == COUNT
