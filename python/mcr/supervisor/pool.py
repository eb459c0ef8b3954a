"""The supervisor's workers as a pool: started, synced, watched, idled.

A part of Supervisor (a mixin, for a file per concern): bring a worker up
with its sockets and the whole rule set, restart it when it dies (with
backoff), repair drift every second, stop the workers when no rule is
active and start them when one is.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .. import _engine, logs, mrib, sockets
from ..rules import REGISTER_INTERFACE
from ..stats import from_engine
from . import following
from .commands import CommandError
from .workers import RESTARTING, Worker, WorkerError, add_counters

HEALTH_INTERVAL = 1.0
# Engine limits per worker: 16,384 rules (the engine allows 1,048,576), up to
# 4,096 outputs each; one command or reply at most _engine.MAX_MESSAGE (64 MiB:
# a sync of about 3.9 million outputs, stats for about 2.7 million).
DEFAULT_LIMITS = {"max_rules": 16384, "rx_frames": 2048, "send_slots": 8192}

log = logging.getLogger("mcr.supervisor")


class WorkerPool:
    """Worker management for the Supervisor."""

    async def _start_workers(self) -> None:
        """Start every worker that is not running (at startup, or after they
        stopped for want of rules); the caller holds _changing. One that
        fails to start is retried by its watcher like one that died."""
        for worker in self.pool:
            if worker.state in ("stopped", "idle"):
                await self._bring_up(worker)
                self._spawn(f"watch worker {worker.id}", lambda w=worker: self._watch(w))

    async def _bring_up(self, worker: Worker) -> None:
        """Spawn a worker, hand it its sockets and the whole rule set; the
        caller holds _changing. Never raises: a worker that does not come up
        is killed (if it got that far), logged and counted, and its watcher
        restarts it with backoff."""
        level = logs.level_number(self.levels.get("engine", self.levels["default"]))
        try:
            await worker.spawn(self.started_with.user, level, DEFAULT_LIMITS)
            await self._sync_worker(worker)
        except Exception as error:  # whatever it was, the worker is retried, and the daemon carries on
            self._count_fault(f"start worker {worker.id}")
            log.error("worker %d failed to start: %s: %s", worker.id, type(error).__name__, error,
                      exc_info=not isinstance(error, (WorkerError, CommandError, OSError)))
            worker.kill()
            return
        worker.running(time.monotonic())
        log.info("worker %d running (pid %d)", worker.id, worker.pid)
        self.events.publish("worker", change="running", id=worker.id, pid=worker.pid)

    async def _stop_idle_workers(self) -> None:
        """No route has been active for idle_stop_after seconds: the workers
        stop (their counters kept) until a route needs them again."""
        limit = self.config.idle_stop_after
        if self._any_active():
            self._idle_since = None
            return
        now = time.monotonic()
        self._idle_since = self._idle_since or now
        if limit is None or now - self._idle_since < limit or not self._running():
            return
        for worker in self._running():
            try:
                await self._poll(worker)  # what it counted joins its base, so totals never go backwards
            except WorkerError as error:
                log.warning("counters of worker %d before it stops: %s", worker.id, error)
            worker.base, worker.last = add_counters(worker.base, worker.last), {}
            await worker.stop()
            worker.state = "idle"
            log.info("worker %d stopped: no active rule for %g s", worker.id, limit)
            self.events.publish("worker", change="idle", id=worker.id)

    async def _sync_worker(self, worker: Worker) -> None:
        """Give `worker` every socket the active routes need, then the whole rule set."""
        for route in self.routes.values():
            await self._give_sockets(worker, route)
        await worker.call(_engine.encode_sync_rules, mrib.engine_rules(self.routes))
        await self._release_unused(worker)

    async def _release_unused(self, worker: Worker) -> None:
        """Close the worker's sockets (and unmap its rings) for interfaces no
        active route uses any more (its rules are synced first)."""
        active = [r for r in self.routes.values() if r.state == mrib.ACTIVE]
        used = {r.input_ifindex for r in active} | {i for r in active for i in r.output_ifindexes}
        unused = sorted({i for _, i in worker.interfaces} - used)
        if not unused:
            return
        await self._poll(worker)  # an input's counters go with its socket: keep them in the base
        carried = {i: worker.last.get("inputs", {}).pop(i) for i in unused if i in worker.last.get("inputs", {})}
        worker.base = add_counters(worker.base, {"inputs": carried})
        for ifindex in unused:
            await worker.call(_engine.encode_remove_interface, ifindex)
            worker.interfaces = {(kind, i) for kind, i in worker.interfaces if i != ifindex}

    async def _watch(self, worker: Worker) -> None:
        """Restart `worker` each time it dies, until the daemon stops or the worker is stopped or idles."""
        while not self._stopping.is_set():
            code = await worker.process.wait() if worker.process is not None else None  # None: never spawned
            if self._stopping.is_set() or worker.state in ("stopped", "idle"):
                return
            delay = worker.exited(time.monotonic())
            worker.restarts += 1
            self.events.publish("worker", change="exited", id=worker.id, pid=worker.pid, status=code,
                                restart_in=delay)
            log.error("worker %d (pid %s) exited with %s; restart %d in %.1f s%s", worker.id, worker.pid, code,
                      worker.restarts, delay, " (crash-looping)" if worker.state == "crash-looping" else "")
            await asyncio.sleep(delay)
            async with self._changing:
                if self._stopping.is_set() or worker.state not in RESTARTING:  # it may have idled out meanwhile
                    return
                await self._bring_up(worker)

    async def _give_sockets(self, worker: Worker, route: mrib.Route) -> None:
        """Pass the worker the input and egress sockets an active route needs,
        once per interface (by index: a re-created interface gets new ones)."""
        if route.state != mrib.ACTIVE:
            return
        have = worker.interfaces
        wanted = [("in", route.rule.input_interface, route.input_ifindex)]
        wanted += [("out", o.interface, i) for o, i in zip(route.outputs, route.output_ifindexes)]
        wanted += [("queued", o.interface, i) for o, i in zip(route.outputs, route.output_ifindexes)
                   if o.sends_priority(route.rule.priority)]
        for kind, name, ifindex in wanted:
            if (kind, ifindex) in have:
                continue
            if name == REGISTER_INTERFACE:
                await self._give_register_socket(worker, kind)
            elif kind == "in":
                with sockets.open_input_socket(name, self._fanout_salt + ifindex) as sock:
                    await worker.call(_engine.encode_add_input, ifindex, fd=sock.fileno())
            else:
                opened = sockets.open_output_sockets(name) if kind == "out" else sockets.open_queued_sockets(name)
                for sock, encode, args in opened:
                    with sock:
                        await worker.call(encode, ifindex, *args, fd=sock.fileno())
            have.add((kind, ifindex))

    async def _give_register_socket(self, worker: Worker, kind: str) -> None:
        """PIM Registers: every worker sends them on a raw socket of its own;
        only worker 0 reads them (each raw socket gets a copy of every
        Register, so two readers would forward each packet twice): the
        others get a socket that reads nothing, so they hold the same rules."""
        if kind == "out":
            with sockets.open_register_socket() as sock:
                await worker.call(_engine.encode_add_register_egress, fd=sock.fileno())
        else:
            with sockets.open_register_input_socket(reading=worker.id == 0) as sock:
                await worker.call(_engine.encode_add_register_input, fd=sock.fileno())

    def _running(self) -> list[Worker]:
        return [w for w in self.pool if w.state == "running"]

    async def _health(self) -> None:
        """Keep counters fresh and repair any worker whose rule set drifted from ours."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            async with self._changing:
                await following.apply_routes(self)
                await self._stop_idle_workers()
                expected = _engine.ruleset_hash(mrib.engine_rules(self.routes))
                for worker in self._running():
                    try:
                        raw = await self._poll(worker)
                        if raw["ruleset_hash"] != expected:
                            self.resyncs += 1
                            log.warning("worker %d rule set drifted; re-syncing", worker.id)
                            await self._sync_worker(worker)
                    except (WorkerError, CommandError, OSError) as error:
                        log.warning("health check of worker %d: %s", worker.id, error)
            self.health_passes += 1

    async def _poll(self, worker: Worker) -> dict:
        raw = (await worker.call(_engine.encode_get_stats))["stats"]
        worker.last = from_engine(raw, self._output_labels())
        return raw
