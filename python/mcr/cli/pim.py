"""PIM-SM on the daemon's links.

  mcr pim interfaces [--json]    per interface: address, DR, our DR priority, generation ID, next Hello, refused sends
  mcr pim neighbors [--json]     per neighbor: interface, address, DR priority, generation ID, holdtime left, uptime
  mcr pim join [--json]          downstream state: per interface (*,G), (S,G) and (S,G,rpt), state and timers
  mcr pim upstream [--json]      upstream state: joined or not, RPF interface and neighbor, SPT bit, KAT, Register
  mcr pim rp [--json]            the RP of each group range, where it was learned, and the way to it; the BSR
  mcr pim assert [--json]        Assert state per (S,G,I) and (*,G,I): winner and its metric, ours, timer
"""

from __future__ import annotations

import argparse

from .client import Action, add_actions, add_client_options, connect, print_json, run_action, seconds, table
from .workers import uptime


def interfaces(args: argparse.Namespace) -> int:
    """PIM interfaces: address, the DR, our DR priority, generation ID, next Hello."""
    with connect(args) as client:
        listed = client.call("pim.interfaces")["interfaces"]
    if args.json:
        print_json({"interfaces": listed})
        return 0
    rows = [[i["interface"], i["address"], i["dr"], i["dr_priority"], f"{i['generation_id']:08x}",
             None if i["next_hello"] is None else f"{i['next_hello']:.1f}s", len(i["neighbors"]), i["send_errors"]]
            for i in listed]
    print("\n".join(table(["INTERFACE", "ADDRESS", "DR", "PRIORITY", "GENID", "NEXT HELLO", "NEIGHBORS",
                           "SEND ERRORS"], rows, right=[3, 6, 7])))
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



def join(args: argparse.Namespace) -> int:
    """Downstream state: interface, (S,G) or (*,G), kind, state, expiry and prune-pending timers."""
    with connect(args) as client:
        listed = client.call("pim.join")["joins"]
    if args.json:
        print_json({"joins": listed})
        return 0
    rows = [[j["interface"], j["source"] or "*", j["group"], j.get("kind"), j.get("state"),
             seconds(j.get("expiry_left")), seconds(j.get("prune_pending_left"))] for j in listed]
    print("\n".join(table(["INTERFACE", "SOURCE", "GROUP", "KIND", "STATE", "EXPIRES", "PRUNE PENDING"], rows)))
    return 0


def upstream(args: argparse.Namespace) -> int:
    """Upstream state: (S,G) or (*,G), state, RPF interface and neighbor, SPT bit, KAT, Register state."""
    with connect(args) as client:
        listed = client.call("pim.upstream")["upstream"]
    if args.json:
        print_json({"upstream": listed})
        return 0
    rows = [[u["source"] or "*", u["group"], u["kind"], u.get("state"), u.get("rpf_interface"),
             u.get("rpf_neighbor"), seconds(u.get("join_timer_left")),
             "" if "spt_bit" not in u else "yes" if u["spt_bit"] else "no", seconds(u.get("keepalive_left")),
             u.get("register_state")] for u in listed]
    print("\n".join(table(["SOURCE", "GROUP", "KIND", "STATE", "RPF INTERFACE", "RPF NEIGHBOR", "JOIN TIMER",
                           "SPT", "KAT", "REGISTER"], rows)))
    return 0


def rp(args: argparse.Namespace) -> int:
    """RP per group range: the RP, where it came from (static or BSR), RPF interface and neighbor."""
    with connect(args) as client:
        reply = client.call("pim.rp")
    listed, bsr = reply["rps"], reply.get("bsr")
    if args.json:
        print_json({"rps": listed, "bsr": bsr})
        return 0
    rows = [[r["group"], r.get("rp") or ",".join(c["rp"] for c in r.get("candidates", [])), r["source"],
             r.get("rpf_interface"), r.get("rpf_neighbor")] for r in listed]
    print("\n".join(table(["GROUPS", "RP", "FROM", "RPF INTERFACE", "RPF NEIGHBOR"], rows)))
    if bsr is not None and bsr.get("bsr"):
        print(f"BSR {bsr['bsr']} priority {bsr['bsr_priority']} ({bsr['state']}), "
              f"hash mask length {bsr['hash_mask_len']}, bootstrap timer {seconds(bsr['bootstrap_timer'])}")
    return 0


def _metric(metric: dict) -> str:
    return f"{'rpt' if metric['rpt'] else 'spt'} {metric['preference']}/{metric['metric']}"


def assert_(args: argparse.Namespace) -> int:
    """Assert state per (S,G,I) and (*,G,I): state, winner and its metric, our metric, timer."""
    with connect(args) as client:
        listed = client.call("pim.assert")["asserts"]
    if args.json:
        print_json({"asserts": listed})
        return 0
    rows = [[a["interface"], a["source"] or "*", a["group"], a["state"], a["winner"], _metric(a["winner_metric"]),
             _metric(a["my_metric"]), seconds(a["timer"])] for a in listed]
    print("\n".join(table(["INTERFACE", "SOURCE", "GROUP", "STATE", "WINNER", "WINNER METRIC", "MY METRIC",
                           "TIMER"], rows)))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, {"interfaces": Action(interfaces, add_client_options),
                         "neighbors": Action(neighbors, add_client_options),
                         "join": Action(join, add_client_options),
                         "upstream": Action(upstream, add_client_options),
                         "rp": Action(rp, add_client_options),
                         "assert": Action(assert_, add_client_options)})


run = run_action
