"""Run-time log levels reach every worker (also ones started later), workers
are pinned when asked, SIGINT stops cleanly, and a worker whose rule set
drifted from the supervisor's is repaired by re-sync."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from daemon_support import Daemon, daemon, frames, rule, send, sink, wait_for

from mcr import _engine
from mcr.config import Config
from mcr.lab import chain
from mcr.netns import in_netns
from mcr.rules import Output, Rule
from mcr.supervisor import Supervisor


def engine_debug_pids(log: Path) -> set[int]:
    pids = set()
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("facility") == "engine" and entry.get("level") == "debug":
            pids.add(entry["pid"])
    return pids


def test_log_level_reaches_running_and_later_workers(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=2) as d:
        d.mcr("log-level", "set", "debug", "--facility", "engine")
        levels = json.loads(d.mcr("log-level", "get", "--json").stdout)["levels"]
        assert levels["engine"] == "debug"
        d.client.add_rule(rule(lab))  # a command every engine logs at debug level
        first = set(d.worker_pids())
        wait_for(lambda: engine_debug_pids(d.log) >= first, 5, "debug lines from both workers")
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        later = wait_for(lambda: set(d.worker_pids()) - first, 5, "the restarted worker")
        wait_for(lambda: engine_debug_pids(d.log) >= later, 5, "debug lines from the restarted worker")


def test_pinned_workers_and_sigint(tmp_path):
    with chain(n_sinks=1) as lab:
        d = Daemon(lab, tmp_path, workers=2, extra=["--pin-cores", "1,0"])  # stopped by hand below
        try:
            allowed = {}
            for w in d.client.workers():
                status = Path(f"/proc/{w['pid']}/status").read_text()
                allowed[w["id"]] = next(l.split(":")[1].strip() for l in status.splitlines()
                                        if l.startswith("Cpus_allowed_list"))
            assert allowed == {0: "1", 1: "0"}
            pids = d.worker_pids()
            d.process.send_signal(signal.SIGINT)
            assert d.process.wait(15) == 0
            for pid in pids:
                assert not Path(f"/proc/{pid}").exists()
            assert not Path(d.socket).exists()
        finally:
            if d.process.poll() is None:
                d.process.kill()


def test_drifted_worker_is_resynced(tmp_path):
    """Runs the supervisor in this process so the test can break a worker's rule set behind its back."""
    with chain(n_sinks=1) as lab:
        config = Config(workers=1, rules=(Rule(lab.relay_in, "239.1.1.1", 5000,
                                               (Output("239.2.2.2", 6000, lab.relay_out[0]),)),))
        sup = Supervisor(config, socket_path=str(tmp_path / "control.sock"))

        async def scenario() -> None:
            running = asyncio.create_task(sup.run())
            try:
                while not any(w.state == "running" for w in sup.pool):
                    await asyncio.sleep(0.05)
                worker = sup.pool[0]
                await worker.call(_engine.encode_remove_rule, 1)  # drift: the worker lost rule 1
                for _ in range(60):
                    if sup.resyncs:
                        break
                    await asyncio.sleep(0.1)
                assert sup.resyncs == 1
                raw = (await worker.call(_engine.encode_get_stats))["stats"]
                assert [r["id"] for r in raw["rules"]] == [1]
            finally:
                sup.stop()
                await running

        with in_netns(lab.relay_ns):
            asyncio.run(scenario())
        with sink(lab) as s:  # nothing runs any more: the rule's traffic stopped with the daemon
            send(lab, frames(lab, 50))
            assert s.receive(50, timeout=1, idle=0.5) == []
