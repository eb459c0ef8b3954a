"""A stand-in for the Supervisor with just what the metrics capture reads
(no workers unless a test adds them)."""

from __future__ import annotations

from types import SimpleNamespace


class StandIn:
    version = "0.0.0-test"
    resyncs = health_passes = 0

    def __init__(self) -> None:
        self.pool, self.routes, self.rules = [], {}, {}
        self._derived_ids: dict[tuple, int] = {}
        self.igmp = self.pim = None
        self.task_faults: dict[str, int] = {}
        self.network = SimpleNamespace(interfaces=dict)
        self.broken = False

    def faults(self) -> dict[str, int]:
        return dict(self.task_faults)

    def workers(self) -> list[dict]:
        if self.broken:
            raise KeyError("a bug of ours")
        return []

    def _count_fault(self, name: str) -> None:
        self.task_faults[name] = self.task_faults.get(name, 0) + 1
