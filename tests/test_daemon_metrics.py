"""The Prometheus endpoint of a real daemon in a lab namespace: kernel UDP
traffic through two rules, scraped over HTTP from inside the relay
namespace and parsed with prometheus_client's own parsers. Counts per rule
and output equal what the receivers got, drops show up by reason, a worker
killed with SIGKILL leaves no counter lower, and the endpoint listens only
where the flag or the config key says, refusing an address it cannot use."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from daemon_support import daemon, wait_for

from mcr.lab import UdpSender, UdpSink, chain, numbered_payloads, open_socket, payload_seq
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

PORT = 9464
A_COUNT, B_COUNT, EXPIRED = 300, 200, 40


def get(lab, path: str = "/metrics", method: str = "GET", accept: str = "") -> tuple[int, dict, str]:
    """One HTTP request to the endpoint, from inside the relay namespace: (status, headers, body)."""
    sock = open_socket(lab.relay_ns, socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(10)
        sock.connect((lab.relay_in_addr, PORT))
        extra = f"Accept: {accept}\r\n" if accept else ""
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: relay\r\n{extra}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split()[1]), headers, body.decode()


def scrape(lab) -> dict[tuple, float]:
    """Every sample of one scrape: (sample name, sorted label items) -> value."""
    status, headers, body = get(lab)
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4"), (status, headers)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict, metric: str, **labels) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def settled(lab, got: dict[tuple, int], times: int) -> dict[tuple, float]:
    """A scrape whose counts match (check_counts). The endpoint shows the
    health pass's last poll of the workers, at most about a second old."""
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(lab)
        try:
            check_counts(samples, got, times)
            return samples
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def listeners(lab) -> list[str]:
    """TCP sockets listening in the relay namespace, as local ADDR:PORT."""
    out = subprocess.run(["ip", "netns", "exec", lab.relay_ns, "ss", "-Hltn"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


def two_rules(lab) -> list[dict]:
    return [{"name": "feed-a", "input_interface": lab.relay_in, "group": "239.1.1.1", "port": 5000,
             "outputs": [f"239.2.2.2:6000:{lab.relay_out[0]}"]},
            {"name": "feed-b", "input_interface": lab.relay_in, "group": "239.1.1.2", "port": 5000,
             "outputs": [f"239.2.2.3:6000:{lab.relay_out[0]}", f"239.2.2.3:6000:{lab.relay_out[1]}"]}]


def relay(lab, stream: int) -> dict[tuple, int]:
    """A_COUNT datagrams to feed-a, B_COUNT to feed-b and EXPIRED with TTL 1 to
    feed-a, from kernel UDP sockets; how many each receiver got, by (rule, output)."""
    a_out, b_out0, b_out1 = (f"239.2.2.2:6000:{lab.relay_out[0]}", f"239.2.2.3:6000:{lab.relay_out[0]}",
                             f"239.2.2.3:6000:{lab.relay_out[1]}")
    sinks = {("1", a_out): UdpSink(lab.sink_ns[0], "239.2.2.2", 6000, lab.sink_if[0]),
             ("2", b_out0): UdpSink(lab.sink_ns[0], "239.2.2.3", 6000, lab.sink_if[0]),
             ("2", b_out1): UdpSink(lab.sink_ns[1], "239.2.2.3", 6000, lab.sink_if[1])}
    try:
        with UdpSender(lab.source_ns, lab.source_if) as sender:
            assert sender.send(numbered_payloads(A_COUNT, 100, stream), "239.1.1.1", 5000, rate_pps=2000) == A_COUNT
            assert sender.send(numbered_payloads(B_COUNT, 80, stream), "239.1.1.2", 5000, rate_pps=2000) == B_COUNT
        with UdpSender(lab.source_ns, lab.source_if, ttl=1) as expiring:
            assert expiring.send(numbered_payloads(EXPIRED, 64, 99), "239.1.1.1", 5000, rate_pps=2000) == EXPIRED
        got = {}
        for key, s in sinks.items():
            wanted = A_COUNT if key[0] == "1" else B_COUNT
            received = s.receive(wanted, timeout=10, idle=1.0)
            assert {payload_seq(r.payload)[0] for r in received} == {stream}, "a TTL-1 datagram was relayed"
            got[key] = len(received)
        return got
    finally:
        for s in sinks.values():
            s.close()


def check_counts(samples: dict, got: dict[tuple, int], times: int) -> None:
    assert value(samples, "mcr_rule_packets_total", rule="1", name="feed-a") == times * A_COUNT
    assert value(samples, "mcr_rule_packets_total", rule="2", name="feed-b") == times * B_COUNT
    assert value(samples, "mcr_rule_bytes_total", rule="1", name="feed-a") == times * A_COUNT * 100
    for (rule, output), received in got.items():
        name = "feed-a" if rule == "1" else "feed-b"
        assert value(samples, "mcr_output_packets_total", rule=rule, name=name, output=output) == received
        assert value(samples, "mcr_output_errors_total", rule=rule, name=name, output=output) == 0
    assert value(samples, "mcr_drops_total", reason="ttl_expired") == times * EXPIRED


def test_scrape_counts_what_receivers_got_and_survives_a_worker_kill(tmp_path):
    with chain(n_sinks=2) as lab, daemon(lab, tmp_path, workers=2,
                                         extra=["--metrics", f"{lab.relay_in_addr}:{PORT}"]) as d:
        assert listeners(lab) == [f"{lab.relay_in_addr}:{PORT}"]
        for r in two_rules(lab):
            d.client.add_rule(r)
        got = relay(lab, stream=1)
        assert set(got.values()) == {A_COUNT, B_COUNT} and len(got) == 3, got
        before = settled(lab, got, times=1)
        assert value(before, "mcr_workers", state="running") == 2
        assert value(before, "mcr_rules", state="active") == 2
        assert value(before, "mcr_input_frames_total", interface=lab.relay_in) >= A_COUNT + B_COUNT + EXPIRED
        assert value(before, "mcr_build_info", version=d.client.ping()) == 1

        victim = d.worker_pids()[0]
        victim_id = next(str(w["id"]) for w in d.client.workers() if w["pid"] == victim)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len([p for p in d.worker_pids() if p != victim]) == 2, 10, "the worker restarted")
        after = scrape(lab)
        counters = [key for key in before if key[0].endswith("_total") and not key[0].startswith("process_")]
        lower = {key: (before[key], after.get(key)) for key in counters if after.get(key, -1) < before[key]}
        assert not lower, f"counters went backwards across the restart: {lower}"
        assert value(after, "mcr_worker_restarts_total", worker=victim_id) == 1
        check_counts(after, got, times=1)  # nothing relayed after the last poll, so nothing lost

        got_again = relay(lab, stream=2)  # the restarted worker counts on top
        settled(lab, {key: got[key] + got_again[key] for key in got}, times=2)
        assert len(os.listdir(f"/proc/{d.process.pid}/task")) == 1, "the endpoint started a thread"


def test_config_key_openmetrics_and_bad_requests(tmp_path):
    config = tmp_path / "mcr.json"
    with chain(n_sinks=1) as lab:
        config.write_text(json.dumps({"metrics": f"{lab.relay_in_addr}:{PORT}"}))
        with daemon(lab, tmp_path, config=config) as d:
            assert listeners(lab) == [f"{lab.relay_in_addr}:{PORT}"]
            status, headers, body = get(lab, accept="application/openmetrics-text; version=1.0.0")
            assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
            families = {f.name: f for f in parse_openmetrics(body)}
            assert families["mcr_rule_bytes"].unit == "bytes"
            assert {s.labels["state"]: s.value for s in families["mcr_workers"].samples}["running"] == 1
            assert get(lab, "/other")[0] == 404
            assert get(lab, method="POST")[0] == 405
            d.mcr("config", "save", str(tmp_path / "saved.json"))  # the setting is kept
            assert json.loads((tmp_path / "saved.json").read_text())["metrics"] == f"{lab.relay_in_addr}:{PORT}"
            moved = d.client.load_config({"workers": 1, "metrics": f"127.0.0.1:{PORT}"}, replace=True)
            assert moved["restart_needed"] == ["metrics"]  # named, not applied: it still listens where it did
            assert listeners(lab) == [f"{lab.relay_in_addr}:{PORT}"] and get(lab)[0] == 200


def test_off_unless_asked(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path):
        assert listeners(lab) == []


def start_refused(lab, tmp_path, *args: str) -> str:
    """Run `mcr daemon` with `args`; it must exit 1 at once: its stderr."""
    result = subprocess.run(["ip", "netns", "exec", lab.relay_ns, sys.executable, "-m", "mcr", "daemon",
                             "--socket", str(tmp_path / "c.sock"), "--state", "", "--workers", "1", *args],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result
    return result.stderr


def test_bad_address_refused_at_start(tmp_path):
    with chain(n_sinks=1) as lab:
        assert "is not ADDR:PORT" in start_refused(lab, tmp_path, "--metrics", "9464")
        assert "port '0' is outside 1-65535" in start_refused(lab, tmp_path, "--metrics", f"{lab.relay_in_addr}:0")
        error = start_refused(lab, tmp_path, "--metrics", f"192.0.2.1:{PORT}")  # not an address of this host
        assert f"metrics endpoint 192.0.2.1:{PORT}: cannot listen there: Cannot assign requested address" in error
        config = tmp_path / "bad.json"
        config.write_text(json.dumps({"metrics": "localhost:9464"}))
        assert "metrics: 'localhost:9464': 'localhost' is not an IP address" in start_refused(
            lab, tmp_path, "--config", str(config))
        assert not os.path.exists(tmp_path / "c.sock")
