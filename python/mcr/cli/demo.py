"""Show a relay at work: builds source -> relay -> sinks in network namespaces,
relays numbered multicast for a few seconds with live counters, and ends with
"sent N / relayed N / received N". Everything it creates is removed again.

The source sends from an ordinary UDP socket, as applications do (on veth
its frames reach the relay with a partial checksum, see cpp/egress.cpp), and
the sinks receive with ordinary sockets whose kernels verify every UDP
checksum: the demo shows what users will see.
"""

from __future__ import annotations

import argparse
import threading

from ..engine import Engine
from ..rules import Output, Rule
from .stats import render

GROUP, PORT = "239.1.1.1", 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--packets", type=int, default=20000, help="packets to send (default 20000)")
    parser.add_argument("--rate", type=float, default=5000, help="packets per second (default 5000)")
    parser.add_argument("--size", type=int, default=512, help="payload bytes, at least 24 (default 512)")
    parser.add_argument("--sinks", type=int, default=2, help="sink namespaces to fan out to (default 2)")


def run(args: argparse.Namespace) -> int:
    from ..lab import chain, udp_counters  # here, so other verbs do not load the lab (and scapy)
    from ..lab.gen import Generator, Sink

    duration = args.packets / args.rate
    print(f"building lab: source -> relay -> {args.sinks} sinks (network namespaces, veth)")
    with chain(n_sinks=args.sinks) as lab, Engine(lab.relay_ns) as engine:
        outputs = tuple(Output(f"239.2.2.{i + 1}", 6000 + i, lab.relay_out[i]) for i in range(args.sinks))
        rule = Rule(lab.relay_in, GROUP, PORT, outputs)
        engine.add_rule(rule)
        print(f"relay namespace {lab.relay_ns}: {rule}")
        sinks = [Sink(ns, ifname, [(o.destination, o.port)], duration=duration + 10, idle=2.0,
                      max_packets=args.packets) for ns, o, ifname in zip(lab.sink_ns, outputs, lab.sink_if)]
        generator = Generator(lab.source_ns, lab.source_if, [(GROUP, PORT)], size=args.size, rate=args.rate,
                              count=args.packets, ttl=8)
        checksum_errors = {ns: udp_counters(ns)["InCsumErrors"] for ns in lab.sink_ns}
        sent: dict = {}
        sender = threading.Thread(target=lambda: sent.update(generator.run()))
        sender.start()
        previous = None
        while sender.is_alive():
            sender.join(1.0)
            stats = engine.stats()
            print("\n".join(render(stats, previous, inputs=False)) + "\n", flush=True)
            previous = stats
        reports = [sink.result(timeout=duration + 15) for sink in sinks]
        stats = engine.stats()
        for ns in lab.sink_ns:
            checksum_errors[ns] = udp_counters(ns)["InCsumErrors"] - checksum_errors[ns]
    relayed = next(iter(stats["rules"].values()))["packets"]
    print("\n".join(render(stats, None)))
    for i, report in enumerate(reports):
        latency = report["streams"][0]["latency_ns"] if report["streams"] else {}
        print(f"sink {i}: {report['unique']} unique, {report['lost']} lost, {report['duplicates']} duplicates, "
              f"latency p50 {latency.get('p50', 0) / 1000:.0f} us, p99 {latency.get('p99', 0) / 1000:.0f} us")
    received = " + ".join(str(r["unique"]) for r in reports)
    print(f"receivers' UDP checksum errors (InCsumErrors): {sum(checksum_errors.values())}")
    print(f"sent {sent.get('sent', 0)} from a UDP socket / relayed {relayed} / received {received} (per sink)")
    ok = all(r["unique"] == sent.get("sent") for r in reports) and relayed == sent.get("sent")
    return 0 if ok and not any(checksum_errors.values()) else 1
