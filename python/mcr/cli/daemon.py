"""Run the MCR daemon: the supervisor and its unprivileged workers.

  mcr daemon --config /etc/mcr/mcr.json
  mcr daemon --workers 2 --pin-cores 0,1 --socket /run/mcr/control.sock
  mcr daemon --netns blue --config /etc/mcr/blue.json
  mcr daemon --config /etc/mcr/mcr.json --metrics 127.0.0.1:9464   # Prometheus: GET /metrics
SIGTERM/SIGINT stop it cleanly; SIGHUP reloads the config file and applies
only the difference. Rules changed at run time are kept in --state and come
back after a restart.

With --netns NS the daemon runs in network namespace NS (one daemon per
namespace, as mcr@NS.service runs them) and its defaults become per
instance: control socket /run/mcr/NS/control.sock, state
/var/lib/mcr/NS/state.json. Under systemd (Type=notify) it reports
READY=1 once the control socket serves, RELOADING=1 on SIGHUP, STOPPING=1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from .. import logs
from ..config import Config
from ..netns import enter_for_good, netns_path

RUN_DIR = "/run/mcr"
STATE_DIR = "/var/lib/mcr"

log = logging.getLogger("mcr.supervisor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="JSON config file (see README)")
    parser.add_argument("--netns", metavar="NS", help="run in network namespace NS (from `ip netns`); "
                        "per-namespace default socket and state paths")
    parser.add_argument("--socket", help=f"control socket path (default {RUN_DIR}/control.sock, "
                        f"with --netns {RUN_DIR}/NS/control.sock)")
    parser.add_argument("--state", metavar="FILE", help="where run-time rule changes are kept ('' to keep none; "
                        f"default {STATE_DIR}/state.json, with --netns {STATE_DIR}/NS/state.json)")
    parser.add_argument("--workers", type=int, help="worker processes (default: config, else one per core)")
    parser.add_argument("--pin-cores", metavar="LIST", help="comma-separated cores to pin workers to")
    parser.add_argument("--user", help="unprivileged user for workers of a daemon run as root "
                        "(default: config, else nobody)")
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


def paths(args: argparse.Namespace) -> tuple[str, str | None]:
    """(control socket, state file or None): as given, else the defaults of
    the instance, so daemons in different namespaces never share either."""
    instance = [args.netns] if args.netns else []
    if args.netns:
        netns_path(args.netns)  # a name that could escape the directories is refused here
    socket_path = args.socket or os.path.join(RUN_DIR, *instance, "control.sock")
    state = os.path.join(STATE_DIR, *instance, "state.json") if args.state is None else args.state
    return socket_path, state or None


def run(args: argparse.Namespace) -> int:
    if args.netns:  # first, while this process has one thread
        enter_for_good(args.netns)
    config = config_from(args)
    socket_path, state_path = paths(args)
    logs.setup(config.log_level)
    if os.geteuid() != 0:
        # setuid needs CAP_SETUID, which a service given only CAP_NET_RAW and
        # CAP_NET_ADMIN lacks; shedding every capability is what isolates a worker.
        log.info("running as uid %d, not root: workers keep this uid and drop every capability "
                 "(the user setting applies to a daemon run as root)", os.geteuid())
    # Here, so that other verbs do not load the supervisor and its protocols.
    from ..supervisor import Supervisor
    from ..supervisor.commands import CommandError
    from ..supervisor.notify import Notifier

    supervisor = Supervisor(config, config_path=args.config, state_path=state_path, socket_path=socket_path,
                            notifier=Notifier.from_environment())
    if sys.version_info < (3, 12):
        # Before 3.12 asyncio waits for each worker process on a thread of its
        # own (ThreadedChildWatcher); a pidfd keeps that on the one loop too.
        asyncio.get_event_loop_policy().set_child_watcher(asyncio.PidfdChildWatcher())
    try:
        asyncio.run(supervisor.run())
    except CommandError as error:  # e.g. a configured rule names a missing interface
        raise ValueError(error.message) from None
    return 0
