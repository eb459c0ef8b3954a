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

CRASH_WINDOW = 60.0  # crashes within this many seconds count towards backoff
CRASH_LOOP = 5       # this many crashes in the window: reported as crash-looping
MAX_BACKOFF = 30.0

log = logging.getLogger("mcr.worker")


class WorkerError(RuntimeError):
    """A worker refused a command, did not answer, or is not running."""


def restart_delay(crash_times: list[float], now: float) -> float:
    """No wait after a first crash; then 0.5 s, 1 s, 2 s ... up to 30 s."""
    recent = [t for t in crash_times if now - t < CRASH_WINDOW]
    return 0.0 if len(recent) <= 1 else min(0.5 * 2 ** (len(recent) - 2), MAX_BACKOFF)


@dataclass
class Worker:
    id: int
    core: int | None
    state: str = "stopped"  # starting, running, backoff, crash-looping, idle (no rule needs it), stopped
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    started: float = 0.0
    crash_times: list[float] = field(default_factory=list)
    interfaces: set[tuple[str, int]] = field(default_factory=set)  # (in|out, ifindex) it has sockets for
    # Counters of earlier incarnations, so what users see never goes backwards.
    base: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def describe(self) -> dict:
        return {"id": self.id, "pid": self.pid, "core": self.core, "state": self.state, "restarts": self.restarts,
                "uptime": round(time.monotonic() - self.started, 1) if self.state == "running" else 0.0}

    async def spawn(self, user: str, log_level: int, limits: dict) -> None:
        """Start the process and send Initialize; the caller then hands it sockets and rules."""
        if self.channel is not None:  # a call still reading it ends on its EOF first
            await self.channel.aclose()
            self.channel = None
        ours, theirs = channel.pair()
        ours.setblocking(False)
        self.state = "starting"
        self.interfaces = set()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcr.worker", "--channel-fd", str(theirs.fileno()), "--user", user,
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        finally:
            theirs.close()
        self.channel = Channel(ours, f"worker {self.id}", WorkerError)
        self.started = time.monotonic()
        core = -1 if self.core is None else self.core
        ours.send(_engine.encode_initialize(0, self.id, core, log_level, limits["max_rules"],
                                            limits["rx_frames"], limits["send_slots"]))
        asyncio.get_running_loop().create_task(self._relay_logs(self.process))

    async def _relay_logs(self, process: asyncio.subprocess.Process) -> None:
        """Re-emit the worker's JSON log lines with its id; keep non-JSON lines too."""
        assert process.stderr is not None
        async for raw in process.stderr:
            text = raw.decode(errors="replace").rstrip()
            try:
                line = json.loads(text)
            except ValueError:
                line = {"level": "error", "facility": "worker", "msg": text}
            line.setdefault("worker", self.id)
            line["pid"] = process.pid
            sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()

    async def call(self, encode, *args, fd: int | None = None) -> dict:
        """Send one command and wait for its reply."""
        if self.channel is None:
            raise WorkerError(f"worker {self.id} is not running")
        return await self.channel.call_async(encode, *args, fd=fd)

    def crashed(self, now: float) -> float:
        """Record a crash; fold its counters into the base; return the delay before restarting."""
        self.crash_times = [t for t in self.crash_times if now - t < CRASH_WINDOW] + [now]
        self.base = add_counters(self.base, self.last)
        self.last = {}
        delay = restart_delay(self.crash_times, now)
        self.state = "crash-looping" if len(self.crash_times) >= CRASH_LOOP else "backoff"
        return delay

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
            self.process.kill()
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
