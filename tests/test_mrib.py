"""Properties of the MRIB (mcr.mrib.compute): a pure function of rules and interfaces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dataclasses import dataclass

from mcr import mrib
from mcr.rules import Output, Rule

DERIVED = 1 << 30
NAMES = ["eth0", "eth1", "eth2", "wg0", "tun7"]

names = st.sampled_from(NAMES)


@st.composite
def rules(draw) -> Rule:
    group = f"239.1.{draw(st.integers(0, 3))}.{draw(st.integers(1, 9))}"
    outs = draw(st.lists(st.tuples(names, st.integers(1000, 1003)), min_size=1, max_size=3, unique=True))
    return Rule(draw(names), group, draw(st.integers(5000, 5003)),
                tuple(Output("239.9.9.9", port, name) for name, port in outs))


rule_sets = st.dictionaries(st.integers(1, 50), rules(), max_size=8)
tables = st.dictionaries(names, st.integers(1, 1000), max_size=len(NAMES))


@given(rule_sets, tables)
def test_every_rule_has_one_route_active_exactly_when_its_interfaces_exist(static, table) -> None:
    routes = mrib.compute(static, table)
    assert set(routes) == set(static)
    for rule_id, route in routes.items():
        needed = mrib.interfaces_of(static[rule_id])
        missing = [n for n in needed if n not in table]
        assert route.rule == static[rule_id] and route.origin == "static"
        assert route.state == (mrib.WAITING if missing else mrib.ACTIVE)
        assert list(route.waiting_for) == missing


@given(rule_sets, tables)
def test_engine_rules_use_the_tables_indexes(static, table) -> None:
    routes = mrib.compute(static, table)
    for rule_tuple in mrib.engine_rules(routes):
        rule_id, in_index, group, port, _source, outputs, _vlan, prefix = rule_tuple
        rule = static[rule_id]
        assert (in_index, group, port) == (table[rule.input_interface], rule.group, rule.port)
        assert [o[2] for o in outputs] == [table[o.interface] for o in rule.outputs]
    assert [t[0] for t in mrib.engine_rules(routes)] == sorted(
        i for i, r in routes.items() if r.state == mrib.ACTIVE)


@given(rule_sets, tables, names, st.integers(1001, 2000))
def test_an_interface_appearing_never_makes_a_route_wait(static, table, name, index) -> None:
    before = mrib.compute(static, {k: v for k, v in table.items() if k != name})
    after = mrib.compute(static, {**table, name: index})
    for rule_id, route in before.items():
        if route.state == mrib.ACTIVE:
            assert after[rule_id].state == mrib.ACTIVE


@given(rule_sets, tables)
def test_the_result_does_not_depend_on_input_order(static, table) -> None:
    reordered = dict(reversed(list(static.items())))
    assert mrib.compute(static, table) == mrib.compute(reordered, dict(reversed(list(table.items()))))


def test_a_recreated_interface_gives_its_rules_the_new_index() -> None:
    rule = Rule("eth0", "239.1.1.1", 5000, (Output("239.2.2.2", 6000, "wg0"),))
    waiting = mrib.compute({1: rule}, {"eth0": 2})[1]
    assert (waiting.state, waiting.waiting_for) == (mrib.WAITING, ("wg0",))
    assert waiting.describe()["waiting_for"] == ["wg0"]
    active = mrib.compute({1: rule}, {"eth0": 2, "wg0": 17})[1]
    assert active.engine_tuple()[5][0][2] == 17
    again = mrib.compute({1: rule}, {"eth0": 2, "wg0": 23})[1]
    assert again.engine_tuple()[5][0][2] == 23


# Receiver-driven rules ------------------------------------------------------------

SOURCES = ["10.1.1.1", "10.1.1.2", "10.1.1.3"]
listenings = st.builds(mrib.Listening, st.sampled_from([mrib.INCLUDE, mrib.EXCLUDE]),
                       st.frozensets(st.sampled_from(SOURCES), max_size=3))
GROUP = "239.7.7.7"
MEMBERS = ["eth1", "eth2", "wg0"]


def members_rule(static_outputs: bool, source: str | None = None) -> Rule:
    outputs = (Output("239.9.9.9", 1000, "tun7"),) if static_outputs else ()
    return Rule("eth0", GROUP, 5000, outputs, source, members=tuple(MEMBERS))


def derived_ids(rule_id: int, group: str, source: str | None) -> int:
    return 1000 * rule_id + 100 * int(group.split(".")[-1]) + (SOURCES.index(source) + 1 if source else 0)


def where_sent(routes: dict, source: str) -> set[str]:
    """The interfaces a packet from `source` leaves by: the engine picks the
    (S,G) route if there is one, else the (*,G) route."""
    active = [r for r in routes.values() if r.state == mrib.ACTIVE]
    chosen = next((r for r in active if r.source == source), None) or next(
        (r for r in active if r.source is None), None)
    return {o.interface for o in chosen.outputs} if chosen else set()


@given(st.dictionaries(st.sampled_from(MEMBERS), listenings), st.booleans(), st.sampled_from(SOURCES + ["10.9.9.9"]))
def test_every_source_goes_exactly_where_its_listeners_want_it(wanting, static_outputs, source) -> None:
    table = {"eth0": 1, "eth1": 2, "eth2": 3, "wg0": 4, "tun7": 5}
    listeners = {name: {GROUP: listening} for name, listening in wanting.items()}
    routes = mrib.compute({1: members_rule(static_outputs)}, table, listeners, derived_ids)
    expected = {name for name, listening in wanting.items() if listening.wants(source)}
    assert where_sent(routes, source) == expected | ({"tun7"} if static_outputs else set())
    for route in routes.values():
        assert all(o.keep_source for o in route.outputs[len(route.rule.outputs):]), "a member output rewrote the source"
        assert route.rule_id == 1 and (route.engine_id == 1) != route.derived


@given(st.dictionaries(st.sampled_from(MEMBERS), listenings))
def test_a_source_specific_rule_has_one_route(wanting) -> None:
    table = {"eth0": 1, "eth1": 2, "eth2": 3, "wg0": 4, "tun7": 5}
    listeners = {name: {GROUP: listening} for name, listening in wanting.items()}
    routes = mrib.compute({1: members_rule(False, "10.1.1.1")}, table, listeners, derived_ids)
    assert list(routes) == [1]
    wanted = {name for name, listening in wanting.items() if listening.wants("10.1.1.1")}
    assert routes[1].state == (mrib.ACTIVE if wanted else mrib.PRUNED)
    assert {o.interface for o in routes[1].outputs} == wanted


def test_members_on_missing_interfaces_neither_wait_nor_forward() -> None:
    listeners = {"eth1": {GROUP: mrib.Listening(mrib.EXCLUDE)}, "wg0": {GROUP: mrib.Listening(mrib.EXCLUDE)}}
    routes = mrib.compute({1: members_rule(False)}, {"eth0": 1, "eth1": 2}, listeners, derived_ids)
    assert routes[1].state == mrib.ACTIVE and [o.interface for o in routes[1].outputs] == ["eth1"]
    assert routes[1].origin == "igmp"
    pruned = mrib.compute({1: members_rule(False)}, {"eth0": 1, "eth1": 2}, {}, derived_ids)
    assert pruned[1].state == mrib.PRUNED and mrib.engine_rules(pruned) == []


def test_a_range_rule_gets_a_route_per_wanted_group_and_keeps_its_own_for_static_outputs() -> None:
    table = {"eth0": 1, "eth1": 2, "eth2": 3, "tun7": 5}
    rule = Rule("eth0", "239.1.0.0/16", 0, (Output("239.9.9.9", 1000, "tun7"),), members=("eth1", "eth2"))
    listeners = {"eth1": {"239.1.2.3": mrib.Listening(mrib.EXCLUDE), "239.2.0.1": mrib.Listening(mrib.EXCLUDE)},
                 "eth2": {"239.1.2.3": mrib.Listening(mrib.INCLUDE, frozenset({"10.1.1.1"}))}}
    routes = mrib.compute({1: rule}, table, listeners, derived_ids)
    own = routes[1]
    assert own.engine_tuple()[2:4] == ("239.1.0.0", 0) and own.engine_tuple()[7] == 16
    assert [o.interface for o in own.outputs] == ["tun7"] and own.joinable is None
    per_group = [r for r in routes.values() if r.group == "239.1.2.3"]
    assert {r.source for r in per_group} == {None, "10.1.1.1"}, "239.2.0.1 is outside the range"
    for route in per_group:
        assert route.engine_tuple()[2] == "239.1.2.3" and route.engine_tuple()[7] == 32
        assert route.joinable == "239.1.2.3"
        assert all(o.follow for o in route.outputs[1:]), "an any-port rule's member outputs follow the packet"
    assert where_sent({i: r for i, r in routes.items() if r.group == "239.1.2.3"}, "10.1.1.1") == \
        {"tun7", "eth1", "eth2"}


# --- a routing protocol's entries -------------------------------------------------

@dataclass(frozen=True)
class Entry:  # the shape of mcr.protocols' forwarding entries
    interface: str
    source: str | None
    group: str
    outputs: frozenset
    notify: bool = False


def _ids():
    table: dict = {}
    return lambda key: table.setdefault(key, DERIVED + len(table))


def test_protocol_entries_become_unchanged_any_port_routes() -> None:
    ifindex = {"up": 2, "d1": 3, "d2": 4}
    ids = _ids()
    routes = mrib.protocol_routes("pim", [Entry("up", None, "239.1.1.1", frozenset({"d2", "d1"}), notify=True),
                                          Entry("up", "10.0.0.5", "239.1.1.1", frozenset())], ifindex, ids)
    star, drop = sorted(routes.values(), key=lambda r: r.source or "")
    assert star.origin == "pim" and star.state == mrib.ACTIVE and star.notify and star.joinable is None
    assert [(o.interface, o.follow, o.keep_source, o.ttl) for o in star.outputs] == [("d1", True, True, None),
                                                                                      ("d2", True, True, None)]
    assert star.engine_tuple()[1:5] == (2, "239.1.1.1", 0, "")
    assert drop.outputs == () and drop.state == mrib.ACTIVE and drop.source == "10.0.0.5"
    again = mrib.protocol_routes("pim", [Entry("up", None, "239.1.1.1", frozenset({"d1"}))], ifindex, ids)
    assert list(again) == [star.engine_id]  # the same entry keeps its id


def test_protocol_entries_wait_for_their_interfaces_and_yield_to_static_rules() -> None:
    ifindex = {"up": 2, "d1": 3}
    assert mrib.protocol_routes("pim", [Entry("up", None, "239.1.1.1", frozenset({"gone"}))], ifindex, _ids()) == {}
    static = mrib.compute({1: Rule("up", "239.1.1.1", 0, (Output("239.9.9.9", 9, "d1"),))}, ifindex)
    learned = mrib.protocol_routes("pim", [Entry("up", None, "239.1.1.1", frozenset({"d1"})),
                                           Entry("up", None, "239.1.1.2", frozenset({"d1"}))], ifindex, _ids())
    merged = mrib.merge(static, learned)
    assert sorted((r.origin, r.group or r.rule.group) for r in merged.values()) == [("pim", "239.1.1.2"),
                                                                                     ("static", "239.1.1.1")]
