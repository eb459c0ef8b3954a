"""The command line: version, the foreground relay, and clear errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcr.lab import FrameSender, UdpSink, chain, numbered_payloads, udp_frame

MCR = [sys.executable, "-m", "mcr"]
SCRIPT = str(Path(sys.executable).with_name("mcr"))


def test_version_from_module_and_script_agree():
    by_module = subprocess.run([*MCR, "--version"], capture_output=True, text=True, check=True).stdout
    by_script = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, check=True).stdout
    assert by_module == by_script
    assert by_module.startswith("mcr ")


@pytest.mark.parametrize("args, message", [
    (["--rule", "in=eth0 group=0.0.0.0:5000 out=239.2.2.2:5000:eth1"], "neither a multicast group nor a unicast"),
    (["--rule", "in=eth0 group=239.1.1.1:5000"], "missing out="),
    (["--rule", "in=eth0 group=239.1.1.1:5000 out=239.2.2.2:5000:eth1:ttl=0"], "outside 1-255"),
    (["--rule", "in=eth0 group=239.1.1.1:5000 out=239.1.1.1:5000:eth0"], "would loop"),
    (["--input-interface", "eth0", "--input-group", "239.1.1.1"], "go together"),
    ([], "no rule given"),
])
def test_bad_rules_are_refused_with_the_reason(args, message):
    result = subprocess.run([*MCR, "relay", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


def test_unknown_interface_is_named():
    with chain(n_sinks=1) as lab:
        result = subprocess.run([*MCR, "relay", "--netns", lab.relay_ns, "--rule",
                                 f"in=nosuch0 group=239.1.1.1:5000 out=239.2.2.2:5000:{lab.relay_out[0]}"],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "no interface named 'nosuch0'" in result.stderr


def test_relay_verb_forwards_and_prints_totals_on_interrupt():
    packets = 500
    with chain(n_sinks=1) as lab:
        relay = subprocess.Popen(
            [*MCR, "relay", "--netns", lab.relay_ns, "--interval", "0.5", "--json",
             "--input-interface", lab.relay_in, "--input-group", "239.1.1.1", "--input-port", "5000",
             "--outputs", f"239.5.5.5:6000:{lab.relay_out[0]}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = json.loads(relay.stdout.readline())  # the relay is up once it reports
            assert first["rules"]
            with UdpSink(lab.sink_ns[0], "239.5.5.5", 6000, lab.sink_if[0]) as sink:
                frames = [udp_frame(lab.source_addr, "239.1.1.1", 4000, 5000, p) for p in numbered_payloads(packets, 100)]
                with FrameSender(lab.source_ns, lab.source_if) as sender:
                    assert sender.send(frames, rate_pps=5000) == packets
                got = sink.receive(packets, timeout=10)
            time.sleep(0.2)
            relay.send_signal(signal.SIGINT)
            out, err = relay.communicate(timeout=10)
        finally:
            if relay.poll() is None:
                relay.kill()
                relay.wait()
    assert relay.returncode == 0, err
    assert len(got) == packets
    totals = json.loads(out.strip().splitlines()[-1])
    (rule,) = totals["rules"].values()
    assert rule["packets"] == packets
    # The same shape as the daemon's `mcr stats --json` (tests/test_daemon_cli.py).
    assert {"time", "rules", "drops", "events", "inputs"} <= set(totals)
    assert set(rule) == {"name", "rule", "state", "packets", "bytes", "outputs"}
    assert set(list(rule["outputs"].values())[0]) == {"packets", "bytes", "errors"}
    assert list(rule["outputs"].values())[0]["packets"] == packets
