"""MCR with packet tracing off and on: the relay of benchmarks.run's tracing rows.

The same build and the same process (an in-process Engine in the relay
namespace, counters as JSON lines like `mcr relay --json`) for every
variant, so the rows differ only in whether a trace runs:

- off: no trace, as always unless someone runs `mcr trace`. The data path
  pays one predicted branch per packet for tracing being compiled in.
- other-rule: a trace runs on a rule no packet matches, so every packet
  takes the traced branch and is looked at, but none is recorded.
- sample-1: every packet of the measured rule is traced (as `mcr trace
  RULE --sample 1` would), re-armed whenever its count runs out and drained
  every 50 ms as the supervisor does; a ring of 256 records fills within a
  millisecond at these rates, so most packets are counted as missed rather
  than recorded. For information: a trace is meant for a few packets.

Run by benchmarks.run (run_tracing):

    python -m benchmarks.trace_relay --netns NS --in IF --out IF --variant V --group 239.1.1.1:5000 ...
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from mcr.lab.relays import output_groups

from .wildcard_relay import WildcardRelay

VARIANTS = ("off", "other-rule", "sample-1")
DRAIN_INTERVAL = 0.05  # seconds between TakeTrace calls, as the supervisor polls
TRACE_COUNT, TRACE_TIMEOUT = 10_000, 3600.0  # the most `mcr trace` asks for
OTHER_GROUP = "239.99.0.1"  # the other-rule variant's traced rule: no packet goes there


def serve(args: argparse.Namespace) -> int:
    from mcr.engine import Engine
    from mcr.rules import Output, Rule

    inputs = [(group, int(port)) for group, port in (g.rsplit(":", 1) for g in args.group)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Engine(args.netns) as engine:
        ids = [engine.add_rule(Rule(args.input, group, port, (Output(out_group, out_port, args.output),)))
               for (group, port), (out_group, out_port) in zip(inputs, output_groups(len(inputs)))]
        traced = None
        if args.variant == "other-rule":
            traced = engine.add_rule(Rule(args.input, OTHER_GROUP, 5000, (Output(OTHER_GROUP, 6000, args.output),)))
        elif args.variant == "sample-1":
            traced = ids[0]
        recorded = missed = 0
        next_line = time.monotonic() + args.interval
        while not stop.wait(DRAIN_INTERVAL if traced is not None else args.interval):
            if traced is not None:
                taken = engine.take_trace()
                recorded += len(taken["records"])
                missed += taken["missed"]
                if taken["remaining"] == 0:
                    engine.trace(traced, TRACE_COUNT, 1, TRACE_TIMEOUT)
            if time.monotonic() >= next_line:
                next_line += args.interval
                stats = engine.stats()
                stats["trace"] = {"variant": args.variant, "recorded": recorded, "missed": missed}
                print(json.dumps(stats), flush=True)
    return 0


class TraceRelay(WildcardRelay):
    module = "benchmarks.trace_relay"


def relay_for(variant: str) -> type[TraceRelay]:
    return type(f"TraceRelay-{variant}", (TraceRelay,), {"variant": variant, "name": f"mcr-trace-{variant}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.trace_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--in", dest="input", required=True, metavar="IFACE")
    parser.add_argument("--out", dest="output", required=True, metavar="IFACE")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--group", action="append", required=True, metavar="GROUP:PORT", help="an input stream")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between counter lines")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
