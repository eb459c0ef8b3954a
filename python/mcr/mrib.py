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

A rule for a group range (239.1.0.0/16) or any port is one engine rule
for its static outputs; each group of the range that listeners want gets a
route of its own (the engine prefers an exact group to a range), whose
member outputs *follow* the packet's group and port. Upstream, MCR joins
the groups listeners want; other groups of a range are relayed if they
arrive (a static join brings them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .rules import ANY_PORT, Output, Rule, engine_rule_tail

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
    group: str | None = None  # one group of a range rule's (a derived route); None: the rule's group
    input_ifindex: int = 0  # 0 while waiting
    outputs: tuple[Output, ...] = ()  # the static outputs, then those for members
    output_ifindexes: tuple[int, ...] = ()
    protocol: str | None = None  # "pim" for a protocol's route (its rule is made up for it)
    notify: bool = False  # the data plane reports new sources and arrivals for it

    @property
    def origin(self) -> str:
        """Why it exists: "static" (the rule's outputs), "igmp" (members' only), both, or the protocol."""
        if self.protocol:
            return self.protocol
        from_members = len(self.outputs) > len(self.rule.outputs) or self.engine_id != self.rule_id
        return "static+igmp" if from_members and self.rule.outputs else "igmp" if from_members else "static"

    @property
    def derived(self) -> bool:
        return self.engine_id != self.rule_id

    def engine_tuple(self) -> tuple:
        """The route as the engine's bindings take it (active routes only)."""
        assert self.state == ACTIVE, "only an active route has interfaces to forward on"
        outputs = [o.engine_tuple(index) for o, index in zip(self.outputs, self.output_ifindexes)]
        rule = self.rule
        group, prefix = (self.group, 32) if self.group else (rule.group_address, rule.prefix_len)
        return (self.engine_id, self.input_ifindex, group, rule.port, self.source or "", outputs, rule.vlan or 0,
                prefix) + engine_rule_tail(self.notify or rule.notify, rule.priority)

    @property
    def joinable(self) -> str | None:
        """The one group to join upstream for this route, if it has one (not a
        range). A protocol's route has none: its protocol pulls the traffic
        (an IGMP report upstream would make the upstream router forward it
        whatever PIM says)."""
        if self.protocol:
            return None
        if self.group:
            return self.group
        return self.rule.group if self.rule.prefix_len == 32 else None

    def describe(self) -> dict:
        """What `mcr mroute` shows of it (counters are added by the caller)."""
        entry = {"id": self.engine_id, "rule_id": self.rule_id, "rule": str(self.rule), "origin": self.origin,
                 "state": self.state, "input": self.rule.input_interface, "group": self.group or self.rule.group,
                 "port": self.rule.port, "source": self.source, "outputs": [str(o) for o in self.outputs]}
        if self.waiting_for:
            entry["waiting_for"] = list(self.waiting_for)
        return entry


def interfaces_of(rule: Rule) -> list[str]:
    """Every interface a rule needs to forward, input first, each once
    (members interfaces are not needed: missing, they have no listeners)."""
    return list(dict.fromkeys([rule.input_interface, *(o.interface for o in rule.outputs)]))


def member_output(rule: Rule, group: str, interface: str) -> Output:
    """A layer-3 route's output: the same group and port, the packet's own
    source (receivers' source filters depend on it), TTL minus one. For an
    any-port rule the engine takes the port (and group) from each packet."""
    return Output(group, rule.port, interface, keep_source=True, follow=rule.port == ANY_PORT)


DerivedId = Callable[[int, str, str | None], int]


def compute(static: Mapping[int, Rule], ifindex: Mapping[str, int], listeners: Listeners | None = None,
            derived_id: DerivedId | None = None) -> dict[int, Route]:
    """The routes, by engine id, for `static` rules (id -> rule) given the
    interfaces that exist now (name -> index) and what listeners want.
    `derived_id(rule_id, group, source)` names a derived route (one group of
    a range, or one source); it must give the same id for the same key every
    time, and never a rule's id."""
    routes: dict[int, Route] = {}
    for rule_id in sorted(static):
        rule = static[rule_id]
        missing = tuple(name for name in interfaces_of(rule) if name not in ifindex)
        if missing:
            routes[rule_id] = Route(rule_id, rule_id, rule, WAITING, missing, rule.source)
            continue
        by_group = _wanting(rule, ifindex, listeners or {})
        if rule.prefix_len == 32:
            found = _routes_of(rule_id, rule, ifindex, by_group.get(rule.group, {}), derived_id, rule_id, None)
        else:  # the range's own route (static outputs), then one per group listeners want
            found = _routes_of(rule_id, rule, ifindex, {}, derived_id, rule_id, None)
            for group in sorted(by_group, key=_address_key):
                found += _routes_of(rule_id, rule, ifindex, by_group[group], derived_id,
                                    derived_id(rule_id, group, None), group)
        for route in found:
            if route.engine_id == rule_id or route.state == ACTIVE:
                routes[route.engine_id] = route
    return routes


def _address_key(address: str) -> tuple[int, ...]:
    return tuple(int(part) for part in address.split("."))


def _wanting(rule: Rule, ifindex: Mapping[str, int], listeners: Listeners) -> dict[str, dict[str, Listening]]:
    """group -> members interface -> what its listeners want, for the groups the rule covers."""
    by_group: dict[str, dict[str, Listening]] = {}
    for name in rule.members:
        if name not in ifindex:
            continue
        for group, listening in listeners.get(name, {}).items():
            if group == rule.group or (rule.prefix_len < 32 and rule.covers(group)):
                by_group.setdefault(group, {})[name] = listening
    return by_group


def _routes_of(rule_id: int, rule: Rule, ifindex: Mapping[str, int], wanting: dict[str, Listening],
               derived_id: DerivedId | None, engine_id: int, group: str | None) -> list[Route]:
    """The route for `group` (None: the rule's own), and its per-source routes."""
    def route(engine_id: int, source: str | None, state_if_empty: str) -> Route:
        members = tuple(member_output(rule, group or rule.group, name) for name, listening in sorted(wanting.items())
                        if listening.wants(source))
        outputs = rule.outputs + members
        # A notify rule with nothing to send still tells PIM what arrives (a first-hop catch-all).
        active = outputs or rule.notify
        return Route(engine_id, rule_id, rule, ACTIVE if active else state_if_empty, (), source, group,
                     ifindex[rule.input_interface], outputs, tuple(ifindex[o.interface] for o in outputs))

    main = route(engine_id, rule.source, PRUNED)
    if rule.source is not None or not wanting:
        return [main]
    routes = [main]
    # A source some list names may be wanted where other sources are not, or
    # the other way round: it gets its own route where that differs.
    named = sorted({s for listening in wanting.values() for s in listening.sources})
    for source in named:
        assert derived_id is not None, "listeners name sources: derived routes need ids"
        own = route(derived_id(rule_id, group or rule.group, source), source, ACTIVE)
        if own.outputs != main.outputs and (own.outputs or main.state == ACTIVE):
            routes.append(own)  # with no outputs it keeps that source off the (*,G) route
    return routes


def protocol_routes(protocol: str, entries: Iterable, ifindex: Mapping[str, int],
                    engine_id: Callable[[tuple], int]) -> dict[int, Route]:
    """A routing protocol's forwarding entries as routes: packets of
    (`entry.source` or any, `entry.group`), any UDP port, arriving on
    `entry.interface` go out unchanged on each of `entry.outputs` (TTL minus
    one, their own source, group and port), and inside a PIM Register to
    `entry.register_to` if the entry has one; an entry without outputs drops
    them (or, with `notify`, only reports them). A group range (a catch-all)
    matches every group of it that nothing more specific does.
    `engine_id(key)` gives each entry's stable id. An entry whose interfaces
    are not all in the table is left out (netlink will tell)."""
    routes: dict[int, Route] = {}
    for entry in entries:
        names = [entry.interface, *sorted(entry.outputs)]
        if any(name not in ifindex for name in names):
            continue
        outputs = tuple(Output(entry.group, ANY_PORT, name, keep_source=True, follow=True)
                        for name in sorted(entry.outputs))
        rp = getattr(entry, "register_to", None)
        if rp:
            outputs += (Output.to_rp(rp),)
        rule = Rule(entry.interface, entry.group, ANY_PORT, outputs, entry.source, protocol=protocol,
                    notify=entry.notify)
        key = (protocol, entry.interface, entry.group, entry.source)
        rid = engine_id(key)
        exact = None if "/" in entry.group else entry.group
        routes[rid] = Route(rid, rid, rule, ACTIVE, (), entry.source, exact, ifindex[entry.interface],
                            outputs, tuple(ifindex[o.interface] for o in outputs), protocol, entry.notify)
    return routes


def merge(static: Mapping[int, Route], learned: Mapping[int, Route]) -> dict[int, Route]:
    """Static routes, then a protocol's routes for inputs no static route
    matches exactly (same interface, group, port and source): what the user
    configured wins."""
    taken = {_match_key(r) for r in static.values() if r.state == ACTIVE}
    merged = dict(static)
    merged.update({i: r for i, r in learned.items() if _match_key(r) not in taken})
    return merged


def _match_key(route: Route) -> tuple:
    return (route.input_ifindex, route.group or route.rule.group, route.rule.port, route.source, route.rule.vlan)


def engine_rules(routes: Mapping[int, Route]) -> list[tuple]:
    """The rule set every worker holds: the active routes, in engine id order."""
    return [routes[i].engine_tuple() for i in sorted(routes) if routes[i].state == ACTIVE]


def routes_of_rule(routes: Mapping[int, Route], rule_id: int) -> list[Route]:
    return [r for r in routes.values() if r.rule_id == rule_id]
