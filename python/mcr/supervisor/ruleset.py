"""The static rules the user asked for: ids, names, clashes, replacement.

No I/O: the supervisor asks this object what a change means (which id a
rule gets, whether it clashes with a held one, which rules a new config
keeps, adds and removes) and then applies that to the workers; the MRIB
(mcr.mrib) turns the rules into routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..rules import Rule
from .commands import CommandError


@dataclass(frozen=True)
class Plan:
    """What replacing the rule set with a wanted one means."""

    rules: dict[int, Rule]  # the new set: kept rules keep their id
    added: int
    removed: int
    unchanged: int

    def summary(self) -> dict:
        return {"added": self.added, "removed": self.removed, "unchanged": self.unchanged}


class RuleSet:
    def __init__(self) -> None:
        self.rules: dict[int, Rule] = {}
        self._next_id = 1

    def listed(self) -> list[tuple[int, Rule]]:
        return sorted(self.rules.items())

    def check_new(self, rule: Rule, ignore: set[int] = frozenset()) -> None:
        """Refuse a rule that clashes with one we hold (same input, or same
        name). Interfaces that do not exist (yet) are fine: the rule waits
        for them (see mrib.py)."""
        for rule_id, held in self.rules.items():
            if rule_id not in ignore:
                _refuse_clash(rule, rule_id, held)

    def next_id(self) -> int:
        """The id the next added rule gets; ids are never reused."""
        rule_id = self._next_id
        self._next_id += 1
        return rule_id

    def find(self, key: int | str) -> int:
        """The id of the rule with this id or name."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            if int(key) in self.rules:
                return int(key)
        for rule_id, rule in self.rules.items():
            if rule.name is not None and rule.name == key:
                return rule_id
        raise CommandError("not_found", f"no rule with id or name '{key}'")

    def plan(self, wanted: tuple[Rule, ...]) -> Plan:
        """The rule set equal to `wanted`, where a rule we hold already keeps
        its id (and so its traffic and counters); raises CommandError if the
        new rules clash with each other. Nothing changes until `adopt`.
        Linear in the rules (by hash), for configs of tens of thousands."""
        held: dict[Rule, list[int]] = {}
        for rule_id, rule in sorted(self.rules.items()):
            held.setdefault(rule, []).append(rule_id)
        rules: dict[int, Rule] = {}
        added: list[Rule] = []
        for rule in wanted:
            ids = held.get(rule)
            if ids:
                rules[ids.pop(0)] = rule  # may carry a new name
            else:
                added.append(rule)
        kept = len(rules)
        by_input = {_input_of(r): i for i, r in rules.items()}
        by_name = {r.name: i for i, r in rules.items() if r.name}
        for rule_id, rule in enumerate(added, start=self._next_id):
            if (clash := by_input.get(_input_of(rule))) is not None or (clash := by_name.get(rule.name)) is not None:
                _refuse_clash(rule, clash, rules[clash])
            rules[rule_id] = rule
            by_input[_input_of(rule)] = rule_id
            if rule.name:
                by_name[rule.name] = rule_id
        return Plan(rules, len(added), len(self.rules) - kept, kept)

    def adopt(self, plan: Plan) -> None:
        self.rules = dict(plan.rules)
        self._next_id = max([self._next_id - 1, *plan.rules]) + 1


def _input_of(rule: Rule) -> tuple:
    """What no two rules may share: the traffic they take in."""
    return (rule.input_interface, rule.group, rule.port, rule.source, rule.vlan)


def _refuse_clash(rule: Rule, held_id: int, held: Rule) -> None:
    if _input_of(held) == _input_of(rule):
        raise CommandError("conflict", f"rule {held_id} already relays {rule.group}:{rule.port} "
                                       f"from {rule.source or 'any source'} on {rule.input_interface}")
    if rule.name and held.name == rule.name:
        raise CommandError("conflict", f"rule {held_id} is already named '{rule.name}'")
