"""mcr.api.Client and the CLI client verbs against the control server and an
in-memory supervisor (the daemon end to end is in test_daemon_*.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from fake_supervisor import FakeSupervisor, ServerThread

from mcr.api import ApiError, Client
from mcr.cli import main
from mcr.config import Config
from mcr.rules import Output, Rule

RULE = Rule("eth0", "239.1.1.1", 5000, (Output("239.2.2.2", 5000, "eth1"),), name="feed-a")


@pytest.fixture
def server(tmp_path):
    with ServerThread(tmp_path / "control.sock") as running:
        yield running


@pytest.fixture
def client(server):
    with Client(server.path) as c:
        yield c


def test_rules_by_object_dict_and_text(server, client):
    assert client.ping() == "9.9.9-fake"
    assert client.add_rule(RULE) == 1
    assert client.add_rule({"input_interface": "eth0", "group": "239.1.1.2", "port": 5000,
                            "outputs": ["239.3.3.3:5000:eth1"]}) == 2
    assert client.add_rule("in=eth0 group=239.1.1.3:5000 out=239.4.4.4:5000:eth1 name=three") == 3
    rules = client.rules()
    assert rules[1] == RULE and [r.name for r in rules.values()] == ["feed-a", None, "three"]
    client.remove_rule("feed-a")
    client.remove_rule(2)
    assert list(client.rules()) == [3]


def test_refusals_raise_api_error_with_the_code(client):
    client.add_rule(RULE)
    with pytest.raises(ApiError) as caught:
        client.add_rule(RULE)
    assert caught.value.code == "conflict" and "already relays" in str(caught.value)
    with pytest.raises(ApiError, match="no rule with id or name 'nope'") as caught:
        client.remove_rule("nope")
    assert caught.value.code == "not_found"
    with pytest.raises(ApiError, match="rule.port") as caught:
        client.add_rule({"input_interface": "eth0", "group": "239.1.1.9", "port": 0, "outputs": ["239.2.2.2:1:eth1"]})
    assert caught.value.code == "bad_request"
    assert isinstance(caught.value, RuntimeError)


def test_observability_and_log_levels(client):
    client.add_rule(RULE)
    assert client.stats()["rules"]["1"]["name"] == "feed-a"
    assert client.workers()[0]["state"] == "running"
    assert client.set_log_level("debug") == {"default": "debug"}
    assert client.set_log_level("error", facility="worker") == {"default": "debug", "worker": "error"}
    assert client.log_levels()["worker"] == "error"


def test_configs_from_object_dict_or_file(server, client, tmp_path):
    path = tmp_path / "mcr.json"
    Config(rules=(RULE,)).save(path)
    assert client.check_config(path) == {"rules": 1}
    assert client.check_config({"workers": 3}) == {"rules": 0}
    assert server.sup.rules == {}
    assert client.load_config(path)["added"] == 1
    assert client.load_config(Config(rules=(RULE,)), replace=True)["unchanged"] == 1
    assert client.save_config() == "/etc/mcr/mcr.json"
    assert client.save_config(tmp_path / "out.json") == str(tmp_path / "out.json")


def test_no_daemon_is_a_clear_error(tmp_path):
    with pytest.raises(ApiError, match="no such socket: is the daemon running") as caught:
        Client(tmp_path / "none.sock").ping()
    assert caught.value.code == "unreachable"


def test_an_idle_connection_dropped_by_the_daemon_is_reopened_without_repeating(tmp_path):
    with ServerThread(tmp_path / "control.sock", request_timeout=0.3) as running, Client(running.path) as c:
        assert c.ping()
        time.sleep(0.8)  # the server has sent its timeout reply and closed
        assert c.add_rule(RULE) == 1
        assert len(running.sup.rules) == 1


class SlowSupervisor(FakeSupervisor):
    async def stats(self) -> dict:
        await asyncio.sleep(3)
        return {}


def test_no_reply_in_time_is_a_timeout(tmp_path):
    with ServerThread(tmp_path / "control.sock", SlowSupervisor()) as running:
        with pytest.raises(ApiError) as caught:
            Client(running.path, timeout=0.3).stats()
        assert caught.value.code == "timeout"
        assert Client(running.path).ping()


# The CLI client verbs -----------------------------------------------------------------

def mcr(server, *args: str) -> tuple[int, str, str]:
    """`python -m mcr ARGS --socket PATH` in a subprocess; (status, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "mcr", *args, "--socket", server.path],
                            capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout, result.stderr


def test_ping_from_the_command_line(server):
    status, out, err = mcr(server, "ping")
    assert status == 0, err
    assert "mcr daemon 9.9.9-fake answers on" in out
    env = {**os.environ, "MCR_SOCKET": server.path}
    result = subprocess.run([sys.executable, "-m", "mcr", "ping", "--json"], capture_output=True, text=True,
                            timeout=30, env=env)
    assert json.loads(result.stdout)["version"] == "9.9.9-fake"


def run_cli(capsys, server, *args: str) -> tuple[int, str, str]:
    status = main([*args, "--socket", server.path])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_rules_verbs_and_the_mcrctl_form(server, capsys):
    status, out, _ = run_cli(capsys, server, "add", "--input-interface", "eth0", "--input-group", "239.1.1.1",
                             "--input-port", "5000", "--outputs", "239.2.2.2:5000:eth1,239.3.3.3:5000:eth2",
                             "--name", "feed-a")
    assert status == 0 and out.startswith("rule 1 added")
    status, out, _ = run_cli(capsys, server, "rules", "add", "--json",
                             "--rule", "in=eth0 group=239.1.1.2:5000 source=10.1.1.1 out=239.4.4.4:5000:eth1")
    assert json.loads(out) == {"id": 2}
    _, out, _ = run_cli(capsys, server, "rules", "list")
    header, first, second = out.splitlines()
    assert header.split() == ["ID", "NAME", "INPUT", "GROUP", "SOURCE", "OUTPUTS", "STATE"]
    assert first.split() == ["1", "feed-a", "eth0", "239.1.1.1:5000", "-", "239.2.2.2:5000:eth1,239.3.3.3:5000:eth2",
                             "active"]
    assert second.split()[4] == "10.1.1.1"
    assert run_cli(capsys, server, "remove", "feed-a")[0] == 0
    assert [r["id"] for r in json.loads(run_cli(capsys, server, "list", "--json")[1])["rules"]] == [2]
    status, _, err = run_cli(capsys, server, "rules", "remove", "99")
    assert status == 1 and err == "mcr rules: no rule with id or name '99'\n"


def test_rules_add_refuses_half_given_rules_before_calling(server, capsys):
    status, _, err = run_cli(capsys, server, "add", "--input-interface", "eth0", "--input-group", "239.1.1.1")
    assert status == 1 and "are all needed" in err
    status, _, err = run_cli(capsys, server, "add", "--input-interface", "eth0", "--input-group", "0.0.0.0",
                             "--input-port", "1", "--outputs", "239.2.2.2:1:eth1")
    assert status == 1 and "neither a multicast group nor a unicast address" in err
    assert server.sup.rules == {}


def test_stats_workers_and_log_level_verbs(server, capsys):
    server.sup.rules[1] = RULE
    _, out, _ = run_cli(capsys, server, "stats")
    assert "-> 239.2.2.2:5000:eth1" in out and "drops: no_rule=3" in out and "KERNEL_DROPS" in out
    assert "eth0 239.1.1.1:5000" in out
    _, out, _ = run_cli(capsys, server, "stats", "--json")
    assert json.loads(out)["rules"]["1"]["packets"] == 5
    _, out, _ = run_cli(capsys, server, "workers")
    assert out.splitlines()[1].split() == ["0", "4242", "0", "running", "0", "0", "1h02m05s"]
    assert out.splitlines()[-1] == "faults survived: health 1"
    _, out, _ = run_cli(capsys, server, "log-level", "set", "debug", "--facility", "worker")
    assert "worker    debug" in out
    _, out, _ = run_cli(capsys, server, "log-level", "get", "--json")
    assert json.loads(out) == {"levels": {"default": "info", "worker": "debug"}}


def test_config_verbs(server, capsys, tmp_path, monkeypatch):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    Config(rules=(RULE,)).save(good)
    bad.write_text(json.dumps({"wokers": 2, "rules": [{**json.loads(good.read_text())["rules"][0], "port": 0}]}))
    assert main(["config", "check", str(good)]) == 0
    assert "ok, 1 rules" in capsys.readouterr().out
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"mcr config: {bad}: wokers: unknown key (expected one of: workers, pin_cores, log_level, "
                   "log_levels, idle_stop_after, user, metrics, igmp, pim, msdp, joins, rules)", f"mcr config: {bad}: rules[0].port: 0 is outside 1-65535"]
    assert run_cli(capsys, server, "config", "load", str(bad))[0] == 1
    _, out, _ = run_cli(capsys, server, "config", "load", str(good))
    assert out.strip() == "added 1, removed 0, unchanged 0"
    monkeypatch.chdir(tmp_path)
    _, out, _ = run_cli(capsys, server, "config", "save", "saved.json")
    assert out.strip() == f"saved {tmp_path / 'saved.json'}"
