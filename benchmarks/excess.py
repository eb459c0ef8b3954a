"""Where the excess goes under overload: refused at the relay's input, or dropped after ingress work.

    sudo .venv/bin/python -m benchmarks.excess              # placements B and C, MCR and kernel, 64 B
    sudo .venv/bin/python -m benchmarks.excess --repeats 5

For each placement and relay: the no-drop rate (as in benchmarks.run), then
overload trials at 3x that rate. Each row counts the generator's batches
the relay host's full input queue cut short (ENOBUFS: the refused packets
are sent again later, and the relay core spent nothing on them) and splits
the packets that got onto the wire but never reached the sink: MCR's packet
ring drops (the kernel had already done its whole ingress path on the relay
core for each of them) and everything else. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mcr.lab import chain, streams
from mcr.lab.relays import RelayError

from .measure import trial
from .run import GEN_CORE, PROFILES, RELAY_CORE, Bench, prepare, set_placement

STATS_INTERVAL = 0.6  # mcr relay prints its counters every 0.5 s


def ring_drops(relay) -> int | None:
    """The packet ring drops of every MCR input so far (PACKET_STATISTICS), from its last counter line."""
    stats = getattr(relay, "last_stats", None)
    return sum(i["kernel_drops"] for i in stats["inputs"].values()) if stats else None


def overload_rows(bench: Bench, setup, placement: str, system: str, repeats: int) -> list[str]:
    relay = bench.relay(setup, system, streams())
    try:
        relay.start()
    except RelayError as error:  # e.g. a kernel without multicast routing
        return [f"| {placement} | {system} | not measured: {error} | | | | | | |"]
    try:
        return measure_overload(bench, setup, relay, placement, system, repeats)
    finally:
        relay.stop()


def measure_overload(bench: Bench, setup, relay, placement: str, system: str, repeats: int) -> list[str]:
    best, _ = bench.search(setup, relay, 64)
    if best is None:
        return [f"| {placement} | {system} | no rate passed | | | | | | |"]
    rows = []
    for _ in range(repeats):
        time.sleep(STATS_INTERVAL)
        ring = ring_drops(relay)
        t = trial(setup, relay, 3 * best.offered, 64, bench.profile.trial, RELAY_CORE)
        time.sleep(STATS_INTERVAL)
        ring = None if ring is None else ring_drops(relay) - ring
        lost = t.sent - t.delivered
        after = "—" if ring is None else f"{ring:,}"
        rows.append(f"| {placement} | {system} | {best.offered:,.0f} | {3 * best.offered:,.0f} | {t.offered:,.0f} | "
                    f"{t.delivered_pps:,.0f} ({t.delivered_pps / best.offered:.0%}) | {t.refused:,} | {after} | "
                    f"{lost - (ring or 0):,} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.excess", description=__doc__.split("\n\n")[0])
    parser.add_argument("--placements", default="B,C", help="comma-separated (default B,C)")
    parser.add_argument("--repeats", type=int, default=3, help="overload trials per relay (default 3)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="trial length and search steps (default quick)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks need root (network namespaces, raw sockets)", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {GEN_CORE})
    bench = Bench(PROFILES[args.profile], "excess")
    print("| placement | relay | no-drop pps | 3x | offered pps | delivered pps (of no-drop) | batches refused (ENOBUFS) |"
          " MCR packet ring drops | other losses |")
    print("|---|---|---|---|---|---|---|---|---|")
    with chain(n_sinks=1, prefix="mcrx") as setup:
        prepare(setup)
        for placement in args.placements.split(","):
            set_placement(setup.relay_ns, setup.relay_in, placement)
            for system in ("mcr", "kernel"):
                for row in overload_rows(bench, setup, placement, system, args.repeats):
                    print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
