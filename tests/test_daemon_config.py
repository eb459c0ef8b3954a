"""Config on a running daemon: SIGHUP applies only the difference (unchanged
rules lose nothing), save/load round-trips, and run-time rules survive a
daemon restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

from daemon_support import daemon, frames, rule, send, seqs, sink, wait_for

from mcr.config import Config
from mcr.lab import chain


def write_config(path, rules: list[dict]) -> None:
    path.write_text(json.dumps({"workers": 1, "rules": rules}))


def test_sighup_reload_keeps_unchanged_rules_lossless(tmp_path):
    config = tmp_path / "mcr.json"
    count, rate = 6000, 3000
    with chain(n_sinks=1) as lab:
        write_config(config, [rule(lab, name="a")])
        with daemon(lab, tmp_path, config=config) as d:
            assert [r.name for r in d.client.rules().values()] == ["a"]
            with sink(lab) as s:
                received: list = []
                rx = threading.Thread(target=lambda: received.extend(s.receive(count, timeout=15)))
                rx.start()
                tx = threading.Thread(target=send, args=(lab, frames(lab, count), rate))
                tx.start()
                time.sleep(0.5)
                for extra in range(3):  # three reloads while rule "a" carries traffic
                    write_config(config, [rule(lab, name="a"),
                                          rule(lab, group=f"239.1.1.{10 + extra}", name=f"b{extra}")])
                    d.process.send_signal(signal.SIGHUP)
                    wait_for(lambda: any(r.name == f"b{extra}" for r in d.client.rules().values()), 5, "the reload")
                    time.sleep(0.3)
                tx.join()
                rx.join()
            assert sorted(seqs(received)) == list(range(count)), f"{count - len(received)} lost during reloads"
            names = sorted(r.name for r in d.client.rules().values())
            assert names == ["a", "b2"]


def test_bad_config_on_sighup_changes_nothing(tmp_path):
    config = tmp_path / "mcr.json"
    with chain(n_sinks=1) as lab:
        write_config(config, [rule(lab, name="a")])
        with daemon(lab, tmp_path, config=config) as d:
            config.write_text('{"rules": [{"input_interface": "x", "group": "10.0.0.1"}]}')
            d.process.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload" in d.log.read_text(), 5, "the reload to be logged")
            assert [r.name for r in d.client.rules().values()] == ["a"]


def test_save_load_round_trip_and_restart(tmp_path):
    with chain(n_sinks=1) as lab:
        with daemon(lab, tmp_path) as d:
            d.client.add_rule(rule(lab, name="one"))
            d.client.add_rule(rule(lab, group="239.1.1.2", out_port=6001, name="two"))
            saved = tmp_path / "saved.json"
            d.mcr("config", "save", str(saved))
            before = d.client.rules()
        config = Config.load(saved)
        assert [r.name for r in config.rules] == ["one", "two"]
        # A restart with the same state file brings back the rules added at run time.
        with daemon(lab, tmp_path) as d:
            assert [(r.name, r.group) for r in d.client.rules().values()] == [(r.name, r.group) for r in before.values()]
            with sink(lab) as s:
                send(lab, frames(lab, 300))
                assert len(s.receive(300, timeout=10)) == 300
            # Loading the saved file with --replace yields the same rules, all unchanged.
            result = json.loads(d.mcr("config", "load", str(saved), "--replace", "--json").stdout)
            assert result["unchanged"] == 2 and result["added"] == 0 and result["removed"] == 0


def test_save_keeps_the_protocol_settings(tmp_path):
    """`config save` writes what the daemon runs with: its IGMP, PIM and MSDP
    sections too, not only rules and worker settings."""
    protocols = {"igmp": {"interfaces": {"nosuch0": {"query_interval": 30}}},
                 "pim": {"interfaces": {"nosuch0": {"hello_period": 10}}, "rp": [{"address": "10.9.9.9"}]},
                 "msdp": {"originator": "10.9.9.9", "peers": [{"address": "10.9.9.1", "local": "10.9.9.9"}]}}
    config = tmp_path / "mcr.json"
    config.write_text(json.dumps({"workers": 1, **protocols}))
    with chain(n_sinks=1) as lab:
        with daemon(lab, tmp_path, config=config) as d:
            saved = Config.load(d.client.save_config(tmp_path / "saved.json"))
    wanted = Config.from_dict({"workers": 1, **protocols})
    assert (saved.igmp, saved.pim, saved.msdp) == (wanted.igmp, wanted.pim, wanted.msdp)


def test_config_errors_name_key_and_reason(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"input_interface": "eth0", "group": "239.1.1.1", "port": 5000,
                                          "outputs": ["239.1.1.1:5000:eth0"]}], "wokers": 2}))
    result = subprocess.run([sys.executable, "-m", "mcr", "config", "check", str(bad)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "wokers" in result.stderr and "loop" in result.stderr


def test_config_naming_a_missing_interface_starts_with_that_rule_waiting(tmp_path):
    with chain(n_sinks=1) as lab:
        config = tmp_path / "mcr.json"
        missing = {**rule(lab), "outputs": ["239.2.2.2:6000:mcrvpn0"], "group": "239.1.1.9"}
        write_config(config, [rule(lab), missing])
        with daemon(lab, tmp_path, config=config) as d:
            listed = json.loads(d.mcr("rules", "list", "--json").stdout)["rules"]
            assert [(r["state"], r.get("waiting_for")) for r in listed] == [("active", None), ("waiting", ["mcrvpn0"])]
            with sink(lab) as s:
                assert send(lab, frames(lab, 500)) == 500
                assert sorted(seqs(s.receive(500, timeout=10))) == list(range(500))


def allowed_cpus(pid: int) -> str:
    status = open(f"/proc/{pid}/status").read()
    return next(line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))


def test_replacing_the_config_applies_settings_at_run_time_and_names_those_needing_a_restart(tmp_path):
    config = tmp_path / "mcr.json"
    with chain(n_sinks=1) as lab:
        base = {"workers": 1, "rules": [rule(lab, name="a")]}
        config.write_text(json.dumps(base))
        with daemon(lab, tmp_path, config=config) as d:
            (pid,) = d.worker_pids()
            run_time = {**base, "pin_cores": [1], "log_level": "warning", "log_levels": {"engine": "debug"},
                        "idle_stop_after": 30}
            result = d.client.load_config(run_time, replace=True)
            assert sorted(result["applied"]) == ["idle_stop_after", "log_level", "log_levels", "pin_cores"]
            assert result["restart_needed"] == [] and result["unchanged"] == 1
            assert allowed_cpus(pid) == "1", "the running worker was not re-pinned"
            assert d.client.log_levels() == {"default": "warning", "engine": "debug"}

            config.write_text(json.dumps({**run_time, "workers": 2, "pin_cores": None, "user": "daemon"}))
            d.process.send_signal(signal.SIGHUP)
            wait_for(lambda: "need a restart" in d.log.read_text(), 5, "the reload to name what needs a restart")
            warning = next(json.loads(line)["msg"] for line in d.log.read_text().splitlines()
                           if "need a restart" in line)
            assert "workers=2" in warning and "user=daemon" in warning
            assert d.worker_pids() == [pid], "the reload restarted or added workers"
            assert allowed_cpus(pid) != "1", "pin_cores: null was not applied"

            d.client.set_log_level("error", "control")
            saved = json.loads(open(d.client.save_config(tmp_path / "saved.json")).read())
            assert saved["log_level"] == "warning"
            assert saved["log_levels"] == {"engine": "debug", "control": "error"}
            assert (saved["workers"], saved["user"], saved["idle_stop_after"]) == (2, "daemon", 30)
