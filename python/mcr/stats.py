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

Rule ids are strings (as JSON has them); the daemon adds its own keys
(resyncs, task_faults, health_passes).
"""

from __future__ import annotations

import time

from . import _engine
from .rules import Rule

OUTPUT_COUNTERS = ("packets", "bytes", "errors")


def from_engine(raw: dict) -> dict:
    """An engine's GetStats reply as counters keyed by ifindex, rule id and output index."""
    return {
        "drops": raw["drops"],
        "events": raw["events"],
        "inputs": {i["ifindex"]: {k: v for k, v in i.items() if k != "ifindex"} for i in raw["inputs"]},
        "rules": {r["id"]: {"packets": r["packets"], "bytes": r["bytes"], "outputs": dict(enumerate(r["outputs"]))}
                  for r in raw["rules"]},
    }


def snapshot(rules: dict[int, Rule], states: dict[int, dict], counters: dict, ifnames: dict[int, str]) -> dict:
    """The shape above, from the rules by id, each rule's state ({"state": ...}),
    counters as from_engine gives them (or sums of them) and interface names."""
    shown = {}
    for rule_id, rule in sorted(rules.items()):
        counted = counters.get("rules", {}).get(rule_id, {})
        outputs = counted.get("outputs", {})
        shown[str(rule_id)] = {
            "name": rule.name, "rule": str(rule), **states.get(rule_id, {}),
            "packets": counted.get("packets", 0), "bytes": counted.get("bytes", 0),
            "outputs": {str(o): {k: outputs.get(i, {}).get(k, 0) for k in OUTPUT_COUNTERS}
                        for i, o in enumerate(rule.outputs)}}
    return {"time": time.time(), "rules": shown,
            "drops": counters.get("drops") or {reason: 0 for reason in _engine.DROP_REASONS},
            "events": counters.get("events") or {event: 0 for event in _engine.EVENTS},
            "inputs": {ifnames.get(i, str(i)): c for i, c in counters.get("inputs", {}).items()}}
