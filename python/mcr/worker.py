"""A worker process: moves packets, nothing else.

Started by the supervisor as `python -m mcr.worker --channel-fd N --user U`.
It reads its Initialize message, pins itself to its core, drops to an
unprivileged user with no capabilities, and runs the engine on the channel,
which carries everything else (sockets, rules, log level, stats, shutdown).
Imports nothing from the supervisor or the protocols.
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
LEVELS = ("debug", "info", "warning", "error")


def log(level: int, worker_id: int, message: str, min_level: int) -> None:
    if level >= min_level:
        line = {"ts": time.time(), "level": LEVELS[level], "facility": "worker", "worker": worker_id, "msg": message}
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()


def drop_privileges(user: str) -> None:
    """Become `user` for good: no groups, no capabilities, no way back."""
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)  # leaving uid 0 clears every capability set
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise PermissionError(f"still root after switching to {user}")


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
    if os.geteuid() == 0:
        drop_privileges(args.user)
    die_with(supervisor)
    log(1, init["worker_id"], f"worker running as uid {os.getuid()} on core {init['core']}", init["log_level"])
    engine = _engine.Engine(channel.detach(), max_rules=init["max_rules"], rx_frames=init["rx_frames"],
                            send_slots=init["send_slots"], worker_id=init["worker_id"], log_level=init["log_level"])
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
