"""MCR with a large rule table: the relay of benchmarks.run's scale rows.

Each variant is the same process (an in-process Engine in the relay
namespace, counters as JSON lines like `mcr relay --json`), so the rows
differ only in the rule table and in what the control path does meanwhile:

- 1-rule: one exact rule per input stream (239.1.1.k:5000 -> 239.2.2.k:6000),
  as `mcr relay` has them; nothing else.
- 10000-rules: the same rules, plus filler exact rules up to RULES in all,
  each with OUTPUTS multicast outputs (100,000 outputs), on groups no packet
  is sent to: the table a large plant has.
- 10000-rules-syncing: the same table, and every half second a full
  10,000-rule SyncRules (about 1.7 MB, sent in parts) that keeps the
  measured rules and replaces every filler rule (new ids): the most work a
  sync can do. The engine applies it in bounded steps per loop pass
  (cpp/rule_sync.cpp), so the unchanged flows should lose nothing.

In every variant the whole table's counters are read once a second, as the
daemon's health pass reads every worker's, by the Python thread, which like
the daemon's supervisor runs off the worker's core (on the generator's); the
engine's thread keeps the relay's core.

Run by benchmarks.run (run_scale):

    python -m benchmarks.scale_relay --netns NS --in IF --out IF --variant V --group 239.1.1.1:5000 ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mcr.lab.relays import START_TIMEOUT, McrRelay, RelayError, output_groups

VARIANTS = ("1-rule", "10000-rules", "10000-rules-syncing")
RULES, OUTPUTS = 10_000, 10
FIRST_ID = (100_000, 200_000)  # the two filler sets' ids, clear of Engine.add_rule's


def filler(count: int, first_id: int, in_index: int, out_index: int) -> list[tuple]:
    """`count` exact rules on 239.5.x.y (never sent to), OUTPUTS multicast outputs each."""
    return [(first_id + i, in_index, f"239.5.{i >> 8}.{i & 255}", 5000, "",
             [(f"239.6.{i >> 8}.{i & 255}", 6000 + j, out_index, -1, -1, False, 0) for j in range(OUTPUTS)], 0)
            for i in range(count)]


def counters_of(engine, raw: dict) -> dict:
    """Engine.stats() made from a GetStats reply already in hand (the measured rules' counters)."""
    from mcr.stats import from_engine, snapshot

    labels = {i: [str(o) for o in rule.outputs] for i, rule in engine._rules.items()}
    return snapshot(engine._rules, {i: {"state": "active"} for i in engine._rules}, from_engine(raw, labels),
                    engine._ifnames)


def serve(args: argparse.Namespace) -> int:
    from mcr import _engine
    from mcr.engine import Engine
    from mcr.rules import Output, Rule

    inputs = [(group, int(port)) for group, port in (g.rsplit(":", 1) for g in args.group)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Engine(args.netns) as engine:
        measured = []
        for (group, port), (out_group, out_port) in zip(inputs, output_groups(len(inputs))):
            rule = Rule(args.input, group, port, (Output(out_group, out_port, args.output),))
            rule_id = engine.add_rule(rule)
            measured.append(rule.engine_tuple(rule_id, engine._ensure_input(args.input), engine._ensure_egress))
        in_index, out_index = engine._ensure_input(args.input), engine._ensure_egress(args.output)
        sets = [measured + filler(RULES - len(measured), first, in_index, out_index) for first in FIRST_ID]
        syncs, sync_ms = 0, []
        if args.variant != "1-rule":
            engine._call(_engine.encode_sync_rules, sets[0])
        # The engine's thread keeps the relay's core; this (Python) thread, which
        # plays the supervisor (syncs, and decoding 10,000 rules' counters twice a
        # second), goes where the daemon's supervisor would be: off the worker's core.
        os.sched_setaffinity(0, {args.control_core})
        next_line = time.monotonic()
        while not stop.wait(args.interval):
            if args.variant == "10000-rules-syncing":
                syncs += 1
                started = time.monotonic()
                engine._call(_engine.encode_sync_rules, sets[syncs % 2])
                sync_ms.append((time.monotonic() - started) * 1000)
            if time.monotonic() < next_line:
                continue
            next_line += args.stats_interval
            raw = engine._call(_engine.encode_get_stats)["stats"]  # one snapshot: the counters and the table size
            stats = counters_of(engine, raw)
            stats["scale"] = {"rules": len(raw["rules"]),
                              "syncs": syncs, "sync_ms_max": round(max(sync_ms, default=0.0), 1)}
            print(json.dumps(stats), flush=True)
    return 0


class ScaleRelay(McrRelay):
    """McrRelay's interface (counters read from the JSON lines) around this module, for one variant."""

    variant = "1-rule"

    def start(self) -> None:
        if len(self.out_ifs) != 1:
            raise RelayError("the scale rows have one output")
        self.outputs = output_groups(len(self.inputs))
        groups = [arg for group, port in self.inputs for arg in ("--group", f"{group}:{port}")]
        cmd = [*self._pin(), sys.executable, "-m", "benchmarks.scale_relay", "--netns", self.ns,
               "--in", self.in_if, "--out", self.out_ifs[0], "--variant", self.variant, *groups]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=Path(__file__).resolve().parent.parent)
        self.last_stats = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_counters, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            error = self.process.stderr.read() if self.process.poll() is not None else "no counters yet"
            self.stop()
            raise RelayError(f"scale relay ({self.variant}) did not start: {error.strip()}")


def relay_for(variant: str) -> type[ScaleRelay]:
    return type(f"ScaleRelay-{variant}", (ScaleRelay,), {"variant": variant, "name": f"mcr-{variant}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.scale_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--in", dest="input", required=True, metavar="IFACE")
    parser.add_argument("--out", dest="output", required=True, metavar="IFACE")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--group", action="append", required=True, metavar="GROUP:PORT", help="an input stream")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between syncs")
    parser.add_argument("--stats-interval", type=float, default=1.0,
                        help="seconds between counter lines (the daemon's health pass reads every worker's counters "
                             "once a second)")
    parser.add_argument("--control-core", type=int, default=0,
                        help="the core of the Python thread that syncs and reads counters (the engine keeps its own)")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
