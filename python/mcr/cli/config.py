"""Check, load and save config files (format: see mcr/config.py).

  mcr config check mcr.json            validate a file here, no daemon needed
  mcr config load mcr.json             add the file's rules to the running daemon
  mcr config load mcr.json --replace   make the daemon's rules exactly the file's, and apply its settings
                                       (those that need a restart are named)
  mcr config save [FILE]               write the running config (default: the daemon's config file)
A file is checked before anything is sent: every problem is printed with
its key path (rules[2].group: ...), and nothing changes.
"""

from __future__ import annotations

import argparse
import os

from ..config import Config, ConfigError
from .client import Action, add_actions, add_client_options, add_json_option, connect, fail, print_json, run_action


def _file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a JSON config file")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    _file_argument(parser)
    add_json_option(parser)


def check(args: argparse.Namespace) -> int:
    """Validate a config file here, without a daemon; prints each problem with its key path."""
    try:
        config = Config.load(args.file)
    except ConfigError as error:
        if args.json:
            print_json({"ok": False, "errors": list(error.errors)})
        return fail(args, error.errors)
    if args.json:
        print_json({"ok": True, "rules": len(config.rules)})
    else:
        print(f"{args.file}: ok, {len(config.rules)} rules")
    return 0


def _load_arguments(parser: argparse.ArgumentParser) -> None:
    _file_argument(parser)
    parser.add_argument("--replace", action="store_true",
                        help="remove the daemon's rules that are not in the file (default: only add)")
    add_client_options(parser)


def load(args: argparse.Namespace) -> int:
    """Apply a config file to the running daemon: add its rules (--replace: and remove all others)."""
    try:
        config = Config.load(args.file)
    except ConfigError as error:
        return fail(args, error.errors)
    with connect(args) as client:
        counts = client.load_config(config, replace=args.replace)
    if args.json:
        print_json(counts)
    else:
        print(", ".join(f"{what} {counts.get(what, 0)}" for what in ("added", "removed", "unchanged")))
        if counts.get("applied"):
            print("settings applied: " + ", ".join(counts["applied"]))
        if counts.get("restart_needed"):
            print("settings kept for the next start (they need a restart): " + ", ".join(counts["restart_needed"]))
    return 0


def _save_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE", help="where to write (default: the daemon's config file)")
    add_client_options(parser)


def save(args: argparse.Namespace) -> int:
    """Have the daemon write its running config, rules included, so a restart comes back the same."""
    # The daemon resolves a relative path against its own directory, not ours.
    path = None if args.file is None else os.path.abspath(args.file)
    with connect(args) as client:
        written = client.save_config(path)
    if args.json:
        print_json({"path": written})
    else:
        print(f"saved {written}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, {"check": Action(check, _check_arguments), "load": Action(load, _load_arguments),
                         "save": Action(save, _save_arguments)})


run = run_action
