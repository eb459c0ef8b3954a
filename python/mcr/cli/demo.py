"""Show a relay at work: builds source -> relay -> sinks in network namespaces,
relays numbered multicast for a few seconds with live counters, and ends with
"sent N / relayed N / received N". Everything it creates is removed again.
"""

from __future__ import annotations

import argparse
import threading
import time

from ..engine import Engine
from ..lab import FrameSender, UdpSink, chain, numbered_payloads, payload_intact, udp_frame
from ..rules import Output, Rule
from .counters import drops_line, rules_table

GROUP, PORT = "239.1.1.1", 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--packets", type=int, default=20000, help="packets to send (default 20000)")
    parser.add_argument("--rate", type=float, default=5000, help="packets per second (default 5000)")
    parser.add_argument("--size", type=int, default=512, help="payload bytes (default 512)")
    parser.add_argument("--sinks", type=int, default=2, help="sink namespaces to fan out to (default 2)")


def receive_all(sink: UdpSink, count: int, timeout: float, into: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(sink.receive(count, timeout, idle=2.0)), daemon=True)
    thread.start()
    return thread


def run(args: argparse.Namespace) -> int:
    duration = args.packets / args.rate
    print(f"building lab: source -> relay -> {args.sinks} sinks (network namespaces, veth)")
    with chain(n_sinks=args.sinks) as lab, Engine(lab.relay_ns) as engine:
        outputs = tuple(Output(f"239.2.2.{i + 1}", 6000 + i, lab.relay_out[i]) for i in range(args.sinks))
        rule = Rule(lab.relay_in, GROUP, PORT, outputs)
        engine.add_rule(rule)
        print(f"relay namespace {lab.relay_ns}: {rule}")
        received: list[list] = [[] for _ in outputs]
        sinks = [UdpSink(ns, o.destination, o.port, ifname) for ns, o, ifname in zip(lab.sink_ns, outputs, lab.sink_if)]
        receivers = [receive_all(s, args.packets, duration + 10, r) for s, r in zip(sinks, received)]
        frames = [udp_frame(lab.source_addr, GROUP, 40000, PORT, p) for p in numbered_payloads(args.packets, args.size)]
        sent = [0]
        with FrameSender(lab.source_ns, lab.source_if) as sender:
            tx = threading.Thread(target=lambda: sent.__setitem__(0, sender.send(frames, args.rate, duration + 10)))
            tx.start()
            previous, last = None, time.monotonic()
            while tx.is_alive():
                tx.join(1.0)
                stats, now = engine.stats(), time.monotonic()
                print("\n".join(rules_table(stats, previous, now - last)))
                previous, last = stats, now
        for thread in receivers:
            thread.join()
        for sink in sinks:
            sink.close()
        stats = engine.stats()
    relayed = next(iter(stats["rules"].values()))["packets"]
    intact = [sum(payload_intact(r.payload) for r in got) for got in received]
    print(drops_line(stats))
    print(f"sent {sent[0]} / relayed {relayed} / received {' + '.join(map(str, intact))} (intact, per sink)")
    return 0 if all(n == sent[0] for n in intact) and relayed == sent[0] else 1
