"""One shape for counters, whoever runs the engine.

`mcr relay` (an Engine in this process), `mcr stats` and the API's
`stats()` (the daemon, summing its workers) all report:

    {"time": 1764630000.0,
     "rules": {"1": {"name": "feed-a", "rule": "in=eth0 group=...", "state": "active",
                     "packets": 10, "bytes": 1000,
                     "outputs": {"239.2.2.2:5000:eth1": {"packets": 10, "bytes": 1000, "errors": 0}}}},
     "drops": {"no_rule": 0, ...},     # by reason (mcr._engine.DROP_REASONS)
     "events": {"tx_ring_full": 0, ...},
     "inputs": {"eth0": {"packets": 10, "kernel_packets": 10, "kernel_drops": 0, ...}}}

Rule ids are strings (as JSON has them); a rule's counters sum its routes
(a receiver-driven rule may have several, see mcr.mrib) and its outputs are
named as the rule writes them, member outputs included once they counted.
The daemon adds its own keys (resyncs, task_faults, health_passes).
"""

from __future__ import annotations

import time
from typing import Mapping

from . import _engine
from .rules import Rule

OUTPUT_COUNTERS = ("packets", "bytes", "errors")


def from_engine(raw: dict, labels: Mapping[int, list[str]]) -> dict:
    """An engine's GetStats reply as counters keyed by ifindex, engine rule id
    and output name (`labels`: engine rule id -> its outputs' names, in order)."""
    rules = {}
    for r in raw["rules"]:
        names = labels.get(r["id"])
        if names is not None and len(names) == len(r["outputs"]):  # else not the rule we think it is
            rules[r["id"]] = {"packets": r["packets"], "bytes": r["bytes"], "outputs": dict(zip(names, r["outputs"]))}
    return {
        "drops": raw["drops"],
        "events": raw["events"],
        "inputs": {i["ifindex"]: {k: v for k, v in i.items() if k != "ifindex"} for i in raw["inputs"]},
        "rules": rules,
    }


def by_rule(counted: Mapping[int, dict], rule_of: Mapping[int, int]) -> dict[int, dict]:
    """Engine rules' counters summed per user rule (`rule_of`: engine id -> rule id)."""
    sums: dict[int, dict] = {}
    for engine_id, counters in counted.items():
        rule_id = rule_of.get(engine_id, engine_id)
        total = sums.setdefault(rule_id, {"packets": 0, "bytes": 0, "outputs": {}})
        total["packets"] += counters.get("packets", 0)
        total["bytes"] += counters.get("bytes", 0)
        for name, output in counters.get("outputs", {}).items():
            into = total["outputs"].setdefault(name, dict.fromkeys(OUTPUT_COUNTERS, 0))
            for key in OUTPUT_COUNTERS:
                into[key] += output.get(key, 0)
    return sums


def snapshot(rules: dict[int, Rule], states: dict[int, dict], counters: dict, ifnames: dict[int, str],
             rule_of: Mapping[int, int] | None = None) -> dict:
    """The shape above, from the rules by id, each rule's state ({"state": ...}),
    counters as from_engine gives them (or sums of them), interface names and
    which rule each engine rule belongs to (default: the same id)."""
    per_rule = by_rule(counters.get("rules", {}), rule_of or {})
    zero = dict.fromkeys(OUTPUT_COUNTERS, 0)
    shown = {}
    for rule_id, rule in sorted(rules.items()):
        counted = per_rule.get(rule_id, {})
        outputs = {str(o): dict(zero) for o in rule.outputs} | counted.get("outputs", {})
        shown[str(rule_id)] = {
            "name": rule.name, "rule": str(rule), **states.get(rule_id, {}),
            "packets": counted.get("packets", 0), "bytes": counted.get("bytes", 0), "outputs": outputs}
    return {"time": time.time(), "rules": shown,
            "drops": counters.get("drops") or {reason: 0 for reason in _engine.DROP_REASONS},
            "events": counters.get("events") or {event: 0 for event in _engine.EVENTS},
            "inputs": {ifnames.get(i, str(i)): c for i, c in counters.get("inputs", {}).items()}}
