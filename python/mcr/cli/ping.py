"""Check that the daemon answers; prints its version and the round trip time.

  mcr ping [--socket PATH] [--json]
"""

from __future__ import annotations

import argparse
import time

from .. import __version__
from .client import add_client_options, connect, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        start = time.perf_counter()
        version = client.ping()
        milliseconds = (time.perf_counter() - start) * 1000
    if args.json:
        print_json({"version": version, "client_version": __version__, "socket": args.socket,
                    "rtt_ms": round(milliseconds, 3)})
    else:
        print(f"mcr daemon {version} answers on {args.socket} in {milliseconds:.2f} ms (client {__version__})")
    return 0
