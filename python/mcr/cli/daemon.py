"""Run the MCR daemon: the supervisor and its unprivileged workers.

  mcr daemon --config /etc/mcr/mcr.json
  mcr daemon --workers 2 --pin-cores 0,1 --socket /run/mcr/control.sock
  mcr daemon --config /etc/mcr/mcr.json --metrics 127.0.0.1:9464   # Prometheus: GET /metrics
SIGTERM/SIGINT stop it cleanly; SIGHUP reloads the config file and applies
only the difference. Rules changed at run time are kept in --state and come
back after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from .. import logs
from ..config import Config
from ..supervisor import Supervisor
from ..supervisor.commands import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON config file (see README)")
    parser.add_argument("--socket", default="/run/mcr/control.sock", help="control socket path")
    parser.add_argument("--state", default="/var/lib/mcr/state.json", metavar="FILE",
                        help="where run-time rule changes are kept ('' to keep none)")
    parser.add_argument("--workers", type=int, help="worker processes (default: config, else one per core)")
    parser.add_argument("--pin-cores", metavar="LIST", help="comma-separated cores to pin workers to")
    parser.add_argument("--user", help="unprivileged user for workers (default: config, else nobody)")
    parser.add_argument("--log-level", choices=logs.LEVELS, help="default log level")
    parser.add_argument("--metrics", metavar="ADDR:PORT",
                        help="serve Prometheus metrics at http://ADDR:PORT/metrics (default: config, else off)")


def config_from(args: argparse.Namespace) -> Config:
    config = Config.load(args.config) if args.config else Config()
    overrides = {}
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.pin_cores:
        overrides["pin_cores"] = [int(c) for c in args.pin_cores.split(",")]
    if args.user:
        overrides["user"] = args.user
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.metrics:
        overrides["metrics"] = args.metrics
    return Config.from_dict({**config.to_dict(), **overrides}) if overrides else config


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    logs.setup(config.log_level)
    supervisor = Supervisor(config, config_path=args.config, state_path=args.state or None, socket_path=args.socket)
    if sys.version_info < (3, 12):
        # Before 3.12 asyncio waits for each worker process on a thread of its
        # own (ThreadedChildWatcher); a pidfd keeps that on the one loop too.
        asyncio.get_event_loop_policy().set_child_watcher(asyncio.PidfdChildWatcher())
    try:
        asyncio.run(supervisor.run())
    except CommandError as error:  # e.g. a configured rule names a missing interface
        raise ValueError(error.message) from None
    return 0
