"""Show or change the daemon's log levels, globally or per facility.

A change reaches every process: the supervisor, its workers, and workers
started later.

  mcr log-level get
  mcr log-level set debug                      every facility
  mcr log-level set warning --facility worker  one facility
Levels: debug, info, warning, error.
"""

from __future__ import annotations

import argparse

from ..config import LOG_LEVELS
from .client import Action, add_actions, add_client_options, connect, print_json, run_action, table


def _show(args: argparse.Namespace, levels: dict[str, str]) -> int:
    if args.json:
        print_json({"levels": levels})
    else:
        print("\n".join(table(["FACILITY", "LEVEL"], [[f, level] for f, level in levels.items()])))
    return 0


def get(args: argparse.Namespace) -> int:
    """Show the log level of each facility ("default" is the level of the rest)."""
    with connect(args) as client:
        return _show(args, client.log_levels())


def _set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("level", choices=LOG_LEVELS)
    parser.add_argument("--facility", help="change only this facility (default: all)")
    add_client_options(parser)


def set_level(args: argparse.Namespace) -> int:
    """Set the log level of every facility, or of one with --facility."""
    with connect(args) as client:
        return _show(args, client.set_log_level(args.level, args.facility))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, {"get": Action(get, add_client_options), "set": Action(set_level, _set_arguments)})


run = run_action
