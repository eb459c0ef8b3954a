"""The interfaces the daemon sees (through netlink) and the rules that use each.

  mcr interfaces [--json]

A rule names interfaces; one that names an interface that does not exist
(yet) is listed too, with no index: the rule waits for it.
"""

from __future__ import annotations

import argparse

from .client import add_client_options, connect, print_json, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)


def _state(i: dict) -> str:
    if i.get("index") is None:
        return "missing"
    if not i["up"]:
        return "down"
    return "up" if i["carrier"] else "no-carrier"


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        result = client.call("interfaces")
    if args.json:
        print_json(result)
        return 0
    rows = [[i["name"], i.get("index"), _state(i), i.get("mtu"), ",".join(i.get("addresses", [])) or None,
             ",".join(str(r) for r in i["rules"]) or None] for i in result["interfaces"]]
    print("\n".join(table(["NAME", "INDEX", "STATE", "MTU", "ADDRESSES", "RULES"], rows, right=[1, 3])))
    return 0
