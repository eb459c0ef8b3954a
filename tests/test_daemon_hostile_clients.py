"""Clients that misbehave, all at once, against the real daemon: garbage
bytes, a 100 MB request, a slow loris (a byte every second), and 100
connections held open together. Meanwhile a separate process pings over a
fresh connection every 50 ms: every ping is answered within 100 ms. Each
misbehaving client gets the error the protocol promises (control.py), the
daemon's memory does not grow with what it was sent, and it still holds and
forwards its rules afterwards. (The server's limits one by one, against an
in-memory supervisor: test_control_socket.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from daemon_support import daemon, frames, rule, send, seqs, sink

from mcr.lab import chain

REQUEST_TIMEOUT = 10.0  # the daemon's (control.py)
HOSTILE_FOR = REQUEST_TIMEOUT + 3  # the slow loris outlasts the request timeout
PING_LIMIT = 0.1

# Pings in a process of its own, so that the threads attacking the daemon
# from this one cannot delay it; prints the round trip of each, in seconds.
PINGER = """
import json, sys, time
from mcr.api import Client
path, duration = sys.argv[1], float(sys.argv[2])
times = []
end = time.monotonic() + duration
while time.monotonic() < end:
    start = time.monotonic()
    with Client(path, timeout=5) as client:
        client.ping()
    times.append(time.monotonic() - start)
    time.sleep(0.05)
print(json.dumps(times))
"""


def connect(path: str, timeout: float = 20) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def replies(sock: socket.socket) -> list[dict]:
    """Every reply line until the daemon closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:  # reset after a refused flood: what arrived before still counts
        pass
    return [json.loads(line) for line in data.splitlines() if line]


def error_codes(lines: list[dict]) -> list[str]:
    return [r["error"]["code"] for r in lines if not r["ok"]]


def garbage(path: str, out: dict) -> None:
    """Bytes that are no request: binary, bad UTF-8, not an object, nested too deep; each line answered."""
    lines = [b"\x00\xff\xfe{{{not json", b"\xc3\x28\xa0\xa1", b"[1, 2, 3]", b"[" * 100000, b'{"cmd": 7}']
    with connect(path) as s:
        s.sendall(b"\n".join(lines) + b"\n")
        s.shutdown(socket.SHUT_WR)
        out["garbage"] = error_codes(replies(s))


def flood(path: str, out: dict) -> None:
    """A 100 MB request with no newline: refused once past the 1 MiB limit, and cut off."""
    chunk = b"x" * (1 << 20)
    sent = 0
    with connect(path) as s:
        try:
            for _ in range(100):
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the daemon hung up on us
            pass
        out["flood_sent"] = sent
        out["flood"] = error_codes(replies(s))


def slow_loris(path: str, out: dict) -> None:
    """One byte of a ping every second: closed with `timeout` when the request timeout is up."""
    request = b'{"cmd": "ping"}' + b" " * 64
    start = time.monotonic()
    with connect(path) as s:
        s.settimeout(1.0)
        for byte in request:
            try:
                s.sendall(bytes([byte]))
                data = s.recv(4096)
            except socket.timeout:
                continue  # nothing yet: the next byte
            except OSError:
                data = b""
            out["loris_closed_after"] = time.monotonic() - start
            out["loris"] = error_codes([json.loads(line) for line in data.splitlines() if line])
            return


def crowd(path: str, out: dict, count: int = 100) -> None:
    """`count` connections open together, each asking for a ping; all held until every one is answered."""
    socks = [connect(path) for _ in range(count)]
    try:
        for s in socks:
            s.sendall(b'{"cmd": "ping", "id": 1}\n')
        answered = [json.loads(s.makefile("rb").readline()) for s in socks]
        out["crowd"] = sum(1 for r in answered if r["ok"] and r["id"] == 1)
    finally:
        for s in socks:
            s.close()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_hostile_clients_do_not_stall_the_daemon(tmp_path):
    with chain(n_sinks=1) as lab, daemon(lab, tmp_path) as d:
        d.client.add_rule(rule(lab))
        rules = d.client.rules()
        rss_before = peak_rss_kib(d.process.pid)
        pinger = subprocess.Popen([sys.executable, "-c", PINGER, d.socket, str(HOSTILE_FOR)],
                                  stdout=subprocess.PIPE, text=True)
        out: dict = {}
        attackers = [threading.Thread(target=f, args=(d.socket, out)) for f in (garbage, flood, slow_loris, crowd)]
        for t in attackers:
            t.start()
        for t in attackers:
            t.join(HOSTILE_FOR + 10)
        pings = json.loads(pinger.communicate(timeout=HOSTILE_FOR + 10)[0])
        rss_growth = peak_rss_kib(d.process.pid) - rss_before

        assert not any(t.is_alive() for t in attackers)
        assert len(pings) > HOSTILE_FOR * 5, f"only {len(pings)} pings"
        assert max(pings) < PING_LIMIT, f"slowest ping {max(pings) * 1000:.0f} ms"
        assert out["garbage"] == ["bad_json", "bad_json", "bad_request", "bad_json", "bad_request"]
        assert out["flood"] == ["too_large"] and out["flood_sent"] < 100 << 20, "the flood was not cut off"
        assert out["loris"] == ["timeout"]
        assert REQUEST_TIMEOUT - 1 < out["loris_closed_after"] < REQUEST_TIMEOUT + 2
        assert out["crowd"] == 100
        assert rss_growth < 16 << 10, f"peak memory grew by {rss_growth} KiB"
        assert d.client.rules() == rules
        with sink(lab) as s:
            assert send(lab, frames(lab, 200), rate=2000) == 200
            assert sorted(seqs(s.receive(200, timeout=10))) == list(range(200))
        print(f"{len(pings)} pings, slowest {max(pings) * 1000:.1f} ms, median "
              f"{sorted(pings)[len(pings) // 2] * 1000:.1f} ms; peak RSS +{rss_growth} KiB; "
              f"flood cut after {out['flood_sent'] >> 20} MiB; loris closed after {out['loris_closed_after']:.1f} s")
