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



CHURN_SECONDS, CHURN_RATE = 30, 1000  # rule changes per second
STABLE_RATE = 700  # datagrams per second on each stable flow


def test_a_thousand_changes_a_second_lose_no_packet_of_stable_flows(relay_lab) -> None:
    """30 s of 1,000 rule changes a second (adds and removes, through the
    command channel the workers use) while three unchanged flows run from
    ordinary kernel UDP sockets: their kernel receivers get every datagram."""
    lab = relay_lab()
    c = lab.c
    stable = [Rule(c.relay_in, f"239.1.0.{i + 1}", PORT, (Output(f"239.2.0.{i + 1}", 6001 + i, c.relay_out[0]),))
              for i in range(3)]
    ids = [lab.engine.add_rule(rule) for rule in stable]
    per_flow = STABLE_RATE * (CHURN_SECONDS + 1)
    collectors = [lab.collect(lab.sink(0, r.outputs[0].destination, r.outputs[0].port), per_flow + 1,
                              timeout=CHURN_SECONDS + 10, idle=2.0) for r in stable]
    sent: list[int] = []
    senders = [threading.Thread(target=lambda i=i: sent.append(_send_flow(lab, stable[i].group, i, per_flow)))
               for i in range(3)]
    for thread in senders:
        thread.start()
    time.sleep(0.5)  # the flows run before the churn and after it
    changes, elapsed = _churn(lab, c)
    for thread in senders:
        thread.join(CHURN_SECONDS + 10)
    assert sent == [per_flow] * 3, f"senders got {sent} of {per_flow} datagrams out"
    assert changes == CHURN_SECONDS * CHURN_RATE and elapsed < CHURN_SECONDS * 1.1, \
        f"{changes} changes in {elapsed:.1f} s"

    for i, collector in enumerate(collectors):
        got = sorted(payload_seq(r.payload)[1] for r in collector.result())
        assert got == list(range(per_flow)), f"stable flow {i}: {len(got)} of {per_flow} received"
    stats = lab.wait_relayed({rule_id: per_flow for rule_id in ids})
    assert {stats["rules"][str(i)]["packets"] for i in ids} == {per_flow}, lab.describe(stats)


def _send_flow(lab, group: str, stream: int, count: int) -> int:
    from mcr.lab import UdpSender

    with UdpSender(lab.c.source_ns, lab.c.source_if) as sender:
        return sender.send(numbered_payloads(count, SIZE, stream=stream), group, PORT, rate_pps=STABLE_RATE,
                           timeout=CHURN_SECONDS + 5)


def _churn(lab, c) -> tuple[int, float]:
    """Add and remove rules (on groups without traffic) at CHURN_RATE changes a second."""
    pool = [Rule(c.relay_in, f"239.1.{1 + i // 250}.{i % 250 + 1}", PORT,
                 (Output(f"239.3.0.{i % 250 + 1}", 7000 + i, c.relay_out[0]),)) for i in range(500)]
    held: list[int] = []
    changes, started = 0, time.monotonic()
    while changes < CHURN_SECONDS * CHURN_RATE:
        ahead = started + changes / CHURN_RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        if len(held) < 100:
            held.append(lab.engine.add_rule(pool[changes % len(pool)]))
        else:
            lab.engine.remove_rule(held.pop(0))
        changes += 1
    return changes, time.monotonic() - started
