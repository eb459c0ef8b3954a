"""MCR with any-port and group-range rules beside the exact ones: the relay of benchmarks.run's wildcard rows.

Each variant is the same process (an in-process Engine in the relay
namespace, counters as JSON lines like `mcr relay --json`), so the rows
differ only in the rule table:

- exact: one exact rule per input stream (239.1.1.k:5000 -> 239.2.2.k:6000),
  as `mcr relay` has them; nothing else.
- exact+wildcards: the same exact rules, plus WILDCARDS any-port rules (half
  of them (S,G,any), one (*,G,any) on each input group, shadowed by its exact
  rule) and the most range rules a table takes (RuleTable::kMaxRangeRules),
  the last of them 239.0.0.0/8, which covers every input group too. Exact
  traffic must not notice them (cpp/rule_table.h: they are looked at only
  after the exact probes missed).
- range-hit: no exact rules; the any-port rules on other groups and the same
  ranges, so every packet misses the exact and any-port probes and scans all
  the ranges before 239.0.0.0/8 (the shortest prefix, last) takes it, by a
  follow output: the price of a packet that only a range rule relays.

The any-port and range rules go through the Engine's command channel
(mcr.rules has no syntax for them yet). Run by benchmarks.run (run_wildcards):

    python -m benchmarks.wildcard_relay --netns NS --in IF --out IF --variant V --group 239.1.1.1:5000 ...
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from mcr.lab.relays import START_TIMEOUT, McrRelay, RelayError, output_groups

VARIANTS = ("exact", "exact+wildcards", "range-hit")
WILDCARDS = 256  # any-port rules
RANGES = 256  # range rules: RuleTable::kMaxRangeRules
OTHER_SOURCE = "10.99.0.1"  # the (S,G,any) and (S) range rules' source: no packet comes from it
FIRST_ID = 100_000  # rule ids for the channel's rules, clear of Engine.add_rule's


def wildcard_rules(variant: str, inputs: list[tuple[str, int]]) -> list[tuple[str, int, int, str]]:
    """(group, prefix length, port, source) of the variant's any-port and range rules."""
    if variant == "exact":
        return []
    rules = []
    if variant == "exact+wildcards":
        rules += [(group, 32, 0, "") for group, _ in inputs]  # shadowed by the exact rules
    base = int(ipaddress.IPv4Address("239.3.0.0"))
    while len(rules) < WILDCARDS:
        k = len(rules)
        rules.append((str(ipaddress.IPv4Address(base + k)), 32, 0, OTHER_SOURCE if k % 2 else ""))
    # Ranges that match nothing sent: 238.k.0.0/16 (port 5000 or any, some for one source) ...
    for k in range(RANGES - 1):
        rules.append((f"238.{k}.0.0", 16, 5000 if k % 3 == 0 else 0, OTHER_SOURCE if k % 4 == 1 else ""))
    rules.append(("239.0.0.0", 8, 0, ""))  # ... and the one that covers every input group, scanned last
    return rules


def serve(args: argparse.Namespace) -> int:
    from mcr import _engine
    from mcr.engine import Engine
    from mcr.rules import Output, Rule

    inputs = [(group, int(port)) for group, port in (g.rsplit(":", 1) for g in args.group)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Engine(args.netns) as engine:
        if args.variant != "range-hit":
            for (group, port), (out_group, out_port) in zip(inputs, output_groups(len(inputs))):
                engine.add_rule(Rule(args.input, group, port, (Output(out_group, out_port, args.output),)))
        in_index, out_index = engine._ensure_input(args.input), engine._ensure_egress(args.output)
        follow = ("0.0.0.0", 0, out_index, -1, -1, False, 0, True)
        wildcards = wildcard_rules(args.variant, inputs)
        for rule_id, (group, prefix_len, port, source) in enumerate(wildcards, start=FIRST_ID):
            engine._call(_engine.encode_add_rule, rule_id, in_index, group, port, source, [follow], 0, prefix_len)
        while not stop.wait(args.interval):
            stats = engine.stats()
            raw = engine._call(_engine.encode_get_stats)["stats"]
            stats["wildcard_rules"] = len(wildcards)
            stats["wildcard_packets"] = sum(r["packets"] for r in raw["rules"] if r["id"] >= FIRST_ID)
            print(json.dumps(stats), flush=True)
    return 0


class WildcardRelay(McrRelay):
    """McrRelay's interface (counters read from the JSON lines) around this module, for one variant."""

    variant = "exact"
    module = "benchmarks.wildcard_relay"  # what runs the relay (benchmarks/trace_relay.py reuses this class)

    def start(self) -> None:
        if len(self.out_ifs) != 1:
            raise RelayError("the wildcard rows have one output")
        # A follow output keeps the group and port: range-hit traffic arrives as it was sent.
        self.outputs = list(self.inputs) if self.variant == "range-hit" else output_groups(len(self.inputs))
        groups = [arg for group, port in self.inputs for arg in ("--group", f"{group}:{port}")]
        cmd = [*self._pin(), sys.executable, "-m", self.module, "--netns", self.ns,
               "--in", self.in_if, "--out", self.out_ifs[0], "--variant", self.variant, *groups]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=Path(__file__).resolve().parent.parent)
        self.last_stats = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_counters, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            error = self.process.stderr.read() if self.process.poll() is not None else "no counters yet"
            self.stop()
            raise RelayError(f"wildcard relay ({self.variant}) did not start: {error.strip()}")


def relay_for(variant: str) -> type[WildcardRelay]:
    return type(f"WildcardRelay-{variant}", (WildcardRelay,), {"variant": variant, "name": f"mcr-{variant}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.wildcard_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--in", dest="input", required=True, metavar="IFACE")
    parser.add_argument("--out", dest="output", required=True, metavar="IFACE")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--group", action="append", required=True, metavar="GROUP:PORT", help="an input stream")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between counter lines")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
