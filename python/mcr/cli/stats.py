"""Show the daemon's counters: packets, bytes and rates per rule and output; drops.

Per rule and per output: packets, bytes, pps and bps; drops by reason; per
input interface what was received and what the kernel dropped before the
relay could read it.

  mcr stats                 one snapshot (rates over one second)
  mcr stats --watch [N]     redraw every N seconds (default 1) until Ctrl-C
  mcr stats --json          the daemon's counters as JSON; with --watch one line per interval
Rates are taken between two samples, using the daemon's sample times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..api import Client
from ..config import rule_from_dict
from ..rules import Rule
from .client import add_client_options, connect, print_json, si, table

CLEAR = "\033[H\033[2J"  # cursor home, clear screen: the --watch redraw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", nargs="?", type=float, const=1.0, metavar="SECONDS",
                        help="refresh in place every SECONDS (default 1) until Ctrl-C")
    add_client_options(parser)


def _rate(now: dict, before: dict | None, key: str, seconds: float) -> float | None:
    if before is None or seconds <= 0:
        return None
    return max(now[key] - before.get(key, 0), 0) / seconds


def _rates(now: dict, before: dict | None, seconds: float) -> list:
    pps, bps = _rate(now, before, "packets", seconds), _rate(now, before, "bytes", seconds)
    return [now["packets"], now["bytes"], None if pps is None else si(pps), None if bps is None else si(bps * 8)]


def _input_of(rule: str | dict) -> str:
    """The input side of a rule (its outputs get rows of their own)."""
    parsed = Rule.parse(rule) if isinstance(rule, str) else rule_from_dict(rule)
    return f"{parsed.input_interface} {parsed.group}:{parsed.port}" + (f" from {parsed.source}" if parsed.source else "")


def rules_rows(now: dict, before: dict | None) -> list[list]:
    """A row per rule, then one per output: packets, bytes, pps, bps (and errors)."""
    seconds = now["time"] - before["time"] if before else 0.0
    rows = []
    for rule_id, rule in now["rules"].items():
        was = (before or {}).get("rules", {}).get(rule_id)
        rows.append([rule_id, rule.get("name"), _input_of(rule["rule"]), *_rates(rule, was, seconds), ""])
        for output, counters in rule["outputs"].items():
            was_out = None if was is None else was["outputs"].get(output)
            rows.append(["", "", f"-> {output}", *_rates(counters, was_out, seconds), counters["errors"]])
    return rows


def render(now: dict, before: dict | None, inputs: bool = True) -> list[str]:
    """Rules and outputs (with rates since `before`), drops, and per-input counters."""
    lines = table(["ID", "NAME", "RULE / OUTPUT", "PACKETS", "BYTES", "PPS", "BPS", "ERRORS"],
                  rules_rows(now, before), right=[0, 3, 4, 5, 6, 7])
    drops = {reason: n for reason, n in now.get("drops", {}).items() if n}
    lines += ["", "drops: " + (", ".join(f"{reason}={n}" for reason, n in drops.items()) if drops else "none")]
    if inputs and now.get("inputs"):
        counted = now["inputs"]
        columns = list(dict.fromkeys(key for counters in counted.values() for key in counters))
        rows = [[name, *(counters.get(c) for c in columns)] for name, counters in counted.items()]
        lines += [""] + table(["INPUT", *(c.upper() for c in columns)], rows, right=range(1, len(columns) + 1))
    return lines


def _watch(client: Client, interval: float, as_json: bool) -> None:
    before = None
    while True:
        now = client.stats()
        if as_json:
            print(json.dumps(now), flush=True)
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(now["time"]))
            sys.stdout.write(CLEAR + f"mcr stats  {stamp}  every {interval:g} s (Ctrl-C to stop)\n\n"
                             + "\n".join(render(now, before)) + "\n")
            sys.stdout.flush()
        before = now
        time.sleep(interval)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if args.watch is not None:
            try:
                _watch(client, max(args.watch, 0.1), args.json)
            except KeyboardInterrupt:
                pass  # Ctrl-C is how --watch ends
            return 0
        if args.json:
            print_json(client.stats())
            return 0
        before = client.stats()
        time.sleep(1.0)
        print("\n".join(render(client.stats(), before)))
    return 0
