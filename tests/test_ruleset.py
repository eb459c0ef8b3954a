"""The rule set's bookkeeping (no I/O): ids, names, clashes, replacement plans."""

from __future__ import annotations

import pytest

from mcr.rules import Rule
from mcr.supervisor.commands import CommandError
from mcr.supervisor.ruleset import RuleSet


def rule(group: str = "239.1.1.1", port: int = 5000, name: str | None = None, vlan: int | None = None) -> Rule:
    return Rule.parse(f"in=eth0 group={group}:{port} out=239.2.2.2:{port}:eth1"
                      + (f" name={name}" if name else "") + (f" vlan={vlan}" if vlan else ""))


def test_replacing_keeps_the_ids_of_unchanged_rules_and_never_reuses_one():
    rules = RuleSet()
    rules.adopt(rules.plan((rule(port=1), rule(port=2), rule(port=3))))
    assert sorted(rules.rules) == [1, 2, 3]
    plan = rules.plan((rule(port=3), rule(port=4)))
    assert plan.summary() == {"added": 1, "removed": 2, "unchanged": 1}
    rules.adopt(plan)
    assert {i: r.port for i, r in rules.rules.items()} == {3: 3, 4: 4}
    assert rules.next_id() == 5


def test_a_plan_changes_nothing_until_adopted():
    rules = RuleSet()
    rules.adopt(rules.plan((rule(port=1),)))
    rules.plan((rule(port=2),))
    assert [r.port for r in rules.rules.values()] == [1]
    assert rules.next_id() == 2


def test_an_added_rule_may_not_clash_with_a_kept_one_or_with_another_added_one():
    rules = RuleSet()
    rules.adopt(rules.plan((rule(port=1, name="a"),)))
    with pytest.raises(CommandError, match="rule 1 already relays 239.1.1.1:1"):
        rules.plan((rule(port=1, name="a"), Rule.parse("in=eth0 group=239.1.1.1:1 out=239.9.9.9:1:eth2")))
    with pytest.raises(CommandError, match="already named 'b'"):
        rules.plan((rule(port=2, name="b"), rule(port=3, name="b")))
    assert list(rules.rules) == [1]


def test_the_same_group_on_another_vlan_is_another_input():
    rules = RuleSet()
    rules.adopt(rules.plan((rule(port=1), rule(port=1, vlan=10))))
    assert len(rules.rules) == 2
    with pytest.raises(CommandError, match="conflict|already relays"):
        rules.check_new(rule(port=1, vlan=10))


def test_find_by_id_or_name():
    rules = RuleSet()
    rules.adopt(rules.plan((rule(port=1, name="feed"), rule(port=2))))
    assert rules.find("feed") == 1 and rules.find(2) == 2 and rules.find("2") == 2
    with pytest.raises(CommandError, match="no rule with id or name 'nope'"):
        rules.find("nope")
