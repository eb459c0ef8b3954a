"""PIM's rule forms (no I/O): register outputs, the REGISTER input, notify
rules, and the engine tuples they become (optional trailing fields, so
rules without them keep their old tuples)."""

from __future__ import annotations

import pytest

from mcr import _engine, mrib
from mcr.rules import REGISTER_INTERFACE, Output, Rule, RuleError


def test_a_register_output_parses_prints_and_encodes() -> None:
    out = Output.parse("register:10.0.0.9:source=10.0.0.1")
    assert out == Output.to_rp("10.0.0.9", source="10.0.0.1")
    assert str(out) == "register:10.0.0.9:source=10.0.0.1"
    assert Output.parse(str(Output.to_rp("10.0.0.9"))) == Output.to_rp("10.0.0.9")
    assert out.engine_tuple(123) == ("10.0.0.9", 0, 0, -1, -1, False, 0, False, True, "10.0.0.1")
    assert Output("239.1.1.1", 5000, "eth1").engine_tuple(4) == ("239.1.1.1", 5000, 4, -1, -1, False, 0, False)


@pytest.mark.parametrize("text, why", [
    ("register:239.1.1.1", "unicast"),
    ("register:0.0.0.0", "unicast"),
    ("register:10.0.0.9:source=224.0.0.5", "unicast"),
    ("register:10.0.0.9:src=10.0.0.1", "expected register:RP"),
])
def test_bad_register_outputs_are_refused(text: str, why: str) -> None:
    with pytest.raises(RuleError, match=why):
        Output.parse(text)


def test_a_register_output_sends_the_packet_as_received() -> None:
    with pytest.raises(RuleError, match="as received"):
        Output("10.0.0.9", 0, REGISTER_INTERFACE, ttl=3, register=True)
    with pytest.raises(RuleError, match="its interface is"):
        Output("10.0.0.9", 0, "eth0", register=True)


def test_a_notify_rule_may_have_no_outputs_and_round_trips() -> None:
    rule = Rule.parse("in=eth0 group=224.0.0.0/4:any notify")
    assert rule.notify and rule.outputs == ()
    assert Rule.parse(str(rule)) == rule
    assert rule.engine_tuple(7, 2, lambda name: 0) == (7, 2, "224.0.0.0", 0, "", [], 0, 4, True)
    with pytest.raises(RuleError, match="at least one output"):
        Rule("eth0", "239.1.1.1", 5000, ())
    plain = Rule.parse("in=eth0 group=239.1.1.1:5000 out=239.2.2.2:5000:eth1")
    assert len(plain.engine_tuple(1, 2, lambda name: 3)) == 8, "a rule without notify changed its tuple"


def test_the_mrib_keeps_a_zero_output_notify_rule_active() -> None:
    catch_all = Rule("eth0", "224.0.0.0/4", 0, (), notify=True)
    register_in = Rule(REGISTER_INTERFACE, "239.1.1.1", 5000, (Output("239.1.1.1", 5000, "eth1", keep_source=True),))
    table = {"eth0": 2, "eth1": 3, REGISTER_INTERFACE: _engine.REGISTER_IFINDEX}
    routes = mrib.compute({1: catch_all, 2: register_in}, table)
    assert [r.state for r in routes.values()] == [mrib.ACTIVE, mrib.ACTIVE]
    assert mrib.engine_rules(routes) == [
        (1, 2, "224.0.0.0", 0, "", [], 0, 4, True),
        (2, _engine.REGISTER_IFINDEX, "239.1.1.1", 5000, "", [("239.1.1.1", 5000, 3, -1, -1, True, 0, False)], 0, 32),
    ]
    assert _engine.ruleset_hash(mrib.engine_rules(routes))  # the bindings take both tuple shapes


def test_a_protocol_routes_notify_reaches_the_engine_tuple() -> None:
    """mrib.protocol_routes sets Route.notify (a PIM (*,G) whose new sources the DR must see)."""
    rule = Rule("up", "239.1.1.1", 0, (Output("239.1.1.1", 0, "d1", keep_source=True, follow=True),), protocol="pim")
    route = mrib.Route(9, 9, rule, mrib.ACTIVE, (), None, "239.1.1.1", 2, rule.outputs, (3,), "pim", True)
    assert route.engine_tuple()[8:] == (True,)
    assert mrib.Route(9, 9, rule, mrib.ACTIVE, (), None, "239.1.1.1", 2, rule.outputs, (3,), "pim").engine_tuple()[8:] == ()
    assert _engine.ruleset_hash([route.engine_tuple()]) != _engine.ruleset_hash([route.engine_tuple()[:8]])
