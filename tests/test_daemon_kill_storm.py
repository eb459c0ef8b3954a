"""A kill -9 storm on a worker under traffic from kernel UDP sockets.

Each incarnation is killed once it has run for STABLE_AFTER (so it is not a
crash loop, and no restart waits): every restart, from the kill to the
new process running with its sockets and the whole rule set, takes under a
second; every rule forwards again after each one; the receivers never see a
datagram twice; and no counter `mcr stats` shows ever goes backwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from daemon_support import daemon, rule, sink, wait_for

from mcr.lab import UdpSender, chain, numbered_payloads, payload_seq
from mcr.supervisor.workers import STABLE_AFTER

STREAMS = 3
KILLS = 10
RATE = 1000  # datagrams per second per stream
DURATION = KILLS * (STABLE_AFTER + 1.0) + 4  # seconds of traffic: the kills fit well inside


def counters(stats: dict) -> dict[tuple, int]:
    """Every counter of a stats reply, by its path (rules, drops, events, inputs)."""
    flat: dict[tuple, int] = {}

    def walk(path: tuple, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(path + (key,), inner)
        elif isinstance(value, int) and not isinstance(value, bool):
            flat[path] = value

    for section in ("rules", "drops", "events", "inputs"):
        walk((section,), stats[section])
    return flat


def went_backwards(samples: list[dict[tuple, int]]) -> list[str]:
    return [f"{'/'.join(map(str, path))}: {value} -> {later[path]}"
            for earlier, later in zip(samples, samples[1:])
            for path, value in earlier.items() if later.get(path, 0) < value]


def rule_packets(stats: dict) -> dict[str, int]:
    return {rule_id: entry["packets"] for rule_id, entry in stats["rules"].items()}


def send_stream(lab, stream: int, count: int) -> None:
    with UdpSender(lab.source_ns, lab.source_if) as sender:
        sent = sender.send(numbered_payloads(count, 100, stream), f"239.1.1.{stream + 1}", 5000,
                           rate_pps=RATE, timeout=DURATION + 10)
    assert sent == count


def restarted(d, victim: int):
    """The worker's new incarnation, once it runs (with its sockets and rules)."""
    (worker,) = d.client.workers()
    return worker["state"] == "running" and worker["pid"] != victim and worker


def test_kill_storm_restarts_each_worker_within_a_second(tmp_path):
    count = int(RATE * DURATION)
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=1) as d, contextlib.ExitStack() as stack:
        for i in range(STREAMS):
            d.client.add_rule(rule(lab, group=f"239.1.1.{i + 1}", out_group=f"239.2.2.{i + 1}", name=f"feed-{i}"))
        sinks = [stack.enter_context(sink(lab, group=f"239.2.2.{i + 1}")) for i in range(STREAMS)]
        received: list[list] = [[] for _ in range(STREAMS)]
        threads = [threading.Thread(target=lambda i=i: received[i].extend(
                       sinks[i].receive(count, timeout=DURATION + 15, idle=4))) for i in range(STREAMS)]
        threads += [threading.Thread(target=send_stream, args=(lab, i, count)) for i in range(STREAMS)]
        for t in threads:
            t.start()
        wait_for(lambda: all(p > 0 for p in rule_packets(d.client.stats()).values()), 5, "traffic on every rule")
        samples = [counters(d.client.stats())]
        restarts = []
        for _ in range(KILLS):
            (victim,) = d.worker_pids()
            wait_for(lambda: d.client.workers()[0]["uptime"] >= STABLE_AFTER + 0.2, 5, "a stable run")
            samples.append(counters(d.client.stats()))
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            wait_for(lambda: restarted(d, victim), 5, "the restarted worker", interval=0.01)
            restarts.append(time.monotonic() - killed)
            back = d.client.stats()
            samples.append(counters(back))
            # What the new incarnation forwards: the old one is dead and counted in full.
            wait_for(lambda: all(p > rule_packets(back)[r] for r, p in rule_packets(d.client.stats()).items()),
                     3, "every rule forwarding again")
        for t in threads:
            t.join(DURATION + 30)
        samples.append(counters(d.client.stats()))
        workers = d.client.workers()

    print(f"restart times (s): {', '.join(f'{r:.3f}' for r in restarts)}")
    assert max(restarts) < 1.0, f"restart times (s): {restarts}"
    assert workers[0]["restarts"] == KILLS and workers[0]["crashes"] == 0, workers
    assert not went_backwards(samples), went_backwards(samples)
    for stream, got in enumerate(received):
        seqs = [payload_seq(r.payload) for r in got]
        assert {s for s, _ in seqs} == {stream}
        numbers = [n for _, n in seqs]
        assert len(numbers) == len(set(numbers)), f"stream {stream}: duplicates"
        assert max(numbers) == count - 1, f"stream {stream}: forwarding did not resume after the last kill"
        print(f"stream {stream}: {len(numbers)} of {count} received")
