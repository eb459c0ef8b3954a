"""The keep-source output option: frames leave with the packet's own IP
source and UDP source port (SSM receivers filter on the source), while a
plain output of the same rule uses the output interface's address."""

from __future__ import annotations

import subprocess

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
SPORT = 4321


def test_keep_source_output_sends_with_the_original_source(relay_lab) -> None:
    count, size = 200, 300
    lab = relay_lab()
    c = lab.c
    kept = Output("239.2.2.2", 6000, c.relay_out[0], keep_source=True)
    plain = Output("239.3.3.3", 6000, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (kept, plain)))
    by_kept = lab.collect(lab.sink(0, "239.2.2.2", 6000), count)
    by_plain = lab.collect(lab.sink(0, "239.3.3.3", 6000), count)

    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT, sport=SPORT), rate_pps=5000)

    kept_received, plain_received = by_kept.result(), by_plain.result()
    lab.expect_stream(kept_received, count, size, what="keep-source output")  # the sink's UDP socket checked the checksums
    lab.expect_stream(plain_received, count, size, what="plain output")
    assert {r.src for r in kept_received} == {(c.source_addr, SPORT)}
    assert {r.src[0] for r in plain_received} == {c.relay_out_addr[0]}
    stats = lab.wait_relayed({rule_id: count})
    assert stats["rules"][str(rule_id)]["outputs"][str(kept)] == {
        "packets": count, "bytes": count * size, "errors": 0}, lab.describe(stats)


def test_keep_source_never_sends_with_another_source(relay_lab) -> None:
    """A payload beyond the output's MTU would need the UDP socket, which
    cannot keep the source: it is counted, not sent under the relay's name."""
    lab = relay_lab()
    c = lab.c
    for ns, ifname in ((c.source_ns, c.source_if), (c.relay_ns, c.relay_in)):
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "mtu", "9000"], check=True, timeout=30)
    kept = Output("239.2.2.2", 6000, c.relay_out[0], keep_source=True)
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (kept,)))
    collector = lab.collect(lab.sink(0, "239.2.2.2", 6000), 2, timeout=3, idle=0.5)

    lab.send(lab.frames([b"a" * 100, b"b" * 4000, b"c" * 100], GROUP, PORT), rate_pps=100)

    assert sorted(len(r.payload) for r in collector.result()) == [100, 100]
    stats = lab.wait_stats(lambda s: s["rules"][str(rule_id)]["outputs"][str(kept)]["errors"] >= 1)
    assert stats["rules"][str(rule_id)]["outputs"][str(kept)] == {"packets": 2, "bytes": 200, "errors": 1}, lab.describe(stats)
    assert stats["drops"]["too_big"] == 1, lab.describe(stats)
