"""`mcr trace RULE`: packet tracing on demand, the supervisor's half.

Tracing, a part of the Supervisor: start_trace() checks the request and has every running worker's engine
record the rule's packets (engine TraceRule: every `sample`-th one, `count`
of them, for `timeout` seconds; the engine stops by itself at either limit).
follow_trace() then polls the workers (TakeTrace), merges their records in
time order, and yields one event per packet, with the outcome at each of
the rule's outputs, until `count` records or the timeout; its last event
says how the trace ended. Whatever ends it (also a client that goes away),
the workers are told to stop.

One trace runs at a time: each engine holds one, so a second would end the
first. With several workers each samples the packets it sees (PACKET_FANOUT
shares a flow out among them), so "every K-th" holds per worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from .. import _engine, mrib
from .commands import CommandError
from .workers import WorkerError

POLL_INTERVAL = 0.05  # seconds between TakeTrace rounds
MAX_COUNT = 10_000
MAX_SAMPLE = 1_000_000
MAX_TIMEOUT = 3600.0
log = logging.getLogger("mcr.trace")


def check_request(count: int, sample: int, timeout: float) -> None:
    """Refuse limits the engine would not take, or a trace that is not bounded."""
    if not 1 <= count <= MAX_COUNT:
        raise CommandError("bad_request", f"count {count} is outside 1-{MAX_COUNT}")
    if not 1 <= sample <= MAX_SAMPLE:
        raise CommandError("bad_request", f"sample {sample} is outside 1-{MAX_SAMPLE}")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise CommandError("bad_request", f"timeout {timeout:g} s is outside 0-{MAX_TIMEOUT:g} s")


class Tracing:
    """The Supervisor's packet traces (a mixin: it uses the pool's workers, the routes and the interfaces)."""

    # One trace at a time (each engine holds one): until when the running one may last
    # (CLOCK_MONOTONIC), so that a trace whose client never followed it blocks no later one.
    trace_until = 0.0

    async def start_trace(self, key: int | str, count: int, sample: int, timeout: float) -> dict:
        """Start tracing the rule with id or name `key` in every running worker;
        the description follow_trace() needs, which is also the reply."""
        check_request(count, sample, timeout)
        rule_id = self.ruleset.find(key)
        route = self.routes.get(rule_id)
        if route is None or route.state != mrib.ACTIVE:
            state = route.state if route is not None else "without a route"
            raise CommandError("conflict", f"rule {rule_id} is not in the data plane ({state}): it has no packets to trace")
        if time.monotonic() < self.trace_until:
            raise CommandError("busy", "another trace is running (one at a time); try again when it ends")
        workers = [w.id for w in self._running()]
        if not workers:
            raise CommandError("conflict", "no worker is running")
        deadline = time.monotonic() + timeout
        self.trace_until = deadline
        try:
            for worker in self._trace_workers(workers):
                await worker.call(_engine.encode_trace_rule, rule_id, count, sample, round(timeout * 1000))
        except WorkerError as error:
            await self._stop_trace(rule_id, workers)
            raise CommandError("engine", str(error)) from None
        return {"rule": rule_id, "count": count, "sample": sample, "timeout": timeout, "workers": workers,
                "outputs": [str(o) for o in route.outputs], "deadline": deadline}

    async def follow_trace(self, started: dict) -> AsyncIterator[dict]:
        """The trace's packets as events, then {"event": "end", ...}; stops the workers' trace on the way out."""
        try:
            async for event in self._trace_records(started):
                yield event
        finally:
            await self._stop_trace(started["rule"], started["workers"])

    async def _trace_records(self, started: dict) -> AsyncIterator[dict]:
        names = {i.index: i.name for i in self.network.interfaces().values()}
        seen = missed = 0
        reason = "timeout"
        while True:
            left = started["deadline"] - time.monotonic()
            await asyncio.sleep(min(POLL_INTERVAL, max(left, 0.0)))
            records, lost, active = await self._take_trace(started["workers"])
            missed += lost
            for worker_id, record in sorted(records, key=lambda pair: pair[1]["time_ns"])[:started["count"] - seen]:
                seen += 1
                yield self._packet_event(record, worker_id, started["outputs"], names)
            if seen >= started["count"]:
                reason = "count"
                break
            if left <= 0 or not active:  # the deadline passed, or every worker's trace ended (a worker restarted)
                break
        yield {"time": time.time(), "event": "end", "rule": started["rule"], "records": seen, "reason": reason,
               "missed": missed}

    async def _take_trace(self, worker_ids: list[int]) -> tuple[list[tuple[int, dict]], int, bool]:
        """Every worker's records (worker id, record), the packets their full rings missed, and
        whether any of them still traces."""
        records: list[tuple[int, dict]] = []
        missed, active = 0, False
        for worker in self._trace_workers(worker_ids):
            try:
                taken = (await worker.call(_engine.encode_take_trace))["trace"]
            except WorkerError as error:
                log.debug("trace of worker %d: %s", worker.id, error)
                continue
            records += [(worker.id, record) for record in taken["records"]]
            missed += taken["missed"]
            active = active or taken["remaining"] > 0
        return records, missed, active

    @staticmethod
    def _packet_event(record: dict, worker_id: int, labels: list[str], names: dict[int, str]) -> dict:
        """One traced packet as a stream event: decoded headers, input, and each output's outcome."""
        outputs = [{"output": labels[i] if i < len(labels) else f"#{i}", "outcome": outcome}
                   for i, outcome in enumerate(record["outcomes"])]
        event = {"time": record["time_ns"] / 1e9, "event": "packet", "rule": record["rule_id"], "worker": worker_id,
                 "input": names.get(record["ifindex"], str(record["ifindex"])),
                 "source": record["source"], "src_port": record["src_port"],
                 "destination": record["destination"], "dst_port": record["dst_port"],
                 "ttl": record["ttl"], "tos": record["tos"], "ip_len": record["ip_len"], "outputs": outputs}
        if record["vlan"]:
            event["vlan"] = record["vlan"]
        if record["outputs"] > len(outputs):  # a record notes the first kTraceOutputs outputs only
            event["outputs_not_shown"] = record["outputs"] - len(outputs)
        return event

    def _trace_workers(self, worker_ids: list[int]) -> list:
        return [w for w in self._running() if w.id in worker_ids]

    async def _stop_trace(self, rule_id: int, worker_ids: list[int]) -> None:
        """End the trace in every worker that still runs (count 0); a worker that fails to answer stops on its own
        at the deadline."""
        try:
            for worker in self._trace_workers(worker_ids):
                try:
                    await worker.call(_engine.encode_trace_rule, rule_id, 0, 1, 0)
                except WorkerError as error:
                    log.debug("stopping the trace of worker %d: %s", worker.id, error)
        finally:
            self.trace_until = 0.0
