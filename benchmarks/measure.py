"""One measurement (a trial) and the searches built from trials.

A trial starts a fresh sink on every output link, sends paced probes from
the source namespace for a fixed time, waits for the last packets to drain,
and reads CPU counters before and after: the relay process's run time, the
whole host's busy time (/proc/stat) and the relay core's busy time.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field

from mcr.lab import Sink, generate

# Deliveries up to GRACE after the generator stopped still count: enough for
# a relay that was preempted for a few ms (the machine is shared) to catch
# up, while a relay short of capacity leaves a backlog that takes longer to
# drain than that (a deficit of GRACE / trial length or more shows as loss).
GRACE = 0.05
LOSS_OK = 0.005  # the no-drop rate allows 0.5 % loss
RETRY_BELOW = 0.05  # a failure with less loss than this is tried once more (noise, not capacity)


@dataclass
class Trial:
    rate: float  # requested packets per second (per input, all streams together)
    offered: float  # what the generator achieved
    sent: int
    delivered: int  # unique packets over all outputs
    delivered_pps: float
    loss: float  # 1 - delivered / (sent * outputs)
    duplicates: int
    late: int  # arrived after the window, before the sinks closed (counted as lost)
    reordered: int
    relay_cpu_ns_per_packet: float | None  # relay process CPU / delivered packet
    host_cpu_ns_per_packet: float  # all cores' busy time / delivered packet
    relay_core_busy: float  # fraction of the relay core busy (softirq included)
    refused: int  # generator batches a full input queue cut short (ENOBUFS); those packets are sent again
    latency_us: dict = field(default_factory=dict)  # p50, p99, p999, max

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU, from /proc/stat; busy excludes idle and iowait."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                values = [int(v) for v in line.split()[1:]]
                total = sum(values[:8])  # guest time is already inside user
                out.append((total - values[3] - values[4], total))
    return out


def link_tx_packets(ns: str, ifnames: list[str]) -> int:
    """Packets the relay namespace sent out of `ifnames` (veth counts only what its peer accepted)."""
    out = subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    wanted = set(ifnames)
    return sum(link["stats64"]["tx"]["packets"] for link in json.loads(out) if link["ifname"] in wanted)


def wait_quiet(ns: str, ifnames: list[str], quiet: float = 0.05, timeout: float = 5.0) -> None:
    """Waits until the relay has sent nothing for `quiet` seconds: the backlog of an
    earlier (overload) trial must not leak into the next one."""
    deadline = time.monotonic() + timeout
    last = link_tx_packets(ns, ifnames)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = link_tx_packets(ns, ifnames)
        if now == last:
            return
        last = now


def trial(setup, relay, rate: float, size: int, duration: float, relay_core: int = 1,
          count_links: bool = False, raw: bool = True) -> Trial:
    """Send `rate` pps of `size`-byte payloads to `relay`'s inputs for `duration` seconds.

    Only packets delivered by GRACE after the generator stopped count: a
    relay that falls behind and drains its socket buffers later is not
    credited with a rate it cannot sustain (a 16 MiB buffer holds ~20k
    small packets, enough to hide a large deficit in a short trial). CPU is
    read over the same window. `count_links` counts delivery on the relay's
    output links instead of with sinks (fan-out: fifty sinks would need
    more CPU than the relay under test). `raw` False sends from a kernel UDP
    socket instead of prebuilt frames: on veth its frames reach the relay
    with a partial checksum, as an application's do.
    """
    wait_quiet(setup.relay_ns, relay.out_ifs)
    sinks = [] if count_links else [Sink(ns, ifname, relay.outputs, duration=duration + 30, idle=duration + 30)
                                    for ns, ifname in zip(setup.sink_ns[:len(relay.out_ifs)], setup.sink_if)]
    try:
        links_before = link_tx_packets(setup.relay_ns, relay.out_ifs) if count_links else 0
        cpu_before, relay_before = cpu_times(), relay.cpu_ns()
        sent = generate(setup.source_ns, setup.source_if, relay.inputs, size=size, rate=rate, duration=duration,
                        raw=raw)
        for s in sinks:
            s.end_window(time.monotonic_ns() + int(GRACE * 1e9))
        time.sleep(GRACE)
        cpu_after, relay_after = cpu_times(), relay.cpu_ns()
        links = link_tx_packets(setup.relay_ns, relay.out_ifs) - links_before if count_links else 0
        # Whatever arrives later is late by definition: no need to wait for it.
        reports = [s.stop() for s in sinks]
    finally:
        for s in sinks:
            s.__exit__(None, None, None)
    delivered = links if count_links else sum(r["unique"] for r in reports)
    return _summarise(rate, sent, reports, delivered, len(relay.out_ifs), (cpu_before, cpu_after),
                      (relay_before, relay_after), relay_core)


def _summarise(rate, sent, reports, delivered, outputs, cpu, relay_cpu, relay_core) -> Trial:
    expected = sent["sent"] * outputs
    busy = sum(after[0] - before[0] for before, after in zip(*cpu)) * 1e7  # jiffies (10 ms) -> ns
    core_before, core_after = cpu[0][relay_core], cpu[1][relay_core]
    core_busy = (core_after[0] - core_before[0]) / max(1, core_after[1] - core_before[1])
    per_packet = max(1, delivered)
    relay_ns = None if relay_cpu[0] is None else (relay_cpu[1] - relay_cpu[0]) / per_packet
    latency = reports[0]["latency_ns"] if reports else {}
    return Trial(
        rate=rate, offered=sent["rate"], sent=sent["sent"], delivered=delivered,
        delivered_pps=delivered / sent["elapsed"] if sent["elapsed"] > 0 else 0.0,
        loss=max(0.0, 1 - delivered / expected) if expected else 1.0,
        duplicates=sum(r["duplicates"] for r in reports), late=sum(r["late"] for r in reports),
        reordered=sum(r["reordered"] for r in reports),
        relay_cpu_ns_per_packet=relay_ns, host_cpu_ns_per_packet=busy / per_packet, relay_core_busy=core_busy,
        refused=sent["retries"],
        latency_us={k: latency[k] / 1e3 for k in ("p50", "p99", "p999", "max")} if latency else {})


def no_drop_rate(run, ceiling: float, steps: int, outputs: int = 1) -> tuple[Trial | None, list[Trial]]:
    """The highest paced rate with <= 0.5 % loss, by bisection in at most `steps` trials.

    `run(rate) -> Trial`. The first trial offers `ceiling`; if it passes, the
    generator is the limit. Otherwise the next guess is just under what got
    through (close to the answer for a relay that saturates cleanly), then
    plain bisection between the best pass and the lowest failure. A
    marginal failure (under 5 % loss) is repeated once and the better of
    the two counts, so one noisy trial does not pull the search down.
    """
    tried = [run(ceiling)]
    if tried[0].loss <= LOSS_OK:
        return tried[0], tried
    # The generator cannot offer more than it did at the ceiling, so that is the upper bound.
    good, bad = 0.0, min(ceiling, tried[0].offered * 1.02)
    best = None
    guess = min(bad * 0.9, max(bad * 0.01, tried[0].delivered_pps / outputs * 0.95))
    for _ in range(steps - 1):
        t = run(guess)
        tried.append(t)
        if LOSS_OK < t.loss < RETRY_BELOW:
            again = run(guess)
            tried.append(again)
            t = again if again.loss < t.loss else t
        if t.loss <= LOSS_OK:
            good = guess
            if best is None or t.offered > best.offered:
                best = t
        else:
            bad = guess
        guess = (good + bad) / 2
    return best, tried


def median_range(values: list[float | None]) -> dict | None:
    """{'median', 'min', 'max', 'n'} of the values that exist, or None."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "n": len(present)}
