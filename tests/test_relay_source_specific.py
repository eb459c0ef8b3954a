"""Source-specific rules: (S,G) beats (*,G), and (S,G) rules split sources apart."""

from __future__ import annotations

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
SOURCE_B = "10.200.0.3"  # a second sender on the source link (crafted frames)
SOURCE_C = "10.200.0.4"  # matches no (S,G) rule
COUNT, SIZE = 1000, 200


def interleave(*streams: list[bytes]) -> list[bytes]:
    return [frame for group in zip(*streams) for frame in group]


def test_source_rule_beats_any_source_rule(relay_lab) -> None:
    lab = relay_lab(n_sinks=2)
    c = lab.c
    source_a = c.source_addr
    out_a = Output("239.2.2.1", 6001, c.relay_out[0])
    out_any = Output("239.2.2.2", 6002, c.relay_out[1])
    # (*,G) added first, so the (S,G) rule must win by specificity, not order.
    any_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out_any,)))
    a_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out_a,), source=source_a))
    sink_a, sink_any = lab.sink(0, out_a.destination, out_a.port), lab.sink(1, out_any.destination, out_any.port)
    got_a, got_any = lab.collect(sink_a, COUNT + 1, idle=0.5), lab.collect(sink_any, COUNT + 1, idle=0.5)

    lab.send(interleave(lab.frames(numbered_payloads(COUNT, SIZE, stream=1), GROUP, PORT, src=source_a),
                        lab.frames(numbered_payloads(COUNT, SIZE, stream=2), GROUP, PORT, src=SOURCE_B)))

    # COUNT + 1 asked for, so a stray extra datagram would show up.
    lab.expect_stream(got_a.result(), COUNT, SIZE, stream=1, what=f"(S,G) output {out_a}")
    lab.expect_stream(got_any.result(), COUNT, SIZE, stream=2, what=f"(*,G) output {out_any}")
    stats = lab.wait_relayed({a_id: COUNT, any_id: COUNT})
    assert stats["rules"][str(a_id)]["packets"] == COUNT, lab.describe(stats)
    assert stats["rules"][str(any_id)]["packets"] == COUNT, lab.describe(stats)

    # Without its (S,G) rule, source A falls back to the (*,G) rule.
    lab.engine.remove_rule(a_id)
    lab.send(lab.frames(numbered_payloads(100, SIZE, stream=4), GROUP, PORT, src=source_a))
    lab.expect_stream(sink_any.receive(101, timeout=5, idle=0.5), 100, SIZE, stream=4,
                      what="(*,G) output after the (S,G) rule was removed")
    assert sink_a.receive(1, timeout=0.3) == [], "the removed (S,G) rule still relays"


def test_two_source_rules_split_sources(relay_lab) -> None:
    lab = relay_lab(n_sinks=2)
    c = lab.c
    source_a = c.source_addr
    out_a = Output("239.2.2.1", 6001, c.relay_out[0])
    out_b = Output("239.2.2.2", 6002, c.relay_out[1])
    a_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out_a,), source=source_a))
    b_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (out_b,), source=SOURCE_B))
    sink_a, sink_b = lab.sink(0, out_a.destination, out_a.port), lab.sink(1, out_b.destination, out_b.port)
    got_a, got_b = lab.collect(sink_a, COUNT + 1, idle=0.5), lab.collect(sink_b, COUNT + 1, idle=0.5)

    # Source C matches neither rule and there is no (*,G) rule: not relayed.
    lab.send(interleave(lab.frames(numbered_payloads(COUNT, SIZE, stream=1), GROUP, PORT, src=source_a),
                        lab.frames(numbered_payloads(COUNT, SIZE, stream=2), GROUP, PORT, src=SOURCE_B),
                        lab.frames(numbered_payloads(COUNT, SIZE, stream=3), GROUP, PORT, src=SOURCE_C)))

    lab.expect_stream(got_a.result(), COUNT, SIZE, stream=1, what=f"source A output {out_a}")
    lab.expect_stream(got_b.result(), COUNT, SIZE, stream=2, what=f"source B output {out_b}")
    stats = lab.wait_relayed({a_id: COUNT, b_id: COUNT})
    assert stats["rules"][str(a_id)]["packets"] == COUNT, lab.describe(stats)
    assert stats["rules"][str(b_id)]["packets"] == COUNT, lab.describe(stats)
    assert stats["drops"]["no_rule"] == COUNT, lab.describe(stats)
