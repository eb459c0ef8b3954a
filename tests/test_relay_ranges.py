"""Any-port and group-range rules with follow outputs, across namespaces.

Ordinary kernel UDP sockets send to several groups of a range and several
ports; the relay's follow outputs (a layer-3 route: the packet's own group
and port) deliver each stream to receivers bound to exactly that group and
port, counted exactly. Where an exact rule and a wildcard rule both match,
the exact one wins (cpp/rule_table.h has the whole order).

These go to the engine as the bindings take them, through the Engine's
command channel (its private _call, _ensure_input and _ensure_egress), to
test the engine's lookup order on its own; the daemon's range and any-port
rules are tested in tests/test_igmp_ranges.py.
"""

from __future__ import annotations

import itertools
import subprocess
import time

from mcr import _engine
from mcr.lab import UdpSender, multicast_mac, numbered_payloads, udp_counters
from mcr.rules import Output, Rule

COUNT, SIZE = 200, 120
RATE = 4000  # pps per stream; well under what the lab loses nothing at


def follow(ifindex: int, keep_source: bool = False) -> tuple:
    """An output tuple that keeps the packet's group and port (destination and port unused)."""
    return ("0.0.0.0", 0, ifindex, -1, -1, keep_source, 0, True)


def add_wildcard_rule(lab, rule_id: int, group: str, prefix_len: int, port: int, outputs: list[tuple],
                      source: str = "") -> None:
    engine, c = lab.engine, lab.c
    ifindex = engine._ensure_input(c.relay_in)
    reply = engine._call(_engine.encode_add_rule, rule_id, ifindex, group, port, source, outputs, 0, prefix_len)
    assert reply["ok"], reply


def egress(lab, index: int) -> int:
    return lab.engine._ensure_egress(lab.c.relay_out[index])


def counters(lab) -> dict:
    """The engine's own counters by rule id (raw rules are not in Engine.stats()),
    outputs by their index in the rule."""
    raw = lab.engine._call(_engine.encode_get_stats)["stats"]
    return {"drops": raw["drops"], "rules": {r["id"]: {"packets": r["packets"], "bytes": r["bytes"],
                                                        "outputs": dict(enumerate(r["outputs"]))} for r in raw["rules"]}}


def wait_rule_packets(lab, expected: dict[int, int], timeout: float = 3.0) -> dict:
    """Counters once each rule id has counted its packets (or after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = counters(lab)
        if all(stats["rules"].get(i, {}).get("packets", 0) >= n for i, n in expected.items()) \
                or time.monotonic() >= deadline:
            return stats | {"describe": f"\nengine counters: {stats}"}
        time.sleep(0.02)


def test_range_rule_follows_every_group_and_port(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    add_wildcard_rule(lab, 1001, "239.1.0.0", 16, 0, [follow(egress(lab, 0))])
    targets = list(itertools.product(("239.1.0.1", "239.1.7.9", "239.1.255.254"), (5000, 5001, 6100)))
    sinks = {t: lab.sink(0, *t) for t in targets}
    outside = lab.sink(0, "239.2.0.1", 5000)  # beyond the range: not relayed
    collectors = {t: lab.collect(s, COUNT + 1, timeout=20, idle=1.0) for t, s in sinks.items()}
    capture = lab.capture(0, max_frames=len(targets) * COUNT + 100)
    before = udp_counters(c.sink_ns[0])

    with UdpSender(c.source_ns, c.source_if, ttl=9) as sender:
        for stream, (group, port) in enumerate(targets, start=1):
            assert sender.send(numbered_payloads(COUNT, SIZE, stream=stream), group, port, rate_pps=RATE) == COUNT
        assert sender.send(numbered_payloads(COUNT, SIZE, stream=99), "239.2.0.1", 5000, rate_pps=RATE) == COUNT

    for stream, t in enumerate(targets, start=1):
        lab.expect_stream(collectors[t].result(), COUNT, SIZE, stream=stream, what=f"follow output to {t}")
    assert outside.receive(1, timeout=0.3) == [], "a group outside the range was relayed"
    # The sender's frames carry partial checksums: the kernel of every receiver found them right.
    assert udp_counters(c.sink_ns[0])["InCsumErrors"] == before["InCsumErrors"]
    frames = capture.stop()
    relayed = [f for f in frames if f[12:14] == b"\x08\x00" and f[23] == 17]
    for group, port in targets:
        mine = [f for f in relayed if f[30:34] == bytes(map(int, group.split("."))) and
                int.from_bytes(f[36:38], "big") == port]
        assert len(mine) == COUNT, f"captured {len(mine)} frames for {group}:{port}"
        assert {f[:6].hex(":") for f in mine} == {multicast_mac(group)}
        assert {f[22] for f in mine} == {8}, "TTL is not the sender's minus one"
        assert {".".join(map(str, f[26:30])) for f in mine} == {c.relay_out_addr[0]}
    stats = wait_rule_packets(lab, {1001: len(targets) * COUNT})
    rule = stats["rules"][1001]
    assert rule["packets"] == len(targets) * COUNT, stats["describe"]
    assert rule["outputs"][0]["packets"] == len(targets) * COUNT and rule["outputs"][0]["errors"] == 0
    assert stats["drops"]["no_rule"] == COUNT, stats["describe"]


def test_exact_rules_win_then_any_port_then_the_longest_prefix(relay_lab) -> None:
    """Every stream matches several rules; each must go by the first in the
    lookup order only, and by the next once that one is removed."""
    lab = relay_lab(n_sinks=2)
    c = lab.c
    exact_out = Output("239.9.9.1", 7001, c.relay_out[0])
    exact_id = lab.engine.add_rule(Rule(c.relay_in, "239.1.1.1", 5000, (exact_out,)))
    out0, out1 = egress(lab, 0), egress(lab, 1)
    add_wildcard_rule(lab, 1001, "239.1.1.1", 32, 0, [follow(out1)])                          # (*,G,any)
    add_wildcard_rule(lab, 1002, "239.1.1.0", 24, 0, [follow(out0)])                          # (*,G/24,any)
    add_wildcard_rule(lab, 1003, "239.1.0.0", 16, 0, [follow(out1)])                          # (*,G/16,any)
    add_wildcard_rule(lab, 1004, "239.1.3.0", 24, 0, [follow(out0)], source=c.source_addr)    # (S,G/24,any)
    add_wildcard_rule(lab, 1005, "239.1.3.0", 24, 0, [follow(out1)])                          # (*,G/24,any)
    # stream: (group, port, the rule that must take it, the sink index it reaches)
    streams = {1: ("239.1.1.1", 5000, exact_id, 0), 2: ("239.1.1.1", 5002, 1001, 1),
               3: ("239.1.1.2", 5000, 1002, 0), 4: ("239.1.2.2", 5000, 1003, 1),
               5: ("239.1.3.3", 5000, 1004, 0)}
    follow_sinks = {(i, g, p): lab.sink(i, g, p) for i in (0, 1) for g, p, _, _ in streams.values()}
    exact_sink = lab.sink(0, exact_out.destination, exact_out.port)
    expected = {n: exact_sink if rule == exact_id else follow_sinks[(i, g, p)]
                for n, (g, p, rule, i) in streams.items()}
    collectors = {n: lab.collect(s, COUNT + 1, timeout=20, idle=1.0) for n, s in expected.items()}

    with UdpSender(c.source_ns, c.source_if) as sender:
        for n, (group, port, _, _) in streams.items():
            assert sender.send(numbered_payloads(COUNT, SIZE, stream=n), group, port, rate_pps=RATE) == COUNT

    for n, (group, port, rule, _) in streams.items():
        lab.expect_stream(collectors[n].result(), COUNT, SIZE, stream=n, what=f"{group}:{port} by rule {rule}")
    for key, sink in follow_sinks.items():
        if sink not in expected.values():
            assert sink.receive(1, timeout=0.2) == [], f"{key}: a rule later in the order relayed too"
    stats = wait_rule_packets(lab, {rule: COUNT for _, _, rule, _ in streams.values()})
    for rule_id in (exact_id, 1001, 1002, 1003, 1004):
        assert stats["rules"][rule_id]["packets"] == COUNT, stats["describe"]
    assert stats["rules"][1005]["packets"] == 0, stats["describe"]

    # Without the exact rule, 239.1.1.1:5000 goes by the any-port rule;
    # without that one too, by the /24 range. (Through the channel:
    # Engine.remove_rule would also release the interfaces, which only rules
    # it does not know of still use, and the engine would refuse.)
    assert lab.engine._call(_engine.encode_remove_rule, exact_id)["ok"]
    fallback = [(1001, follow_sinks[(1, "239.1.1.1", 5000)]), (1002, follow_sinks[(0, "239.1.1.1", 5000)])]
    with UdpSender(c.source_ns, c.source_if) as sender:
        for stream, (rule_id, sink) in enumerate(fallback, start=10):
            got = lab.collect(sink, COUNT + 1, timeout=20, idle=1.0)
            assert sender.send(numbered_payloads(COUNT, SIZE, stream=stream), "239.1.1.1", 5000,
                               rate_pps=RATE) == COUNT
            lab.expect_stream(got.result(), COUNT, SIZE, stream=stream, what=f"239.1.1.1:5000 by rule {rule_id}")
            assert lab.engine._call(_engine.encode_remove_rule, rule_id)["ok"]
    assert exact_sink.receive(1, timeout=0.2) == [], "the removed exact rule still relays"


def test_follow_output_beyond_the_output_mtu_takes_the_udp_socket(relay_lab) -> None:
    """Payloads the output link cannot carry whole leave by its UDP socket,
    still to the packet's own group and port (the kernel fragments them)."""
    lab = relay_lab()
    c = lab.c
    subprocess.run(["ip", "-n", c.relay_ns, "link", "set", c.relay_out[0], "mtu", "1000"], check=True, timeout=30)
    add_wildcard_rule(lab, 1001, "239.1.0.0", 16, 0, [follow(egress(lab, 0))])
    targets = [("239.1.4.4", 5000), ("239.1.5.5", 5555)]
    collectors = [lab.collect(lab.sink(0, *t), COUNT + 1, timeout=20, idle=1.0) for t in targets]
    big = 1200  # fits the input link (MTU 1500), not the output's 1000
    with UdpSender(c.source_ns, c.source_if) as sender:
        for stream, (group, port) in enumerate(targets, start=1):
            assert sender.send(numbered_payloads(COUNT, big, stream=stream), group, port, rate_pps=2000) == COUNT

    for stream, (t, collector) in enumerate(zip(targets, collectors), start=1):
        lab.expect_stream(collector.result(), COUNT, big, stream=stream, what=f"big payloads to {t}")
    stats = wait_rule_packets(lab, {1001: len(targets) * COUNT})
    assert stats["rules"][1001]["outputs"][0] == {"packets": 2 * COUNT, "bytes": 2 * COUNT * big, "errors": 0}
