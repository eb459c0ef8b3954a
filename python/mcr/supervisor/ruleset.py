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
            if rule_id in ignore:
                continue
            if (held.input_interface, held.group, held.port, held.source, held.vlan) == \
                    (rule.input_interface, rule.group, rule.port, rule.source, rule.vlan):
                raise CommandError("conflict", f"rule {rule_id} already relays {rule.group}:{rule.port} "
                                               f"from {rule.source or 'any source'} on {rule.input_interface}")
            if rule.name and held.name == rule.name:
                raise CommandError("conflict", f"rule {rule_id} is already named '{rule.name}'")

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
        new rules clash with each other. Nothing changes until `adopt`."""
        kept: dict[int, Rule] = {}
        added: list[Rule] = []
        for rule in wanted:
            same = next((i for i, r in self.rules.items() if r == rule and i not in kept), None)
            if same is None:
                added.append(rule)
            else:
                kept[same] = rule  # may carry a new name
        trial = RuleSet()
        trial.rules = dict(kept)
        for rule in added:
            trial.check_new(rule)
            trial.rules[-1 - len(trial.rules)] = rule  # a placeholder id, so later rules are checked against it
        rules = dict(kept)
        first = self._next_id
        for offset, rule in enumerate(added):
            rules[first + offset] = rule
        return Plan(rules, len(added), len(self.rules) - len(kept), len(kept))

    def adopt(self, plan: Plan) -> None:
        self.rules = dict(plan.rules)
        self._next_id = max([self._next_id - 1, *plan.rules]) + 1
