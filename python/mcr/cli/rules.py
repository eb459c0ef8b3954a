"""Add, remove and list the daemon's rules.

  mcr rules add --input-interface eth0 --input-group 239.1.1.1 --input-port 5000 \\
                --outputs 239.2.2.2:5000:eth1,10.0.0.9:6000:eth2:ttl=8 --name feed-a
  mcr rules add --rule "in=eth0 group=239.1.1.2:5000 source=10.1.1.1 out=239.3.3.3:5000:eth2"
  mcr rules remove feed-a          (a name, or the id `rules list` shows)
  mcr rules list
`mcr add`, `mcr remove` and `mcr list` are the same commands, as in mcrctl.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..rules import Rule, RuleError, parse_outputs
from .client import Action, add_actions, add_client_options, connect, print_json, run_action, table


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-interface", metavar="IFACE")
    parser.add_argument("--input-group", metavar="GROUP")
    parser.add_argument("--input-port", type=int, metavar="PORT")
    parser.add_argument("--source", metavar="ADDR", help="relay only this source (an (S,G) rule)")
    parser.add_argument("--outputs", metavar="OUTPUTS", help="GROUP:PORT:IFACE[:ttl=N][:dscp=N][:keep-source][,...]")
    parser.add_argument("--rule", metavar="SPEC", help="the whole rule: in=IFACE group=GROUP:PORT "
                        "[source=ADDR] out=OUTPUTS [name=NAME]")
    parser.add_argument("--name", help="a unique name to remove the rule by")
    add_client_options(parser)


def rule_from_args(args: argparse.Namespace) -> Rule:
    single = (args.input_interface, args.input_group, args.input_port, args.outputs)
    if args.rule is not None:
        if any(v is not None for v in single) or args.source is not None:
            raise RuleError("give the rule either with --rule or with --input-interface/--input-group/"
                            "--input-port/--outputs, not both")
        rule = Rule.parse(args.rule)
    elif None in single:
        raise RuleError("--input-interface, --input-group, --input-port and --outputs are all needed (or --rule)")
    else:
        rule = Rule(args.input_interface, args.input_group, args.input_port, parse_outputs(args.outputs), args.source)
    if args.name is not None:
        if rule.name not in (None, args.name):
            raise RuleError(f"two names given: {rule.name} (in --rule) and {args.name} (--name)")
        rule = dataclasses.replace(rule, name=args.name)
    return rule


def add(args: argparse.Namespace) -> int:
    """Add a rule to the running daemon (mcrctl flags, or --rule); prints its id.

  mcr rules add --input-interface eth0 --input-group 239.1.1.1 --input-port 5000 \\
                --outputs 239.2.2.2:5000:eth1 [--source 10.1.1.1] [--name feed-a]
  mcr rules add --rule "in=eth0 group=239.1.1.1:5000 out=239.2.2.2:5000:eth1,10.0.0.9:6000:eth2:ttl=8"
"""
    rule = rule_from_args(args)
    with connect(args) as client:
        rule_id = client.add_rule(rule)
    if args.json:
        print_json({"id": rule_id})
    else:
        print(f"rule {rule_id} added: {rule}")
    return 0


def _remove_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="ID|NAME", help="the rule's id or name")
    add_client_options(parser)


def remove(args: argparse.Namespace) -> int:
    """Remove a rule from the running daemon, by id or name.

  mcr rules remove 3
  mcr rules remove feed-a
"""
    key: int | str = int(args.key) if args.key.isdigit() else args.key
    with connect(args) as client:
        client.remove_rule(key)
    if args.json:
        print_json({})
    else:
        print(f"rule {key} removed")
    return 0


def list_rules(args: argparse.Namespace) -> int:
    """List the running daemon's rules with their ids."""
    with connect(args) as client:
        result = client.call("rules.list")
    if args.json:
        print_json(result)
        return 0
    rules = result["rules"]
    rows = [[r["id"], r.get("name"), r["input_interface"], f"{r['group']}:{r['port']}", r.get("source"),
             ",".join(r["outputs"]), _state(r)] for r in rules]
    print("\n".join(table(["ID", "NAME", "INPUT", "GROUP", "SOURCE", "OUTPUTS", "STATE"], rows, right=[0])))
    return 0


def _state(rule: dict) -> str:
    waiting = rule.get("waiting_for")
    return f"waiting for {','.join(waiting)}" if waiting else rule.get("state", "")


ADD = Action(add, _add_arguments)
REMOVE = Action(remove, _remove_arguments)
LIST = Action(list_rules, add_client_options)
ACTIONS = {"add": ADD, "remove": REMOVE, "list": LIST}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_actions(parser, ACTIONS)


run = run_action
