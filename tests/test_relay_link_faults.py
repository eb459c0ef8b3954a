"""Links that fail while an ordinary UDP sender keeps sending.

Each case: stream 0 arrives; the link goes down (the relay's own interface
set down, or its peer set down so the relay's interface loses carrier);
stream 1 is sent during the outage; with the input then idle the engine
must not spin; the link comes back and stream 2, started at once, arrives
whole and in order, with nothing of stream 1 sent late.

Before the engine resynced its TX ring with the kernel after a refused
flush, a fresh stream after an output outage did not arrive at all (the
kernel's head sat on a frame the engine had taken back), and without carrier
the engine retried the same flush for ever at 100 % of a core.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from mcr.lab import UdpSender, numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
SIZE = 200
BEFORE, DURING, AFTER = 200, 300, 300
IDLE_CPU_LIMIT = 0.05  # share of one core while the link is down and the input idle


def set_link(ns: str, ifname: str, state: str) -> None:
    subprocess.run(["ip", "-n", ns, "link", "set", ifname, state], check=True, timeout=30)


def thread_cpu_ns(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


# (which side, whose interface goes down): "own" is the relay's interface,
# "peer" the far end, so the relay's interface only loses carrier.
CASES = {
    "output-down": ("output", "own"),
    "output-no-carrier": ("output", "peer"),
    "input-down": ("input", "own"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_link_outage_under_traffic(relay_lab, case: str) -> None:
    side, whose = CASES[case]
    lab = relay_lab()
    c = lab.c
    if side == "output":
        link = (c.relay_ns, c.relay_out[0]) if whose == "own" else (c.sink_ns[0], c.sink_if[0])
    else:
        link = (c.relay_ns, c.relay_in)
    out = Output(OUT_GROUP, OUT_PORT, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out,)))
    sink = lab.sink(0, OUT_GROUP, OUT_PORT)
    sender = UdpSender(c.source_ns, c.source_if, ttl=8)
    lab._own(sender.close)

    collector = lab.collect(sink, BEFORE, timeout=5, idle=0.5)
    assert sender.send(numbered_payloads(BEFORE, SIZE, stream=0), GROUP, PORT, rate_pps=2000) == BEFORE
    lab.expect_stream(collector.result(), BEFORE, SIZE, stream=0, what="before the outage")

    set_link(*link, "down")
    try:
        assert sender.send(numbered_payloads(DURING, SIZE, stream=1), GROUP, PORT, rate_pps=1000) == DURING
        time.sleep(0.3)
        tid = lab.engine._thread.native_id
        cpu0, t0 = thread_cpu_ns(tid), time.monotonic()
        time.sleep(1.0)
        idle_share = (thread_cpu_ns(tid) - cpu0) / 1e9 / (time.monotonic() - t0)
    finally:
        set_link(*link, "up")
    up_at = time.monotonic()

    # Everything from now on: stream 2 only, whole and in order.
    collector = lab.collect(sink, AFTER + DURING, timeout=5, idle=1.0)
    assert sender.send(numbered_payloads(AFTER, SIZE, stream=2), GROUP, PORT, rate_pps=2000) == AFTER
    received = collector.result()
    stale = [r for r in received if r.payload[:4] == (1).to_bytes(4, "big")]
    assert not stale, f"{len(stale)} datagrams from the outage were sent after the link came back" + lab.describe()
    lab.expect_stream(received, AFTER, SIZE, stream=2, what=f"after {link[1]} came back ({case})")
    seqs = [int.from_bytes(r.payload[4:8], "big") for r in received]
    assert seqs == sorted(seqs), "stream 2 arrived out of order"
    assert time.monotonic() - up_at < 1.0 + AFTER / 2000 + 1.0, "stream 2 took too long"

    assert idle_share < IDLE_CPU_LIMIT, (
        f"engine used {idle_share:.0%} of a core while {link[1]} was down and the input idle" + lab.describe())

    stats = lab.wait_relayed({rule_id: BEFORE + AFTER})
    errors = stats["rules"][str(rule_id)]["outputs"][str(out)]["errors"]
    drops = {k: v for k, v in stats["drops"].items() if v}
    if side == "output":
        # Every datagram of the outage reached the relay and is counted once, by name.
        reason = "output_down" if whose == "own" else "tx_refused"
        assert errors == DURING, lab.describe(stats)
        assert drops == {reason: DURING}, lab.describe(stats)
        assert stats["rules"][str(rule_id)]["outputs"][str(out)]["packets"] == BEFORE + AFTER, lab.describe(stats)
    else:
        # A down input hears nothing: the sender's own kernel dropped the outage.
        assert errors == 0, lab.describe(stats)
        assert stats["inputs"][c.relay_in]["frames"] == BEFORE + AFTER, lab.describe(stats)
        assert set(drops) <= {"rx_error"}, lab.describe(stats)
