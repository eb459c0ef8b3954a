"""Receive `mcr gen` traffic and report, per stream, what arrived.

Joins the groups on the interface, then counts received, lost (gaps below
the highest sequence number), duplicated and reordered packets and the
one-way latency (p50/p99/p99.9; the generator's clock, so same host only).
  mcr sink --interface eth1 --group 239.2.2.2:5000 --duration 30
  mcr sink --netns lab-sink --interface veth1 --group 239.1.1.1:5000 --streams 8 --json
Stops after --duration, or --idle seconds after the last packet, or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json

from .gen import target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interface", required=True, metavar="IFACE", help="join the groups on this interface")
    parser.add_argument("--group", required=True, type=target, action="append", metavar="GROUP:PORT",
                        help="a destination to receive (repeatable)")
    parser.add_argument("--streams", type=int, default=1, help="with one --group: N consecutive groups/ports")
    parser.add_argument("--vary", choices=("group", "port"), default="group")
    parser.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds (default 60)")
    parser.add_argument("--idle", type=float, default=2.0, help="stop this long after the last packet (default 2)")
    parser.add_argument("--netns", help="receive in this network namespace")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def table(report: dict) -> list[str]:
    def row(name: str, s: dict) -> str:
        lat = s["latency_ns"]
        return (f"{name:>7} {s['unique']:>10} {s['lost']:>8} {s['duplicates']:>6} {s['reordered']:>6} "
                f"{lat['p50'] / 1e3:>9.1f} {lat['p99'] / 1e3:>9.1f} {lat['p999'] / 1e3:>9.1f}")
    header = (f"{'stream':>7} {'received':>10} {'lost':>8} {'dup':>6} {'reord':>6} "
              f"{'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9}")
    lines = [header]
    lines += [row(str(s["id"]), s) for s in report["streams"]]
    if len(report["streams"]) > 1:
        lines.append(row("all", report))
    if report["invalid"] or report["truncated"]:
        lines.append(f"ignored: {report['invalid']} not probes, {report['truncated']} truncated")
    return lines


def run(args: argparse.Namespace) -> int:
    from ..lab.gen import Sink, streams  # here, so other verbs do not load the lab (and scapy)

    if args.streams > 1:
        if len(args.group) > 1:
            raise ValueError("--streams goes with a single --group")
        targets = streams(*args.group[0], args.streams, args.vary)
    else:
        targets = args.group
    with Sink(args.netns, args.interface, targets, duration=args.duration, idle=args.idle) as sink:
        try:
            report = sink.result()
        except KeyboardInterrupt:
            report = sink.stop()
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(table(report)) if report["streams"] else "no traffic received")
    return 0
