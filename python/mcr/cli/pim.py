"""PIM-SM on the daemon's links (so far: Hello, neighbors, DR election).

  mcr pim interfaces [--json]    per interface: address, DR, our DR priority, generation ID, next Hello
  mcr pim neighbors [--json]     per neighbor: interface, address, DR priority, generation ID, holdtime left, uptime
"""

from __future__ import annotations

import argparse

from .client import Action, add_actions, add_client_options, connect, print_json, run_action, table
from .workers import uptime


def interfaces(args: argparse.Namespace) -> int:
    """PIM interfaces: address, the DR, our DR priority, generation ID, next Hello."""
    with connect(args) as client:
        listed = client.call("pim.interfaces")["interfaces"]
    if args.json:
        print_json({"interfaces": listed})
        return 0
    rows = [[i["interface"], i["address"], i["dr"], i["dr_priority"], f"{i['generation_id']:08x}",
             None if i["next_hello"] is None else f"{i['next_hello']:.1f}s", len(i["neighbors"])] for i in listed]
    print("\n".join(table(["INTERFACE", "ADDRESS", "DR", "PRIORITY", "GENID", "NEXT HELLO", "NEIGHBORS"], rows,
                          right=[3, 6])))
    return 0


def neighbors(args: argparse.Namespace) -> int:
    """PIM neighbors: interface, address, DR priority, generation ID, holdtime left, uptime."""
    with connect(args) as client:
        listed = client.call("pim.neighbors")["neighbors"]
    if args.json:
        print_json({"neighbors": listed})
        return 0
    rows = [[n["interface"], n["address"], n["dr_priority"],
             None if n["generation_id"] is None else f"{n['generation_id']:08x}",
             None if n["holdtime_left"] is None else f"{n['holdtime_left']:.0f}s", uptime(n["uptime"])]
            for n in listed]
    print("\n".join(table(["INTERFACE", "NEIGHBOR", "PRIORITY", "GENID", "HOLDTIME", "UPTIME"], rows, right=[2])))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, {"interfaces": Action(interfaces, add_client_options),
                         "neighbors": Action(neighbors, add_client_options)})


run = run_action
