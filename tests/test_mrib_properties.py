"""Properties of mrib.compute with receiver-driven rules (members), group
ranges, any-port and source-specific rules together: derived routes are
named by their key alone, every output comes from the route's rule or from
listeners who want it, a range's per-group routes stay inside its prefix,
and nothing depends on the order of the inputs. (tests/test_mrib.py holds
the properties of static rules alone.)"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mcr import mrib
from mcr.rules import ANY_PORT, Output, Rule

FAST = settings(max_examples=200, deadline=None)

NAMES = ["eth0", "eth1", "eth2", "wg0", "tun7"]
GROUPS = ["239.1.0.1", "239.1.2.3", "239.1.2.9", "239.2.0.1"]  # what listeners ask for
RANGES = ["239.1.0.0/16", "239.1.2.0/24"]
SOURCES = ["10.1.1.1", "10.1.1.2", "10.1.1.3"]


def derived_id(rule_id: int, group: str, source: str | None) -> int:
    """A pure naming of derived routes, far above every rule id."""
    return 1_000_000 + rule_id * 1000 + GROUPS.index(group) * 10 + (SOURCES.index(source) + 1 if source else 0)


@st.composite
def rules(draw) -> Rule:
    input_interface = draw(st.sampled_from(NAMES))
    others = [n for n in NAMES if n != input_interface]
    static = draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
    members = tuple(draw(st.lists(st.sampled_from(others), max_size=3, unique=True)))
    if not static and not members:
        static = others[:1]
    return Rule(input_interface, draw(st.sampled_from(GROUPS + RANGES)), draw(st.sampled_from([5000, ANY_PORT])),
                tuple(Output("239.9.9.9", 1000 + i, name) for i, name in enumerate(static)),
                draw(st.none() | st.sampled_from(SOURCES)), members=members)


rule_sets = st.dictionaries(st.integers(1, 20), rules(), max_size=5)
tables = st.dictionaries(st.sampled_from(NAMES), st.integers(1, 100), max_size=len(NAMES))
listenings = st.builds(mrib.Listening, st.sampled_from([mrib.INCLUDE, mrib.EXCLUDE]),
                       st.frozensets(st.sampled_from(SOURCES), max_size=2))
listener_sets = st.dictionaries(st.sampled_from(NAMES), st.dictionaries(st.sampled_from(GROUPS), listenings,
                                                                        max_size=3), max_size=4)


def group_of(route: mrib.Route) -> str:
    return route.group or route.rule.group


@FAST
@given(rule_sets, tables, listener_sets)
def test_derived_routes_are_named_by_their_key_alone(static, table, listeners) -> None:
    routes = mrib.compute(static, table, listeners, derived_id)
    for engine_id, route in routes.items():
        assert engine_id == route.engine_id
        if route.derived:  # keyed by the listeners' source; a rule's own source is the rule's
            source = None if route.source == route.rule.source else route.source
            assert engine_id == derived_id(route.rule_id, group_of(route), source)
        else:
            assert engine_id == route.rule_id and route.rule is static[engine_id]
    # A listener elsewhere changing nothing of a route's key leaves its id alone.
    again = mrib.compute(static, table, {**listeners, "tun7": {}}, derived_id)
    for engine_id in set(routes) & set(again):
        assert again[engine_id].rule_id == routes[engine_id].rule_id
        assert (again[engine_id].group, again[engine_id].source) == (routes[engine_id].group, routes[engine_id].source)


@FAST
@given(rule_sets, tables, listener_sets)
def test_every_output_comes_from_the_rule_or_from_listeners_who_want_it(static, table, listeners) -> None:
    for route in mrib.compute(static, table, listeners, derived_id).values():
        rule = route.rule
        assert route.outputs[:len(rule.outputs)] == rule.outputs or route.state != mrib.ACTIVE
        for output in route.outputs[len(rule.outputs):]:
            assert output.interface in rule.members and output.interface in table
            wanted = listeners[output.interface][group_of(route)]
            assert wanted.wants(route.source), (output, route)
            assert output == mrib.member_output(rule, group_of(route), output.interface)
        if route.state == mrib.ACTIVE:
            assert route.output_ifindexes == tuple(table[o.interface] for o in route.outputs)
            assert route.input_ifindex == table[rule.input_interface]


@FAST
@given(rule_sets, tables, listener_sets)
def test_a_range_routes_only_groups_inside_its_prefix_that_listeners_want(static, table, listeners) -> None:
    for route in mrib.compute(static, table, listeners, derived_id).values():
        if route.group is None:
            continue
        rule = route.rule
        assert rule.prefix_len < 32 and rule.covers(route.group), route
        assert any(route.group in listeners.get(name, {}) for name in rule.members if name in table)


def shuffled(mapping: dict, rng: random.Random) -> dict:
    items = list(mapping.items())
    rng.shuffle(items)
    return dict(items)


@FAST
@given(rule_sets, tables, listener_sets, st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_the_order_of_any_input(static, table, listeners, rng) -> None:
    reordered = {name: shuffled(groups, rng) for name, groups in shuffled(listeners, rng).items()}
    assert mrib.compute(static, table, listeners, derived_id) == \
        mrib.compute(shuffled(static, rng), shuffled(table, rng), reordered, derived_id)
