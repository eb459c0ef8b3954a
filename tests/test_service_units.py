"""The systemd units (packaging/systemd/) and the daemon as they run it.

systemd-analyze must accept both units. Then the daemon runs as the units
run it, without systemd: `mcr daemon --netns NS` inside a lab namespace
(as NetworkNamespacePath= puts it there), through setpriv as an
unprivileged user with the units' ambient capabilities, reporting to a
NOTIFY_SOCKET this test owns. It must say READY=1, relay a kernel UDP
sender's datagrams exactly to a kernel receiver, take a rule added to its
config on SIGHUP, and run with the uid and capabilities the units promise:
the supervisor with exactly CAP_NET_RAW and CAP_NET_ADMIN, its workers with none.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from daemon_support import wait_for

from mcr.api import ApiError, Client
from mcr.cli import daemon as daemon_cli
from mcr.lab import Lab, UdpSender, UdpSink, chain, numbered_payloads, payload_seq, udp_counters
from mcr.supervisor.notify import ENVIRONMENT as NOTIFY_ENVIRONMENT
from mcr.supervisor.notify import Notifier

UNITS = Path(__file__).resolve().parent.parent / "packaging" / "systemd"
MCR = Path(sys.executable).with_name("mcr")  # the console script the units start
USER = "nobody"  # an unprivileged user every Debian system has (the units use mcr)
CAPABILITY_BITS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}
GROUP, PORT, OUT_GROUP, OUT_PORT = "239.1.1.1", 5000, "239.2.2.2", 6000
COUNT, SIZE, RATE = 500, 200, 2000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, setpriv)")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNITS / name)
    return parser


def unit_capabilities() -> list[str]:
    """What both units grant the daemon, as setpriv names them (net_raw, ...)."""
    grants = {tuple(unit(name)["Service"]["AmbientCapabilities"].split()) for name in ("mcr.service", "mcr@.service")}
    assert len(grants) == 1, f"the units grant different capabilities: {grants}"
    return sorted(cap.removeprefix("CAP_").lower() for cap in grants.pop())


def test_units_say_what_the_service_needs():
    for name in ("mcr.service", "mcr@.service"):
        service = unit(name)["Service"]
        assert service["Type"] == "notify"
        assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
        assert service["User"] == "mcr" and service["NoNewPrivileges"] == "yes"
        assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == "CAP_NET_RAW CAP_NET_ADMIN"
    instance = unit("mcr@.service")["Service"]
    assert instance["NetworkNamespacePath"] == "/run/netns/%i"
    assert "--netns %i" in instance["ExecStart"]
    assert instance["RuntimeDirectory"] == "mcr/%i" and instance["StateDirectory"] == "mcr/%i"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    # verify checks that ExecStart's program exists: point it at this install's
    # mcr, as an install to /etc/systemd/system does (README).
    for name in ("mcr.service", "mcr@.service"):
        text = (UNITS / name).read_text()
        assert "/usr/local/bin/mcr " in text
        (tmp_path / name).write_text(text.replace("/usr/local/bin/mcr ", f"{MCR} "))
    result = subprocess.run(["systemd-analyze", "verify", "mcr.service", "mcr@.service", "mcr@blue.service"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # verify exits 0 even on unknown keys or bad values; it warns on stderr.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result


def test_instance_paths_follow_the_namespace():
    parser = argparse.ArgumentParser()
    daemon_cli.add_arguments(parser)

    def args(*argv: str) -> argparse.Namespace:
        return parser.parse_args(list(argv))

    assert daemon_cli.paths(args()) == ("/run/mcr/control.sock", "/var/lib/mcr/state.json")
    assert daemon_cli.paths(args("--netns", "blue")) == ("/run/mcr/blue/control.sock", "/var/lib/mcr/blue/state.json")
    assert daemon_cli.paths(args("--netns", "blue", "--socket", "/tmp/s", "--state", "")) == ("/tmp/s", None)


def test_notifier_speaks_sd_notify_on_an_abstract_socket(monkeypatch):
    name = f"mcr-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(b"\0" + name.encode())
        manager.settimeout(5)
        monkeypatch.setenv(NOTIFY_ENVIRONMENT, "@" + name)
        notifier = Notifier.from_environment()
        assert NOTIFY_ENVIRONMENT not in os.environ  # workers must not inherit it
        assert notifier.ready("2 rules")
        assert manager.recv(4096) == b"READY=1\nSTATUS=2 rules"
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert notifier.reloading()
        fields = dict(line.split("=") for line in manager.recv(4096).decode().split("\n"))
        assert fields["RELOADING"] == "1" and 0 <= int(fields["MONOTONIC_USEC"]) - before < 5_000_000
        assert notifier.stopping()
        assert manager.recv(4096) == b"STOPPING=1"
    assert not notifier.ready("gone")  # the manager went away: reported, never raised
    assert not Notifier(None).ready("no manager")


@pytest.mark.parametrize("name, message", [
    ("mcr-nosuch-{pid}", "no network namespace 'mcr-nosuch-{pid}' (/run/netns/mcr-nosuch-{pid} does not exist"),
    ("../{pid}", "'../{pid}' is not a network namespace name"),
])
def test_bad_netns_is_a_clear_error(tmp_path, name, message):
    name, message = name.format(pid=os.getpid()), message.format(pid=os.getpid())
    result = subprocess.run([str(MCR), "daemon", "--netns", name, "--socket", str(tmp_path / "s"), "--state", ""],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith(f"mcr daemon: {message}"), result.stderr
    assert not (tmp_path / "s").exists()


def test_unprivileged_daemon_outside_its_netns_says_how_to_start_it(tmp_path):
    with Lab("mcru") as lab:
        ns = lab.add_namespace("relay")
        result = subprocess.run(setpriv() + [str(MCR), "daemon", "--netns", ns, "--state", ""],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"entering network namespace '{ns}' needs CAP_SYS_ADMIN" in result.stderr, result.stderr
    assert f"NetworkNamespacePath=/run/netns/{ns}" in result.stderr


def test_root_daemon_enters_its_netns(tmp_path):
    control = tmp_path / "control.sock"
    with Lab("mcru") as lab:
        ns = lab.add_namespace("relay")
        process = subprocess.Popen([str(MCR), "daemon", "--netns", ns, "--socket", str(control), "--state", ""],
                                   stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: answers(control, process), 15, "the daemon's control socket")
            assert os.stat(f"/proc/{process.pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
            assert os.stat(f"/proc/{process.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def answers(control: Path, process: subprocess.Popen) -> bool:
    assert process.poll() is None, f"the daemon exited with {process.returncode}"
    try:
        return bool(Client(str(control), timeout=1).ping())
    except ApiError:  # not listening yet
        return False


def setpriv() -> list[str]:
    """The units' user and capabilities, without systemd."""
    caps = ",".join(f"+{cap}" for cap in unit_capabilities())
    entry = pwd.getpwnam(USER)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set=-all,{caps}", "--no-new-privs"]


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket the daemon's user may write to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)

    def next(self, timeout: float) -> dict[str, str]:
        self.sock.settimeout(timeout)
        raw = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in raw.split("\n"))

    def close(self) -> None:
        self.sock.close()


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, value in (line.split(":", 1) for line in lines)}


def capability_mask(names: list[str]) -> int:
    return sum(1 << CAPABILITY_BITS[f"CAP_{name.upper()}"] for name in names)


def write_config(path: Path, lab, groups: list[str]) -> None:
    rules = [{"name": f"in-{group}", "input_interface": lab.relay_in, "group": group, "port": PORT,
              "outputs": [f"{OUT_GROUP}:{OUT_PORT}:{lab.relay_out[0]}"]} for group in groups]
    path.write_text(json.dumps({"workers": 1, "rules": rules}))
    os.chmod(path, 0o644)


def relay_exactly(lab) -> None:
    """COUNT datagrams from a kernel UDP socket reach a kernel receiver, each once."""
    with UdpSink(lab.sink_ns[0], OUT_GROUP, OUT_PORT, lab.sink_if[0]) as sink:
        before = udp_counters(lab.sink_ns[0])
        received: list = []
        reader = threading.Thread(target=lambda: received.extend(sink.receive(COUNT + 1, timeout=15, idle=1.0)))
        reader.start()
        with UdpSender(lab.source_ns, lab.source_if) as sender:
            sent = sender.send(numbered_payloads(COUNT, SIZE), GROUP, PORT, rate_pps=RATE, timeout=30)
        reader.join(20)
        after = udp_counters(lab.sink_ns[0])
    assert sent == COUNT
    assert sorted(payload_seq(r.payload)[1] for r in received) == list(range(COUNT))
    assert after["InDatagrams"] - before["InDatagrams"] == COUNT
    assert after["InCsumErrors"] == before["InCsumErrors"]


def test_unprivileged_daemon_in_netns_notifies_relays_and_reloads():
    uid = pwd.getpwnam(USER).pw_uid
    run_dir = Path(tempfile.mkdtemp(prefix="mcr-units-"))  # /tmp, reachable by the daemon's user
    os.chown(run_dir, uid, -1)
    config, control = run_dir / "mcr.json", str(run_dir / "control.sock")
    notify = NotifyListener(run_dir / "notify.sock")
    process = None
    try:
        with chain(n_sinks=1, prefix="mcru") as lab:
            write_config(config, lab, [GROUP])
            log = (run_dir / "daemon.log").open("w")
            process = subprocess.Popen(
                ["ip", "netns", "exec", lab.relay_ns, *setpriv(), str(MCR), "daemon", "--netns", lab.relay_ns,
                 "--config", str(config), "--socket", control, "--state", str(run_dir / "state.json")],
                env={**os.environ, "NOTIFY_SOCKET": str(notify.path)}, stdin=subprocess.DEVNULL, stderr=log)
            ready = notify.next(timeout=30)
            assert ready["READY"] == "1" and "1 rules" in ready["STATUS"], ready
            client = Client(control)
            relay_exactly(lab)

            workers = [w["pid"] for w in client.workers() if w["state"] == "running"]
            assert len(workers) == 1
            expect_privileges(process.pid, uid, capability_mask(unit_capabilities()))
            expect_privileges(workers[0], uid, 0)

            write_config(config, lab, [GROUP, "239.1.1.2"])
            process.send_signal(signal.SIGHUP)
            assert notify.next(timeout=10)["RELOADING"] == "1"
            reloaded = notify.next(timeout=10)
            assert reloaded["READY"] == "1" and "2 rules" in reloaded["STATUS"], reloaded  # after, not before
            rules = {r.name: r for r in client.rules().values()}
            assert sorted(rules) == ["in-239.1.1.1", "in-239.1.1.2"]

            process.send_signal(signal.SIGTERM)
            assert notify.next(timeout=10)["STOPPING"] == "1"
            assert process.wait(15) == 0, (run_dir / "daemon.log").read_text()[-3000:]
            assert not os.path.exists(control)
            assert not Path(f"/proc/{workers[0]}").exists(), "worker outlived the daemon"
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)
        notify.close()
        log_file = run_dir / "daemon.log"
        if log_file.exists():  # pytest shows it when the test failed
            print(log_file.read_text()[-4000:])
        shutil.rmtree(run_dir, ignore_errors=True)


def expect_privileges(pid: int, uid: int, capabilities: int) -> None:
    status = status_of(pid)
    assert status["Uid"].split() == [str(uid)] * 4, status["Uid"]
    assert "mcr" in Path(f"/proc/{pid}/cmdline").read_text(), "not an mcr process"
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[key], 16) == capabilities, f"pid {pid} {key} {status[key]}"
    assert status["NoNewPrivs"] == "1"  # the units' NoNewPrivileges=yes; workers set it themselves
