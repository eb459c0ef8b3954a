"""Worker processes as the supervisor sees them: spawn, command, watch, restart.

Each worker gets one end of a command channel (mcr.channel); the engine
inside the worker reads it with its own io_uring. The worker's stderr is a
pipe whose JSON lines we re-emit with the worker's id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass, field

from .. import _engine, channel
from ..channel import Channel

# A worker that had been running this long when it died was not crash-looping
# (killed by a user, the OOM killer, a bug hit once): it is restarted at once
# and its record is cleared. Only deaths sooner than that, or before it ever
# ran, count as crashes, and only consecutive ones back off.
STABLE_AFTER = 1.0
CRASH_LOOP = 5  # this many crashes in a row: reported as crash-looping
MAX_BACKOFF = 30.0
RESTARTING = ("restarting", "backoff", "crash-looping")  # states in which its watcher brings it back

log = logging.getLogger("mcr.worker")


class WorkerError(RuntimeError):
    """A worker refused a command, did not answer, or is not running."""


def restart_delay(crashes: int) -> float:
    """No wait after a stable run or a first crash; then 0.5 s, 1 s, 2 s ... up to 30 s."""
    return 0.0 if crashes <= 1 else min(0.5 * 2 ** (crashes - 2), MAX_BACKOFF)


@dataclass
class Worker:
    id: int
    core: int | None
    # starting, running, restarting (at once), backoff, crash-looping, idle (no rule needs it), stopped
    state: str = "stopped"
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    started: float = 0.0  # when it last became running
    crashes: int = 0  # deaths in a row that came before it had run for STABLE_AFTER
    log_lines_dropped: int = 0  # lines of its stderr we could not relay (too long, or our stderr failed)
    _log_relay: asyncio.Task | None = field(default=None, repr=False)
    interfaces: set[tuple[str, int]] = field(default_factory=set)  # (in|out, ifindex) it has sockets for
    # Counters of earlier incarnations, so what users see never goes backwards.
    base: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def describe(self) -> dict:
        return {"id": self.id, "pid": self.pid, "core": self.core, "state": self.state, "restarts": self.restarts,
                "crashes": self.crashes, "log_lines_dropped": self.log_lines_dropped,
                "uptime": round(time.monotonic() - self.started, 1) if self.state == "running" else 0.0}

    async def spawn(self, user: str, log_level: int, limits: dict) -> None:
        """Start the process and send Initialize; the caller then hands it sockets and rules."""
        if self.channel is not None:  # a call still reading it ends on its EOF first
            await self.channel.aclose()
            self.channel = None
        self.state = "starting"
        ours, theirs = channel.pair()
        ours.setblocking(False)
        self.interfaces = set()
        try:
            # The interpreter this process runs, through /proc/self/exe: an
            # unprivileged daemon may not be able to walk the path to it (a
            # venv's python linking into a directory only root may search).
            # argv[0] keeps the path, so the worker finds the same venv.
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcr.worker", "--channel-fd", str(theirs.fileno()), "--user", user,
                executable="/proc/self/exe", pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except BaseException:  # no process: our end goes too (a failing spawn is retried, and must not leak)
            ours.close()
            raise
        finally:
            theirs.close()
        # Held here: the loop keeps only a weak reference to a task.
        self._log_relay = asyncio.get_running_loop().create_task(self._relay_logs(self.process))
        self.channel = Channel(ours, f"worker {self.id}", WorkerError)
        core = -1 if self.core is None else self.core
        ours.send(_engine.encode_initialize(0, self.id, core, log_level, limits["max_rules"],
                                            limits["rx_frames"], limits["send_slots"]))

    async def _relay_logs(self, process: asyncio.subprocess.Process) -> None:
        """Re-emit the worker's log lines with its id until its stderr ends.
        Nothing stops this early: a pipe nobody reads fills up, and the
        worker would block in its next log write."""
        assert process.stderr is not None
        while True:
            try:
                raw = await process.stderr.readline()
            except ValueError:  # longer than the reader's limit: the reader has dropped it
                self.log_lines_dropped += 1
                continue
            if not raw:
                return
            try:
                sys.stderr.write(self._tagged(raw, process.pid))
                sys.stderr.flush()
            except (OSError, ValueError):  # our own stderr is gone; keep draining theirs
                self.log_lines_dropped += 1

    def _tagged(self, raw: bytes, pid: int) -> str:
        """One worker log line as a JSON line with its worker id and pid; non-JSON lines are kept as errors."""
        text = raw.decode(errors="replace").rstrip()
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            line = {"level": "error", "facility": "worker", "msg": text}
        line.setdefault("worker", self.id)
        line["pid"] = pid
        return json.dumps(line) + "\n"

    async def call(self, encode, *args, fd: int | None = None) -> dict:
        """Send one command and wait for its reply."""
        if self.channel is None:
            raise WorkerError(f"worker {self.id} is not running")
        return await self.channel.call_async(encode, *args, fd=fd)

    def running(self, now: float) -> None:
        """It holds its sockets and the whole rule set: it forwards."""
        self.state = "running"
        self.started = now

    def exited(self, now: float) -> float:
        """Record a death (a crash unless it ran stably); fold its counters
        into the base; return the delay before restarting it."""
        stable = self.state == "running" and now - self.started >= STABLE_AFTER
        self.crashes = 0 if stable else self.crashes + 1
        self.base = add_counters(self.base, self.last)
        self.last = {}
        delay = restart_delay(self.crashes)
        if self.crashes >= CRASH_LOOP:
            self.state = "crash-looping"
        else:
            self.state = "backoff" if delay else "restarting"
        return delay

    def kill(self) -> None:
        """SIGKILL the process; one that has exited already is left alone
        (its watcher sees the exit either way)."""
        if self.process is None or self.process.returncode is not None:
            return
        try:
            self.process.kill()
        except ProcessLookupError:  # asyncio's answer once it has reaped the process (the check makes this rare)
            pass

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    async def stop(self, timeout: float = 3.0) -> None:
        """Ask the engine to shut down; kill the process if it does not exit in time."""
        self.state = "stopped"
        if self.process is None or self.process.returncode is not None:
            self.close_channel()
            return
        try:
            await self.call(_engine.encode_shutdown)
        except WorkerError:
            pass
        self.close_channel()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.process.wait()


def add_counters(a: dict, b: dict) -> dict:
    """Sum two nested counter dicts (numbers add, dicts recurse)."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            out[key] = add_counters(out.get(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = out.get(key, 0) + value
        else:
            out[key] = value
    return out
