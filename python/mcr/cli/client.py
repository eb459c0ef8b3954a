"""What the verbs that talk to the daemon share: --socket and --json, the
connection, actions (`mcr rules add`), tables, and error lines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Iterable

from ..api import DEFAULT_SOCKET, Client, default_socket


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=default_socket(), metavar="PATH",
                        help=f"the daemon's control socket (default: $MCR_SOCKET or {DEFAULT_SOCKET})")
    add_json_option(parser)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def connect(args: argparse.Namespace) -> Client:
    return Client(args.socket)


def seconds(value: float | None) -> str | None:
    """A timer for a table: whole seconds, or None (the table's dash) when not running."""
    return None if value is None else f"{value:.0f}s"


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2), flush=True)


def fail(args: argparse.Namespace, problems: Iterable[str]) -> int:
    """Print each problem as `mcr VERB: problem` on stderr; the exit status for a failure."""
    for problem in problems:
        print(f"mcr {args.verb}: {problem}", file=sys.stderr)
    return 1


class Action:
    """One action of a verb (`mcr rules add`). It has a verb's shape, so it can
    also be a verb of its own (`mcr add`); its help is `run`'s docstring."""

    def __init__(self, run: Callable[[argparse.Namespace], int],
                 add_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
        self.run = run
        self.add_arguments = add_arguments
        self.__doc__ = run.__doc__


def add_commands(parser: argparse.ArgumentParser, dest: str, commands: dict, run_key: str) -> None:
    """A subcommand per entry (a verb module or an Action): its docstring is the
    help, `add_arguments` its options, and `run` lands in args.<run_key>."""
    sub = parser.add_subparsers(dest=dest, metavar=dest.upper(), required=True)
    for name, command in commands.items():
        doc = (command.__doc__ or "").strip()
        command_parser = sub.add_parser(name, help=doc.splitlines()[0], description=doc,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(command_parser)
        command_parser.set_defaults(**{run_key: command.run})


def add_actions(parser: argparse.ArgumentParser, actions: dict[str, Action]) -> None:
    add_commands(parser, "action", actions, "run_action")


def run_action(args: argparse.Namespace) -> int:
    return args.run_action(args)


def table(headers: list[str], rows: list[list], right: Iterable[int] = ()) -> list[str]:
    """Aligned columns; the columns numbered in `right` are right-aligned (numbers)."""
    cells = [headers] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = set(right)
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in cells]


def si(value: float) -> str:
    """1234567 -> '1.23M': rates read at a glance."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f}{suffix}"
    return f"{value:.0f}"
