"""Packet tracing on demand (`mcr trace RULE`), from kernel UDP senders.

The rule has two outputs: one that decrements the TTL (a packet that
arrives with TTL 1 must not leave by it, RFC 1812 5.3.1) and one that sets
its own TTL (it relays such a packet). Every datagram is sent from its own
source port, so a record's port says which packet it was: that is how
--sample is checked. Engine level first (mcr.engine.Engine: exact records,
nothing after the count), then the daemon through the CLI.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

from daemon_support import daemon, wait_for

from mcr.lab import UdpSender, chain
from mcr.rules import Output, Rule

GROUP, PORT = "239.1.1.1", 5000
BASE_PORT = 41000  # packet i leaves from BASE_PORT + i
PAYLOAD = b"t" * 100  # IP length 128


def send_numbered(ns: str, ifname: str, first: int, count: int, ttl: int, rate_pps: float = 200) -> None:
    """`count` datagrams to GROUP:PORT, packet i from source port BASE_PORT + first + i."""
    for i in range(first, first + count):
        with UdpSender(ns, ifname, ttl=ttl, tos=0x20, source_port=BASE_PORT + i) as sender:
            assert sender.send([PAYLOAD], GROUP, PORT) == 1
        time.sleep(1 / rate_pps)


def two_outputs(c) -> tuple[Output, Output]:
    return Output("239.2.2.2", 6000, c.relay_out[0]), Output("239.3.3.3", 6001, c.relay_out[1], ttl=8)


def test_engine_records_headers_and_outcomes_and_stops_at_count(relay_lab) -> None:
    lab = relay_lab(n_sinks=2)
    c = lab.c
    decrementing, fixed = two_outputs(c)
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, (decrementing, fixed)))
    assert lab.engine.take_trace() == {"remaining": 0, "missed": 0, "records": []}  # off by default

    lab.engine.trace(rule_id, count=5, sample=1, timeout=10)
    send_numbered(c.source_ns, c.source_if, 0, 8, ttl=1)
    taken = wait_for(lambda: (t := lab.engine.take_trace())["records"] and t, 3, "trace records")
    records = taken["records"]
    assert taken["remaining"] == 0 and taken["missed"] == 0
    assert [r["src_port"] for r in records] == [BASE_PORT + i for i in range(5)]
    for r in records:
        assert (r["source"], r["destination"], r["dst_port"]) == (c.source_addr, GROUP, PORT)
        assert (r["ttl"], r["tos"], r["ip_len"], r["vlan"]) == (1, 0x20, 20 + 8 + len(PAYLOAD), 0)
        assert r["input"] == c.relay_in and r["rule_id"] == rule_id and r["outputs"] == 2
        assert r["outcomes"] == ["skipped_ttl", "sent_ring"]
    assert records == sorted(records, key=lambda r: r["time_ns"])
    assert abs(records[0]["time_ns"] / 1e9 - time.time()) < 10

    # The budget is spent: more traffic is forwarded, and not recorded.
    send_numbered(c.source_ns, c.source_if, 8, 5, ttl=64)
    stats = lab.wait_relayed({rule_id: 5})
    assert stats["rules"][str(rule_id)]["packets"] == 5 + 8  # the TTL-1 packets left by the fixed-TTL output
    assert lab.engine.take_trace() == {"remaining": 0, "missed": 0, "records": []}


def test_engine_sample_and_unknown_rule(relay_lab) -> None:
    lab = relay_lab(n_sinks=2)
    c = lab.c
    rule_id = lab.engine.add_rule(Rule(c.relay_in, GROUP, PORT, two_outputs(c)))
    lab.engine.trace(rule_id, count=3, sample=3, timeout=10)
    send_numbered(c.source_ns, c.source_if, 0, 12, ttl=64)
    time.sleep(0.2)
    taken = lab.engine.take_trace()
    # The 3rd, 6th and 9th packets; TTL 64 leaves by both outputs.
    assert [r["src_port"] for r in taken["records"]] == [BASE_PORT + 2, BASE_PORT + 5, BASE_PORT + 8]
    assert all(r["outcomes"] == ["sent_ring", "sent_ring"] and r["ttl"] == 64 for r in taken["records"])
    assert taken["remaining"] == 0
    try:
        lab.engine.trace(rule_id + 100, count=3, sample=1, timeout=10)
    except RuntimeError as error:
        assert f"no rule {rule_id + 100}" in str(error)
    else:
        raise AssertionError("tracing a rule the engine does not hold was accepted")


def trace_while_sending(d, lab, args: list[str], ttl: int, most: int = 200) -> tuple[subprocess.CompletedProcess, int]:
    """Run `mcr trace ARGS` while numbered packets flow (until it ends, at most `most` of them);
    its result and how many packets were sent."""
    cli = subprocess.Popen([sys.executable, "-m", "mcr", "trace", *args, "--socket", d.socket],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sent = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal sent
        while sent < most and not stop.is_set() and cli.poll() is None:
            send_numbered(lab.source_ns, lab.source_if, sent, 1, ttl=ttl, rate_pps=50)
            sent += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        out, err = cli.communicate(timeout=30)
    finally:
        stop.set()
        sender.join(10)
    return subprocess.CompletedProcess(cli.args, cli.returncode, out, err), sent


def test_cli_trace_count_sample_and_unknown_rule(tmp_path) -> None:
    with chain(n_sinks=2) as lab, daemon(lab, tmp_path) as d:
        decrementing, fixed = two_outputs(lab)
        d.client.add_rule(Rule(lab.relay_in, GROUP, PORT, (decrementing, fixed), name="feed"))
        wait_for(lambda: d.worker_pids(), 10, "a running worker")

        result, sent = trace_while_sending(d, lab, ["feed", "--count", "5"], ttl=1)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 6, result.stdout  # 5 packets, then the summary
        assert lines[-1] == "trace of rule 1: 5 packet(s), count reached"
        for line in lines[:5]:
            assert f"{lab.relay_in} {lab.source_addr}:" in line and f"-> {GROUP}:{PORT} ttl 1 tos 0x20 len 128" in line
            assert line.endswith(f"{decrementing} skipped_ttl, {fixed} sent_ring"), line
        ports = [int(line.split(f"{lab.source_addr}:")[1].split()[0]) for line in lines[:5]]
        assert ports == list(range(ports[0], ports[0] + 5)) and sent > 5

        result, _ = trace_while_sending(d, lab, ["feed", "--count", "4", "--sample", "3", "--json"], ttl=64)
        assert result.returncode == 0, result.stderr
        events = [json.loads(line) for line in result.stdout.splitlines()]
        packets = [e for e in events if e["event"] == "packet"]
        assert len(packets) == 4 and events[-1]["event"] == "end" and events[-1]["reason"] == "count"
        ports = [p["src_port"] for p in packets]
        assert [b - a for a, b in zip(ports, ports[1:])] == [3, 3, 3], ports
        assert all([o["outcome"] for o in p["outputs"]] == ["sent_ring", "sent_ring"] for p in packets)

        # No traffic: the trace ends at its timeout, with nothing recorded.
        quiet = d.mcr("trace", "feed", "--timeout", "0.5")
        assert quiet.stdout.splitlines() == ["trace of rule 1: 0 packet(s), timed out"]

        # A client that goes away ends its trace: the next one is not refused as busy.
        # (It speaks the control protocol itself, so the test knows its trace has
        # started before asking for another, rather than racing a CLI for it.)
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            gone.settimeout(10)
            gone.connect(d.socket)
            gone.sendall(json.dumps({"cmd": "trace", "args": {"rule": "feed", "timeout": 60}}).encode() + b"\n")
            started = json.loads(gone.makefile().readline())
            assert started["ok"], started
            busy = d.mcr("trace", "feed", "--timeout", "0.2", check=False)
            assert busy.returncode == 1 and "another trace is running" in busy.stderr, busy.stderr
        finally:
            gone.close()
        after = wait_for(lambda: (r := d.mcr("trace", "feed", "--timeout", "0.2", check=False)).returncode == 0 and r,
                         5, "the trace of a client that went away to end")
        assert after.stdout.splitlines() == ["trace of rule 1: 0 packet(s), timed out"]

        unknown = d.mcr("trace", "nosuch", check=False)
        assert unknown.returncode == 1 and "no rule with id or name 'nosuch'" in unknown.stderr
        assert unknown.stdout == ""
        bad = d.mcr("trace", "feed", "--count", "0", check=False)
        assert bad.returncode == 1 and "count 0 is outside" in bad.stderr
