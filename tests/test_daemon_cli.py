"""The daemon end to end through the CLI: add a rule, traffic flows, stats
show it, remove it, traffic stops. Also who the workers run as, and who
may use the control socket."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from daemon_support import daemon, frames, send, seqs, sink

from mcr.lab import chain


def test_rule_add_traffic_stats_remove(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        out = d.mcr("rules", "add", "--input-interface", lab.relay_in, "--input-group", "239.1.1.1",
                    "--input-port", "5000", "--outputs", f"239.2.2.2:6000:{lab.relay_out[0]}", "--name", "feed")
        assert "feed" in out.stdout or "1" in out.stdout
        listed = json.loads(d.mcr("rules", "list", "--json").stdout)
        assert [r["name"] for r in listed["rules"]] == ["feed"]
        with sink(lab) as s:
            assert send(lab, frames(lab, 1000)) == 1000
            assert sorted(seqs(s.receive(1000, timeout=10))) == list(range(1000))
        stats = json.loads(d.mcr("stats", "--json").stdout)
        (entry,) = stats["rules"].values()
        assert entry["name"] == "feed" and entry["packets"] == 1000
        # The same shape as `mcr relay --json` (tests/test_cli.py).
        assert {"time", "rules", "drops", "events", "inputs"} <= set(stats)
        assert set(entry) == {"name", "rule", "state", "packets", "bytes", "outputs"}
        assert set(list(entry["outputs"].values())[0]) == {"packets", "bytes", "errors"}
        assert list(entry["outputs"].values())[0]["packets"] == 1000
        human = d.mcr("stats").stdout
        assert "feed" in human and "1000" in human

        d.mcr("rules", "remove", "feed")
        assert json.loads(d.mcr("rules", "list", "--json").stdout)["rules"] == []
        with sink(lab) as s:
            send(lab, frames(lab, 200))
            assert s.receive(200, timeout=1.5, idle=1.0) == []


def test_mcrctl_form_still_works(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        d.mcr("add", "--input-interface", lab.relay_in, "--input-group", "239.1.1.1", "--input-port", "5000",
              "--outputs", f"239.2.2.2:6000:{lab.relay_out[0]}")
        assert len(json.loads(d.mcr("list", "--json").stdout)["rules"]) == 1
        versions = json.loads(d.mcr("version", "--json").stdout)
        assert versions["daemon"] == versions["client"]


def test_workers_are_unprivileged_and_socket_is_0660(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path, workers=2) as d:
        pids = d.worker_pids()
        assert len(pids) == 2
        for pid in pids:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
            uids = status["Uid"].split()
            assert all(u != "0" for u in uids), status["Uid"]
            assert int(status["CapEff"].strip(), 16) == 0, status["CapEff"]
            assert int(status["CapPrm"].strip(), 16) == 0, status["CapPrm"]
        mode = stat.S_IMODE(os.stat(d.socket).st_mode)
        assert mode == 0o660, oct(mode)


def test_bad_requests_change_nothing(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        good = f"in={lab.relay_in} group=239.1.1.1:5000 out=239.2.2.2:6000:{lab.relay_out[0]}"
        d.mcr("rules", "add", "--rule", good)
        for bad, reason in [
            (good, "already relays"),
            (f"in={lab.relay_in} group=0.0.0.0:5000 out=239.2.2.2:6000:{lab.relay_out[0]}", "neither a multicast"),
        ]:
            result = d.mcr("rules", "add", "--rule", bad, check=False)
            assert result.returncode == 1 and reason in result.stderr, result.stderr
        assert len(json.loads(d.mcr("rules", "list", "--json").stdout)["rules"]) == 1
        result = d.mcr("rules", "remove", "99", check=False)
        assert result.returncode == 1 and "99" in result.stderr
