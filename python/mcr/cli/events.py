"""Follow what changes in the daemon: links, addresses, rules and their state, workers.

  mcr events [--json] [--count N] [--timeout S]

One line per event as it happens, until Ctrl-C (or N events, or S seconds
without one). A reader that falls behind is told how many events it missed.
"""

from __future__ import annotations

import argparse
import json
import time

from .client import add_client_options, connect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds without an event")


def line(event: dict) -> str:
    details = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("time", "event"))
    return f"{time.strftime('%H:%M:%S', time.localtime(event['time']))} {event['event']:<7} {details}"


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        for event in client.events(count=args.count, timeout=args.timeout):
            print(json.dumps(event) if args.json else line(event), flush=True)
    return 0
