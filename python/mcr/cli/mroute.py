"""What the data plane forwards, and why: the multicast RIB.

  mcr mroute [--json]

One line per route: where it came from (static: a rule; later igmp, pim,
msdp), whether it forwards now (active) or waits for interfaces, the input,
group and source, the outputs and the packets relayed.
"""

from __future__ import annotations

import argparse

from .client import add_client_options, connect, print_json, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        result = client.call("mroute")
    if args.json:
        print_json(result)
        return 0
    rows = []
    for r in result["routes"]:
        state = r["state"] + (f" ({','.join(r['waiting_for'])})" if r.get("waiting_for") else "")
        origin = r["origin"] + ("+msdp" if r.get("msdp") else "")
        rows.append([r["id"], origin, state, r["input"], f"{r['source'] or '*'},{r['group']}:{r['port']}",
                     ",".join(r["outputs"]), r["packets"]])
    print("\n".join(table(["ID", "ORIGIN", "STATE", "INPUT", "(S,G):PORT", "OUTPUTS", "PACKETS"], rows,
                          right=[0, 6])))
    return 0
