"""A link going down and up again: the relay resumes on that link.

While the input link is down the kernel sets ENETDOWN on the AF_PACKET
socket, which wakes the engine's readiness poll with POLLERR; the engine
counts rx_error and clears the error (or every later poll would fire at
once). The ring itself keeps working when the link comes back: the kernel
re-attaches the socket on NETDEV_UP. An engine that stopped reading the
input after the error would leave inputs[...].frames behind
inputs[...].kernel_packets.
"""

from __future__ import annotations

import subprocess
import time

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
OUT_GROUP, OUT_PORT = "239.2.2.2", 6000
COUNT, SIZE = 200, 100


def flap(ns: str, ifname: str) -> None:
    for state in ("down", "up"):
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, state], check=True, timeout=30)
    time.sleep(0.3)  # let the veth carrier come back


def send_round(lab, sink, stream: int) -> list:
    collector = lab.collect(sink, COUNT + 1, timeout=3, idle=0.5)
    lab.send(lab.frames(numbered_payloads(COUNT, SIZE, stream=stream), GROUP, PORT), rate_pps=5000)
    return collector.result()


def setup(lab) -> tuple[int, object]:
    c = lab.c
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (Output(OUT_GROUP, OUT_PORT, c.relay_out[0]),)))
    sink = lab.sink(0, OUT_GROUP, OUT_PORT)
    lab.expect_stream(send_round(lab, sink, 0), COUNT, SIZE, stream=0, what="before the flap")
    return rule_id, sink


def test_relay_resumes_after_input_link_flap(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    rule_id, sink = setup(lab)

    flap(c.relay_ns, c.relay_in)
    received = send_round(lab, sink, 1)

    # The link coming up can bring a few frames of its own onto the input (the
    # peer's IGMP reports pass the input filter), so the check is that the
    # engine read everything the kernel queued, not an exact total.
    stats = lab.wait_stats(lambda s: s["inputs"][c.relay_in]["frames"] >= 2 * COUNT
                           and s["inputs"][c.relay_in]["frames"] == s["inputs"][c.relay_in]["kernel_packets"],
                           timeout=2)
    inp = stats["inputs"][c.relay_in]
    assert inp["kernel_packets"] >= 2 * COUNT, lab.describe(stats)
    assert inp["frames"] == inp["kernel_packets"], (
        f"after {c.relay_in} went down and up the engine no longer reads it: the kernel queued "
        f"{inp['kernel_packets']} frames on the input socket, the engine read {inp['frames']} "
        f"(rx_error={stats['drops']['rx_error']})" + lab.describe(stats))
    lab.expect_stream(received, COUNT, SIZE, stream=1, what=f"after {c.relay_in} (input) went down and up")
    stats = lab.wait_relayed({rule_id: 2 * COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == 2 * COUNT, lab.describe(stats)


def test_relay_resumes_after_output_link_flap(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    rule_id, sink = setup(lab)

    flap(c.relay_ns, c.relay_out[0])
    received = send_round(lab, sink, 1)

    lab.expect_stream(received, COUNT, SIZE, stream=1, what=f"after {c.relay_out[0]} (output) went down and up")
    stats = lab.wait_relayed({rule_id: 2 * COUNT})
    assert stats["rules"][str(rule_id)]["packets"] == 2 * COUNT, lab.describe(stats)
    assert not any(stats["drops"].values()), lab.describe(stats)
