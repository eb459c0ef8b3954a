"""The multicast RIB: what the data plane forwards, and why.

One pure function, `compute`, turns its inputs into routes: the static rules
(the user's), protocol routes (IGMP, PIM and MSDP will add theirs here) and
the interface table (name -> ifindex, as netlink sees it now). Nothing else
decides what a worker holds; the supervisor only applies the difference.

Rules name interfaces, not indexes, and stay bound to the name the user
wrote (as smcroute does): an interface that does not exist yet, was deleted
or renamed away leaves its rules *waiting*; an interface that appears under
that name, even with a new index, makes them active again with that index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .rules import Rule

ACTIVE, WAITING = "active", "waiting"


@dataclass(frozen=True)
class Route:
    """One entry of the MRIB: a rule, where it came from and whether it can forward now."""

    rule_id: int
    rule: Rule
    origin: str  # "static"; later "igmp", "pim", "msdp"
    state: str  # ACTIVE or WAITING
    waiting_for: tuple[str, ...] = ()  # interface names missing from the table, in the rule's order
    input_ifindex: int = 0  # 0 while waiting
    output_ifindexes: tuple[int, ...] = ()

    def engine_tuple(self) -> tuple:
        """The route as the engine's bindings take it (active routes only)."""
        assert self.state == ACTIVE, "a waiting route has no interfaces to forward on"
        indexes = dict(zip((o.interface for o in self.rule.outputs), self.output_ifindexes))
        return self.rule.engine_tuple(self.rule_id, self.input_ifindex, indexes.__getitem__)

    def describe(self) -> dict:
        """What `mcr mroute` shows of it (counters are added by the caller)."""
        entry = {"id": self.rule_id, "rule": str(self.rule), "origin": self.origin, "state": self.state,
                 "input": self.rule.input_interface, "group": self.rule.group, "port": self.rule.port,
                 "source": self.rule.source, "outputs": [str(o) for o in self.rule.outputs]}
        if self.waiting_for:
            entry["waiting_for"] = list(self.waiting_for)
        return entry


def interfaces_of(rule: Rule) -> list[str]:
    """Every interface a rule needs, input first, each once."""
    return list(dict.fromkeys([rule.input_interface, *(o.interface for o in rule.outputs)]))


def compute(static: Mapping[int, Rule], ifindex: Mapping[str, int]) -> dict[int, Route]:
    """The routes for `static` rules (id -> rule) given the interfaces that exist now (name -> index)."""
    routes = {}
    for rule_id in sorted(static):
        rule = static[rule_id]
        missing = tuple(name for name in interfaces_of(rule) if name not in ifindex)
        if missing:
            routes[rule_id] = Route(rule_id, rule, "static", WAITING, missing)
        else:
            routes[rule_id] = Route(rule_id, rule, "static", ACTIVE, (), ifindex[rule.input_interface],
                                    tuple(ifindex[o.interface] for o in rule.outputs))
    return routes


def engine_rules(routes: Mapping[int, Route]) -> list[tuple]:
    """The rule set every worker holds: the active routes, in id order."""
    return [routes[i].engine_tuple() for i in sorted(routes) if routes[i].state == ACTIVE]
