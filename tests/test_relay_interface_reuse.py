"""Interfaces that go and come back reuse the engine's slots.

A rule removed closes its interfaces' sockets (RemoveInterface); the rule
added again opens new ones (AddInput, AddEgress, AddPacketEgress). The
engine names inputs and packet egress sockets by slot in its io_uring
completions and scans every slot each loop pass: before removed slots were
reused, every comeback appended a slot, so a link that flapped for ever grew
both. Slots now come back under a new generation, so the removed input's
cancelled poll and the removed ring's last flush are told from the new
occupant's. The engine logs (at debug level, on the control path) which slot
each interface took; the test reads that, then checks that two rules whose
outputs took each other's former slots still send to the right sink.
"""

from __future__ import annotations

import re

from mcr import _engine
from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUPS = ("239.1.1.1", "239.1.1.2")
PORT = 5000
OUT_GROUPS = ("239.2.2.1", "239.2.2.2")
OUT_PORT = 6000
CYCLES = 100
COUNT, SIZE = 200, 100
DEBUG = 0  # LogLevel::Debug


def slots_taken(log: str, kind: str) -> list[int]:
    return [int(m) for m in re.findall(rf'"msg": "{kind} interface \d+ in slot (\d+)', log)]


def test_interfaces_removed_and_added_again_reuse_their_slots(relay_lab, capfd) -> None:
    lab = relay_lab(n_sinks=2)
    c = lab.c
    lab.engine._call(_engine.encode_set_log_level, DEBUG)

    # Input and output removed and added again, the output alternating
    # between two interfaces so that each comeback can take the other's slot.
    for cycle in range(CYCLES):
        out = Output(OUT_GROUPS[0], OUT_PORT, c.relay_out[cycle % 2])
        lab.engine.remove_rule(lab.engine.add_rule(Rule(c.relay_in, GROUPS[0], PORT, (out,))))

    # Then the second output's interface first: it takes slot 0, which the
    # first output's interface held last; the first takes slot 1.
    outs = [Output(OUT_GROUPS[i], OUT_PORT, c.relay_out[i]) for i in range(2)]
    second = lab.engine.add_rule(Rule(c.relay_in, GROUPS[1], PORT, (outs[1],)))
    first = lab.engine.add_rule(Rule(c.relay_in, GROUPS[0], PORT, (outs[0],)))
    log = capfd.readouterr().err
    inputs, rings = slots_taken(log, "input"), slots_taken(log, "packet egress")
    assert len(inputs) == CYCLES + 1 and set(inputs) == {0}, f"input slots taken: {sorted(set(inputs))}"
    assert len(rings) == CYCLES + 2 and set(rings) == {0, 1}, f"packet egress slots taken: {sorted(set(rings))}"
    assert rings[-2:] == [0, 1], rings[-2:]

    sinks = [lab.sink(i, OUT_GROUPS[i], OUT_PORT) for i in range(2)]
    collectors = [lab.collect(sink, COUNT + 1, timeout=5, idle=0.5) for sink in sinks]
    frames = [f for pair in zip(*(lab.frames(numbered_payloads(COUNT, SIZE, stream=i), GROUPS[i], PORT)
                                  for i in range(2))) for f in pair]
    lab.send(frames, rate_pps=4000)
    for i, collector in enumerate(collectors):
        lab.expect_stream(collector.result(), COUNT, SIZE, stream=i, what=f"sink {i}")

    stats = lab.wait_relayed({first: COUNT, second: COUNT})
    for rule_id, out in ((first, outs[0]), (second, outs[1])):
        assert stats["rules"][str(rule_id)]["outputs"][str(out)] == {
            "packets": COUNT, "bytes": COUNT * SIZE, "errors": 0}, lab.describe(stats)
    # No stale completion was taken for the new occupant's (an rx_error
    # from a removed input's cancelled poll, say).
    assert not any(stats["drops"].values()), lab.describe(stats)
    assert list(stats["inputs"]) == [c.relay_in] and stats["inputs"][c.relay_in]["frames"] == 2 * COUNT, \
        lab.describe(stats)
