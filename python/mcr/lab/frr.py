"""FRRouting in a lab namespace: an independent IGMP/PIM/MSDP peer for tests.

Debian's `frr` package: zebra (the interface and route manager pimd needs)
and pimd (PIM-SM, the IGMP querier, MSDP) are started inside one of our
namespaces, as the `frr` user (root is not in the frrvty group, so the vty
would refuse it), with every file in a directory of their own: config,
pid files, zebra's API socket and the vty sockets. `show()` asks through
vtysh and returns its JSON. Stopping ends exactly the daemons it started,
by the PIDs in their pid files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .netns import LabError
from .relays import kernel_multicast_routing

FRR = Path("/usr/lib/frr")
DAEMONS = ("zebra", "pimd")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a daemonized FRR's parent may never reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def available() -> bool:
    return all((FRR / daemon).exists() for daemon in DAEMONS) and shutil.which("vtysh") is not None


def missing(routing: bool = False) -> str:
    """Why FRR cannot be a peer here ('' if it can). With `routing`, as a
    router: pimd forwards, and runs its IGMP querier, through the kernel's
    multicast routing (its mroute socket), which some kernels are built without."""
    if not available():
        return "FRR (Debian frr) is not installed"
    if routing and not kernel_multicast_routing():
        return "FRR's pimd routes through the kernel's multicast routing, which this kernel lacks (CONFIG_IP_MROUTE)"
    return ""


class Frr:
    """zebra + pimd in network namespace `ns`, configured by `config` (frr.conf text)."""

    def __init__(self, ns: str, config: str, start_timeout: float = 10.0) -> None:
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="mcr-frr-"))
        shutil.chown(self.dir, "frr", "frr")
        conf = self.dir / "frr.conf"
        conf.write_text(config)
        shutil.chown(conf, "frr", "frr")
        self.pids: dict[str, int] = {}
        self.conf = conf
        try:
            for daemon in DAEMONS:
                self._start(daemon, conf)
            self._wait_answering(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, daemon: str, conf: Path) -> None:
        pidfile = self.dir / f"{daemon}.pid"
        subprocess.run(["ip", "netns", "exec", self.ns, str(FRR / daemon), "-d", "-P", "0", "-f", str(conf),
                        "-i", str(pidfile), "-z", str(self.dir / "zserv.api"), "--vty_socket", str(self.dir),
                        "-u", "frr", "-g", "frr"], check=True, timeout=15, capture_output=True)
        deadline = time.monotonic() + 5
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pidfile.exists():
            raise LabError(f"FRR {daemon} did not start in {self.ns}")
        self.pids[daemon] = int(pidfile.read_text().split()[0])

    def _wait_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.show("show ip pim interface json")
                return
            except (LabError, ValueError):
                time.sleep(0.1)
        raise LabError(f"FRR pimd in {self.ns} does not answer its vty")

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "--vty_socket", str(self.dir)]
        for command in commands:
            args += ["-c", command]
        result = subprocess.run(args, capture_output=True, text=True, timeout=15)
        if result.returncode != 0:
            raise LabError(f"vtysh {commands}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def show(self, command: str) -> dict:
        """A `show ... json` command's answer."""
        return json.loads(self.vtysh(command) or "{}")

    def start_daemon(self, daemon: str) -> None:
        """Start one of the daemons again (after stop_daemon): an FRR restart."""
        (self.dir / f"{daemon}.pid").unlink(missing_ok=True)
        self._start(daemon, self.conf)
        self._wait_answering(10.0)

    def stop_daemon(self, daemon: str) -> None:
        """End one daemon (by its PID) and wait for it."""
        pid = self.pids.pop(daemon, None)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for daemon in reversed(DAEMONS):
            self.stop_daemon(daemon)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Frr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
