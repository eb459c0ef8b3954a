"""The multicast RIB: what the data plane forwards, and why.

One pure function, `compute`, turns its inputs into routes: the static rules
(the user's), what IGMP says listeners want on each interface (PIM and MSDP
will add theirs here) and the interface table (name -> ifindex, as netlink
sees it now). Nothing else decides what a worker holds; the supervisor only
applies the difference.

Rules name interfaces, not indexes, and stay bound to the name the user
wrote (as smcroute does): an interface that does not exist yet, was deleted
or renamed away leaves its rules *waiting*; an interface that appears under
that name, even with a new index, makes them active again with that index.

Receiver-driven outputs (a rule's `members`) follow IGMP: a members
interface gets the group, unchanged (same group, port and source address),
when its listeners want it from that source (RFC 3376 6.3). Sources named
in any listener's INCLUDE or EXCLUDE list get routes of their own, (S,G)
routes that the engine prefers to the rule's (*,G) route, so one rule
honours every interface's source filter. A rule with no output at all for
now is *pruned*: nothing is installed and its group is not joined upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .rules import Output, Rule

ACTIVE, WAITING, PRUNED = "active", "waiting", "pruned"
INCLUDE, EXCLUDE = "include", "exclude"


@dataclass(frozen=True)
class Listening:
    """What IGMP's listeners want of one group on one interface: INCLUDE
    these sources only, or EXCLUDE these (EXCLUDE {} is every source)."""

    mode: str
    sources: frozenset[str] = frozenset()

    def wants(self, source: str | None) -> bool:
        """Whether traffic from `source` (None: a source no list names) is wanted."""
        if self.mode == INCLUDE:
            return source in self.sources
        return source not in self.sources


Listeners = Mapping[str, Mapping[str, Listening]]  # interface -> group -> Listening


@dataclass(frozen=True)
class Route:
    """One entry of the MRIB: where a rule's packets (from one source, for a
    derived route) go now, where that came from and whether it can forward."""

    engine_id: int  # the rule id for a rule's own route; another for a derived (S,G) route
    rule_id: int
    rule: Rule
    state: str  # ACTIVE, WAITING or PRUNED
    waiting_for: tuple[str, ...] = ()  # interface names missing from the table, in the rule's order
    source: str | None = None  # the rule's source, or the listeners' source of a derived route
    input_ifindex: int = 0  # 0 while waiting
    outputs: tuple[Output, ...] = ()  # the static outputs, then those for members
    output_ifindexes: tuple[int, ...] = ()

    @property
    def origin(self) -> str:
        """Why it exists: "static" (the rule's outputs), "igmp" (members' only), or both."""
        from_members = len(self.outputs) > len(self.rule.outputs) or self.engine_id != self.rule_id
        return "static+igmp" if from_members and self.rule.outputs else "igmp" if from_members else "static"

    @property
    def derived(self) -> bool:
        return self.engine_id != self.rule_id

    def engine_tuple(self) -> tuple:
        """The route as the engine's bindings take it (active routes only)."""
        assert self.state == ACTIVE, "only an active route has interfaces to forward on"
        outputs = [(o.destination, o.port, index, -1 if o.ttl is None else o.ttl, -1 if o.dscp is None else o.dscp,
                    o.keep_source, o.vlan or 0) for o, index in zip(self.outputs, self.output_ifindexes)]
        rule = self.rule
        return (self.engine_id, self.input_ifindex, rule.group, rule.port, self.source or "", outputs, rule.vlan or 0)

    def describe(self) -> dict:
        """What `mcr mroute` shows of it (counters are added by the caller)."""
        entry = {"id": self.engine_id, "rule_id": self.rule_id, "rule": str(self.rule), "origin": self.origin,
                 "state": self.state, "input": self.rule.input_interface, "group": self.rule.group,
                 "port": self.rule.port, "source": self.source, "outputs": [str(o) for o in self.outputs]}
        if self.waiting_for:
            entry["waiting_for"] = list(self.waiting_for)
        return entry


def interfaces_of(rule: Rule) -> list[str]:
    """Every interface a rule needs to forward, input first, each once
    (members interfaces are not needed: missing, they have no listeners)."""
    return list(dict.fromkeys([rule.input_interface, *(o.interface for o in rule.outputs)]))


def member_output(rule: Rule, interface: str) -> Output:
    """A layer-3 route's output: the same group and port, the packet's own
    source (receivers' source filters depend on it), TTL minus one."""
    return Output(rule.group, rule.port, interface, keep_source=True)


def compute(static: Mapping[int, Rule], ifindex: Mapping[str, int], listeners: Listeners | None = None,
            derived_id: Callable[[int, str], int] | None = None) -> dict[int, Route]:
    """The routes, by engine id, for `static` rules (id -> rule) given the
    interfaces that exist now (name -> index) and what listeners want.
    `derived_id(rule_id, source)` names a derived (S,G) route; it must give
    the same id for the same pair every time, and never a rule's id."""
    routes: dict[int, Route] = {}
    for rule_id in sorted(static):
        rule = static[rule_id]
        missing = tuple(name for name in interfaces_of(rule) if name not in ifindex)
        if missing:
            routes[rule_id] = Route(rule_id, rule_id, rule, WAITING, missing, rule.source)
            continue
        wanting = {name: listening for name in rule.members if name in ifindex
                   and (listening := (listeners or {}).get(name, {}).get(rule.group)) is not None}
        for route in _routes_of(rule_id, rule, ifindex, wanting, derived_id):
            routes[route.engine_id] = route
    return routes


def _routes_of(rule_id: int, rule: Rule, ifindex: Mapping[str, int], wanting: dict[str, Listening],
               derived_id: Callable[[int, str], int] | None) -> list[Route]:
    def route(engine_id: int, source: str | None, state_if_empty: str) -> Route:
        outputs = rule.outputs + tuple(member_output(rule, name) for name, listening in sorted(wanting.items())
                                       if listening.wants(source))
        return Route(engine_id, rule_id, rule, ACTIVE if outputs else state_if_empty, (), source,
                     ifindex[rule.input_interface], outputs, tuple(ifindex[o.interface] for o in outputs))

    main = route(rule_id, rule.source, PRUNED)
    if rule.source is not None or not wanting:
        return [main]
    routes = [main]
    # A source some list names may be wanted where other sources are not, or
    # the other way round: it gets its own route where that differs.
    named = sorted({s for listening in wanting.values() for s in listening.sources})
    for source in named:
        assert derived_id is not None, "listeners name sources: derived routes need ids"
        own = route(derived_id(rule_id, source), source, ACTIVE)
        if own.outputs != main.outputs and (own.outputs or main.state == ACTIVE):
            routes.append(own)  # with no outputs it keeps that source off the (*,G) route
    return routes


def engine_rules(routes: Mapping[int, Route]) -> list[tuple]:
    """The rule set every worker holds: the active routes, in engine id order."""
    return [routes[i].engine_tuple() for i in sorted(routes) if routes[i].state == ACTIVE]


def routes_of_rule(routes: Mapping[int, Route], rule_id: int) -> list[Route]:
    return [r for r in routes.values() if r.rule_id == rule_id]
