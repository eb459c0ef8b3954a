"""Several workers, one input: PACKET_FANOUT shares the traffic, so every
packet is relayed exactly once. A worker killed under traffic comes back
with its rules; crash loops back off (kill storms: test_daemon_kill_storm.py). Without active rules workers stop,
and start again when a rule arrives."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from daemon_support import daemon, frames, rule, send, seqs, sink, wait_for

from mcr.lab import UdpSender, chain, numbered_payloads


def test_two_workers_relay_every_packet_exactly_once(tmp_path):
    count = 4000
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=2) as d:
        d.client.add_rule(rule(lab))
        with sink(lab) as s:
            assert send(lab, frames(lab, count, flows=64), rate=8000) == count
            got = seqs(s.receive(count, timeout=15))
        assert len(got) == count, f"{len(got)} received"
        assert sorted(got) == list(range(count)), "lost or duplicated packets"
        stats = d.client.stats()
        (entry,) = stats["rules"].values()
        assert entry["packets"] == count


def test_killed_worker_is_restarted_with_its_rules(tmp_path):
    count, rate = 6000, 3000  # two seconds of traffic, the kill in the middle
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=1) as d:
        d.client.add_rule(rule(lab))
        (victim,) = d.worker_pids()
        before = next(iter(d.client.stats()["rules"].values()))["packets"]
        with sink(lab) as s:
            received: list = []
            rx = threading.Thread(target=lambda: received.extend(s.receive(count, timeout=15, idle=3)))
            rx.start()
            tx = threading.Thread(target=send, args=(lab, frames(lab, count), rate))
            tx.start()
            time.sleep(0.7)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            new = wait_for(lambda: [p for p in d.worker_pids() if p != victim], 5, "a restarted worker")
            restart_time = time.monotonic() - killed_at
            tx.join()
            rx.join()
        got = seqs(received)
        assert restart_time < 1.0, f"restart took {restart_time:.2f} s"
        assert new and victim not in new
        assert len(got) == len(set(got)), "duplicates after the restart"
        assert max(got) == count - 1, "forwarding did not resume after the restart"
        assert len(got) > count // 2
        workers = d.client.workers()
        assert workers[0]["restarts"] == 1 and workers[0]["state"] == "running"
        after = next(iter(d.client.stats()["rules"].values()))["packets"]
        # Counters never go backwards across a restart. (What the killed worker
        # relayed after the supervisor's last poll, at most one health interval,
        # is not in the totals: see docs/daemon.md.)
        assert before < after <= count


def test_crash_loop_backs_off(tmp_path):
    # Each incarnation is killed as soon as it runs, long before STABLE_AFTER:
    # crashes in a row (the delays themselves: test_worker_restarts.py).
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=1) as d:
        seen = set()
        for _ in range(5):
            pid = wait_for(lambda: [p for p in d.worker_pids() if p not in seen], 10, "the next incarnation")[0]
            seen.add(pid)
            os.kill(pid, signal.SIGKILL)
        state = wait_for(lambda: d.client.workers()[0]["state"] == "crash-looping" and d.client.workers()[0],
                         5, "crash-looping state")
        assert state["restarts"] >= 4 and state["crashes"] >= 5


def kernel_send(lab, count: int) -> None:
    """`count` numbered datagrams from an ordinary UDP socket on the source host."""
    with UdpSender(lab.source_ns, lab.source_if) as sender:
        assert sender.send(numbered_payloads(count, 100), "239.1.1.1", 5000, rate_pps=4000, timeout=30) == count


def test_workers_stop_without_active_rules_and_start_again_when_one_arrives(tmp_path):
    config = tmp_path / "mcr.json"
    config.write_text(json.dumps({"idle_stop_after": 1}))
    count = 500
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=2, config=config) as d:
        first = [w["pid"] for w in d.client.workers()]
        wait_for(lambda: all(w["state"] == "idle" for w in d.client.workers()), 10, "the workers to idle out")
        for pid in first:
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 5, f"worker process {pid} to end")

        rule_id = d.client.add_rule(rule(lab))
        workers = d.client.workers()
        assert [w["state"] for w in workers] == ["running", "running"], workers
        assert not set(first) & {w["pid"] for w in workers}
        with sink(lab) as s:
            kernel_send(lab, count)
            assert sorted(seqs(s.receive(count, timeout=10))) == list(range(count))
        relayed = d.client.stats()["inputs"][lab.relay_in]["frames"]
        assert relayed >= count

        d.client.remove_rule(rule_id)
        wait_for(lambda: all(w["state"] == "idle" for w in d.client.workers()), 10, "the workers to idle again")
        assert d.client.stats()["inputs"][lab.relay_in]["frames"] == relayed, "counters went backwards"
        assert json.loads(d.mcr("workers", "--json").stdout)["workers"][0]["state"] == "idle"
