"""Send numbered, timestamped multicast test traffic (the other end is `mcr sink`).

Each payload starts with magic "MCRT", a stream id, a sequence number and the
send time (CLOCK_MONOTONIC ns), so `mcr sink` can count loss, duplicates and
reordering and measure one-way latency on the same host.
  mcr gen --interface eth0 --group 239.1.1.1:5000 --rate 100000 --duration 10
  mcr gen --interface eth0 --group 239.1.1.1:5000 --streams 8 --size 1400 --count 1000000 --raw
  mcr gen --netns lab-src --interface veth0 --group 239.1.1.1:5000 --vary port --streams 4 --rate 1e5 --count 1e5
--streams N sends N concurrent streams to N consecutive groups (or ports with
--vary port), round robin. --raw prebuilds Ethernet frames and sends them on a
packet socket, past the IP stack (about twice the rate of a UDP socket).
"""

from __future__ import annotations

import argparse
import json
import threading



def target(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    if not address or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS:PORT, got '{text}'")
    return address, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interface", required=True, metavar="IFACE", help="send out of this interface")
    parser.add_argument("--group", required=True, type=target, metavar="GROUP:PORT", help="first destination")
    parser.add_argument("--streams", type=int, default=1, help="concurrent streams (default 1)")
    parser.add_argument("--vary", choices=("group", "port"), default="group",
                        help="streams differ by group (default) or by port")
    parser.add_argument("--rate", type=float, default=0, help="packets per second over all streams (0: max)")
    parser.add_argument("--size", type=int, default=64, help="UDP payload bytes, at least 24 (default 64)")
    parser.add_argument("--count", type=float, default=0, help="packets to send (default: until --duration)")
    parser.add_argument("--duration", type=float, help="seconds to send (default 10 without --count)")
    parser.add_argument("--raw", action="store_true", help="send prebuilt frames on a packet socket")
    parser.add_argument("--source", metavar="ADDR", help="source address with --raw (default: the interface's)")
    parser.add_argument("--ttl", type=int, default=64, help="IP TTL (default 64)")
    parser.add_argument("--netns", help="send from this network namespace")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from ..lab.gen import Generator, streams  # here, so other verbs do not load the lab (and scapy)

    duration = args.duration if args.duration is not None or args.count else 10.0
    targets = streams(args.group[0], args.group[1], args.streams, args.vary)
    gen = Generator(args.netns, args.interface, targets, size=args.size, rate=args.rate, count=int(args.count),
                    duration=duration, raw=args.raw, source=args.source, ttl=args.ttl)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(gen.run()), daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)  # short joins keep Ctrl-C working
    except KeyboardInterrupt:
        gen.stop()
        worker.join()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"sent {result['sent']} packets in {result['elapsed']:.3f} s ({result['rate']:.0f} pps), "
              f"{len(targets)} stream(s), {args.size} B payload"
              + (f", {result['retries']} retries (device queue full)" if result["retries"] else ""))
    if result.get("error"):
        print(f"stopped early: {result['error']}")
        return 1
    return 0
