"""One rule, 10 000 numbered datagrams: every one arrives once, byte-identical."""

from __future__ import annotations

from mcr.lab import numbered_payloads, udp_frame
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
COUNT, SIZE = 10_000, 256


def test_relay_10000_numbered_packets(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    sink = lab.sink(0, OUT_GROUP, OUT_PORT)
    collector = lab.collect(sink, COUNT, timeout=20)

    lab.send(lab.frames(numbered_payloads(COUNT, SIZE), GROUP, PORT), rate_pps=10_000)
    received = collector.result()

    lab.expect_stream(received, COUNT, SIZE, what="sink 0")
    # Relayed through the relay's UDP socket: the relay's output address is the source.
    sources = {r.src[0] for r in received}
    assert sources == {c.relay_out_addr[0]}, f"unexpected source addresses {sources}"
    assert len({r.src[1] for r in received}) == 1, "the egress socket's port changed mid-stream"

    stats = lab.wait_relayed({rule_id: COUNT})
    rule = stats["rules"][str(rule_id)]
    assert (rule["packets"], rule["bytes"]) == (COUNT, COUNT * SIZE), lab.describe(stats)
    assert rule["outputs"] == {str(out): {"packets": COUNT, "bytes": COUNT * SIZE, "errors": 0}}, \
        lab.describe(stats)
    frame_len = 14 + 20 + 8 + SIZE
    assert stats["inputs"][c.relay_in]["frames"] == COUNT, lab.describe(stats)
    assert stats["inputs"][c.relay_in]["bytes"] == COUNT * frame_len, lab.describe(stats)
    assert stats["inputs"][c.relay_in]["kernel_drops"] == 0, lab.describe(stats)
    assert not any(stats["drops"].values()), lab.describe(stats)


def test_fast_frame_builder_matches_udp_frame(fast_frame) -> None:
    # The relay tests build frames with a struct-based builder (scapy is too
    # slow for 10 000 frames); it must produce exactly what udp_frame() does.
    for payload in (b"", b"x", b"odd", *numbered_payloads(20, 257), bytes(8972)):
        for ttl, tos in ((64, 0), (1, 0x88), (255, 0xB9)):
            args = ("10.200.0.2", "239.1.1.1", 4000, 5000, payload)
            assert fast_frame(*args, ttl=ttl, tos=tos) == udp_frame(*args, ttl=ttl, tos=tos)
