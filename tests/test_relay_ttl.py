"""TTL and DSCP of relayed packets, read off the wire on the sink link."""

from __future__ import annotations

import time
from collections import defaultdict

from mcr.lab import numbered_payloads, payload_seq, udp_packets
from mcr.rules import Output, Rule

PORT = 5000
N, SIZE = 10, 64


def test_ttl_and_dscp_on_the_wire(relay_lab) -> None:
    lab = relay_lab()
    c = lab.c
    out_if = c.relay_out[0]
    plain = Output("239.2.0.1", 6001, out_if)
    fixed_ttl = Output("239.2.0.2", 6002, out_if, ttl=5)
    ef = Output("239.2.0.3", 6003, out_if, dscp=46)
    mixed_plain = Output("239.2.0.4", 6004, out_if)
    mixed_fixed = Output("239.2.0.5", 6005, out_if, ttl=5)
    rules = {
        "plain": lab.engine.add_rule(Rule(c.relay_in, "239.1.0.1", PORT, (plain,))),
        "fixed": lab.engine.add_rule(Rule(c.relay_in, "239.1.0.2", PORT, (fixed_ttl,))),
        "ef": lab.engine.add_rule(Rule(c.relay_in, "239.1.0.3", PORT, (ef,))),
        "mixed": lab.engine.add_rule(Rule(c.relay_in, "239.1.0.4", PORT, (mixed_plain, mixed_fixed))),
    }

    # stream id -> (input group, incoming ttl, incoming tos, {(output, ttl, tos) on the wire})
    cases = {
        1: ("239.1.0.1", 64, 0x00, {(plain, 63, 0x00)}),
        2: ("239.1.0.1", 2, 0x00, {(plain, 1, 0x00)}),
        3: ("239.1.0.1", 1, 0x00, set()),  # expires: ttl_expired
        4: ("239.1.0.1", 0, 0x00, set()),  # expires: ttl_expired
        5: ("239.1.0.1", 64, 0x88, {(plain, 63, 0x88)}),  # TOS kept without dscp
        6: ("239.1.0.2", 1, 0x00, {(fixed_ttl, 5, 0x00)}),  # explicit TTL: relayed anyway
        7: ("239.1.0.2", 64, 0x00, {(fixed_ttl, 5, 0x00)}),
        8: ("239.1.0.3", 64, 0x00, {(ef, 63, 0xB8)}),  # DSCP 46 = EF
        9: ("239.1.0.3", 64, 0x88, {(ef, 63, 0xB8)}),  # DSCP replaced...
        10: ("239.1.0.3", 64, 0x01, {(ef, 63, 0xB9)}),  # ...the ECN bits carried over
        # One output keeps the TTL, one sets it: a TTL-1 packet leaves only
        # through the latter, and is not counted as ttl_expired (counters.h).
        11: ("239.1.0.4", 64, 0x00, {(mixed_plain, 63, 0x00), (mixed_fixed, 5, 0x00)}),
        12: ("239.1.0.4", 1, 0x00, {(mixed_fixed, 5, 0x00)}),
    }
    frames = []
    for stream, (group, ttl, tos, _) in cases.items():
        frames += lab.frames(numbered_payloads(N, SIZE, stream=stream), group, PORT, ttl=ttl, tos=tos)
    expected_total = N * sum(len(wire) for *_, wire in cases.values())

    capture = lab.capture(0)
    lab.send(frames, rate_pps=2000)
    deadline = time.monotonic() + 5
    while len(udp_packets(capture.frames)) < expected_total and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)  # anything extra (e.g. an expired packet) would be here by now
    packets = udp_packets(capture.stop())

    outputs = {(o.destination, o.port): o for o in (plain, fixed_ttl, ef, mixed_plain, mixed_fixed)}
    seen: dict[int, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
    for ip in packets:
        payload = bytes(ip.payload.payload)
        stream, _ = payload_seq(payload)
        seen[stream][(outputs.get((ip.dst, ip.dport)), ip.ttl, ip.tos)] += 1
    problems = []
    for stream, (group, ttl, tos, wire) in cases.items():
        want = {key: N for key in wire}
        got = dict(seen.get(stream, {}))
        if got != want:
            problems.append(f"in {group} ttl={ttl} tos={tos:#04x}: expected {want}, got {got}")
    unknown = set(seen) - set(cases)
    assert not problems and not unknown, "\n".join(problems) + f"\nunknown streams {unknown}" + lab.describe()

    stats = lab.wait_relayed({rules["plain"]: 3 * N, rules["fixed"]: 2 * N, rules["ef"]: 3 * N})
    assert stats["drops"]["ttl_expired"] == 2 * N, lab.describe(stats)
    counts = {name: stats["rules"][str(rid)]["packets"] for name, rid in rules.items()}
    assert counts == {"plain": 3 * N, "fixed": 2 * N, "ef": 3 * N, "mixed": 2 * N}, lab.describe(stats)
    mixed = stats["rules"][str(rules["mixed"])]["outputs"]
    assert (mixed[str(mixed_plain)]["packets"], mixed[str(mixed_fixed)]["packets"]) == (N, 2 * N), \
        lab.describe(stats)
