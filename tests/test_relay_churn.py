"""Rule churn under traffic: adding and removing one rule does not disturb the others."""

from __future__ import annotations

import threading
import time

from mcr.lab import numbered_payloads, payload_intact, payload_seq
from mcr.rules import Output, Rule

PORT = 5000
PER_STREAM, SIZE = 2000, 200
RATE = 3000  # three interleaved streams: ~2 s of traffic
CYCLES = 50


def test_churn_leaves_stable_rules_untouched(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    groups = ["239.1.0.1", "239.1.0.2", "239.1.0.3"]
    outs = [Output(f"239.2.0.{i + 1}", 6001 + i, c.relay_out[0]) for i in range(3)]
    stable = [lab.engine.add_rule(Rule(c.relay_in, groups[i], PORT, (outs[i],))) for i in range(2)]
    churned = Rule(c.relay_in, groups[2], PORT, (outs[2],))
    collectors = [lab.collect(lab.sink(0, o.destination, o.port), PER_STREAM + 1, timeout=30, idle=1.0)
                  for o in outs]

    # The churned group carries traffic too, so rules come and go while
    # packets that match them are in flight.
    streams = [lab.frames(numbered_payloads(PER_STREAM, SIZE, stream=i), groups[i], PORT) for i in range(3)]
    frames = [f for triple in zip(*streams) for f in triple]
    sender = lab.sender()
    sent: list[int] = []
    failure: list[BaseException] = []

    def send() -> None:
        try:
            sent.append(sender.send(frames, rate_pps=RATE, timeout=20))
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    ids = []
    for _ in range(CYCLES):  # ~2 s: spread over the whole send
        ids.append(lab.engine.add_rule(churned))
        time.sleep(0.02)
        lab.engine.remove_rule(ids[-1])
        time.sleep(0.02)
    thread.join(30)
    assert not thread.is_alive() and not failure, f"sender failed: {failure}"
    assert sent == [len(frames)], f"sent {sent} of {len(frames)} frames"

    for i in range(2):
        lab.expect_stream(collectors[i].result(), PER_STREAM, SIZE, stream=i, what=f"stable rule {i} ({outs[i]})")
    stats = lab.wait_relayed({rule_id: PER_STREAM for rule_id in stable})
    for rule_id in stable:
        assert stats["rules"][str(rule_id)]["packets"] == PER_STREAM, lab.describe(stats)
        assert [o["packets"] for o in stats["rules"][str(rule_id)]["outputs"].values()] == [PER_STREAM], \
            lab.describe(stats)
    assert set(stats["rules"]) == {str(i) for i in stable}, lab.describe(stats)
    assert len(set(ids)) == CYCLES

    # The churned stream: whatever was relayed is intact and unique, and
    # every frame was either relayed or found no rule -- nothing else.
    churn_rx = collectors[2].result()
    seqs = []
    for r in churn_rx:
        ok = len(r.payload) == SIZE and payload_seq(r.payload)[0] == 2 and payload_intact(r.payload)
        assert ok, f"bad churned datagram {r.payload[:16]!r}"
        seqs.append(payload_seq(r.payload)[1])
    assert len(seqs) == len(set(seqs)), "churned stream duplicated"
    assert 0 < len(seqs) < PER_STREAM, f"churned stream relayed {len(seqs)} of {PER_STREAM}: churn did not overlap"
    drops = {k: v for k, v in stats["drops"].items() if v}
    assert drops == {"no_rule": PER_STREAM - len(seqs)}, \
        f"churned stream: {len(seqs)} relayed + no_rule should be {PER_STREAM}" + lab.describe(stats)

    # And the third rule still works normally once it stays.
    lab.engine.add_rule(churned)
    collector = lab.collect(lab.sink(0, outs[2].destination, outs[2].port), 101, idle=0.5)
    lab.send(lab.frames(numbered_payloads(100, SIZE, stream=7), groups[2], PORT))
    lab.expect_stream(collector.result(), 100, SIZE, stream=7, what="third rule re-added for good")

