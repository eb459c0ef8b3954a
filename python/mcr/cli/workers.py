"""List the daemon's worker processes: pid, core, state, restarts, crashes
in a row (a death before a worker ran for a second; these back off), uptime;
then the faults the daemon survived, if any.

  mcr workers [--json]
"""

from __future__ import annotations

import argparse

from .client import add_client_options, connect, print_json, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)


def uptime(seconds: float | None) -> str | None:
    """3725 -> '1h02m05s', 90061 -> '1d01h01m'."""
    if seconds is None:
        return None
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        result = client.call("workers")
    if args.json:
        print_json(result)
        return 0
    rows = [[w.get("id"), w.get("pid"), w.get("core"), w.get("state"), w.get("restarts"), w.get("crashes"),
             uptime(w.get("uptime"))] for w in result["workers"]]
    print("\n".join(table(["ID", "PID", "CORE", "STATE", "RESTARTS", "CRASHES", "UPTIME"], rows,
                          right=[0, 1, 2, 4, 5, 6])))
    faults = result.get("task_faults") or {}
    if faults:
        print("faults survived: " + ", ".join(f"{name} {count}" for name, count in sorted(faults.items())))
    return 0
