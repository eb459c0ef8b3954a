"""IGMP on the daemon's links: MCR as querier, what listeners want, static joins.

  mcr igmp interfaces [--json]                   per interface: querier or not, who is, version, timers, refused sends
  mcr igmp groups [--json]                       per interface and group: mode, sources, timers, last reporter
  mcr igmp join eth0 239.5.5.5                   be a member without a rule, so upstream sends it
  mcr igmp join eth0 232.1.1.1 --source 10.1.1.1 a source-specific membership (IGMPv3 INCLUDE)
  mcr igmp leave eth0 239.5.5.5
  mcr igmp joins [--json]                        each join and whether it is joined or waits for its interface
A join on an interface that does not exist yet waits for it, and follows it
when it is deleted and created again, as rules do.
"""

from __future__ import annotations

import argparse

from .client import Action, add_actions, add_client_options, connect, print_json, run_action, table


def _join_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("interface", metavar="IFACE")
    parser.add_argument("group", metavar="GROUP")
    parser.add_argument("--source", metavar="ADDR", help="only from this source (IGMPv3 INCLUDE)")
    add_client_options(parser)


def join(args: argparse.Namespace) -> int:
    """Join a group on an interface without a rule (IGMP report and NIC filter)."""
    with connect(args) as client:
        state = client.join(args.interface, args.group, args.source)
    if args.json:
        print_json({"state": state})
    else:
        print(f"{args.group} on {args.interface}: {state}")
    return 0


def leave(args: argparse.Namespace) -> int:
    """Leave a static join."""
    with connect(args) as client:
        client.leave(args.interface, args.group, args.source)
    if args.json:
        print_json({})
    return 0


def joins(args: argparse.Namespace) -> int:
    """The static joins: interface, group, source, joined or waiting."""
    with connect(args) as client:
        listed = client.joins()
    if args.json:
        print_json({"joins": listed})
        return 0
    rows = [[j["interface"], j["group"], j["source"] or "any", j["state"]] for j in listed]
    print("\n".join(table(["INTERFACE", "GROUP", "SOURCE", "STATE"], rows)))
    return 0


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}s"


def interfaces(args: argparse.Namespace) -> int:
    """Where MCR is IGMP router: querier or not, which address is, version and timers."""
    with connect(args) as client:
        listed = client.call("igmp.interfaces")["interfaces"]
    if args.json:
        print_json({"interfaces": listed})
        return 0
    rows = [[i["interface"], i["address"], f"v{i['version']}", "yes" if i["querier"] else "no", i["querier_address"],
             _seconds(i["next_general_query"]), _seconds(i["other_querier_present"]), len(i["groups"]),
             i["send_errors"]] for i in listed]
    print("\n".join(table(["INTERFACE", "ADDRESS", "VERSION", "QUERIER", "QUERIER ADDRESS", "NEXT QUERY",
                           "OTHER QUERIER", "GROUPS", "SEND ERRORS"], rows, right=[7, 8])))
    return 0


def groups(args: argparse.Namespace) -> int:
    """What listeners want: per interface and group, mode, sources, timers, last reporter, version."""
    with connect(args) as client:
        listed = client.call("igmp.groups")["groups"]
    if args.json:
        print_json({"groups": listed})
        return 0
    rows = [[g["interface"], g["group"], g["mode"].lower(),
             ", ".join(f"{s['source']} ({_seconds(s['timer'])})" for s in g["sources"]) or "-",
             _seconds(g["group_timer"]), g["last_reporter"], f"v{g['compatibility']}"] for g in listed]
    print("\n".join(table(["INTERFACE", "GROUP", "MODE", "SOURCES", "GROUP TIMER", "LAST REPORTER", "COMPAT"],
                          rows)))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, {"interfaces": Action(interfaces, add_client_options),
                         "groups": Action(groups, add_client_options),
                         "join": Action(join, _join_arguments), "leave": Action(leave, _join_arguments),
                         "joins": Action(joins, add_client_options)})


run = run_action
