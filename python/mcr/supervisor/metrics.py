"""What the daemon exports to Prometheus: its state at scrape time as metric families.

A scrape first captures the supervisor's state (`capture`: counters summed
per rule and output over every worker's current and earlier incarnations,
so nothing goes backwards across a restart), then
`StateCollector` turns that plain data into prometheus_client families.
The endpoint (metrics_http.py) renders them with the library's own encoders.

With 10,000 rules a scrape is tens of thousands of samples, and the
supervisor has one asyncio loop for everything: capture gives the loop back
every CHUNK rules, and the collector hands out families in pieces of at most
CHUNK samples (`pieces()`; consecutive pieces of one name are one family)
so rendering can do the same. `collect()` gives whole families, for any
prometheus_client registry. Every metric is listed in README "Metrics".
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from .. import _engine
from ..stats import OUTPUT_COUNTERS
from .workers import add_counters

CHUNK = 500  # rules summed, or samples built, between two turns of the loop
WORKER_STATES = ("starting", "running", "restarting", "backoff", "crash-looping", "idle", "stopped")
RULE_STATES = ("active", "waiting", "pruned")
INPUT_COUNTERS = {"frames": ("mcr_input_frames", "frames received on the input's packet sockets", None),
                  "bytes": ("mcr_input_bytes", "bytes of those frames, link-layer headers included", "bytes"),
                  "kernel_packets": ("mcr_input_kernel_packets",
                                     "packets the kernel handed to the input's packet sockets (PACKET_STATISTICS)",
                                     None),
                  "kernel_drops": ("mcr_input_kernel_drops",
                                   "packets the kernel dropped because the input's receive ring was full", None)}


# Rows are tuples of strings and numbers, which the garbage collector stops
# tracking: 10,000 rules of dataclasses and dicts kept alive through a
# scrape made Python run full collections (0.1-0.2 s each) in the middle of it.
class RuleCounts(NamedTuple):
    rule: str  # its id, as the label has it
    name: str
    state: str
    packets: int
    bytes: int


class OutputCounts(NamedTuple):
    rule: str
    name: str
    output: str  # as the rule writes it
    packets: int
    bytes: int
    errors: int


@dataclass
class State:
    """What one scrape exports: plain data, no reference into the live supervisor."""

    version: str
    rules: list[RuleCounts] = field(default_factory=list)
    outputs: list[OutputCounts] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, dict[str, int]] = field(default_factory=dict)  # interface name -> counters
    workers: list[dict] = field(default_factory=list)  # Worker.describe()
    resyncs: int = 0
    health_passes: int = 0
    task_faults: dict[str, int] = field(default_factory=dict)
    igmp: list[dict] = field(default_factory=list)  # IgmpService.describe()
    pim: list[dict] = field(default_factory=list)  # PimService.describe()
    pim_unicast_send_errors: int = 0
    pim_upstream: list[dict] = field(default_factory=list)  # router.tree.upstream()
    pim_downstream: list[dict] = field(default_factory=list)  # router.tree.downstream()
    msdp_peers: list[dict] = field(default_factory=list)  # MsdpService.describe_peers()
    msdp_sa: list[dict] = field(default_factory=list)  # MsdpService.describe_sa()


# Capture ------------------------------------------------------------------------

async def capture(sup) -> State:
    """The supervisor's state now. Counters are as its health pass last
    polled the workers (every second): polling 10,000 rules again for each
    scrape would hold the loop as long as that pass does, for no news."""
    # References taken at once: a poll replaces a worker's dicts instead of
    # changing them, so what is summed below stays one consistent picture.
    counted = [part.get("rules", {}) for w in sup.pool for part in (w.base, w.last)]
    # Rule id -> the engine ids its other routes (a range's groups, members'
    # sources) have ever had: a route pruned since keeps what it counted in a
    # worker's base, and leaving it out would take the rule's counters back.
    derived: dict[int, set[int]] = {}
    for (rule_id, _group, _source), engine_id in sup._derived_ids.items():
        derived.setdefault(rule_id, set()).add(engine_id)
    for engine_id, route in sup.routes.items():
        if engine_id != route.rule_id:
            derived.setdefault(route.rule_id, set()).add(engine_id)
    ids = sorted(sup.rules)
    state = State(sup.version, resyncs=sup.resyncs, health_passes=sup.health_passes, task_faults=sup.faults(),
                  workers=sup.workers(), **_engine_totals(sup))
    _protocols(sup, state)
    for start in range(0, len(ids), CHUNK):
        for rule_id in ids[start:start + CHUNK]:
            if rule_id in sup.rules:  # else removed while the loop was given back
                _add_rule(state, sup, rule_id, [rule_id, *sorted(derived.get(rule_id, ()))], counted)
        await asyncio.sleep(0)
    return state


def _add_rule(state: State, sup, rule_id: int, engine_ids: list[int], counted: list[dict]) -> None:
    """One rule's row and its outputs' rows: its routes' counters summed over
    every worker incarnation that had them (outputs it names always appear)."""
    rule, route = sup.rules[rule_id], sup.routes.get(rule_id)
    packets = bytes_ = 0
    outputs = {str(o): [0] * len(OUTPUT_COUNTERS) for o in rule.outputs}
    for c in (c[engine_id] for engine_id in engine_ids for c in counted if engine_id in c):
        packets += c.get("packets", 0)
        bytes_ += c.get("bytes", 0)
        for name, output in c.get("outputs", {}).items():
            total = outputs.setdefault(name, [0] * len(OUTPUT_COUNTERS))
            for i, key in enumerate(OUTPUT_COUNTERS):
                total[i] += output.get(key, 0)
    label, name = str(rule_id), rule.name or ""
    state.rules.append(RuleCounts(label, name, route.state if route else "waiting", packets, bytes_))
    state.outputs.extend(OutputCounts(label, name, output, *total) for output, total in outputs.items())


def _engine_totals(sup) -> dict:
    """Drops, events and inputs summed over the workers (small: no rule in them)."""
    total: dict = {}
    for worker in sup.pool:
        for part in (worker.base, worker.last):
            total = add_counters(total, {key: part.get(key, {}) for key in ("drops", "events", "inputs")})
    names = {i.index: i.name for i in sup.network.interfaces().values()}
    drops, events = total.get("drops", {}), total.get("events", {})
    return {"drops": {reason: drops.get(reason, 0) for reason in _engine.DROP_REASONS},
            "events": {event: events.get(event, 0) for event in _engine.EVENTS},
            "inputs": {names.get(i, str(i)): c for i, c in total.get("inputs", {}).items()}}


def _protocols(sup, state: State) -> None:
    if sup.igmp is not None:
        state.igmp = sup.igmp.describe()
    if sup.pim is not None:
        state.pim = sup.pim.describe()
        state.pim_unicast_send_errors = sup.pim.unicast_send_errors
        router = sup.pim.router
        if router is not None:
            now = time.monotonic()
            state.pim_upstream = router.tree.upstream(now)
            state.pim_downstream = router.tree.downstream(now)
    if getattr(sup, "msdp", None) is not None:
        state.msdp_peers = sup.msdp.describe_peers()
        state.msdp_sa = sup.msdp.describe_sa()


# Families ------------------------------------------------------------------------

Samples = Iterable[tuple[list[str], float]]


def _pieces(make: Callable[[], Metric], samples: Samples) -> Iterator[Metric]:
    """The family `make` builds, in pieces of at most CHUNK samples (the first even if empty)."""
    family, first = make(), True
    for labels, value in samples:
        family.add_metric(labels, value)
        if len(family.samples) >= CHUNK:
            yield family
            family, first = make(), False
    if family.samples or first:
        yield family


def _counter(name: str, doc: str, labels: list[str], samples: Samples, unit: str | None = None) -> Iterator[Metric]:
    return _pieces(lambda: CounterMetricFamily(name, doc, labels=labels, unit=unit or ""), samples)


def _gauge(name: str, doc: str, labels: list[str], samples: Samples) -> Iterator[Metric]:
    return _pieces(lambda: GaugeMetricFamily(name, doc, labels=labels), samples)


class StateCollector:
    """A prometheus_client Collector over one captured State."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        """Whole families: pieces of one name joined again."""
        whole: Metric | None = None
        for piece in self.pieces():
            if whole is not None and piece.name == whole.name:
                whole.samples.extend(piece.samples)
                continue
            if whole is not None:
                yield whole
            whole = piece
        if whole is not None:
            yield whole

    def pieces(self) -> Iterator[Metric]:
        s = self.state
        info = InfoMetricFamily("mcr_build", "the MCR version this daemon runs")
        info.add_metric([], {"version": s.version})
        yield info
        yield from self._rules()
        yield from self._engine()
        yield from self._workers()
        yield from self._igmp()
        yield from self._pim()
        yield from self._msdp()

    def _rules(self) -> Iterator[Metric]:
        rules = self.state.rules
        states = Counter(r.state for r in rules)
        yield from _gauge("mcr_rules", "static rules by state: active forwards, waiting lacks an interface, "
                          "pruned has no output for now", ["state"],
                          (([state], states.get(state, 0)) for state in RULE_STATES))
        labels = ["rule", "name"]
        yield from _counter("mcr_rule_packets", "packets the rule matched and relayed", labels,
                            (([r.rule, r.name], r.packets) for r in rules))
        yield from _counter("mcr_rule_bytes", "UDP payload bytes of those packets", labels,
                            (([r.rule, r.name], r.bytes) for r in rules), unit="bytes")
        labels = ["rule", "name", "output"]
        for key, doc, unit in (("packets", "packets sent to the output", None),
                               ("bytes", "UDP payload bytes sent to the output", "bytes"),
                               ("errors", "packets the output failed to send", None)):
            yield from _counter(f"mcr_output_{key}", doc, labels,
                                (([o.rule, o.name, o.output], getattr(o, key)) for o in self.state.outputs),
                                unit=unit)

    def _engine(self) -> Iterator[Metric]:
        s = self.state
        yield from _counter("mcr_drops", "packets the workers dropped, by reason (README: Counters)", ["reason"],
                            (([reason], count) for reason, count in s.drops.items()))
        yield from _counter("mcr_engine_events", "events that are not drops but show a limit near "
                            "(README: Counters)", ["event"], (([event], n) for event, n in s.events.items()))
        for key, (name, doc, unit) in INPUT_COUNTERS.items():
            yield from _counter(name, doc, ["interface"],
                                (([interface], c.get(key, 0)) for interface, c in sorted(s.inputs.items())),
                                unit=unit)

    def _workers(self) -> Iterator[Metric]:
        s = self.state
        states = Counter(w["state"] for w in s.workers)
        yield from _gauge("mcr_workers", "worker processes by state", ["state"],
                          (([state], states.get(state, 0)) for state in WORKER_STATES))
        by_worker = [str(w["id"]) for w in s.workers]
        yield from _counter("mcr_worker_restarts", "times the worker was restarted after it exited", ["worker"],
                            (([i], w["restarts"]) for i, w in zip(by_worker, s.workers)))
        yield from _gauge("mcr_worker_consecutive_crashes", "deaths in a row before the worker ran for a second "
                          "(5 or more: crash-looping)", ["worker"],
                          (([i], w["crashes"]) for i, w in zip(by_worker, s.workers)))
        yield from _counter("mcr_worker_log_lines_dropped", "log lines of the worker that could not be relayed",
                            ["worker"], (([i], w["log_lines_dropped"]) for i, w in zip(by_worker, s.workers)))
        yield from _counter("mcr_resyncs", "worker rule sets found drifted and synced again", [],
                            [([], s.resyncs)])
        yield from _counter("mcr_health_passes", "health checks completed (it keeps rising while the "
                            "supervisor is healthy)", [], [([], s.health_passes)])
        yield from _counter("mcr_task_faults", "failures a background task or protocol survived", ["task"],
                            (([task], n) for task, n in sorted(s.task_faults.items())))

    def _igmp(self) -> Iterator[Metric]:
        links = self.state.igmp
        yield from _gauge("mcr_igmp_groups", "groups with listeners on the interface", ["interface"],
                          (([i["interface"]], len(i["groups"])) for i in links))
        yield from _gauge("mcr_igmp_querier", "1 where MCR is the IGMP querier, 0 where another router is",
                          ["interface"], (([i["interface"]], int(bool(i["querier"]))) for i in links))
        yield from _counter("mcr_igmp_ignored_messages", "IGMP messages dropped or ignored, by reason",
                            ["interface", "reason"],
                            (([i["interface"], reason], n) for i in links
                             for reason, n in sorted(i.get("counters", {}).items())))
        yield from _counter("mcr_igmp_send_errors", "IGMP queries the kernel refused to send (link down, "
                            "a firewall)", ["interface"], (([i["interface"]], i["send_errors"]) for i in links))

    def _pim(self) -> Iterator[Metric]:
        s = self.state
        yield from _gauge("mcr_pim_neighbors", "PIM neighbors on the interface", ["interface"],
                          (([i["interface"]], len(i["neighbors"])) for i in s.pim))
        yield from _gauge("mcr_pim_dr", "1 where MCR is the PIM designated router", ["interface"],
                          (([i["interface"]], int(i["dr"] == i["address"])) for i in s.pim))
        yield from _counter("mcr_pim_ignored_messages", "PIM messages dropped or ignored, by reason",
                            ["interface", "reason"],
                            (([i["interface"], reason], n) for i in s.pim
                             for reason, n in sorted(i.get("counters", {}).items())))
        yield from _counter("mcr_pim_send_errors", "PIM messages the kernel refused to send on the interface",
                            ["interface"], (([i["interface"]], i["send_errors"]) for i in s.pim))
        yield from _counter("mcr_pim_unicast_send_errors", "Register-Stops and Null-Registers the kernel "
                            "refused to send", [], [([], s.pim_unicast_send_errors)])
        upstream = Counter((row["kind"], row["state"]) for row in s.pim_upstream)
        yield from _gauge("mcr_pim_upstream", "PIM upstream entries by kind ((*,G), (S,G), (S,G,rpt)) and state",
                          ["kind", "state"], (([kind, state], n) for (kind, state), n in sorted(upstream.items())))
        downstream = Counter((row["kind"], row["state"]) for row in s.pim_downstream)
        yield from _gauge("mcr_pim_downstream", "PIM downstream (interface) entries by kind and state",
                          ["kind", "state"], (([kind, state], n) for (kind, state), n in sorted(downstream.items())))

    def _msdp(self) -> Iterator[Metric]:
        s = self.state
        yield from _gauge("mcr_msdp_peer_up", "1 while the MSDP peering is established", ["peer"],
                          (([p["peer"]], int(p["state"] == "established")) for p in s.msdp_peers))
        yield from _counter("mcr_msdp_peer_events", "MSDP session counters per peer (SAs and keepalives in and "
                            "out, decode errors, connect failures, hold timer expiries)", ["peer", "event"],
                            (([p["peer"], event], n) for p in s.msdp_peers
                             for event, n in sorted(p["counters"].items())))
        origins = Counter(row.get("origin", "peer") for row in s.msdp_sa)
        yield from _gauge("mcr_msdp_sa_entries", "MSDP SA cache entries, ours (local) and learned (peer)",
                          ["origin"], (([origin], n) for origin, n in sorted(origins.items())))
