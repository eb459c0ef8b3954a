"""Properties of the MRIB (mcr.mrib.compute): a pure function of rules and interfaces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mcr import mrib
from mcr.rules import Output, Rule

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
        rule_id, in_index, group, port, _source, outputs, _vlan = rule_tuple
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
