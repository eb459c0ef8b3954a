"""A worker process: moves packets, nothing else.

Started by the supervisor as `python -m mcr.worker --channel-fd N --user U`.
It reads its Initialize message, pins itself to its core, drops every
privilege, and runs the engine on the channel, which carries everything
else (sockets, rules, log level, stats, shutdown). Imports nothing from the
supervisor or the protocols.

Privileges: a worker needs none, as the supervisor opens every socket it
uses. Under a root supervisor it becomes user U. Under an unprivileged
supervisor (a service with ambient CAP_NET_RAW and CAP_NET_ADMIN, see
packaging/systemd/) it cannot change uid (that needs CAP_SETUID) and keeps
the daemon's; it inherited the ambient capabilities through exec and sheds
them all. The kernel then denies it ptrace and /proc/PID/mem of the
supervisor, whose capabilities it no longer holds; what it can still do
as the same uid is signal the supervisor.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pwd
import signal
import socket
import sys
import time

from . import _engine

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapAmb")  # in /proc/self/status; all must be 0
LEVELS = ("debug", "info", "warning", "error")


def log(level: int, worker_id: int, message: str, min_level: int) -> None:
    if level >= min_level:
        line = {"ts": time.time(), "level": LEVELS[level], "facility": "worker", "worker": worker_id, "msg": message}
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()


def drop_privileges(user: str) -> None:
    """Keep no capability and no way to gain one: as root, become `user`
    first (no groups); as anyone else, stay who we are."""
    if os.geteuid() == 0:
        become(user)
    shed_capabilities()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:  # exec can never add any back
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    held = {name: value for name, value in capability_sets().items() if value}
    if held or os.getuid() == 0 or os.geteuid() == 0:
        raise PermissionError(f"worker still privileged: uid {os.getuid()}, capabilities {held}")


def become(user: str) -> None:
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)  # leaving uid 0 clears every capability set


def shed_capabilities() -> None:
    """Empty the ambient, inheritable, permitted and effective sets, which
    any process may do to itself. The bounding set stays (lowering it
    needs CAP_SETPCAP); with nothing permitted and no_new_privs it grants nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)  # version, pid 0: this thread
    data = (ctypes.c_uint32 * 6)()  # two __user_cap_data_struct, all zero
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def capability_sets() -> dict[str, int]:
    """This process's capability sets, from /proc/self/status."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: int(fields[name], 16) for name in CAPABILITY_SETS}


def die_with(supervisor: int) -> None:
    """Be killed the moment the supervisor dies, however it dies: a worker
    without one would go on forwarding beside the workers of the next.
    Set after the uid change, which clears it (commit_creds)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != supervisor:  # it died before we asked
        raise SystemExit("the supervisor is gone")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcr.worker")
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--user", default="nobody")
    args = parser.parse_args(argv)
    supervisor = os.getppid()
    channel = socket.socket(fileno=args.channel_fd)
    init = _engine.decode_initialize(channel.recv(_engine.MAX_PART))
    if init["core"] >= 0:
        os.sched_setaffinity(0, {init["core"]})
    drop_privileges(args.user)
    die_with(supervisor)
    log(1, init["worker_id"], f"worker running as uid {os.getuid()} on core {init['core']}", init["log_level"])
    engine = _engine.Engine(channel.detach(), max_rules=init["max_rules"], rx_frames=init["rx_frames"],
                            send_slots=init["send_slots"], worker_id=init["worker_id"], log_level=init["log_level"])
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
