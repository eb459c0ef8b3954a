"""Relay multicast in the foreground until Ctrl-C, printing live counters.

One rule with the mcrctl-style options, or several with --rule:
  mcr relay --input-interface eth0 --input-group 239.1.1.1 --input-port 5000 \\
            --outputs 239.2.2.2:5000:eth1,10.0.0.9:6000:eth2:ttl=8
  mcr relay --rule "in=eth0 group=239.1.1.1:5000 out=239.2.2.2:5000:eth1" \\
            --rule "in=eth0 group=239.1.1.2:5000 source=10.1.1.1 out=239.3.3.3:5000:eth2:dscp=46"
Outputs are GROUP:PORT:IFACE[:ttl=N][:dscp=N][:keep-source]; a unicast address as GROUP
relays multicast to that host.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

from ..engine import Engine
from ..rules import Rule, RuleError, parse_outputs
from .stats import render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rule", action="append", default=[], metavar="SPEC",
                        help="in=IFACE group=GROUP:PORT [source=ADDR] out=OUTPUTS (repeatable)")
    parser.add_argument("--input-interface", metavar="IFACE")
    parser.add_argument("--input-group", metavar="GROUP")
    parser.add_argument("--input-port", type=int, metavar="PORT")
    parser.add_argument("--source", metavar="ADDR", help="relay only this source (an (S,G) rule)")
    parser.add_argument("--outputs", metavar="OUTPUTS", help="GROUP:PORT:IFACE[:ttl=N][:dscp=N][:keep-source][,...]")
    parser.add_argument("--netns", help="open the interfaces in this network namespace")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between counter lines")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="print counters as JSON lines")


def rules_from(args: argparse.Namespace) -> list[Rule]:
    rules = [Rule.parse(spec) for spec in args.rule]
    single = (args.input_interface, args.input_group, args.input_port, args.outputs)
    if any(v is not None for v in single):
        if None in single:
            raise RuleError("--input-interface, --input-group, --input-port and --outputs go together")
        rules.append(Rule(args.input_interface, args.input_group, args.input_port,
                          parse_outputs(args.outputs), args.source))
    if not rules:
        raise RuleError("no rule given: use --rule or --input-interface/--input-group/--input-port/--outputs")
    return rules


def show(stats: dict, previous: dict | None, as_json: bool) -> None:
    """The counters as `mcr stats` shows the daemon's (the same shape, mcr.stats)."""
    print(json.dumps(stats) if as_json else "\n".join(render(stats, previous)) + "\n", flush=True)


def run(args: argparse.Namespace) -> int:
    rules = rules_from(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Engine(args.netns) as engine:
        for rule in rules:
            engine.add_rule(rule)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        previous = None
        try:
            while not stop.wait(args.interval) and (deadline is None or time.monotonic() < deadline):
                stats = engine.stats()
                show(stats, previous, args.json)
                previous = stats
        except KeyboardInterrupt:
            pass
        if not args.json:
            print("totals:")
        show(engine.stats(), None, args.json)
    return 0
