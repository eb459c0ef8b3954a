"""The `mcr` command line. Each verb lives in its own module with
`add_arguments(parser)` and `run(args) -> int`; its docstring is its help."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from .client import add_commands
from . import gen, sink  # the traffic tools, registered after VERBS
from . import (config, daemon, demo, events, igmp, interfaces, log_level, mroute, msdp, pim, ping, relay, rules,
               stats, trace, version, workers)

VERBS = {"daemon": daemon, "relay": relay, "demo": demo,
         "rules": rules, "stats": stats, "workers": workers, "interfaces": interfaces, "mroute": mroute,
         "events": events, "trace": trace, "igmp": igmp, "pim": pim, "msdp": msdp,
         "log-level": log_level, "config": config, "ping": ping,
         "version": version,
         # the original mcrctl verbs, the same as `mcr rules add/remove/list`
         "add": rules.ADD, "remove": rules.REMOVE, "list": rules.LIST}

VERBS.update({"gen": gen, "sink": sink})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcr", description="Userspace multicast relay for Linux.")
    parser.add_argument("--version", action="version", version=f"mcr {__version__}")
    add_commands(parser, "verb", VERBS, "run")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, RuntimeError, OSError) as error:
        print(f"mcr {args.verb}: {error}", file=sys.stderr)
        return 1
