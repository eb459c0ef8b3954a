"""Fan-out: one input group copied to many outputs, every output gets every packet."""

from __future__ import annotations

import subprocess

from mcr.lab import numbered_payloads
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000


def test_fanout_to_three_interfaces(relay_lab) -> None:
    count, size = 2000, 300
    lab = relay_lab(n_sinks=3)
    c = lab.c
    outputs = tuple(Output(f"239.2.2.{i + 1}", 6000 + i, c.relay_out[i]) for i in range(3))
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, outputs))
    collectors = [lab.collect(lab.sink(i, o.destination, o.port), count) for i, o in enumerate(outputs)]

    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT), rate_pps=10_000)

    for i, collector in enumerate(collectors):
        received = collector.result()
        lab.expect_stream(received, count, size, what=f"sink {i} ({outputs[i]})")
        assert {r.src[0] for r in received} == {c.relay_out_addr[i]}
    stats = lab.wait_relayed({rule_id: count})
    rule = stats["rules"][str(rule_id)]
    assert rule["packets"] == count, lab.describe(stats)
    for o in outputs:
        assert rule["outputs"][str(o)] == {"packets": count, "bytes": count * size, "errors": 0}, \
            lab.describe(stats)
    assert not any(stats["drops"].values()), lab.describe(stats)


def test_fanout_to_100_outputs(relay_lab) -> None:
    # 50 groups on one port out of sink link 0, and one group on 50 ports out
    # of sink link 1: a socket per output, each bound to its group and port.
    count, size = 200, 200
    lab = relay_lab(n_sinks=2)
    c = lab.c
    outputs = tuple(Output(f"239.6.0.{i + 1}", 7000, c.relay_out[0]) for i in range(50))
    outputs += tuple(Output("239.7.0.1", 7100 + i, c.relay_out[1]) for i in range(50))
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, outputs))
    sinks = [lab.sink(0 if i < 50 else 1, o.destination, o.port) for i, o in enumerate(outputs)]

    # 20 000 datagrams in all but only 200 per socket: they fit in every
    # socket's receive buffer, so the sockets are read after the send.
    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT), rate_pps=2000)

    for o, sink in zip(outputs, sinks):
        lab.expect_stream(sink.receive(count, timeout=5, idle=0.5), count, size, what=f"output {o}")
    stats = lab.wait_relayed({rule_id: count})
    rule = stats["rules"][str(rule_id)]
    assert rule["packets"] == count, lab.describe(stats)
    per_output = {name: (o["packets"], o["bytes"], o["errors"]) for name, o in rule["outputs"].items()}
    assert per_output == {str(o): (count, count * size, 0) for o in outputs}, lab.describe(stats)
    assert not any(stats["drops"].values()), lab.describe(stats)


def test_failing_output_does_not_affect_the_others(relay_lab) -> None:
    # Output 1's interface is down: each send there fails (ENETDOWN) and is
    # counted as output_down, while output 0 of the same rule still gets every packet.
    count, size = 500, 100
    lab = relay_lab(n_sinks=2)
    c = lab.c
    dead = Output("239.2.2.9", 6009, c.relay_out[1])
    alive = Output("239.2.2.1", 6001, c.relay_out[0])
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (dead, alive)))
    subprocess.run(["ip", "-n", c.relay_ns, "link", "set", c.relay_out[1], "down"], check=True, timeout=30)
    collector = lab.collect(lab.sink(0, alive.destination, alive.port), count + 1, idle=0.5)

    lab.send(lab.frames(numbered_payloads(count, size), GROUP, PORT), rate_pps=5000)

    lab.expect_stream(collector.result(), count, size, what=f"live output {alive}")
    stats = lab.wait_relayed({rule_id: count})
    outputs = stats["rules"][str(rule_id)]["outputs"]
    assert outputs[str(alive)] == {"packets": count, "bytes": count * size, "errors": 0}, lab.describe(stats)
    assert outputs[str(dead)] == {"packets": 0, "bytes": 0, "errors": count}, lab.describe(stats)
    assert {k: v for k, v in stats["drops"].items() if v} == {"output_down": count}, lab.describe(stats)
