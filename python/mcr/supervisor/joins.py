"""Static joins: group memberships the user asked for, held while their
interface exists.

A join names its interface, like a rule, and follows it the same way: it
waits while the interface is missing, and a re-created interface (a new
index) gets a fresh membership. Memberships are counted per (interface,
group, source) by the membership service, so a join and a rule on the same
group share one report and one NIC filter entry.
"""

from __future__ import annotations

from ..rules import Join


class StaticJoins:
    def __init__(self) -> None:
        self.wanted: set[Join] = set()
        self.held: dict[Join, int] = {}  # join -> ifindex its membership is on

    def state(self, join: Join) -> str:
        return "joined" if join in self.held else "waiting"

    def stale(self, table: dict[str, int]) -> set[str]:
        """Interfaces whose held memberships belong to an index that is gone
        (deleted, renamed away or re-created): their sockets must be forgotten."""
        return {j.interface for j, index in self.held.items() if table.get(j.interface) != index}

    def out_of_step(self, table: dict[str, int]) -> bool:
        return bool(self.stale(table)) or any(
            (j in self.wanted) != (j in self.held) and (j in self.held or j.interface in table)
            for j in self.wanted | set(self.held))

    def sync(self, membership, table: dict[str, int]) -> list[tuple[Join, str]]:
        """Leave what is no longer wanted or no longer there, join what is
        wanted and there; returns (join, "joined" | "left") for each change.
        Forget stale interfaces' sockets first (see stale())."""
        changes = []
        for join, index in list(self.held.items()):
            if join not in self.wanted or table.get(join.interface) != index:
                membership.leave(join.interface, join.group, join.source)
                del self.held[join]
                changes.append((join, "left"))
        for join in sorted(self.wanted - set(self.held), key=str):
            if join.interface in table:
                membership.join(join.interface, join.group, join.source)
                self.held[join] = table[join.interface]
                changes.append((join, "joined"))
        return changes
