"""A large plant: a config of 10,000 rules with 10 outputs each (100,000
outputs) starts the daemon, every rule is reported, a sample of flows
forwards exactly (counted by kernel UDP sockets), and a worker killed with
SIGKILL comes back with every rule while counters never go backwards."""

from __future__ import annotations

import json
import os
import signal
import time

from daemon_support import daemon, send, seqs, wait_for

from mcr.lab import UdpSink, chain, numbered_payloads, udp_frame

RULES, OUTPUTS = 10_000, 10
SAMPLE = (0, 1234, 5678, RULES - 1)  # rules whose traffic is counted
PER_FLOW = 200


def group(i: int, base: int) -> str:
    return f"239.{base}.{i >> 8}.{i & 255}"


def write_config(path, lab) -> None:
    rules = [{"name": f"r{i}", "input_interface": lab.relay_in, "group": group(i, 1), "port": 5000,
              "outputs": [f"{group(i, 2)}:{6000 + j}:{lab.relay_out[0]}" for j in range(OUTPUTS)]}
             for i in range(RULES)]
    path.write_text(json.dumps({"workers": 1, "rules": rules}))


def relay_sample(lab, stream: int) -> None:
    """PER_FLOW packets on each sampled rule; its first and last outputs must get exactly those."""
    sinks = {(i, j): UdpSink(lab.sink_ns[0], group(i, 2), 6000 + j, lab.sink_if[0]) for i in SAMPLE
             for j in (0, OUTPUTS - 1)}
    try:
        frames = [udp_frame(lab.source_addr, group(i, 1), 40000, 5000, p)
                  for i in SAMPLE for p in numbered_payloads(PER_FLOW, 64, stream)]
        assert send(lab, frames, rate=4000) == len(frames)
        for (i, j), s in sinks.items():
            got = seqs(s.receive(PER_FLOW, timeout=10, idle=1.0))
            assert sorted(got) == list(range(PER_FLOW)), f"rule {i} output {j}: {len(got)} of {PER_FLOW}"
    finally:
        for s in sinks.values():
            s.close()


def sampled_packets(d) -> dict[str, int]:
    stats = d.client.stats()
    assert len(stats["rules"]) == RULES
    return {f"r{i}": next(r["packets"] for r in stats["rules"].values() if r["name"] == f"r{i}") for i in SAMPLE}


def test_ten_thousand_rules_load_report_relay_and_survive_a_worker_kill(tmp_path):
    config = tmp_path / "mcr.json"
    with chain(n_sinks=1) as lab:
        write_config(config, lab)
        with daemon(lab, tmp_path, config=config) as d:
            (victim,) = wait_for(d.worker_pids, 30, "a running worker")
            listed = json.loads(d.mcr("rules", "list", "--json").stdout)
            assert len(listed["rules"]) == RULES
            stats = json.loads(d.mcr("stats", "--json").stdout)
            assert len(stats["rules"]) == RULES
            assert sum(len(r["outputs"]) for r in stats["rules"].values()) == RULES * OUTPUTS

            relay_sample(lab, stream=1)
            wait_for(lambda: set(sampled_packets(d).values()) == {PER_FLOW}, 5, "the sample counted")

            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: [p for p in d.worker_pids() if p != victim], 30, "a restarted worker")
            assert set(sampled_packets(d).values()) == {PER_FLOW}, "counters went backwards"
            relay_sample(lab, stream=2)  # the new worker has the rules
            wait_for(lambda: set(sampled_packets(d).values()) == {2 * PER_FLOW}, 5, "the sample counted twice")
            time.sleep(1.5)  # a health pass or more: the restarted worker holds exactly our rule set
            stats = d.client.stats()
            assert stats["resyncs"] == 0, "the worker's rule set drifted"
            assert {w["state"] for w in d.client.workers()} == {"running"}
