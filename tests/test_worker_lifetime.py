"""A worker process and the supervisor's hold on it: it dies with its
supervisor, whatever kills the supervisor, and its log pipe is read to the end.

The daemon test (test_daemon_supervisor_restart.py) sees workers end either
way, since the engine also stops on its channel's EOF; this checks the
guard that needs no engine: PR_SET_PDEATHSIG, set after the worker dropped
to an unprivileged user (the uid change clears it, so the order matters).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcr.supervisor.workers import Worker

# The parent starts a child that drops privileges as the worker does, asks to
# die with its parent, and says so; then the parent waits to be killed.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
child.wait()
"""
CHILD = """
import os, time
from mcr.worker import die_with, drop_privileges
parent = os.getppid()
drop_privileges("nobody")
die_with(parent)
print("uid", os.getuid(), flush=True)
time.sleep(30)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_worker_dies_with_a_killed_supervisor():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        pid, _, uid = parent.stdout.readline().split()
        child = int(pid)
        assert int(uid) == pwd.getpwnam("nobody").pw_uid
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 1.0
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(child), "the worker outlived its supervisor"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_log_relay_reads_on_past_an_overlong_line(capfd):
    """A line past the pipe reader's limit (64 KiB) once ended the relay, and
    a worker whose stderr nobody reads blocks in its next write. Now the
    line is counted as dropped and the lines after it still come through."""
    script = ("import json, sys\n"
              "sys.stderr.write('x' * 200000 + '\\n')\n"
              "for i in range(3000):\n"
              "    sys.stderr.write(json.dumps({'level': 'info', 'msg': f'line {i}'}) + '\\n')\n")

    async def relay() -> tuple[int, int]:
        worker = Worker(7, None)
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stderr=asyncio.subprocess.PIPE)
        await asyncio.wait_for(worker._relay_logs(process), 20)
        return await process.wait(), worker.log_lines_dropped

    code, dropped = asyncio.run(relay())
    relayed = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    assert code == 0, "the writer blocked or failed"
    assert dropped >= 1
    assert [r["msg"] for r in relayed if r["msg"].startswith("line")][-1] == "line 2999"
    assert all(r["worker"] == 7 for r in relayed)
