"""MSDP: the daemon's peerings with other domains' RPs, and the sources they share.

  mcr msdp peers [--json]   per peer: local address, state, role (connects or listens), uptime, SAs in/out, mesh group
  mcr msdp sa [--json]      the SA cache: (S,G), the originating RP, the peer it came from (or local), age, expiry
"""

from __future__ import annotations

import argparse

from .client import Action, add_actions, add_client_options, connect, print_json, run_action, seconds, table



def peers(args: argparse.Namespace) -> int:
    """MSDP peers: address, local address, state, role, uptime, SAs received and sent, mesh group."""
    with connect(args) as client:
        listed = client.call("msdp.peers")["peers"]
    if args.json:
        print_json({"peers": listed})
        return 0
    rows = [[p["peer"], p["local"], p["state"], p["role"], seconds(p.get("established_for")),
             p["counters"].get("sa_in", 0), p["counters"].get("sa_out", 0), p.get("mesh_group") or "",
             p.get("last_error") or ""] for p in listed]
    print("\n".join(table(["PEER", "LOCAL", "STATE", "ROLE", "UP", "SA IN", "SA OUT", "MESH GROUP", "LAST ERROR"],
                          rows, right=[5, 6])))
    return 0


def sa(args: argparse.Namespace) -> int:
    """The SA cache: source, group, originating RP, the peer it came from, age and expiry."""
    with connect(args) as client:
        listed = client.call("msdp.sa")["sa"]
    if args.json:
        print_json({"sa": listed})
        return 0
    rows = [[s["source"], s["group"], s["rp"], s.get("peer") or "local", seconds(s.get("age")),
             seconds(s.get("expires_in"))] for s in listed]
    print("\n".join(table(["SOURCE", "GROUP", "RP", "FROM", "AGE", "EXPIRES"], rows)))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, {"peers": Action(peers, add_client_options), "sa": Action(sa, add_client_options)})


run = run_action
