"""Shared by the daemon tests: run `mcr daemon` inside a lab's relay
namespace, talk to it, and always stop it and check it left nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mcr.api import Client
from mcr.lab import FrameSender, UdpSink, numbered_payloads, payload_seq, udp_frame


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Daemon:
    def __init__(self, lab, tmp: Path, workers: int = 1, config: Path | None = None, extra: list[str] = ()):
        self.lab = lab
        self.socket = str(tmp / "control.sock")
        self.state = str(tmp / "state.json")
        self.log = tmp / "daemon.log"
        args = ["ip", "netns", "exec", lab.relay_ns, sys.executable, "-m", "mcr", "daemon",
                "--socket", self.socket, "--state", self.state, "--workers", str(workers), *extra]
        if config is not None:
            args += ["--config", str(config)]
        # Appended: a daemon started again in the same directory (after a crash) logs on.
        self.process = subprocess.Popen(args, stderr=self.log.open("a"), stdin=subprocess.DEVNULL)
        wait_for(lambda: self._answers(), 15, "the daemon's control socket")
        self.client = Client(self.socket)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log.read_text()}")
        try:
            Client(self.socket, timeout=1).ping()
            return True
        except (OSError, Exception):
            return False

    def mcr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "mcr", *args, "--socket", self.socket],
                                capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"mcr {' '.join(args)} failed: {result.stderr}")
        return result

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.client.workers() if w["state"] == "running"]

    def stop(self) -> None:
        """SIGTERM, then check: exit 0, no stray workers, no socket file."""
        if self.process.poll() is None:
            pids = self.worker_pids()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("daemon did not stop within 15 s of SIGTERM")
            assert self.process.returncode == 0, self.log.read_text()[-3000:]
            for pid in pids:
                assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the daemon"
            assert not os.path.exists(self.socket), "control socket file left behind"


@contextlib.contextmanager
def daemon(lab, tmp: Path, **kwargs):
    d = Daemon(lab, tmp, **kwargs)
    try:
        yield d
    finally:
        if d.process.poll() is None:
            d.stop()


def rule(lab, group: str = "239.1.1.1", port: int = 5000, out_group: str = "239.2.2.2", out_port: int = 6000,
         sink: int = 0, name: str | None = None) -> dict:
    data = {"input_interface": lab.relay_in, "group": group, "port": port,
            "outputs": [f"{out_group}:{out_port}:{lab.relay_out[sink]}"]}
    if name:
        data["name"] = name
    return data


def frames(lab, count: int, group: str = "239.1.1.1", port: int = 5000, flows: int = 1, stream: int = 0,
           size: int = 64) -> list[bytes]:
    """Numbered frames; `flows` distinct source ports spread them over fanout members."""
    return [udp_frame(lab.source_addr, group, 40000 + i % flows, port, p)
            for i, p in enumerate(numbered_payloads(count, size, stream))]


def send(lab, frames_: list[bytes], rate: float = 5000) -> int:
    with FrameSender(lab.source_ns, lab.source_if) as sender:
        return sender.send(frames_, rate_pps=rate)


def seqs(received) -> list[int]:
    return [payload_seq(r.payload)[1] for r in received]


def sink(lab, group: str = "239.2.2.2", port: int = 6000, index: int = 0) -> UdpSink:
    return UdpSink(lab.sink_ns[index], group, port, lab.sink_if[index])
