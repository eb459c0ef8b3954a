"""How long a Prometheus scrape of a daemon with many rules takes, and how
long it holds the supervisor's loop.

    sudo .venv/bin/python -m benchmarks.metrics_scrape [--rules 10000] [--outputs 1] [--scrapes 5]

Starts `mcr daemon --metrics` in a lab namespace with a config of RULES
rules of OUTPUTS outputs each (groups nothing sends to), waits until its
worker holds them, then scrapes /metrics SCRAPES times from inside the
namespace. Meanwhile a thread pings the control socket back to back: the
slowest ping during the scrapes is how long the loop was held at once (a
ping is answered on the same loop), next to the slowest ping before them.
Not part of benchmarks.run; README "Metrics" quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mcr.api import ApiError, Client
from mcr.lab import chain, open_socket

PORT = 9464
IDLE = 10.0  # seconds of pings without scrapes, to compare with (health passes hold the loop too)


def scrape(ns: str, address: str) -> tuple[float, int]:
    """(seconds, body bytes) of one GET /metrics."""
    start = time.monotonic()
    with open_socket(ns, socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect((address, PORT))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")
        size = 0
        while chunk := sock.recv(1 << 20):
            size += len(chunk)
    return time.monotonic() - start, size


def pinger(path: str, stop: threading.Event, latencies: list[tuple[float, float]]) -> None:
    with Client(path, timeout=30) as client:
        while not stop.is_set():
            start = time.monotonic()
            client.ping()
            latencies.append((start, time.monotonic() - start))
            time.sleep(0.002)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--outputs", type=int, default=1)
    parser.add_argument("--scrapes", type=int, default=5)
    args = parser.parse_args()
    with chain(n_sinks=1) as lab, tempfile.TemporaryDirectory() as tmp:
        rules = [{"input_interface": lab.relay_in, "group": f"239.1.{i >> 8}.{i & 255}", "port": 5000,
                  "name": f"r{i}", "outputs": [f"239.2.{i >> 8}.{i & 255}:{6000 + j}:{lab.relay_out[0]}"
                                               for j in range(args.outputs)]} for i in range(args.rules)]
        config, control = Path(tmp) / "mcr.json", str(Path(tmp) / "control.sock")
        config.write_text(json.dumps({"workers": 1, "rules": rules}))
        daemon = subprocess.Popen(["ip", "netns", "exec", lab.relay_ns, sys.executable, "-m", "mcr", "daemon",
                                   "--config", str(config), "--socket", control, "--state", "",
                                   "--metrics", f"{lab.relay_in_addr}:{PORT}"],
                                  stdin=subprocess.DEVNULL, stderr=(Path(tmp) / "daemon.log").open("w"))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if any(w["state"] == "running" for w in Client(control, timeout=5).workers()):
                        break
                except (OSError, ApiError):  # not listening yet
                    pass
                time.sleep(0.5)
            else:
                raise RuntimeError("the daemon did not get a running worker in 120 s")
            time.sleep(2)  # past the first health passes
            stop, latencies = threading.Event(), []
            ping = threading.Thread(target=pinger, args=(control, stop, latencies))
            ping.start()
            time.sleep(IDLE)
            began = time.monotonic()
            results = [scrape(lab.relay_ns, lab.relay_in_addr) for _ in range(args.scrapes)]
            stop.set()
            ping.join()
        finally:
            daemon.terminate()
            daemon.wait(30)
    times = [t for t, _ in results]
    idle = [latency for start, latency in latencies if start < began]
    busy = [latency for start, latency in latencies if start >= began]
    print(f"{args.rules} rules x {args.outputs} outputs: {args.scrapes} scrapes of {results[0][1] / 1e6:.1f} MB, "
          f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
          f"slowest control-socket ping during them {max(busy) * 1e3:.0f} ms ({len(busy)} pings), "
          f"in {IDLE:.0f} s before them {max(idle) * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
