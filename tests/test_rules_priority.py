"""QoS priorities as users write them: rule and output forms, config keys, and what is refused."""

from __future__ import annotations

import pytest

from mcr import _engine
from mcr.config import ConfigError, rule_from_dict, rule_to_dict
from mcr.rules import DSCP_PRIORITY, Output, Rule, RuleError

BASE = {"input_interface": "eth0", "group": "239.1.1.1", "port": 5000, "outputs": ["239.2.2.2:6000:eth1"]}


def test_the_dscp_marker_is_the_engines() -> None:
    assert DSCP_PRIORITY == _engine.DSCP_PRIORITY


@pytest.mark.parametrize("value, priority", [(0, 0), (5, 5), ("6", 6), ("dscp", DSCP_PRIORITY), ("DSCP", DSCP_PRIORITY)])
def test_config_priority_round_trips(value, priority) -> None:
    rule = rule_from_dict({**BASE, "priority": value})
    assert rule.priority == priority
    assert rule_from_dict(rule_to_dict(rule)) == rule
    assert ("priority" in rule_to_dict(rule)) == bool(priority)


@pytest.mark.parametrize("value, why", [(7, "outside 0-6"), (-1, "outside 0-6"), ("1:10", "not a priority"),
                                        (True, "expected 0-6"), (2.5, "expected 0-6")])
def test_bad_priorities_are_refused_with_the_key(value, why) -> None:
    with pytest.raises(ConfigError, match=rf"rule\.priority: .*{why}"):
        rule_from_dict({**BASE, "priority": value})


def test_an_output_overrides_the_rules_and_round_trips_in_text() -> None:
    rule = Rule.parse("in=eth0 group=239.1.1.1:5000 priority=dscp out=239.2.2.2:6000:eth1:priority=3,"
                      "239.2.2.3:6000:eth1:vlan=5:priority=0")
    assert rule.priority == DSCP_PRIORITY and [o.priority for o in rule.outputs] == [3, 0]
    assert Rule.parse(str(rule)) == rule
    ((*_, priority), (*_, plain)) = [o.engine_tuple(3) for o in rule.outputs]
    assert (priority, plain) == (3, 0)
    assert rule.engine_tuple(1, 2, lambda name: 3)[-2:] == (False, DSCP_PRIORITY)


@pytest.mark.parametrize("text", ["239.2.2.2:6000:eth1:vlan=5", "239.2.2.2:6000:eth1:keep-source"])
def test_packet_path_outputs_cannot_take_the_rules_priority(text) -> None:
    with pytest.raises(RuleError, match="give it :priority=0"):
        Rule.parse(f"in=eth0 group=239.1.1.1:5000 priority=4 out={text}")
    with pytest.raises(RuleError, match="cannot carry a priority"):
        Output.parse(f"{text}:priority=4")
