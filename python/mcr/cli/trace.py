"""Trace a rule's packets: decoded headers, and what became of each at every output.

  mcr trace RULE [--count N] [--sample K] [--timeout S] [--json]

RULE is a rule's id or name (`mcr rules list`). Prints one line per traced
packet: time, input, source -> destination, TTL, TOS, IP length, then each
output with its outcome (sent_ring, sent_socket, sent_register, or why it
was skipped: skipped_ttl, skipped_mtu, skipped_ring_full, skipped_no_slot,
skipped_error). Records every K-th packet (default 1), N of them (default
10), for at most S seconds (default 10); then a summary line. Off unless
asked for: while no trace runs, the data path does not record anything.
"""

from __future__ import annotations

import argparse
import json
import time

from .client import add_client_options, connect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    parser.add_argument("rule", help="the rule's id or name")
    parser.add_argument("--count", type=int, default=10, help="packets to record (default 10)")
    parser.add_argument("--sample", type=int, default=1, help="record every K-th packet (default 1: each)")
    parser.add_argument("--timeout", type=float, default=10.0, help="stop after this many seconds (default 10)")


def packet_line(event: dict) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event["time"])) + f".{int(event['time'] * 1e6) % 1000000:06d}"
    vlan = f" vlan {event['vlan']}" if "vlan" in event else ""
    outputs = ", ".join(f"{o['output']} {o['outcome']}" for o in event["outputs"]) or "no outputs"
    if event.get("outputs_not_shown"):
        outputs += f", {event['outputs_not_shown']} more"
    return (f"{stamp} {event['input']}{vlan} {event['source']}:{event['src_port']} -> "
            f"{event['destination']}:{event['dst_port']} ttl {event['ttl']} tos 0x{event['tos']:02x} "
            f"len {event['ip_len']}: {outputs}")


def end_line(event: dict) -> str:
    ended = "count reached" if event["reason"] == "count" else "timed out"
    missed = f", {event['missed']} missed (records not taken in time)" if event["missed"] else ""
    return f"trace of rule {event['rule']}: {event['records']} packet(s), {ended}{missed}"


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:  # a refusal (an unknown rule, say) is an ApiError: main() prints it
        for event in client.trace(args.rule, args.count, args.sample, args.timeout):
            if args.json:
                print(json.dumps(event), flush=True)
            else:
                print(packet_line(event) if event["event"] == "packet" else end_line(event), flush=True)
    return 0
