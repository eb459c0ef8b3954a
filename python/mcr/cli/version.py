"""Print this client's version and, when one answers, the daemon's.

  mcr version [--socket PATH] [--json]
"""

from __future__ import annotations

import argparse

from .. import __version__
from ..api import ApiError
from .client import add_client_options, connect, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)


def run(args: argparse.Namespace) -> int:
    try:
        with connect(args) as client:
            daemon = client.ping()
    except ApiError as error:
        daemon = None
        reason = error.message
    if args.json:
        print_json({"client": __version__, "daemon": daemon})
    else:
        print(f"client {__version__}")
        print(f"daemon {daemon}" if daemon else f"daemon: not reachable ({reason})")
    return 0
