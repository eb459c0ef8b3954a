"""MCR against socat and kernel multicast forwarding, in the same run, on the same topology.

    sudo .venv/bin/python -m benchmarks.run --quick      # under 5 minutes
    sudo .venv/bin/python -m benchmarks.run              # the full profile (see README, "Performance")

Builds source -> relay -> sink in network namespaces (mcr.lab.chain), then
for each CPU placement and each relay measures the no-drop rate (highest
paced rate with <= 0.5 % loss, by bounded bisection) per payload size, the
delivered rate at 3x that rate, latency at 100k pps, CPU per packet, 1 vs
100 streams, fan-out to 1, 8 and 50 outputs, and exact-rule forwarding with
and without any-port and range rules in the table. Placement A is plain veth
(the relay's ingress softirq runs on the sender's core); B steers the
relay's ingress to the relay's core with RPS, so one core carries the whole
relay host; C gives the relay's input veth a threaded NAPI poller pinned to
the relay's core, so one core carries the whole relay host again, but its
ingress is a thread the scheduler weighs against the relay instead of a
softirq that pre-empts it. The generator and sinks run on core 0, the relay
on core 1.
Writes results.json, report.md and PNG plots to benchmarks/results/<time>/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mcr.lab import chain, streams
from mcr.lab.relays import RELAYS, RelayError

from . import report
from .measure import median_range, no_drop_rate, trial
from . import scale_relay
from . import trace_relay, wildcard_relay

GEN_CORE, RELAY_CORE = 0, 1
RPS_MASK = {"A": "0", "B": format(1 << RELAY_CORE, "x"), "C": "0"}
THREADED_NAPI = {"A": False, "B": False, "C": True}
LATENCY_RATE = 100_000
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Profile:
    payloads: list[int]
    placements: list[str]
    trial: float  # seconds of traffic per trial
    steps: int  # trials per no-drop-rate search
    repeats: int
    streams: list[int] = field(default_factory=lambda: [1, 100])
    fanout: list[int] = field(default_factory=lambda: [1, 8, 50])
    fanout_placements: list[str] = field(default_factory=lambda: ["A", "B"])  # also used by the workers test
    workers: list[int] = field(default_factory=lambda: [1, 2])
    systems: list[str] = field(default_factory=lambda: ["mcr", "socat", "kernel"])
    # benchmarks/wildcard_relay.py variants, measured in fanout_placements
    wildcards: list[str] = field(default_factory=lambda: ["exact", "exact+wildcards", "range-hit"])
    # benchmarks/trace_relay.py variants, measured in fanout_placements
    tracing: list[str] = field(default_factory=lambda: list(trace_relay.VARIANTS))
    # benchmarks/scale_relay.py variants, measured in fanout_placements
    scale: list[str] = field(default_factory=lambda: list(scale_relay.VARIANTS))
    ceiling: float = 800_000  # the first (overload) trial of a search; above what the generator reaches


PROFILES = {
    "smoke": Profile([64], ["A"], trial=0.15, steps=2, repeats=1, streams=[1], fanout=[1, 2], fanout_placements=["A"],
                     scale=[], tracing=[]),
    "quick": Profile([64, 1400], ["A", "B", "C"], trial=0.8, steps=6, repeats=1, fanout_placements=["B"]),
    "full": Profile([64, 512, 1400, 8972], ["A", "B", "C"], trial=2.0, steps=8, repeats=3),
}


def prepare(setup) -> None:
    """Lets one socket join 100 groups (socat's one socket for the 100-stream test; default 20)."""
    for ns in (setup.relay_ns, *setup.sink_ns):
        setup.lab.set_sysctl(ns, "net.ipv4.igmp_max_memberships", 1024)


def set_placement(ns: str, ifname: str, placement: str) -> None:
    """RPS and NAPI mode of the relay's input veth; sets every knob, so placements can follow each other.

    A veth has a NAPI poller only while GRO is on (off by default); `threaded`
    then moves that poller into a kernel thread, which is pinned here.
    /sys follows the mount namespace, which `ip netns exec` remounts."""
    sysfs = f"/sys/class/net/{ifname}"
    _in_netns(ns, "sh", "-c", f"echo {RPS_MASK[placement]} > {sysfs}/queues/rx-0/rps_cpus")
    if not THREADED_NAPI[placement]:
        # The thread goes before GRO does: without a NAPI poller, `threaded` cannot be written.
        _in_netns(ns, "sh", "-c", f"[ $(cat {sysfs}/threaded) = 0 ] || echo 0 > {sysfs}/threaded")
        _in_netns(ns, "ethtool", "-K", ifname, "gro", "off")
        return
    _in_netns(ns, "ethtool", "-K", ifname, "gro", "on")
    _in_netns(ns, "sh", "-c", f"echo 1 > {sysfs}/threaded")
    threads = napi_threads(ifname)
    if not threads:
        raise RuntimeError(f"no NAPI thread appeared for {ifname}")
    for pid in threads:
        os.sched_setaffinity(pid, {RELAY_CORE})


def napi_threads(ifname: str) -> list[int]:
    """PIDs of the kernel threads polling `ifname` ("napi/<ifname>-<id>", cut to 15 characters)."""
    prefix = f"napi/{ifname}-"[:15]
    found = []
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith(prefix):
                    found.append(pid)
        except OSError:
            continue  # a process that just ended
    return found


def _in_netns(ns: str, *command: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *command], check=True, timeout=30, capture_output=True)


class Bench:
    """One benchmark run: its topologies, its results and what could not be measured."""

    def __init__(self, profile: Profile, name: str) -> None:
        self.profile, self.name = profile, name
        self.rows: list[dict] = []
        self.not_measured: list[dict] = []
        self.started = time.monotonic()

    def relay(self, setup, system: str, inputs, outputs: int = 1):
        return RELAYS[system](setup.relay_ns, setup.relay_in, setup.relay_out[:outputs], inputs,
                              source=setup.source_addr, out_addrs=setup.relay_out_addr[:outputs], cpu=RELAY_CORE)

    def record(self, test: str, placement: str, system: str, repeat: int, result, **key) -> None:
        self.rows.append({"test": test, "placement": placement, "system": system, "repeat": repeat, **key,
                          "result": result.as_dict() if hasattr(result, "as_dict") else result})

    def record_search(self, placement: str, system: str, repeat: int, found, relay, test: str = "ndr",
                      **key) -> None:
        """A no-drop-rate search; generator_limited: even the first trial, at full speed, passed."""
        best, tried = found
        self.record(test, placement, system, repeat, best, **key, tried=[t.as_dict() for t in tried],
                    generator_limited=best is tried[0], relay_counters=getattr(relay, "last_stats", None))

    def search(self, setup, relay, size: int, outputs: int = 1, count_links: bool = False, raw: bool = True):
        p = self.profile
        return no_drop_rate(lambda rate: trial(setup, relay, rate, size, p.trial, RELAY_CORE, count_links, raw),
                            p.ceiling / max(1, outputs if count_links else 1), p.steps, outputs)

    def payload_tests(self, setup, placement: str, system: str, repeat: int) -> None:
        with self.relay(setup, system, streams()) as relay:
            for size in self.profile.payloads:
                found = self.search(setup, relay, size)
                self.record_search(placement, system, repeat, found, relay, size=size, streams=1, outputs=1)
                best = found[0]
                if best is not None:
                    over = trial(setup, relay, 3 * best.offered, size, self.profile.trial, RELAY_CORE)
                    self.record("overload", placement, system, repeat, over, size=size,
                                ndr=best.offered, ratio=over.delivered_pps / best.offered)
            lat = trial(setup, relay, LATENCY_RATE, 64, max(1.0, self.profile.trial), RELAY_CORE)
            self.record("latency", placement, system, repeat, lat, size=64, rate=LATENCY_RATE)

    def stream_tests(self, setup, placement: str, system: str, repeat: int) -> None:
        for n in self.profile.streams:
            if n == 1:
                continue  # the one-stream figure is the 64-byte no-drop rate above
            with self.relay(setup, system, streams(count=n)) as relay:
                found = self.search(setup, relay, 64)
            self.record_search(placement, system, repeat, found, relay, size=64, streams=n, outputs=1)

    def fanout_tests(self, setup, placement: str, repeat: int) -> None:
        for system in ("mcr", "kernel", "socat"):
            for n in self.profile.fanout:
                if system not in self.profile.systems:
                    continue
                try:
                    relay = self.relay(setup, system, streams(), outputs=n)
                    relay.start()
                except RelayError as error:
                    self.skip(f"fan-out {n}, {system}", str(error))
                    continue
                try:
                    best, tried = self.search(setup, relay, 64, outputs=n, count_links=True)
                finally:
                    relay.stop()
                # MCR's frames that found their TX ring full and took the
                # sendmsg path, over the whole search (every trial, at and
                # above the no-drop rate): 0 means the watermark flush kept up.
                counters = getattr(relay, "last_stats", None) or {}
                self.record("fanout", placement, system, repeat, best, size=64, outputs=n,
                            output_pps=best.delivered_pps if best else 0.0, tried=[t.as_dict() for t in tried],
                            tx_ring_full=counters.get("events", {}).get("tx_ring_full"))
        if "mcr" in self.profile.systems:
            self.fanout_one_link(setup, placement, repeat, max(self.profile.fanout))

    def fanout_one_link(self, setup, placement: str, repeat: int, n: int) -> None:
        """MCR with `n` outputs on one interface: every frame of a packet goes
        into the same TX ring, the case a per-pass flush alone overflows."""
        relay = RELAYS["mcr"](setup.relay_ns, setup.relay_in, [setup.relay_out[0]] * n, streams(),
                              source=setup.source_addr, out_addrs=[setup.relay_out_addr[0]] * n, cpu=RELAY_CORE)
        with relay:
            best, tried = self.search(setup, relay, 64, outputs=n, count_links=True)
            counters = getattr(relay, "last_stats", None) or {}
        self.record("fanout", placement, "mcr-one-link", repeat, best, size=64, outputs=n,
                    output_pps=best.delivered_pps if best else 0.0, tried=[t.as_dict() for t in tried],
                    tx_ring_full=counters.get("events", {}).get("tx_ring_full"))

    def log(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {text}", flush=True)

    def skip(self, what: str, why: str) -> None:
        if not any(n["what"] == what for n in self.not_measured):
            self.not_measured.append({"what": what, "why": why})
            self.log(f"not measured: {what}: {why}")


def run_main(bench: Bench) -> None:
    p = bench.profile
    with chain(n_sinks=1, mtu=9000, prefix="mcrb") as setup:
        prepare(setup)
        for repeat in range(p.repeats):
            for placement in p.placements:
                set_placement(setup.relay_ns, setup.relay_in, placement)
                for system in p.systems:
                    bench.log(f"repeat {repeat + 1}/{p.repeats}, placement {placement}, {system}")
                    try:
                        bench.payload_tests(setup, placement, system, repeat)
                        bench.stream_tests(setup, placement, system, repeat)
                    except RelayError as error:
                        bench.skip(f"placement {placement}, {system}", str(error))


def run_fanout(bench: Bench) -> None:
    p = bench.profile
    if not p.fanout:
        return
    with chain(n_sinks=max(p.fanout), prefix="mcrf") as setup:
        prepare(setup)
        for repeat in range(p.repeats):
            for placement in p.fanout_placements:
                set_placement(setup.relay_ns, setup.relay_in, placement)
                bench.log(f"repeat {repeat + 1}/{p.repeats}, placement {placement}, fan-out {p.fanout}")
                bench.fanout_tests(setup, placement, repeat)


def run_workers(bench: Bench) -> None:
    """`mcr daemon` with 1 and 2 workers sharing one input through PACKET_FANOUT.

    The fanout hashes by flow, so this uses the 100-stream input: one stream
    always stays on one worker. Worker 1 is pinned to the relay core, worker
    2 to the generator's core (the machine has two)."""
    p = bench.profile
    if not p.workers:
        return
    with chain(n_sinks=1, prefix="mcrw") as setup:
        prepare(setup)
        for repeat in range(p.repeats):
            for placement in p.fanout_placements:
                set_placement(setup.relay_ns, setup.relay_in, placement)
                for system in (f"mcr-{n}w" for n in p.workers):
                    bench.log(f"repeat {repeat + 1}/{p.repeats}, placement {placement}, {system}, 100 streams")
                    try:
                        with bench.relay(setup, system, streams(count=100)) as relay:
                            found = bench.search(setup, relay, 64)
                    except RelayError as error:
                        bench.skip(f"placement {placement}, {system}", str(error))
                        continue
                    bench.record_search(placement, system, repeat, found, relay, size=64, streams=100, outputs=1)


def run_senders(bench: Bench) -> None:
    """What partial checksums cost MCR: the same no-drop search with a kernel
    UDP-socket sender (CHECKSUM_PARTIAL frames, relayed with checksum offload)
    and with prebuilt frames (full checksum, updated incrementally)."""
    p = bench.profile
    with chain(n_sinks=1, prefix="mcrs") as setup:
        prepare(setup)
        for repeat in range(p.repeats):
            for placement in p.fanout_placements:
                set_placement(setup.relay_ns, setup.relay_in, placement)
                bench.log(f"repeat {repeat + 1}/{p.repeats}, placement {placement}, mcr, raw and UDP-socket senders")
                with bench.relay(setup, "mcr", streams()) as relay:
                    for sender, raw in (("raw", True), ("udp-socket", False)):
                        found = bench.search(setup, relay, 64, raw=raw)
                        bench.record_search(placement, "mcr", repeat, found, relay, size=64, streams=sender,
                                            outputs=1, test="senders")


def run_wildcards(bench: Bench) -> None:
    """What any-port and range rules cost exact rules (nothing, by design: the
    table looks at them only after an exact miss) and what a packet that only
    a range rule takes costs (benchmarks/wildcard_relay.py)."""
    run_variants(bench, "wildcards", bench.profile.wildcards, wildcard_relay.relay_for, "mcrx")


def run_tracing(bench: Bench) -> None:
    """What packet tracing costs the data path: off (one predicted branch per
    packet), a trace running on another rule, and every packet traced
    (benchmarks/trace_relay.py); one build, one process kind."""
    run_variants(bench, "tracing", bench.profile.tracing, trace_relay.relay_for, "mcrt")


def run_variants(bench: Bench, test: str, variants: list[str], relay_for, prefix: str) -> None:
    """The same relay process and topology for every variant, interleaved
    within each repeat in a rotating order; besides the no-drop search, relay
    CPU per packet at a fixed 100k pps, which the machine's noise blurs less
    than a search. Rows `test` and `test`-cpu."""
    p = bench.profile
    if not variants:
        return
    with chain(n_sinks=1, prefix=prefix) as setup:
        prepare(setup)
        for repeat in range(p.repeats):
            for placement in p.fanout_placements:
                set_placement(setup.relay_ns, setup.relay_in, placement)
                # Each repeat starts with another variant: no variant always runs first or last.
                for variant in variants[repeat % len(variants):] + variants[:repeat % len(variants)]:
                    bench.log(f"repeat {repeat + 1}/{p.repeats}, placement {placement}, mcr, {test}: {variant}")
                    relay = relay_for(variant)(setup.relay_ns, setup.relay_in, setup.relay_out[:1], streams(),
                                               source=setup.source_addr, out_addrs=setup.relay_out_addr[:1],
                                               cpu=RELAY_CORE)
                    try:
                        with relay:
                            found = bench.search(setup, relay, 64)
                            fixed = trial(setup, relay, LATENCY_RATE, 64, max(1.0, p.trial), RELAY_CORE)
                    except RelayError as error:
                        bench.skip(f"placement {placement}, {test} {variant}", str(error))
                        continue
                    bench.record_search(placement, relay.name, repeat, found, relay, test=test, size=64,
                                        streams=1, outputs=1)
                    bench.record(f"{test}-cpu", placement, relay.name, repeat, fixed, size=64, rate=LATENCY_RATE)


SYNC_TRIAL = 3.0  # seconds of fixed-rate traffic while 10,000-rule syncs run (one per 0.5 s)
SYNC_RATE = 50_000  # well under the no-drop rate, so that loss is the syncs' doing, not overload


def run_scale(bench: Bench) -> None:
    """A 10,000-rule table (100,000 outputs) against one rule: the no-drop
    rate of the measured flow with each, and its loss at a fixed 50k pps
    while full 10,000-rule syncs replace every other rule twice a second
    (and, as the baseline in the same run, without them). Variants rotate
    per repeat as in run_wildcards (benchmarks/scale_relay.py)."""
    p = bench.profile
    if not p.scale:
        return
    with chain(n_sinks=1, prefix="mcrs") as setup:
        prepare(setup)
        for repeat in range(p.repeats):
            for placement in p.fanout_placements:
                set_placement(setup.relay_ns, setup.relay_in, placement)
                for variant in p.scale[repeat % len(p.scale):] + p.scale[:repeat % len(p.scale)]:
                    bench.log(f"repeat {repeat + 1}/{p.repeats}, placement {placement}, mcr, rules: {variant}")
                    relay = scale_relay.relay_for(variant)(setup.relay_ns, setup.relay_in, setup.relay_out[:1],
                                                           streams(), source=setup.source_addr,
                                                           out_addrs=setup.relay_out_addr[:1], cpu=RELAY_CORE)
                    try:
                        with relay:
                            scale_trials(bench, setup, relay, variant, placement, repeat)
                    except RelayError as error:
                        bench.skip(f"placement {placement}, rules {variant}", str(error))


def scale_trials(bench: Bench, setup, relay, variant: str, placement: str, repeat: int) -> None:
    if variant != "10000-rules-syncing":
        found = bench.search(setup, relay, 64)
        bench.record_search(placement, relay.name, repeat, found, relay, test="scale", size=64, streams=1,
                            outputs=1)
    if variant == "1-rule":
        return
    before = relay.last_stats["scale"]["syncs"]
    fixed = trial(setup, relay, SYNC_RATE, 64, SYNC_TRIAL, RELAY_CORE)
    after = relay.last_stats["scale"]
    bench.record("scale-sync", placement, relay.name, repeat, fixed, size=64, rate=SYNC_RATE,
                 syncs=after["syncs"] - before, sync_ms_max=after["sync_ms_max"], rules=after["rules"])


SECTIONS = {"main": run_main, "fanout": run_fanout, "workers": run_workers, "senders": run_senders,
            "wildcards": run_wildcards, "scale": run_scale, "tracing": run_tracing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick profile (under 5 minutes)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="smoke, quick or full (default full)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results/<time>)")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS),
                        help="run only this part (repeatable; default all): main (payloads, streams), fanout, "
                             "workers, senders, wildcards, scale, tracing")
    parser.add_argument("--repeats", type=int, help="repeats instead of the profile's")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks need root (network namespaces, raw sockets)", file=sys.stderr)
        return 1
    name = args.profile or ("quick" if args.quick else "full")
    out = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {GEN_CORE})  # the generator and sink threads inherit this core
    # SIGTERM unwinds like Ctrl-C, so relays stop and namespaces are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    profile = PROFILES[name] if args.repeats is None else replace(PROFILES[name], repeats=args.repeats)
    bench = Bench(profile, name)
    started = time.time()
    for section in dict.fromkeys(args.only or SECTIONS):
        SECTIONS[section](bench)
    results = {"profile": name, "settings": asdict(bench.profile) | settings(), "machine": report.machine(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
               "duration_s": round(time.time() - started, 1), "sections": args.only or list(SECTIONS),
               "rows": bench.rows,
               "not_measured": bench.not_measured}
    results["summary"] = summarise(bench.rows)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    report.write(results, out)
    print(f"done in {results['duration_s']} s: {out}/report.md", flush=True)
    return 0


def settings() -> dict:
    return {"generator_core": GEN_CORE, "relay_core": RELAY_CORE, "rps_mask": RPS_MASK, "threaded_napi": THREADED_NAPI,
            "latency_rate_pps": LATENCY_RATE, "loss_ok": 0.005, "generator": "mcr gen --raw (AF_PACKET, "
            "prebuilt frames, PACKET_QDISC_BYPASS, sendmmsg batches of 32, paced)",
            "sink": "mcr sink (recvmmsg, one socket per group, 8 MiB buffer)", "topology": "mcr.lab.chain"}


def summarise(rows: list[dict]) -> dict:
    """Medians with min-max over repeats, keyed 'test|placement|system|size|streams|outputs'."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        key = "|".join(str(row.get(k, "")) for k in ("test", "placement", "system", "size", "streams", "outputs"))
        groups.setdefault(key, []).append(row)
    summary = {}
    for key, group in groups.items():
        results = [r["result"] for r in group]
        summary[key] = {
            "offered_pps": median_range([r and r["offered"] for r in results]),
            "delivered_pps": median_range([r and r["delivered_pps"] for r in results]),
            "loss": median_range([r and r["loss"] for r in results]),
            "relay_cpu_ns": median_range([r and r["relay_cpu_ns_per_packet"] for r in results]),
            "host_cpu_ns": median_range([r and r["host_cpu_ns_per_packet"] for r in results]),
            "relay_core_busy": median_range([r and r["relay_core_busy"] for r in results]),
            "p50_us": median_range([r and r["latency_us"].get("p50") for r in results]),
            "p99_us": median_range([r and r["latency_us"].get("p99") for r in results]),
            "p999_us": median_range([r and r["latency_us"].get("p999") for r in results]),
            "ratio": median_range([r.get("ratio") for r in group]),
            "generator_limited": any(r.get("generator_limited") for r in group),
            "tx_ring_full": median_range([r.get("tx_ring_full") for r in group]),
        }
    return summary


if __name__ == "__main__":
    sys.exit(main())
