"""The relays a benchmark compares, behind one interface: MCR, socat, kernel forwarding.

Each runs in a lab's relay namespace from one input interface to output
interfaces, and says which (address, port) targets arrive on each output
link, so the same generator and sink measure all three:

    with McrRelay(lab.relay_ns, lab.relay_in, lab.relay_out, inputs, cpu=1) as relay:
        sink_targets = relay.outputs
        ... generate / Sink ...
        relay.cpu_ns()      # CPU time the relay process used so far (None for the kernel)

- McrRelay: `mcr relay --netns` as a subprocess (pinned with taskset), so its
  CPU is one process's CPU. Inputs 239.1.1.k -> outputs 239.2.2.k:6000.
- SocatRelay: Debian's socat, `UDP4-RECV` -> `UDP4-SENDTO`, one datagram per
  read/write; all inputs go to one output group (socat has one destination).
- DaemonRelay: `mcr daemon --workers N` in the relay namespace (workers
  pinned to the relay core first, then the others), rules through mcr.api;
  its CPU is the sum over its worker processes.
- KernelRelay: the kernel's own multicast routing: an mroute socket
  (MRT_INIT, one VIF per interface, an MFC entry per (source, group)); the
  group stays the same. At most 31 outputs (MAXVIFS is 32). No process.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..netns import in_netns
from .gen import Target

OUT_PORT = 6000
START_TIMEOUT = 20.0  # seconds for a relay to come up (a Python interpreter, joins)
STOP_TIMEOUT = 5.0
MAXVIFS = 32
MRT_INIT, MRT_DONE, MRT_ADD_VIF, MRT_ADD_MFC = 200, 201, 202, 204
VIFF_USE_IFINDEX = 0x8


class RelayError(RuntimeError):
    """A relay under test could not start or stopped by itself."""


def process_cpu_ns(pid: int) -> int:
    """CPU time used by every thread of `pid` so far, in ns (scheduler run time, not tick-sampled)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended between listdir and open
    return total


def output_groups(count: int, base: str = "239.2.2.1", port: int = OUT_PORT) -> list[Target]:
    first = int.from_bytes(socket.inet_aton(base), "big")
    return [(socket.inet_ntoa((first + k).to_bytes(4, "big")), port) for k in range(count)]


class _Relay:
    name = "?"

    def __init__(self, ns: str, in_if: str, out_ifs: list[str], inputs: list[Target], *, source: str,
                 out_addrs: list[str], cpu: int | None = None) -> None:
        self.ns, self.in_if, self.out_ifs, self.inputs = ns, in_if, list(out_ifs), list(inputs)
        self.source, self.out_addrs, self.cpu = source, list(out_addrs), cpu
        self.outputs: list[Target] = []  # what arrives on every output link
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _pin(self) -> list[str]:
        return ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []

    def start(self) -> None:
        raise NotImplementedError

    def cpu_ns(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is not None:
            raise RelayError(f"{self.name} exited with status {self.process.returncode}")
        return process_cpu_ns(self.process.pid)

    def stop(self) -> None:
        """Stops the process this relay started (by its pid only); safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self.process = None


class McrRelay(_Relay):
    name = "mcr"

    def start(self) -> None:
        self.outputs = output_groups(len(self.inputs))
        rules = []
        for (group, port), (out_group, out_port) in zip(self.inputs, self.outputs):
            # An interface named more than once gets one output per port (fan-out on one link).
            outs = ",".join(f"{out_group}:{out_port + k if self.out_ifs.count(ifname) > 1 else out_port}:{ifname}"
                            for k, ifname in enumerate(self.out_ifs))
            rules += ["--rule", f"in={self.in_if} group={group}:{port} out={outs}"]
        # Counter lines every half second: the first one says the rules are in.
        cmd = [*self._pin(), sys.executable, "-m", "mcr", "relay", "--netns", self.ns, "--json", "--interval", "0.5",
               *rules]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.last_stats: dict | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_counters, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            error = self.process.stderr.read() if self.process.poll() is not None else "no counters yet"
            self.stop()
            raise RelayError(f"mcr relay did not start: {error.strip()}")

    def _read_counters(self) -> None:
        # Drains stdout for the relay's whole life, so its pipe never fills.
        process = self.process
        for line in process.stdout:
            try:
                self.last_stats = json.loads(line)
            except ValueError:
                continue
            self._ready.set()


class SocatRelay(_Relay):
    name = "socat"

    def start(self) -> None:
        if shutil.which("socat") is None:
            raise RelayError("socat is not installed (apt-get install socat)")
        if len(self.out_ifs) != 1:
            raise RelayError("socat sends to one destination: fan-out is not measured for it")
        self.outputs = output_groups(1)
        out_group, out_port = self.outputs[0]
        port = self.inputs[0][1]
        if any(p != port for _, p in self.inputs):
            raise RelayError("one socat receives on one port")
        joins = ",".join(f"ip-add-membership={group}:{self.in_if}" for group, _ in self.inputs)
        # rcvbuf is capped by net.core.rmem_max (socat cannot force it as MCR does).
        receive = f"UDP4-RECV:{port},reuseaddr,rcvbuf=16777216,{joins}"
        send = f"UDP4-SENDTO:{out_group}:{out_port},ip-multicast-if={self.out_addrs[0]},ip-multicast-loop=0"
        cmd = ["ip", "netns", "exec", self.ns, *self._pin(), "socat", "-u", "-b", "65536", receive, send]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._wait_joined()

    def _wait_joined(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RelayError(f"socat exited: {self.process.stderr.read().strip()}")
            out = subprocess.run(["ip", "-n", self.ns, "maddr", "show", "dev", self.in_if],
                                 capture_output=True, text=True, timeout=10, check=False).stdout
            if all(group in out.split() for group, _ in self.inputs):
                return
            time.sleep(0.05)
        self.stop()
        raise RelayError("socat did not join its groups in time")


def kernel_multicast_routing() -> bool:
    """Whether this kernel has IPv4 multicast routing (CONFIG_IP_MROUTE), which
    KernelRelay and FRR's pimd need: the kernel makes this file only then."""
    return Path("/proc/net/ip_mr_vif").exists()


class KernelRelay(_Relay):
    """Kernel multicast forwarding, configured through an mroute socket held open by this object."""

    name = "kernel"

    def start(self) -> None:
        if len(self.out_ifs) >= MAXVIFS:
            raise RelayError(f"kernel multicast routing has at most {MAXVIFS - 1} outputs (MAXVIFS)")
        self.outputs = list(self.inputs)  # the kernel forwards a group as it is
        with in_netns(self.ns):
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
            try:
                self._configure()
            except OSError as error:
                self._sock.close()
                if error.errno == errno.ENOPROTOOPT:  # MRT_INIT unknown: built without CONFIG_IP_MROUTE
                    raise RelayError("this kernel has no multicast routing (CONFIG_IP_MROUTE is not set)") from None
                raise

    def _configure(self) -> None:
        self._sock.setsockopt(socket.IPPROTO_IP, MRT_INIT, 1)
        for vif, ifname in enumerate([self.in_if, *self.out_ifs]):
            # struct vifctl: vifi, flags, threshold, rate_limit, ifindex, remote address
            vifctl = struct.pack("HBBIi4s", vif, VIFF_USE_IFINDEX, 1, 0, socket.if_nametoindex(ifname), b"\0" * 4)
            self._sock.setsockopt(socket.IPPROTO_IP, MRT_ADD_VIF, vifctl)
        ttls = bytes([0] + [1] * len(self.out_ifs)).ljust(MAXVIFS, b"\0")  # forward on every output VIF
        for group, _port in self.inputs:
            # struct mfcctl: origin, group, parent VIF, ttls[MAXVIFS], 3 counters, expire
            mfcctl = struct.pack("4s4sH32s2xIIIi", socket.inet_aton(self.source), socket.inet_aton(group), 0,
                                 ttls, 0, 0, 0, 0)
            self._sock.setsockopt(socket.IPPROTO_IP, MRT_ADD_MFC, mfcctl)

    def cpu_ns(self) -> None:
        return None  # forwarding runs in softirq context, not in a process

    def stop(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_IP, MRT_DONE, 1)
            except OSError:
                pass  # closing the socket tears the tables down as well
            sock.close()
            self._sock = None


class DaemonRelay(_Relay):
    name = "mcr-daemon"
    workers = 1

    def start(self) -> None:
        from ..api import Client  # only this relay needs the control client

        self.outputs = output_groups(len(self.inputs))
        self._dir = tempfile.TemporaryDirectory(prefix="mcr-bench-")
        sock = os.path.join(self._dir.name, "control.sock")
        cores = [c for c in ([self.cpu] if self.cpu is not None else []) + list(range(os.cpu_count() or 1))]
        pins = ",".join(str(c) for c in list(dict.fromkeys(cores))[:self.workers])
        cmd = ["ip", "netns", "exec", self.ns, sys.executable, "-m", "mcr", "daemon", "--socket", sock, "--state", "",
               "--workers", str(self.workers), "--pin-cores", pins, "--log-level", "warning"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Ready once it answers: the socket file exists a moment before the daemon listens on it.
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers(Client, sock):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RelayError("mcr daemon did not start")
            time.sleep(0.05)
        self.client = Client(sock, timeout=10)
        for (group, port), (out_group, out_port) in zip(self.inputs, self.outputs):
            outs = ",".join(f"{out_group}:{out_port}:{ifname}" for ifname in self.out_ifs)
            self.client.add_rule(f"in={self.in_if} group={group}:{port} out={outs}")
        self._pids = [w["pid"] for w in self.client.workers()]

    @staticmethod
    def _answers(client_class, sock: str) -> bool:
        if not os.path.exists(sock):
            return False
        try:
            client_class(sock, timeout=1).ping()
            return True
        except Exception:  # noqa: BLE001 - not listening yet, or not answering yet
            return False

    def cpu_ns(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            raise RelayError("mcr daemon exited")
        return sum(process_cpu_ns(pid) for pid in self._pids)

    def stop(self) -> None:
        super().stop()  # SIGTERM: the daemon stops its workers
        if getattr(self, "_dir", None) is not None:
            self._dir.cleanup()
            self._dir = None


def daemon_relay(workers: int) -> type[DaemonRelay]:
    return type(f"DaemonRelay{workers}", (DaemonRelay,), {"workers": workers, "name": f"mcr-{workers}w"})


RELAYS = {"mcr": McrRelay, "socat": SocatRelay, "kernel": KernelRelay,
          "mcr-1w": daemon_relay(1), "mcr-2w": daemon_relay(2)}
